"""Two sides of the chain a-b-c-d (a, b | c, d), each a key network with its own SQLite
stores and KM listener on loopback, joined only by KM-to-KM over mutual TLS: what the
KM-transport and border-supply tests run on."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_deployment import CHAIN

from qkdnet.apps.sae_client import tls_context
from qkdnet.files.networks import load_network
from qkdnet.keys.km_wire import Envelope
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.km_app import make_km_app
from qkdnet.live.km_transport import RemoteKMs
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.qkd_device import EmulatedDevice
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.quantum.emulator import KeyEmulator
from qkdnet.topology.model import Network

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
    devices: list[EmulatedDevice] = field(default_factory=list)


def node_context(pki: Pki, node: str) -> Any:
    return tls_context(pki.kme_cert(node), pki.kme_key(node), pki.ca_cert)


@contextlib.asynccontextmanager
async def border(tmp_path: Path, *, timeout_s: float = 5.0, give_up_s: float = 10.0,
                 wrap: Callable[[Any], Any] | None = None,
                 device_rate_bps: float | None = None) -> AsyncIterator[Border]:
    """The chain split in two sides on one event loop, talking only over mutual TLS;
    ``wrap`` wraps the second side's KM listener app (fault injection). The border KM-link
    b-c gets the same blocks deposited at both ends, or, with ``device_rate_bps``, nothing:
    an emulated device pair makes its key at that rate and the border supply brings it."""
    path = tmp_path / "border.yaml"
    path.write_text(CHAIN)
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
    border_link = next(k.id for k in network.km_links if {k.a, k.b} == {"b", "c"})
    loop = asyncio.get_running_loop()
    device = None if device_rate_bps is None else EmulatedDevice(
        border_link, ("b", "c"), KeyEmulator(border_link, device_rate_bps,
                                             random_bytes=secrets.token_bytes,
                                             start=loop.time()), loop.time)
    sides = []
    for i, nodes in enumerate(SIDES):
        other = SIDES[1 - i]
        url = f"https://127.0.0.1:{servers[1 - i].port}"
        remote = RemoteKMs(dict.fromkeys(other, url), lambda node: node_context(pki, node),
                           timeout_s=2.0, give_up_s=give_up_s)
        devices = {} if device is None else {border_link: device.end(nodes[1 - i])}
        keynet = KeyNetwork(network, tmp_path / f"side{i}", nodes, timeout_s=timeout_s,
                            remote=remote, devices=devices)
        keynets.append(keynet)
        keynet.supply.start(loop.time(), prefill_bits=200_000)
        keynet.supply.pump(loop.time())
        sides.append(Side(keynet, servers[i], asyncio.create_task(servers[i].serve()),
                          remote))
    if device is None:
        _supply_border(keynets, border_link, blocks=8)
    for side in sides:
        while not side.server.started:
            await asyncio.sleep(0.01)
    try:
        yield Border(network, pki, (sides[0], sides[1]), border_link,
                     [] if device is None else [device])
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
