"""A ring of 7 nodes in 3 node processes and the controller service on loopback: the short
route between two SAEs crosses the middle process; SIGKILL it and keys go round the other
side of the ring once its loss is detected (a process silent for 3 s counts as down), each
key delivered once and identical at both SAEs; start it again and the route comes back
(revertive). SIGKILL the controller service: keys keep flowing on the last routes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from node_deployment import RING, SETTLE_S, free_ports, qkdnet

from qkdnet.apps.sae_client import KmeError, SaeClient


def _hops_logged(log: Path) -> list[int]:
    """The hop counts of the routes sae-a's KME logged keys taking (a line per change)."""
    return [int(line.split(" over ")[1].split()[0]) for line in log.read_text().splitlines()
            if "keys from node a2 to node c1 now go over" in line]


def test_keys_go_round_a_killed_process_and_come_back(tmp_path: Path) -> None:
    (tmp_path / "ring.yaml").write_text(RING)
    ports = free_ports(8, width=3)
    (tmp_path / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: ring.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: pa, host: local, nodes: [a1, a2], kme_port: {ports[0]}, km_port: {ports[1]}}}
  - {{id: pb, host: local, nodes: [b1, b2], kme_port: {ports[2]}, km_port: {ports[3]}}}
  - {{id: pc, host: local, nodes: [c1, c2, c3], kme_port: {ports[4]}, km_port: {ports[5]}}}
controller: {{host: local, port: {ports[6]}}}
nms: {{host: local, port: {ports[7]}}}
""")
    try:
        up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "200000",
                     "--speedup", "10", cwd=tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        base = tmp_path / "base"
        master = SaeClient.from_manifest(
            json.loads((base / "pa" / "manifest.json").read_text()), "sae-a", timeout_s=10)
        slave = SaeClient.from_manifest(
            json.loads((base / "pc" / "manifest.json").read_text()), "sae-c", timeout_s=10)
        seen: set[str] = set()

        def deliver_once(tries: int) -> int:
            """Get key at sae-a until one is delivered (at most ``tries`` calls); check it
            at sae-c; return the calls refused before it."""
            for refused in range(tries):
                try:
                    keys = master.enc_keys("sae-c", 1, 256)
                except KmeError:
                    time.sleep(0.2)
                    continue
                assert keys[0].key_id not in seen
                seen.add(keys[0].key_id)
                got = slave.dec_keys("sae-a", [keys[0].key_id])
                assert [(k.key_id, k.material) for k in got] == \
                    [(k.key_id, k.material) for k in keys]
                return refused
            raise AssertionError(f"no key delivered in {tries} calls")

        # the first Get key declares the demand, and its first route is the plan it reverts
        # to: declared once every border KM-link holds key, the plan is the short route
        time.sleep(SETTLE_S)
        for _ in range(3):
            deliver_once(100)
        log = base / "pa" / "node.log"
        assert _hops_logged(log)[-1] == 3  # a2 b1 b2 c1: through pb

        os.kill(int((base / "pb" / "node.pid").read_text()), signal.SIGKILL)
        deliver_once(100)  # refused while pb's loss is not yet known, then round the ring
        for _ in range(3):
            assert deliver_once(20) == 0
        assert _hops_logged(log)[-1] == 4  # a2 a1 c3 c2 c1: round pb

        again = qkdnet("up", "deploy.yaml", "--dir", "base", cwd=tmp_path)
        assert "started 1 processes on local: pb" in again.stdout
        deadline = time.monotonic() + 60
        while _hops_logged(log)[-1] != 3 and time.monotonic() < deadline:
            deliver_once(100)
            time.sleep(0.2)
        assert _hops_logged(log)[-1] == 3  # reverted through pb

        os.kill(int((base / "controller" / "controller.pid").read_text()), signal.SIGKILL)
        for _ in range(5):  # no controller: the nodes relay on the routes it last gave
            assert deliver_once(10) == 0
        assert _hops_logged(log)[-1] == 3
    finally:
        qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)
