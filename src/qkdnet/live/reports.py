"""What the live network reports to the management layer, and when.

:class:`LiveReports` turns the key network's state into KM-link states for the control
layer and telemetry records for the management layer (a
:class:`~qkdnet.management.monitor.NetworkMonitor`: the EMSs, the NMS and its alarm rules),
every second from the pump of
``qkdnet serve`` and at once after an operator injects a fault; :class:`Updates` then wakes
the O&M console's event streams (:mod:`qkdnet.live.om_app`), which the replay of a twin run
(:mod:`qkdnet.live.replay`) uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np

from qkdnet.control.controller import Controller
from qkdnet.keys.link_state import KMLinkState
from qkdnet.live.dynamics import LiveDynamics
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.satellite_supply import SatelliteSupply
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.satellite import SatelliteStatus
from qkdnet.management.services import ServiceRoutes
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.quantum.link_rate import links_skr_bps
from qkdnet.quantum.rate_table import FloatArray, intrinsic_qber

log = logging.getLogger("qkdnet.control")


class Updates:
    """Wakes the event streams when the NMS has taken a report, so that a change (a fault
    injected, a replayed sample) reaches the consoles at once rather than at the next tick.
    Reports are numbered, so one that comes while a stream is busy sending is not missed."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        """A new report is in: wake every waiting stream."""
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seen: int, timeout_s: float) -> None:
        """Until a report newer than generation ``seen`` (at once if one came already) or
        ``timeout_s`` (s), whichever comes first."""
        if self.generation != seen:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # not wait_for: see http_client
                await self._event.wait()


class LiveReports:
    """Reports what the live key network knows to the control layer (KM-link states) and
    to the management layer (``monitor``: the EMS of each region, the NMS and its alarm
    rules), and wakes the consoles: every second from the pump of ``qkdnet serve``, and at
    once after an operator injects a fault.

    With ``dynamics`` each report also moves every QKD-link's rate with the day-night drift
    and bursts of extra QBER: the emulators make key at the new rate from then on, and the
    NMS sees that rate (times ``speedup``) and the QBER (intrinsic plus extra; not
    measured on CV links). Without, links keep their static modelled rate and QBER.
    """

    def __init__(self, keynet: KeyNetwork, router: Controller, monitor: NetworkMonitor,
                 speedup: float, dynamics: LiveDynamics | None = None) -> None:
        self.keynet, self.router, self.monitor = keynet, router, monitor
        self.speedup = speedup
        self.dynamics = dynamics
        network = keynet.network
        self.ids = tuple(lk.id for lk in network.qkd_links)
        self.nodes = tuple(keynet.nodes)
        self.static_bps = links_skr_bps(network.qkd_links)[:, 0]
        self.intrinsic_qber = intrinsic_qber(network.qkd_links)
        self.updates = Updates()
        self.satellite_status: SatelliteStatus | None = None

    def report_now(self) -> None:
        """One report now: wall-clock time for the NMS, the event loop's for the key
        network."""
        self.report(time.time(), asyncio.get_running_loop().time())

    def report(self, t: float, now: float) -> None:
        """One report at wall-clock time ``t`` (s since the epoch; a clock stepped back
        reports at the previous time, as the NMS takes samples in order); ``now`` is the
        key network's clock (s), from which new rates apply."""
        t = max(t, self.monitor.nms.now or t)
        if self.dynamics is None:
            rates, qber = self.static_bps, self.intrinsic_qber
        else:
            extra = self.dynamics.extra_qber(t)
            rates, qber = self.dynamics.skr(extra), self.intrinsic_qber + extra
            self.keynet.supply.set_rates(dict(zip(self.ids, rates.tolist(), strict=True)), now)
        states = self.keynet.supply.link_states()
        satellite = self.keynet.satellite
        if satellite is not None:
            states += satellite.link_states()
        for change in self.router.report(states):
            log.info("route %s: %s", change.demand, change.reason)
        self.monitor.report(*self._batches(t, states, rates * self.speedup, qber))
        self.monitor.report_services(t, self.keynet.requests.pairs, self._service_routes())
        if satellite is not None:
            self._report_satellite(satellite, t, now)
        self.updates.notify()

    def _service_routes(self) -> dict[str, ServiceRoutes]:
        """Each SAE pair's routes from the control layer: the route its demand (between
        the pair's nodes) uses now and those it was planned on."""
        routes = {}
        for master, slave in list(self.keynet.requests.pairs):
            source, target = self.keynet.sae_node(master), self.keynet.sae_node(slave)
            if source is None or target is None:
                continue
            demand = f"{source}->{target}"
            routes[f"{master}->{slave}"] = ServiceRoutes(
                source, target, self.router.active(demand), self.router.planned(demand))
        return routes

    def _report_satellite(self, satellite: SatelliteSupply, t: float, now: float) -> None:
        """The pools, the passes under way and those that ended to the NMS; a night pass
        that ended without key raises its alarm."""
        if self.satellite_status is None:
            self.satellite_status = SatelliteStatus(
                satellite.pools.satellites, satellite.pools.stations,
                satellite.start_utc.isoformat())
        ended = satellite.take_ended(t)
        for outcome in ended:
            p = outcome.scheduled
            log.info("satellite pass of %s over %s ended: %d bits (%d scheduled)",
                     p.satellite, p.station, outcome.yielded_bits, p.key_bits)
        self.monitor.report_satellite(self.satellite_status, t, satellite.clock_s(now),
                                      satellite.pool_levels(), satellite.in_progress(now),
                                      ended)

    def _batches(self, t: float, states: list[KMLinkState], skr_bps: FloatArray,
                 qber: FloatArray) -> tuple[LinkTelemetry, KMLinkTelemetry, NodeHealth]:
        """The records of one report: a down QKD-link makes no key and measures no QBER,
        a blinded one's detector-current monitor has tripped, a stopped node's KM is not
        healthy, a node whose key store cannot be written has its store fault."""
        faults = self.keynet.faults
        down, blinded, stopped = faults.down_links(), faults.blinded_links, faults.stopped_nodes
        up = np.array([i not in down for i in self.ids], dtype=bool)
        links = LinkTelemetry(t, self.ids, np.where(up, skr_bps, 0.0),
                              np.where(up, qber, np.nan), up,
                              np.array([i in blinded for i in self.ids], dtype=bool))
        kms = KMLinkTelemetry(t, tuple(s.km_link for s in states),
                              np.array([s.key_bits for s in states], dtype=float),
                              np.array([s.rate_bps for s in states], dtype=float),
                              np.array([s.up for s in states], dtype=bool))
        supply = self.keynet.supply
        nodes = NodeHealth(t, self.nodes, np.array([i not in stopped for i in self.nodes],
                                                   dtype=bool),
                           np.array([supply.store_fault(i) is None for i in self.nodes],
                                    dtype=bool))
        return links, kms, nodes
