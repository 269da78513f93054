"""``qkdnet qkd-devices``: the emulated QKD device pairs of a deployment's border KM-links as a
service of their own, on the host and port of the deployment's ``devices`` entry, with the
certificate ``kme:qkdnet-devices`` of the deployment's PKI (made by ``qkdnet up`` with the
nodes'), until cancelled.

Each pair (:class:`~qkdnet.live.qkd_device.EmulatedDevice`) makes key at its QKD-link's
modelled rate (times ``speedup``), moved every second by the live dynamics of ``qkdnet
serve`` (:class:`~qkdnet.live.dynamics.LiveDynamics`: the day-night drift and bursts of
extra QBER), and serves its two ends over ETSI GS QKD 014 under ``/devices/<km_link>``
(:mod:`qkdnet.live.device_app`); each end's KM calls in with its node certificate. The
border KM-links named in ``vendor_devices`` are left to their vendors' devices.

Where the deployment places both ground stations of satellite KM-links, the service also
flies the satellites (:class:`~qkdnet.live.satellite_supply.SatelliteSupply`, on its
clock from ``settings.start``, ``speedup`` times the wall clock) and serves each satellite
KM-link as a device pair (:mod:`qkdnet.live.satellite_device`); the pools and the satellite
clock are kept in ``satellite.sqlite`` of its folder across restarts, and it reports the
pools and passes to the NMS every second (:mod:`qkdnet.live.satellite_reporter`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qkdnet.apps.sae_client import tls_context
from qkdnet.files.deployment import Deployment
from qkdnet.live.connection_limits import SERVICE_LIMITS
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.device_app import PREFIX, make_device_app
from qkdnet.live.dynamics import LiveDynamics
from qkdnet.live.ems_process import service_url
from qkdnet.live.pki import load_pki
from qkdnet.live.qkd_device import DevicePair, EmulatedDevice
from qkdnet.live.satellite_device import satellite_devices
from qkdnet.live.satellite_reporter import SatelliteReporter
from qkdnet.live.satellite_state import STATE_FILE, SatelliteState
from qkdnet.live.satellite_supply import (
    SatelliteSettings,
    SatelliteSupply,
    check_clouded,
    satellites_of,
)
from qkdnet.live.step_guard import StepGuard
from qkdnet.live.tls_server import make_server, serve_many, server_ssl_context
from qkdnet.quantum.emulator import emulator_for_link
from qkdnet.topology.service_ids import DEVICES_ID

#: Key size of the emulated devices (bytes): one store block.
DEVICE_KEY_BYTES = 1024
#: How often the live dynamics move the devices' rates (s).
DYNAMICS_INTERVAL_S = 1.0
#: How often the satellites' passes are moved on (s of the wall clock).
FLY_INTERVAL_S = 0.25


def device_url(deployment: Deployment, km_link: str) -> str:
    """The base URL of ``km_link``'s device pair in the deployment's devices service (the
    caller checked it is placed)."""
    return service_url(*deployment.devices_address()) + PREFIX + km_link


def emulated_links(deployment: Deployment) -> tuple[str, ...]:
    """The border KM-links whose device pair is emulated (not a vendor's)."""
    return tuple(k for k in deployment.border_links if k not in deployment.vendor_devices)


def emulated_devices(deployment: Deployment, speedup: float, now: Callable[[], float]
                     ) -> dict[str, EmulatedDevice]:
    """A device pair for each emulated border KM-link, making key from ``now()`` (s)."""
    network = deployment.network
    out = {}
    for km_link in emulated_links(deployment):
        km = network.km_link[km_link]
        emulator = emulator_for_link(network.link[km.path[0]], km.id,
                                     random_bytes=secrets.token_bytes,
                                     block_bytes=DEVICE_KEY_BYTES, speedup=speedup,
                                     start=now())
        out[km.id] = EmulatedDevice(km.id, (km.a, km.b), emulator, now)
    return out


class DeviceDynamics:
    """The live dynamics of ``devices``' QKD-links: :meth:`apply` sets each pair's rate at
    a wall-clock time."""

    def __init__(self, deployment: Deployment, devices: dict[str, EmulatedDevice],
                 seed: int = 1) -> None:
        network = deployment.network
        self.devices = devices
        self.links = [network.link[network.km_link[k].path[0]] for k in devices]
        self.dynamics = LiveDynamics(self.links, seed) if self.links else None

    def apply(self, t: float) -> None:
        """Each device's rate at ``t`` (s since the epoch), from now on."""
        if self.dynamics is None:
            return
        rates = self.dynamics.skr(self.dynamics.extra_qber(t)).tolist()
        for device, rate in zip(self.devices.values(), rates, strict=True):
            device.set_rate(float(rate))


def flown_satellites(deployment: Deployment, folder: Path, speedup: float,
                     settings: SatelliteSettings) -> SatelliteSupply | None:
    """The satellite segment the devices service flies (None where the deployment places
    no satellite KM-link), its state kept in ``folder``."""
    network = deployment.network
    if not deployment.satellite_links:
        return None
    check_clouded(network, settings.clouded)
    supply = SatelliteSupply(network, {}, satellites_of(network), settings.pool_bits,
                             settings.start, speedup, settings.clouded)
    supply.state = SatelliteState(folder / STATE_FILE, supply.start_utc.isoformat())
    return supply


async def run_devices(deployment: Deployment, pki_folder: Path, folder: Path,
                      listen: str | None = None, speedup: float = 1.0,
                      ready: Callable[[dict[str, Any]], None] | None = None,
                      satellite: SatelliteSettings | None = None) -> None:
    """Serve the deployment's emulated device pairs (the caller checked ``devices`` is
    placed) and fly its satellites (``satellite``: how) until cancelled; its manifest
    (URL, links, pid) in ``folder``."""
    pki = load_pki(pki_folder)
    open_data_folder(folder)
    lock = FolderLock.acquire(folder)
    loop = asyncio.get_running_loop()
    flying: SatelliteSupply | None = None
    try:
        address, port = deployment.devices_address()
        emulated = emulated_devices(deployment, speedup, loop.time)
        dynamics = DeviceDynamics(deployment, emulated)
        dynamics.apply(time.time())
        devices: dict[str, DevicePair] = dict(emulated)
        settings = satellite or SatelliteSettings()
        flying = flown_satellites(deployment, folder, speedup, settings)
        background = [asyncio.create_task(_move(dynamics))]
        reporter: SatelliteReporter | None = None
        if flying is not None:
            flying.start(loop.time(), settings.prefill_bits)
            devices.update((k, d) for k, d in satellite_devices(
                flying, loop.time, DEVICE_KEY_BYTES).items() if k in deployment.satellite_links)
            reporter = SatelliteReporter(
                service_url(*deployment.nms_intake_address()),
                tls_context(pki.kme_cert(DEVICES_ID), pki.kme_key(DEVICES_ID), pki.ca_cert),
                flying)
            background.append(asyncio.create_task(_fly(flying)))
            reporter.start()
        tls = server_ssl_context(pki.kme_cert(DEVICES_ID), pki.kme_key(DEVICES_ID),
                                 pki.ca_cert)
        server = make_server(make_device_app(devices), listen or address, port, tls,
                             limits=SERVICE_LIMITS)
        manifest = {"devices_url": service_url(address, port), "km_links": list(devices),
                    "pid": os.getpid()}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        lock.announce("devices")
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([server])
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if reporter is not None:
                await reporter.close()
    finally:
        if flying is not None:
            flying.close()
        (folder / "manifest.json").unlink(missing_ok=True)
        lock.release()


async def _fly(supply: SatelliteSupply) -> None:
    """Move the satellites' passes on, filling the pools (saved every second)."""
    loop = asyncio.get_running_loop()
    guard = StepGuard("satellite passes")
    while True:
        await asyncio.sleep(FLY_INTERVAL_S)
        guard.run(lambda: supply.pump(loop.time()))


async def _move(dynamics: DeviceDynamics) -> None:
    guard = StepGuard("live dynamics of the devices")
    while True:
        await asyncio.sleep(DYNAMICS_INTERVAL_S)
        guard.run(lambda: dynamics.apply(time.time()))
