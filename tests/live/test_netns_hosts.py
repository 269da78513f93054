"""The network-namespace hosts of multi-host tests: a mutual TLS server in one namespace
answers clients in the others over their veth links; netem shapes a link; a cut link gets
no reply and a restored one answers; namespaces and their processes are gone afterwards,
also after a failure or a crashed run."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import netns_hosts as harness
import pytest
from netns_hosts import (
    NetnsHosts,
    fibre_delay_s,
    namespaces,
    netns_hosts,
    read_line,
    require_netem,
    require_netns,
    ring,
)

from qkdnet.live.pki import Pki, init_pki

require_netns()

TIMEOUT_S = 20.0
#: The client's bound on one call (s): a cut link fails at once (no route), well within it.
CALL_TIMEOUT_S = 5.0
PORT = 8443
HOSTS = ("h1", "h2", "h3")
NO_REPLY = 3

SERVER = """
import asyncio, sys
from pathlib import Path
from qkdnet.live.pki import sae_id_from_certificate
from qkdnet.live.tls_server import client_certificate, make_server, serve_many, server_ssl_context

host, port, cert, key, ca = sys.argv[1:6]

async def app(scope, receive, send):
    der = client_certificate(scope)
    body = f"hello {sae_id_from_certificate(der) if der else None}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

server = make_server(app, host, int(port), server_ssl_context(Path(cert), Path(key), Path(ca)))
print("listening", server.port, flush=True)
asyncio.run(serve_many([server]))
"""

CLIENT = """
import asyncio, sys
from qkdnet.apps.sae_client import tls_context
from qkdnet.live.http_client import LeanClient, NoReply

url, cert, key, ca, timeout_s = sys.argv[1:6]

async def main():
    async with LeanClient(url, tls_context(cert, key, ca), timeout_s=float(timeout_s)) as c:
        reply = await c.get("/hello")
    print(reply.status_code, reply.content.decode())

try:
    asyncio.run(main())
except NoReply as exc:
    print("no reply:", exc)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def net() -> Iterator[NetnsHosts]:
    """Three hosts joined in a ring (every two linked)."""
    with netns_hosts(HOSTS, ring(HOSTS)) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def pki(net: NetnsHosts, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A KME certificate naming h1's address; an SAE on h2 and one on h3."""
    return init_pki(tmp_path_factory.mktemp("pki"), ["kme-h1"], ["sae-h2", "sae-h3"],
                    kme_names=[net.address("h1")])


@pytest.fixture(scope="module")
def server(net: NetnsHosts, pki: Pki) -> Iterator[str]:
    """The mutual TLS server in h1, on h1's address; its URL."""
    process = net.python("h1", SERVER, net.address("h1"), str(PORT), str(pki.kme_cert("kme-h1")),
                         str(pki.kme_key("kme-h1")), str(pki.ca_cert),
                         stdout=subprocess.PIPE, text=True)
    assert read_line(process, TIMEOUT_S).split() == ["listening", str(PORT)]
    yield f"https://{net.address('h1')}:{PORT}"
    process.terminate()
    process.wait(TIMEOUT_S)


def _call(net: NetnsHosts, pki: Pki, host: str, url: str) -> subprocess.CompletedProcess[str]:
    """One GET /hello from ``host`` as its SAE (sae-<host>), with LeanClient."""
    sae = f"sae-{host}"
    return net.run(host, [sys.executable, "-c", CLIENT, url, str(pki.sae_cert(sae)),
                          str(pki.sae_key(sae)), str(pki.ca_cert), str(CALL_TIMEOUT_S)],
                   timeout_s=TIMEOUT_S)


def _answered(done: subprocess.CompletedProcess[str], sae: str) -> bool:
    return done.returncode == 0 and done.stdout.split() == ["200", "hello", sae]


def test_each_host_reaches_the_others_over_their_own_link(net: NetnsHosts) -> None:
    """The route from each host to another's address is the veth link between them."""
    for host in HOSTS:
        for peer in HOSTS:
            if peer == host:
                continue
            route = net.run(host, ["ip", "route", "get", net.address(peer)])
            assert route.returncode == 0, route.stderr
            assert f"dev {net.link(host, peer).end(host)[0]} " in route.stdout
            assert f"src {net.address(host)} " in route.stdout


def test_a_client_in_another_namespace_is_answered_over_mutual_tls(
        net: NetnsHosts, pki: Pki, server: str) -> None:
    """From h2 and from h3, LeanClient reaches h1's KME; the server sees each SAE."""
    for host in ("h2", "h3"):
        done = _call(net, pki, host, server)
        assert _answered(done, f"sae-{host}"), done.stdout + done.stderr


def test_a_cut_link_gets_no_reply_and_a_restored_link_answers(
        net: NetnsHosts, pki: Pki, server: str) -> None:
    """h1-h2 cut: h2 gets no reply, h3 (its own link) still does; restored: h2 again."""
    net.cut("h1", "h2")
    try:
        cut = _call(net, pki, "h2", server)
        assert cut.returncode == NO_REPLY and cut.stdout.startswith("no reply"), (
            cut.stdout + cut.stderr)
        assert _answered(_call(net, pki, "h3", server), "sae-h3")
    finally:
        net.restore("h1", "h2")
    done = _call(net, pki, "h2", server)
    assert _answered(done, "sae-h2"), done.stdout + done.stderr


def _netem(qdisc: str) -> tuple[float, str]:
    """(delay in s, loss text) of a ``tc qdisc show`` line naming netem."""
    match = re.search(r"qdisc netem .*?delay (\d+(?:\.\d+)?)(us|ms|s)\b(?:.*?loss (\S+))?",
                      qdisc)
    assert match is not None, qdisc
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2)]
    return float(match.group(1)) * scale, match.group(3) or "0%"


