"""KM-to-KM over mutual TLS: the nodes of a chain a-b-c-d split between two key networks
(a, b | c, d), each with its own SQLite stores and KM listener on loopback, relaying keys
across the border with node certificates; acknowledgements only after commit, retries
done once, refusals by identity and shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qkdnet.apps.sae_client import tls_context
from qkdnet.files.networks import load_network
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.km_wire import Envelope
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.live.http_client import LeanClient
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.km_app import make_km_app
from qkdnet.live.km_transport import KM_PATH, RemoteKMs
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.topology.model import Network

SCENARIO = """\
qkdnet_scenario: 1
name: border
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_relay, lat: 30.6, lon: 110.6}
  - {id: d, kind: backbone_access, lat: 30.9, lon: 110.9}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: c, b: d, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""
SIDES = (("a", "b"), ("c", "d"))
BLOCK_UNITS = 64


@dataclass
class Side:
    """One process's worth of the chain: its key network, KM listener and transport."""

    keynet: KeyNetwork
    server: TlsServer
    task: asyncio.Task[None]
    remote: RemoteKMs


@dataclass
class Border:
    network: Network
    pki: Pki
    sides: tuple[Side, Side]
    border_link: str


def _context(pki: Pki, node: str) -> Any:
    return tls_context(pki.kme_cert(node), pki.kme_key(node), pki.ca_cert)


@contextlib.asynccontextmanager
async def border(tmp_path: Path, *, timeout_s: float = 5.0, give_up_s: float = 10.0,
                 wrap: Callable[[Any], Any] | None = None) -> AsyncIterator[Border]:
    """The chain split in two sides on one event loop, talking only over mutual TLS;
    ``wrap`` wraps the second side's KM listener app (fault injection)."""
    path = tmp_path / "border.yaml"
    path.write_text(SCENARIO)
    network = load_network(path)
    pki = init_pki(tmp_path / "pki", ["a", "b", "c", "d"], ["sae-a", "sae-d"])
    keynets: list[KeyNetwork] = []
    servers = []
    for i, nodes in enumerate(SIDES):
        def deliver(sender: str, envelopes: Sequence[Envelope], i: int = i) -> Any:
            return keynets[i].receive(sender, envelopes)
        app: Any = make_km_app(deliver, nodes)
        if wrap is not None and i == 1:
            app = wrap(app)
        servers.append(make_server(app, "127.0.0.1", 0, server_ssl_context(
            pki.kme_cert(nodes[0]), pki.kme_key(nodes[0]), pki.ca_cert)))
    sides = []
    for i, nodes in enumerate(SIDES):
        other = SIDES[1 - i]
        url = f"https://127.0.0.1:{servers[1 - i].port}"
        remote = RemoteKMs(dict.fromkeys(other, url), lambda node: _context(pki, node),
                           timeout_s=2.0, give_up_s=give_up_s)
        keynet = KeyNetwork(network, tmp_path / f"side{i}", nodes, timeout_s=timeout_s,
                            remote=remote)
        keynets.append(keynet)
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=200_000)
        keynet.supply.pump(loop.time())
        sides.append(Side(keynet, servers[i], asyncio.create_task(servers[i].serve()),
                          remote))
    border_link = next(k.id for k in network.km_links if {k.a, k.b} == {"b", "c"})
    _supply_border(keynets, border_link, blocks=8)
    for side in sides:
        while not side.server.started:
            await asyncio.sleep(0.01)
    try:
        yield Border(network, pki, (sides[0], sides[1]), border_link)
    finally:
        for side in sides:
            await side.remote.close()
            side.server.request_stop()
            await side.task
            side.keynet.close()


def _supply_border(keynets: list[KeyNetwork], link: str, blocks: int) -> None:
    """The same blocks at both ends of the border KM-link (what its QKD device pair would
    deliver), alternately outbound at b and at c."""
    b, c = keynets[0].stores["b"], keynets[1].stores["c"]
    for block in range(blocks):
        material = secrets.token_bytes(BLOCK_UNITS * UNIT_BYTES)
        b.deposit(link, block, material, outbound=block % 2 == 0)
        c.deposit(link, block, material, outbound=block % 2 == 1)


def test_keys_cross_the_border_and_are_the_same_at_both_saes(tmp_path: Path) -> None:
    """Get key at a's side, Get key with key IDs at d's side: the same keys, each once, in
    both directions across the border."""
    async def run() -> None:
        async with border(tmp_path) as net:
            left, right = net.sides
            for _ in range(3):
                keys = await left.keynet.enc_keys("sae-a", "sae-d", 2, 256)
                assert await right.keynet.dec_keys("sae-d", "sae-a", [k for k, _ in keys]) \
                    == keys
                back = await right.keynet.enc_keys("sae-d", "sae-a", 1, 256)
                assert await left.keynet.dec_keys("sae-a", "sae-d", [k for k, _ in back]) \
                    == back
            with pytest.raises(ApiError) as again:
                await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]])
            assert again.value.status == 400
            assert left.remote.delivered > 0 and right.remote.delivered > 0
            assert left.remote.lost == right.remote.lost == 0
    asyncio.run(run())


