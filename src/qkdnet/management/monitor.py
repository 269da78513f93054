"""The management layer of one network, as one entry point: telemetry records go through
the EMS of each region to the NMS, then through the NMS's alarm rules (sans-I/O). What the
operators see of it, each active alarm with its root cause, is
:mod:`qkdnet.management.om_view`.

Both drivers report through :class:`NetworkMonitor` and nothing else: the digital twin at
each simulated step, ``qkdnet serve`` every second and after each injected fault. So an
alarm rule, the EMS fan-out or a correlation rule is written once and both drivers run it.
A replay of a recorded run (:mod:`qkdnet.files.recording`) goes through
:meth:`NetworkMonitor.replay`: the same EMS and NMS path, with the alarms the run recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.management.alarms import (
    DEFAULT_RULES,
    RECORD_METRICS,
    AlarmEngine,
    AlarmEvent,
    AlarmRule,
    record_metrics,
)
from qkdnet.management.nms import DEFAULT_HISTORY_POINTS, Nms, ems_for
from qkdnet.management.satellite import Cell, PassOutcome, SatelliteStatus
from qkdnet.management.services import PairCounts, ServiceRoutes, ServiceView
from qkdnet.management.telemetry import Batch, KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import KMLinkKind, Network


def _check_rules(rules: Iterable[AlarmRule]) -> None:
    """Every rule must watch a field of its subject's record, or it could never fire."""
    for rule in rules:
        fields = RECORD_METRICS[rule.subject_kind]
        if rule.metric not in fields:
            raise ParameterError(f"rules[{rule.name!r}].metric", rule.metric,
                                 f"a field of the {rule.subject_kind} record: "
                                 f"{', '.join(fields)}")


class NetworkMonitor:
    """The EMSs (one per region), the NMS and its alarm rules of ``network``.
    ``history_points`` is the NMS's ring buffer per QKD-link (samples). With
    ``regional`` False the reports go to the NMS whole: a driver that has every element's
    record of an instant in hand (the twin) skips the split into the regions' EMS reports
    that the NMS would join again, which changes nothing the NMS holds."""

    def __init__(self, network: Network, rules: Iterable[AlarmRule] = DEFAULT_RULES,
                 history_points: int = DEFAULT_HISTORY_POINTS, regional: bool = True) -> None:
        rules = tuple(rules)
        _check_rules(rules)
        self.network = network
        self.emss = ems_for(network) if regional else {}
        self.nms = Nms(network, history_points)
        self.alarms = AlarmEngine(rules)
        # a satellite KM-link's key comes with the passes and runs out between them: no
        # fault of its own (satellite-pass-no-key tells of a pass that failed), so the
        # rules on its key (key-reserve-low) do not read it
        self._pass_filled = frozenset(k.id for k in network.km_links
                                      if k.kind is KMLinkKind.SATELLITE)
        self._masked: tuple[tuple[str, ...], npt.NDArray[np.bool_]] | None = None
        #: The services (SAE pairs) the drivers report on (:meth:`report_services`).
        self.services = ServiceView(self.nms, self.alarms)

    def report(self, links: LinkTelemetry, kms: KMLinkTelemetry | None = None,
               nodes: NodeHealth | None = None) -> list[AlarmEvent]:
        """One report of the network: each region's EMS sends its rows of every batch to
        the NMS, then the alarm rules read the records. Returns the alarms raised and
        cleared, QKD-links first, then KM-links, then nodes."""
        self._collect(links, kms, nodes)
        events = self.alarms.observe_batch(links)
        if kms is not None:
            events += self._observe_km_links(kms)
        if nodes is not None:
            events += self.alarms.observe_batch(nodes)
        return events

    def _observe_km_links(self, kms: KMLinkTelemetry) -> list[AlarmEvent]:
        """The KM-link rules over ``kms``, a satellite KM-link's key not read."""
        if not self._pass_filled:
            return self.alarms.observe_batch(kms)
        kind, columns = record_metrics(kms)
        if self._masked is None or self._masked[0] is not kms.ids:
            self._masked = kms.ids, np.fromiter((i in self._pass_filled for i in kms.ids),
                                                dtype=bool, count=len(kms.ids))
        columns["key_bits"] = np.where(self._masked[1], np.nan, columns["key_bits"])
        return self.alarms.observe_many(kms.t, kind, kms.ids, columns)

    def report_satellite(self, status: SatelliteStatus, t: float, clock_s: float,
                         pools: Mapping[Cell, float], in_progress: Iterable[SatellitePass],
                         ended: Iterable[PassOutcome]) -> list[AlarmEvent]:
        """One report of the satellite segment at ``t`` (s): ``status`` (the NMS's, made
        on the first report) takes the satellite clock ``clock_s`` (s), the pools (bits),
        the passes under way and those ``ended`` since; each ended pass scheduled at night
        is observed as its ground station's ``pass_key_bits`` (the key it left), which
        raises ``satellite-pass-no-key`` when it left none. Returns the alarms raised and
        cleared."""
        ended = list(ended)
        self.nms.satellite = status
        status.update(t, clock_s, pools, in_progress, ended)
        events: list[AlarmEvent] = []
        for outcome in ended:
            if outcome.night:
                events += self.alarms.observe(t, "node",
                                              outcome.scheduled.station,
                                              {"pass_key_bits": outcome.yielded_bits})
        return events

    def report_services(self, t: float, counts: Mapping[tuple[str, str], PairCounts],
                        routes: Mapping[str, ServiceRoutes]) -> list[AlarmEvent]:
        """One report of the services at ``t`` (s), after :meth:`report` of the same
        instant: the KMEs' counts by SAE pair and each service's routes
        (:meth:`~qkdnet.management.services.ServiceView.report`). Returns the
        ``service-unserved`` alarms raised and cleared."""
        return self.services.report(t, counts, routes)

    def replay(self, links: LinkTelemetry, events: Iterable[AlarmEvent],
               offset_s: float = 0.0) -> list[AlarmEvent]:
        """One recorded report: the records go to the NMS as in :meth:`report`, and the
        alarms are the recorded ``events``, ``offset_s`` (s) later, rather than what the
        rules would make of a recording's sparser samples. Returns this monitor's events."""
        self._collect(links)
        replayed = (self.alarms.replay(event, offset_s) for event in events)
        return [event for event in replayed if event is not None]

    def _collect(self, links: LinkTelemetry, kms: KMLinkTelemetry | None = None,
                 nodes: NodeHealth | None = None) -> None:
        """Each region's EMS collects its own elements' records and reports them north;
        the NMS takes the reports of one instant together."""
        if not self.emss:
            self.nms.ingest_all(b for b in (links, kms, nodes) if b is not None)
            return
        reports: list[Batch] = []
        for ems in self.emss.values():
            reports.append(ems.collect(links))
            if kms is not None:
                reports.append(ems.collect(kms))
            if nodes is not None:
                reports.append(ems.collect(nodes))
        self.nms.ingest_all(b for b in reports if b.rows)  # a region may have none
