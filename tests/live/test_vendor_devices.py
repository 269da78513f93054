"""A vendor's QKD device for a border KM-link: the deployment names each end's device by
URL, CA and client certificate, and the SAE ID the device knows the other end's KM by.
Here the vendor device is an ETSI GS QKD 014 server of its own, with a CA of its own that
the deployment's PKI knows nothing of (the device app serving an emulated pair whose
SAEs are km-b and km-c), run by the test; `qkdnet up` starts the node processes, which
take the border KM-link's key from it, and keys cross."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from node_deployment import chain_deployment, qkdnet
from polling import wait_for

from qkdnet.apps.sae_client import KmeError, SaeClient
from qkdnet.live.border_supply import read_figures
from qkdnet.live.device_app import make_device_app
from qkdnet.live.pki import init_pki
from qkdnet.live.qkd_device import EmulatedDevice
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.quantum.emulator import KeyEmulator

LINK = "km:b~c"
RATE_BPS = 2e6  # the vendor device's key rate (bit/s)


@dataclass
class VendorDevice:
    """The vendor's device pair, served on loopback from a thread of the test."""

    device: EmulatedDevice
    server: TlsServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.request_stop)
        self.thread.join(timeout=30)


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[VendorDevice]:
    pki = init_pki(tmp_path / "vendor-pki", ["qkd-device", "km-b", "km-c"], [])
    loop = asyncio.new_event_loop()
    device = EmulatedDevice(LINK, ("km-b", "km-c"), KeyEmulator(
        LINK, RATE_BPS, random_bytes=secrets.token_bytes, block_bytes=32,
        start=loop.time()), loop.time)
    server = make_server(make_device_app({LINK: device}), "127.0.0.1", 0, server_ssl_context(
        pki.kme_cert("qkd-device"), pki.kme_key("qkd-device"), pki.ca_cert))
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    assert wait_for(lambda: server.started, 10.0)
    served = VendorDevice(device, server, loop, thread)
    yield served
    served.stop()


@pytest.fixture
def deployment(tmp_path: Path, vendor: VendorDevice) -> Iterator[Path]:
    path = chain_deployment(tmp_path)
    url = f"https://127.0.0.1:{vendor.server.port}/devices/{LINK}"
    with path.open("a") as out:
        out.write(f"""\
vendor_devices:
  - km_link: "{LINK}"
    a: {{url: "{url}", ca: vendor-pki/ca.crt, cert: vendor-pki/kme/km-b.crt,
        key: vendor-pki/kme/km-b.key, peer_sae_id: km-c}}
    b: {{url: "{url}", ca: vendor-pki/ca.crt, cert: vendor-pki/kme/km-c.crt,
        key: vendor-pki/kme/km-c.key, peer_sae_id: km-b}}
    key_size: 256
""")
    yield path
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _key_crosses(folder: Path, tries: int = 100) -> bool:
    """Get key at sae-a (left process), then the same key at sae-d (right process)."""
    clients = []
    for process, sae in (("left", "sae-a"), ("right", "sae-d")):
        manifest = json.loads((folder / "base" / process / "manifest.json").read_text())
        clients.append(SaeClient.from_manifest(manifest, sae, timeout_s=10))
    master, slave = clients
    for _ in range(tries):
        try:
            keys = master.enc_keys("sae-d", 2, 256)
        except KmeError:  # the border KM-link still filling
            time.sleep(0.1)
            continue
        got = slave.dec_keys("sae-a", [k.key_id for k in keys])
        assert [(k.key_id, k.material) for k in got] == \
            [(k.key_id, k.material) for k in keys]
        return True
    return False


def test_a_border_link_takes_its_key_from_the_vendor_device_named(deployment: Path,
                                                                   vendor: VendorDevice
                                                                   ) -> None:
    """No devices service and no emulated pair in the nodes: the border KM-link fills from
    the vendor device (its own CA, the KMs as its SAEs km-b and km-c, 256-bit keys), both
    ends agree, and keys cross it."""
    folder = deployment.parent
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started 4 processes on local: controller, nms, left, right" in up.stdout

    def stored() -> int:
        figures = read_figures(folder / "base" / "left" / "supply.json").get(LINK)
        return 0 if figures is None else figures.stored_blocks

    assert wait_for(lambda: stored() >= 64, 60.0), \
        (folder / "base" / "left" / "node.log").read_text()[-2000:]
    assert _key_crosses(folder)
    right = read_figures(folder / "base" / "right" / "supply.json")[LINK]
    assert right.stored_blocks > 0 and right.lost_bits == 0
