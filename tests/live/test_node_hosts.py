"""The ring of 7 nodes deployed on 3 hosts (Linux network namespaces joined by veth links),
one node process per host and the controller service on the first: keys cross hosts;
SIGKILL of the relay host's process, and a cut link between two hosts, each send keys
round the ring once detected; the process started again, or the link restored, brings the
short route back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_hosts import NetnsHosts, netns_hosts, read_line, require_netns
from node_deployment import RING, SETTLE_S

from qkdnet.files.deployment import load_deployment
from qkdnet.live.node_processes import deployment_pki

require_netns()

HOSTS = {"pa": "h1", "pb": "h2", "pc": "h3"}
START_TIMEOUT_S = 60.0

#: Run in h1 (sae-a's host): Get key at sae-a until one is delivered (at most TRIES
#: calls, 0.2 s apart), the same key at sae-c; prints the calls refused first.
CLIENT = """
import json, sys, time
from qkdnet.apps.sae_client import KmeError, SaeClient
master = SaeClient.from_manifest(sys.argv[1], "sae-a", timeout_s=10)
slave = SaeClient.from_manifest(sys.argv[2], "sae-c", timeout_s=10)
for refused in range(int(sys.argv[3])):
    try:
        keys = master.enc_keys("sae-c", 1, 256)
    except KmeError:
        time.sleep(0.2)
        continue
    got = slave.dec_keys("sae-a", [keys[0].key_id])
    same = [(k.key_id, k.material) for k in got] == [(k.key_id, k.material) for k in keys]
    print(json.dumps({"refused": refused, "same": same, "key_id": keys[0].key_id}))
    break
else:
    print(json.dumps({"refused": int(sys.argv[3]), "same": None}))
"""


@pytest.fixture
def hosts() -> Iterator[NetnsHosts]:
    with netns_hosts(list(HOSTS.values())) as net:
        yield net


class Ring:
    """The deployment on the namespace hosts, its node processes by id."""

    def __init__(self, net: NetnsHosts, folder: Path) -> None:
        self.net, self.folder = net, folder
        (folder / "ring.yaml").write_text(RING)
        lines = ["qkdnet_deployment: 1", "scenario: ring.yaml", "hosts:"]
        lines += [f"  - {{id: {h}, address: {net.address(h)}}}" for h in HOSTS.values()]
        lines += ["processes:",
                  "  - {id: pa, host: h1, nodes: [a1, a2], kme_port: 8400, km_port: 9400}",
                  "  - {id: pb, host: h2, nodes: [b1, b2], kme_port: 8400, km_port: 9400}",
                  "  - {id: pc, host: h3, nodes: [c1, c2, c3], kme_port: 8400, "
                  "km_port: 9400}",
                  "controller: {host: h1, port: 7000}", "nms: {host: h1, port: 8080}"]
        self.file = folder / "deploy.yaml"
        self.file.write_text("\n".join(lines) + "\n")
        self.pki = deployment_pki(load_deployment(self.file), folder / "base").folder
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.seen: set[str] = set()

    def start_controller(self) -> None:
        data = self.folder / "base" / "controller"
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        self.controller = self.net.qkdnet(
            "h1", "controller", "--deployment", str(self.file), "--pki", str(self.pki),
            "--dir", str(data), stdout=subprocess.PIPE,
            stderr=(data / "controller.log").open("w"), text=True)
        assert "controller serving" in read_line(self.controller, START_TIMEOUT_S)

    def start(self, process: str) -> None:
        data = self.folder / "base" / process
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        (data / "node.log").unlink(missing_ok=True)
        self.processes[process] = self.net.qkdnet(
            HOSTS[process], "node", "--deployment", str(self.file), "--process", process,
            "--dir", str(data), "--pki", str(self.pki), "--prefill-bits", "200000",
            "--speedup", "10", stdout=subprocess.PIPE, stderr=(data / "node.log").open("w"),
            text=True)
        assert "KMEs serving" in read_line(self.processes[process], START_TIMEOUT_S)

    def deliver(self, tries: int) -> int:
        """One key delivered sae-a -> sae-c and checked; the calls refused before it."""
        client = self.net.python("h1", CLIENT, *(str(self.folder / "base" / p /
                                                     "manifest.json") for p in ("pa", "pc")),
                                 str(tries), stdout=subprocess.PIPE, text=True)
        out, _ = client.communicate(timeout=tries * 12 + 30)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["same"] is True, f"no key delivered in {tries} calls"
        assert result["key_id"] not in self.seen
        self.seen.add(result["key_id"])
        return int(result["refused"])

    def hops(self) -> int:
        """The hops of the route sae-a's KM last logged keys taking to sae-c's node."""
        lines = [line for line in (self.folder / "base" / "pa" / "node.log").read_text()
                 .splitlines() if "keys from node a2 to node c1 now go over" in line]
        return int(lines[-1].split(" over ")[1].split()[0])

    def until_hops(self, hops: int, limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while self.hops() != hops and time.monotonic() < deadline:
            self.deliver(100)
            time.sleep(0.3)
        assert self.hops() == hops


def test_keys_go_round_a_lost_host_process_and_a_cut_link(hosts: NetnsHosts,
                                                          tmp_path: Path) -> None:
    ring = Ring(hosts, tmp_path)
    ring.start_controller()
    for process in HOSTS:
        ring.start(process)
    # the first Get key declares the demand, and its first route is the plan it reverts
    # to: declared once every border KM-link holds key (their devices make a block every
    # ~0.1 s at --speedup 10), the plan is the short route
    time.sleep(SETTLE_S)
    for _ in range(3):
        ring.deliver(100)
    assert ring.hops() == 3  # a2 b1 b2 c1: through h2

    ring.processes["pb"].kill()  # SIGKILL of the relay host's node process
    ring.processes["pb"].wait(10)
    ring.deliver(100)
    ring.until_hops(4)  # a2 a1 c3 c2 c1: round h2
    assert ring.deliver(10) == 0

    ring.start("pb")
    ring.until_hops(3)  # back through h2 (revertive)

    hosts.cut("h1", "h2")  # pa no longer hears pb: the same as losing it, from h1
    ring.until_hops(4)
    assert ring.deliver(10) == 0
    hosts.restore("h1", "h2")
    ring.until_hops(3)
