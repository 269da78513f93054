"""A vendor's QKD device for a KM-link, a border one or one inside a process: the
deployment names each end's device by URL, CA and client certificate, and the SAE ID the
device knows the other end's KM by.
Here the vendor device is an ETSI GS QKD 014 server of its own, with a CA of its own that
the deployment's PKI knows nothing of (the device app serving an emulated pair whose
SAEs are km-b and km-c), run by the test; `qkdnet up` starts the node processes, which
take the KM-link's key from it, and keys cross."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from node_deployment import chain_deployment, chain_key_crosses, qkdnet
from polling import wait_for

from qkdnet.live.border_supply import read_figures
from qkdnet.live.device_app import make_device_app
from qkdnet.live.pki import init_pki
from qkdnet.live.qkd_device import EmulatedDevice
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.quantum.emulator import KeyEmulator

RATE_BPS = 2e6  # the vendor device's key rate (bit/s)


@dataclass(frozen=True)
class Link:
    """The KM-link given a vendor device pair, and the process holding its end a."""

    id: str
    a: str
    b: str
    process: str


BORDER = Link("km:b~c", "b", "c", "left")  # b in the left process, c in the right
INSIDE = Link("km:a~b", "a", "b", "left")  # both ends in the left process


@dataclass
class VendorDevice:
    """The vendor's device pair, served on loopback from a thread of the test."""

    link: Link
    device: EmulatedDevice
    server: TlsServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.request_stop)
        self.thread.join(timeout=30)


@pytest.fixture(params=[BORDER, INSIDE], ids=["border", "inside-a-process"])
def vendor(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[VendorDevice]:
    link: Link = request.param
    sae_a, sae_b = f"km-{link.a}", f"km-{link.b}"
    pki = init_pki(tmp_path / "vendor-pki", ["qkd-device", sae_a, sae_b], [])
    loop = asyncio.new_event_loop()
    device = EmulatedDevice(link.id, (sae_a, sae_b), KeyEmulator(
        link.id, RATE_BPS, random_bytes=secrets.token_bytes, block_bytes=32,
        start=loop.time()), loop.time)
    server = make_server(make_device_app({link.id: device}), "127.0.0.1", 0,
                         server_ssl_context(pki.kme_cert("qkd-device"),
                                            pki.kme_key("qkd-device"), pki.ca_cert))
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    assert wait_for(lambda: server.started, 10.0)
    served = VendorDevice(link, device, server, loop, thread)
    yield served
    served.stop()


@pytest.fixture
def deployment(tmp_path: Path, vendor: VendorDevice) -> Iterator[Path]:
    path = chain_deployment(tmp_path)
    link = vendor.link
    url = f"https://127.0.0.1:{vendor.server.port}/devices/{link.id}"
    a, b = f"km-{link.a}", f"km-{link.b}"
    with path.open("a") as out:
        out.write(f"""\
vendor_devices:
  - km_link: "{link.id}"
    a: {{url: "{url}", ca: vendor-pki/ca.crt, cert: vendor-pki/kme/{a}.crt,
        key: vendor-pki/kme/{a}.key, peer_sae_id: {b}}}
    b: {{url: "{url}", ca: vendor-pki/ca.crt, cert: vendor-pki/kme/{b}.crt,
        key: vendor-pki/kme/{b}.key, peer_sae_id: {a}}}
    key_size: 256
""")
    yield path
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def test_a_kmlink_takes_its_key_from_the_vendor_device_named(deployment: Path,
                                                             vendor: VendorDevice) -> None:
    """No devices service and no emulated pair in the nodes for the KM-link (a border one,
    or one between two nodes of one process, which the supply pump then leaves alone): it
    fills from the vendor device (its own CA, the KMs as its SAEs, 256-bit keys), both ends
    agree, and keys cross it."""
    folder = deployment.parent
    link = vendor.link
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started 4 processes on local: controller, nms, left, right" in up.stdout

    def stored(process: str) -> int:
        figures = read_figures(folder / "base" / process / "supply.json").get(link.id)
        return 0 if figures is None else figures.stored_blocks

    assert wait_for(lambda: stored(link.process) >= 64, 60.0), \
        (folder / "base" / link.process / "node.log").read_text()[-2000:]
    assert chain_key_crosses(folder)
    lost = read_figures(folder / "base" / link.process / "supply.json")[link.id].lost_bits
    assert lost == 0
    if link is BORDER:
        assert stored("right") > 0