def test_each_border_unit_is_spent_once_at_each_end(tmp_path: Path) -> None:
    """After relays both ways, the border link's two ends hold the same units unused: every
    unit b sent with was taken once at c, and the other way round."""
    async def run() -> None:
        async with border(tmp_path) as net:
            left, right = net.sides
            for _ in range(4):
                await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
                await right.keynet.enc_keys("sae-d", "sae-a", 3, 256)
            b, c = left.keynet.stores["b"], right.keynet.stores["c"]
            link = net.border_link
            assert b.pool_bytes(link, True) == c.pool_bytes(link, False)
            assert b.pool_bytes(link, False) == c.pool_bytes(link, True)
            assert b.pool_bytes(link, True) < 4 * BLOCK_UNITS * UNIT_BYTES  # some was spent
    asyncio.run(run())


class _LoseFirstAck:
    """Fault injection: the KM listener does the first batch, then the connection drops
    before its acknowledgement reaches the sender."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lost = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.lost or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.lost = True

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.body":
                raise ConnectionResetError("acknowledgement lost (test)")

        with contextlib.suppress(ConnectionResetError):
            await self.app(scope, receive, swallow)
        raise ConnectionResetError("acknowledgement lost (test)")


def test_a_batch_sent_again_after_a_lost_acknowledgement_is_done_once(tmp_path: Path
                                                                      ) -> None:
    """The first hop across the border is done, its acknowledgement lost, the batch sent
    again: recognised by id, acknowledged, not done twice (no pad taken twice, the key
    delivered once)."""
    fault: list[_LoseFirstAck] = []

    def wrap(app: Any) -> Any:
        fault.append(_LoseFirstAck(app))
        return fault[0]

    async def run() -> None:
        async with border(tmp_path, wrap=wrap) as net:
            left, right = net.sides
            keys = await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert fault[0].lost
            for _ in range(200):  # the retry waits out its back-off (50 ms) first
                if left.remote.queued == 0:
                    break
                await asyncio.sleep(0.02)
            assert left.remote.retries >= 1 and left.remote.queued == 0
            listener = fault[0].app.app  # BodyLimit -> KmApp
            assert listener.duplicates >= 1
            assert await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]]) == keys
            b, c = left.keynet.stores["b"], right.keynet.stores["c"]
            assert b.pool_bytes(net.border_link, True) == c.pool_bytes(net.border_link, False)
    asyncio.run(run())


def test_with_the_other_side_down_a_relay_fails_and_resumes_after(tmp_path: Path) -> None:
    """Nobody listens for c and d: Get key from a to d fails (503) on the source's own timer
    and nothing is left held at d; once the listener is back, keys cross again."""
    async def run() -> None:
        async with border(tmp_path, timeout_s=1.0, give_up_s=1.5) as net:
            left, right = net.sides
            port = right.server.port
            right.server.request_stop()
            await right.task
            with pytest.raises(ApiError) as failed:
                await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert failed.value.status == 503
            await asyncio.sleep(1.6)  # past give_up_s: the queued hop is dropped
            assert left.remote.lost >= 1
            assert right.keynet.stores["d"].held_key_ids() == []
            app = make_km_app(right.keynet.receive, SIDES[1])
            right.server = make_server(app, "127.0.0.1", port, server_ssl_context(
                net.pki.kme_cert("c"), net.pki.kme_key("c"), net.pki.ca_cert))
            right.task = asyncio.create_task(right.server.serve())
            keys = await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]]) == keys
    asyncio.run(run())


def test_the_listener_refuses_what_it_must_not_do(tmp_path: Path) -> None:
    """A batch claiming another sender than the certificate, from an SAE's certificate, to
    a node not served there, or malformed: refused whole (401 or 400, naming why)."""
    async def run() -> None:
        async with border(tmp_path) as net:
            url = f"https://127.0.0.1:{net.sides[1].server.port}"
            batch = {"v": 1, "from": "b", "messages": [
                {"id": "x:1", "to": "c", "type": "abort", "key_ids": ["k"],
                 "master_sae": "sae-a", "slave_sae": "sae-d"}]}

            async def post(cert_of: str, document: Any, sae: bool = False
                           ) -> tuple[int, str]:
                context = tls_context(net.pki.sae_cert(cert_of), net.pki.sae_key(cert_of),
                                      net.pki.ca_cert) if sae else _context(net.pki, cert_of)
                async with LeanClient(url, context) as client:
                    reply = await client.post_bytes(KM_PATH, json.dumps(document).encode())
                answer = json.loads(reply.content)
                return reply.status_code, str(answer.get("message", answer))

            status, why = await post("a", batch)
            assert (status, "names node 'a'" in why) == (401, True)
            status, why = await post("sae-a", batch, sae=True)
            assert (status, "names no node" in why) == (401, True)
            status, why = await post("b", {**batch, "messages": [
                {**batch["messages"][0], "to": "a"}]})
            assert (status, "'a' is not served" in why) == (400, True)
            status, why = await post("b", {**batch, "messages": [
                {**batch["messages"][0], "type": "teleport"}]})
            assert (status, "messages[0].type" in why) == (400, True)
            assert await post("b", batch) == (200, "{'accepted': 1}")
    asyncio.run(run())
