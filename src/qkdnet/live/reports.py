"""What the live network reports to the management layer, and when.

:class:`LiveReports` turns the key network's state into KM-link states for the control
layer and telemetry batches for the NMS and its alarm rules, every second from the pump of
``qkdnet serve`` and at once after an operator injects a fault; :class:`Updates` then wakes
the O&M console's event streams (:mod:`qkdnet.live.om_app`), which the replay of a twin run
(:mod:`qkdnet.live.replay`) uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Collection, Iterable

import numpy as np

from qkdnet.control.link_state import KMLinkState
from qkdnet.control.router import ControlRouter
from qkdnet.keys.emulator import link_rate_bps
from qkdnet.live.keynet import KeyNetwork
from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.nms import Nms, ems_for
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.topology.model import Network


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
            await asyncio.wait_for(self._event.wait(), timeout_s)


class LiveTelemetry:
    """Turns what the live KMs know into NMS records: each QKD-link's modelled SKR (bit/s,
    times the serve speed-up) and QBER (its intrinsic error rate; not measured for CV
    links), each supplied KM-link's pooled key and refill, and each KM's health."""

    def __init__(self, network: Network, speedup: float, nodes: Iterable[str] = ()) -> None:
        self.ids = tuple(lk.id for lk in network.qkd_links)
        self.nodes = tuple(nodes)
        self.skr = np.array([link_rate_bps(lk) * speedup for lk in network.qkd_links])
        self.qber = np.array([lk.field.get("e_d", math.nan) for lk in network.qkd_links])

    def batches(self, t: float, states: list[KMLinkState], down: Collection[str] = (),
                stopped: Collection[str] = (), blinded: Collection[str] = ()
                ) -> tuple[LinkTelemetry, KMLinkTelemetry, NodeHealth]:
        """The records of one report at ``t`` (s); ``down`` QKD-links make no key, the
        detector-current monitors of ``blinded`` ones have tripped, and the KMs of
        ``stopped`` nodes are not healthy."""
        up = np.array([i not in down for i in self.ids], dtype=bool)
        tripped = np.array([i in blinded for i in self.ids], dtype=bool)
        links = LinkTelemetry(t, self.ids, np.where(up, self.skr, 0.0),
                              np.where(up, self.qber, np.nan), up, tripped)
        kms = KMLinkTelemetry(t, tuple(s.km_link for s in states),
                              np.array([s.key_bits for s in states], dtype=float),
                              np.array([s.rate_bps for s in states], dtype=float),
                              np.array([s.up for s in states], dtype=bool))
        nodes = NodeHealth(t, self.nodes, np.array([i not in stopped for i in self.nodes],
                                                   dtype=bool))
        return links, kms, nodes


def observe(alarms: AlarmEngine, links: LinkTelemetry, kms: KMLinkTelemetry | None = None,
            nodes: NodeHealth | None = None) -> None:
    """Run the alarm rules over one report. A QKD-link that is down has no SKR sample, so
    only its down alarm is raised, not a low-rate one as well."""
    alarms.observe_many(links.t, "qkd_link", links.ids, {
        "skr_bps": np.where(links.up, links.skr_bps, np.nan), "qber": links.qber,
        "up": links.up * 1.0, "detector_current_alarm": links.detector_current_alarm * 1.0})
    if kms is not None:
        alarms.observe_many(kms.t, "km_link", kms.ids, {"key_bits": kms.key_bits,
                                                        "up": kms.up * 1.0})
    if nodes is not None:
        alarms.observe_many(nodes.t, "node", nodes.ids, {"ok": nodes.ok * 1.0})


class LiveReports:
    """Reports what the live key network knows to the control layer (KM-link states), the
    NMS (through the EMS of each region) and its alarm rules, and wakes the consoles: every
    second from the pump of ``qkdnet serve``, and at once after an operator injects a
    fault."""

    def __init__(self, keynet: KeyNetwork, router: ControlRouter, nms: Nms,
                 alarms: AlarmEngine, speedup: float) -> None:
        self.keynet, self.router, self.nms, self.alarms = keynet, router, nms, alarms
        self.telemetry = LiveTelemetry(keynet.network, speedup, keynet.nodes)
        self.emss = ems_for(keynet.network)
        self.updates = Updates()

    def report(self, t: float) -> None:
        """One report at wall-clock time ``t`` (s since the epoch; a clock stepped back
        reports at the previous time, as the NMS takes samples in order)."""
        t = max(t, self.nms.now or t)
        states = self.keynet.link_states()
        self.router.update_all(states)
        batches = self.telemetry.batches(t, states, self.keynet.down_links(),
                                         self.keynet.stopped_nodes, self.keynet.blinded_links)
        # each region's EMS collects its own nodes' and links' records and reports north
        links, kms, nodes = batches
        for ems in self.emss.values():
            self.nms.ingest_all((ems.collect(links), ems.collect(kms), ems.collect(nodes)))
        observe(self.alarms, links, kms, nodes)
        self.updates.notify()