def test_netem_delay_and_loss_are_in_force(net: NetnsHosts, pki: Pki, server: str) -> None:
    """Harbin-Beijing's fibre (~1,200 km: 6 ms) on h1-h2 and 1% loss on h1-h3, at both
    ends of each; calls still answered; shaping removed leaves no netem."""
    require_netem()
    net.shape("h1", "h2", delay_s=fibre_delay_s(1200))
    net.shape("h1", "h3", delay_s=fibre_delay_s(100), loss=0.01)
    try:
        for a, b in (("h1", "h2"), ("h2", "h1")):
            assert _netem(net.qdisc(a, b)) == (pytest.approx(0.006), "0%")
        for a, b in (("h1", "h3"), ("h3", "h1")):
            assert _netem(net.qdisc(a, b)) == (pytest.approx(0.0005), "1%")
        assert _answered(_call(net, pki, "h2", server), "sae-h2")
    finally:
        net.shape("h1", "h2")
        net.shape("h1", "h3")
    assert "netem" not in net.qdisc("h1", "h2") + net.qdisc("h3", "h1")


def test_fibre_delay_is_5_microseconds_per_km() -> None:
    """1,200 km of fibre delay light by 6 ms one way."""
    assert fibre_delay_s(1200) == pytest.approx(0.006)


def test_python_m_qkdnet_runs_inside_a_namespace(net: NetnsHosts) -> None:
    """qkdnet() starts the CLI in the namespace: it prints its usage and exits 0."""
    process = net.qkdnet("h3", "--help", stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0 and "usage" in out.lower()


def test_namespaces_and_their_processes_go_when_the_block_raises() -> None:
    """A test body that raises still leaves no namespace and no process behind."""
    with pytest.raises(RuntimeError, match="test body failed"), \
            netns_hosts(["a", "b"]) as hosts:
        names = [hosts.namespace(h) for h in hosts.hosts]
        sleeper = hosts.popen("a", ["sleep", "60"])
        assert set(names) <= set(namespaces())
        raise RuntimeError("test body failed")
    assert not set(names) & set(namespaces())
    assert sleeper.poll() is not None


def test_a_crashed_runs_namespaces_are_removed_by_the_next() -> None:
    """A namespace named for a process that is gone is deleted when hosts are next made."""
    gone = subprocess.Popen(["true"])
    gone.wait(TIMEOUT_S)
    stale = f"{harness.PREFIX}{gone.pid}-abcdef-0"
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=TIMEOUT_S)
    try:
        with netns_hosts(["solo"]) as hosts:
            assert stale not in namespaces()
            assert hosts.namespace("solo") in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, timeout=TIMEOUT_S,
                       check=False)


def test_links_must_join_two_known_hosts() -> None:
    """A link to an unknown host, to itself or given twice is refused before anything is
    made."""
    for links in ([("a", "z")], [("a", "a")], [("a", "b"), ("b", "a")]):
        with pytest.raises(ValueError, match="link"):
            NetnsHosts(["a", "b"], links)


def test_missing_namespaces_skip_or_fail_as_the_environment_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without permission: a skip naming the reason; with QKDNET_REQUIRE_NETNS=1: an error."""
    monkeypatch.setattr(harness, "netns_refusal", lambda: "not permitted (test)")
    monkeypatch.delenv(harness.REQUIRE_NETNS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not permitted"):
        require_netns()
    monkeypatch.setenv(harness.REQUIRE_NETNS, "1")
    with pytest.raises(RuntimeError, match="QKDNET_REQUIRE_NETNS is set but not permitted"):
        require_netns()
