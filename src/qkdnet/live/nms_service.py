"""The NMS as a service: it takes the regional EMSs' batches of node telemetry
(:mod:`qkdnet.live.ems_service`) and reports the network to the management layer (a
:class:`~qkdnet.management.monitor.NetworkMonitor`: the EMS of each region, the NMS and its
alarm rules, unchanged) every second, as ``qkdnet serve``'s
:class:`~qkdnet.live.reports.LiveReports` does; the O&M console and ``/metrics`` are served
from that monitor (:mod:`qkdnet.live.nms_process`).

``POST /nms/v1/batches``
    ``{"region": R, "records": [record, ...]}`` (:mod:`qkdnet.live.telemetry_records`), over
    mutual TLS with the certificate of R's EMS (``kme-id:qkdnet-ems-<R>``). 401 when the
    certificate names no identity; 403 when it names no EMS of the deployment, another
    region than the batch's, or a record is of a node outside R or speaks for a link the
    node is not an end of; 400 naming the field when malformed (``records[2].t: ...``).
    All or nothing. Answers ``{"taken": n}``.
``POST /nms/v1/satellite``
    A report of the satellite segment (:mod:`qkdnet.live.satellite_records`) from the
    devices service, which flies the satellites (certificate ``kme-id:qkdnet-devices``):
    the pools, passes under way and the passes that ended, each taken once; 403 from any
    other certificate, 400 naming the field when malformed. Answers ``{"taken": n}`` (the
    ended passes new to the NMS).
``GET /nms/v1/health``
    ``{"status": "ok", "batches", "records", "nodes_heard", "silent_nodes",
    "stale_routes"}`` (the nodes not heard from, and those relaying on the last routes of a
    controller they lost), to an EMS certificate.

From records to reports. :class:`NmsState` keeps each node's last record and when it came
(the NMS's clock). Every :meth:`NmsState.report` (1 s) makes one report of the whole
network at the NMS's time, as a single process would: a QKD-link or KM-link reported by
both ends joins them (the lower SKR and key, the higher QBER, up only while neither end
says down, the detector alarm if either end has it); a node not heard from for
:data:`SILENT_AFTER_S` is unreachable: its KM reports not ok (the ``node-down`` rule), and
its ends count as down, so its links are down too (``qkd-link-down``, ``km-link-down``),
as its neighbours, which stop hearing from it within the same time, report them. Elements
nobody has reported are left out, and the NMS shows nothing for them.

Services and KME counts. The same report gives the services (SAE pairs) to the monitor's
:class:`~qkdnet.management.services.ServiceView` as ``qkdnet serve`` does: their counts
are the nodes' latest cumulative counts joined, their routes those the master SAE's node
last reported (:mod:`qkdnet.management.reported_counts`: a restarted node process's counts
start again from zero, a counter reset, never added to the old ones);
:meth:`NmsState.kme_counts` joins the nodes' KME counts for ``/metrics``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.reports import Updates
from qkdnet.live.request_limits import BodyLimit
from qkdnet.live.satellite_records import (
    SATELLITE_PATH,
    SatelliteReport,
    parse_report,
    scenario_clock,
)
from qkdnet.live.satellite_supply import satellites_of
from qkdnet.live.service_calls import (
    Receive,
    Scope,
    Send,
    endpoint,
    json_body,
    peer_id,
    respond,
)
from qkdnet.live.telemetry_records import NodeRecord, check_ends, parse_record
from qkdnet.management.alarms import AlarmEvent
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.reported_counts import merge_kme, merge_pairs
from qkdnet.management.satellite import PassOutcome, SatelliteStatus
from qkdnet.management.services import PairCounts, ServiceRoutes
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.quantum.ground_track import scenario_time_s
from qkdnet.topology.model import Network
from qkdnet.topology.service_ids import DEVICES_ID, EMS_PREFIX, ems_id
from qkdnet.twin.satellite_passes import TWIN_EPOCH

__all__ = ["BATCHES_PATH", "EMS_PREFIX", "HEALTH_PATH", "MAX_BATCH_BYTES", "SILENT_AFTER_S",
           "NmsService", "NmsState", "ems_id", "make_nms_intake"]

log = logging.getLogger("qkdnet.management")

BATCHES_PATH = "/nms/v1/batches"
HEALTH_PATH = "/nms/v1/health"
#: The certificate id of a region's EMS is this prefix and the region id.
#: A node not heard from for this long is unreachable (s): as long as its neighbours take
#: to report its KM-links down (3 s), plus the 1 s of each hop (node, EMS, NMS).
SILENT_AFTER_S = 5.0
#: The largest batch body the NMS reads (bytes): 500 records of a few links each.
MAX_BATCH_BYTES = 4 * 1024 * 1024
_ENDPOINTS = {BATCHES_PATH: "POST", HEALTH_PATH: "GET", SATELLITE_PATH: "POST"}
#: Ended passes the NMS remembers having taken (a report sent again names them again).
_TAKEN_PASSES = 10_000
_BATCH = frozenset({"region", "records"})



class NmsState:
    """Each node's last record and when it came; :meth:`report` turns them into one
    report of the network to ``monitor``. ``clock``: wall-clock seconds (time.time)."""

    def __init__(self, monitor: NetworkMonitor, updates: Updates | None = None,
                 clock: Callable[[], float] = time.time,
                 silent_after_s: float = SILENT_AFTER_S) -> None:
        self.monitor = monitor
        self.network = monitor.network
        self.updates = updates or Updates()
        self.clock, self.silent_after_s = clock, silent_after_s
        self._last: dict[str, tuple[float, NodeRecord]] = {}  # node -> (came at, record)
        self._order = {n.id: i for i, n in enumerate(self.network.nodes)}
        self._link_order = {lk: i for i, lk in enumerate(self.network.link)}
        self._km_order = {km: i for i, km in enumerate(self.network.km_link)}
        self.batches = self.records = 0
        self._started = clock()
        #: The satellite segment's last report and when it came (wall clock, s).
        self.satellite: tuple[float, SatelliteReport] | None = None
        self._taken_passes: dict[tuple[str, str, float], None] = {}  # oldest first

    def take_satellite(self, report: SatelliteReport) -> int:
        """Report the satellite segment to the monitor at the NMS's time: the pools, the
        passes under way, and each ended pass not taken before (a night pass that left no
        key raises ``satellite-pass-no-key``); how many ended passes were new."""
        now = self.clock()
        t = max(now, self.monitor.nms.now or now)
        status = self.monitor.nms.satellite
        satellites = tuple(sorted({s for s, _ in report.pools}))
        if status is None or status.satellites != satellites \
                or status.epoch_utc != report.start_utc.isoformat():
            status = SatelliteStatus(satellites, tuple(dict.fromkeys(x for _, x in
                                                                     report.pools)),
                                     report.start_utc.isoformat())
        new = []
        for scheduled, bits in report.ended:
            key = (scheduled.satellite, scheduled.station, scheduled.rise_s)
            if key not in self._taken_passes:
                self._taken_passes[key] = None
                new.append(PassOutcome(scheduled, bits, t))
        for key in list(self._taken_passes)[:-_TAKEN_PASSES]:
            del self._taken_passes[key]
        for event in self.monitor.report_satellite(status, t, report.clock_s, report.pools,
                                                   report.in_progress, new):
            log.info("alarm %s", event)
        self.satellite = (now, report)
        self.updates.notify()
        return len(new)

    def satellite_clock(self) -> float:
        """Where the reported satellites are now: s after the console's epoch
        (TWIN_EPOCH); until a report has come, as the O&M app's own default, the wall
        clock since this NMS started at x1."""
        if self.satellite is None:
            return scenario_time_s(self._started, self.clock(), 1.0)
        received, report = self.satellite
        return scenario_clock(report, TWIN_EPOCH, received, self.clock())

    def take(self, records: Iterable[NodeRecord]) -> int:
        """Keep each record as its node's latest (an older one than kept is ignored)."""
        now = self.clock()
        taken = 0
        for record in records:
            kept = self._last.get(record.node)
            if kept is None or kept[1].t <= record.t:
                self._last[record.node] = (now, record)
            taken += 1
        self.batches += 1
        self.records += taken
        return taken

    def silent(self, now: float) -> set[str]:
        """Nodes heard from once but not for ``silent_after_s``."""
        return {n for n, (came, _) in self._last.items() if now - came > self.silent_after_s}

    def report(self) -> list[AlarmEvent]:
        """One report of the network to the monitor at the NMS's time (a clock stepped back
        reports at the previous time); the alarms raised and cleared."""
        if not self._last:
            return []
        now = self.clock()
        t = max(now, self.monitor.nms.now or now)
        silent = self.silent(now)
        events = self.monitor.report(*self._batches(t, silent))
        events += self.monitor.report_services(t, *self._services())
        self.updates.notify()
        return events

    def _services(self) -> tuple[dict[tuple[str, str], PairCounts], dict[str, ServiceRoutes]]:
        """The services' counts, joined from every node's latest record, and their routes
        as their master SAE's node last reported them."""
        records = [record for _, record in self._last.values()]
        counts = merge_pairs({(s.master, s.slave): s.counts for s in r.services}
                             for r in records)
        routes = {f"{s.master}->{s.slave}": s.routes for r in records for s in r.services
                  if s.routes is not None}
        return counts, routes

    def kme_counts(self) -> KmeCounts:
        """What every node's KME counted, as each node last reported it."""
        return merge_kme(record.kme for _, record in list(self._last.values()))

    def _batches(self, t: float, silent: set[str]
                 ) -> tuple[LinkTelemetry, KMLinkTelemetry, NodeHealth]:
        links: dict[str, list[Any]] = {}  # link -> [skr, qber, up, alarm]
        kms: dict[str, list[Any]] = {}  # km_link -> [key, rate, up]
        for node, (_, record) in self._last.items():
            gone = node in silent
            for e in record.links:
                row = links.setdefault(e.link, [math.inf, math.nan, True, False])
                row[0] = min(row[0], e.skr_bps)
                row[1] = e.qber if math.isnan(row[1]) else max(row[1], e.qber)
                row[2] = row[2] and e.up and not gone
                row[3] = row[3] or e.detector_current_alarm
            for k in record.km_links:
                row = kms.setdefault(k.km_link, [math.inf, math.inf, True])
                row[0], row[1] = min(row[0], k.key_bits), min(row[1], k.rate_bps)
                row[2] = row[2] and k.up and not gone
        link_ids = tuple(sorted(links, key=self._link_order.__getitem__))
        link_rows = [links[i] for i in link_ids]
        up = np.array([r[2] for r in link_rows], dtype=bool)
        link_batch = LinkTelemetry(
            t, link_ids, np.where(up, [r[0] for r in link_rows], 0.0),
            np.where(up, [r[1] for r in link_rows], np.nan), up,
            np.array([r[3] for r in link_rows], dtype=bool))
        km_ids = tuple(sorted(kms, key=self._km_order.__getitem__))
        km_rows = [kms[i] for i in km_ids]
        km_batch = KMLinkTelemetry(t, km_ids, np.array([r[0] for r in km_rows], dtype=float),
                                   np.array([r[1] for r in km_rows], dtype=float),
                                   np.array([r[2] for r in km_rows], dtype=bool))
        nodes = tuple(sorted(self._last, key=self._order.__getitem__))
        node_batch = NodeHealth(
            t, nodes, np.array([self._last[n][1].ok and n not in silent for n in nodes],
                               dtype=bool),
            np.array([self._last[n][1].store_ok for n in nodes], dtype=bool))
        return link_batch, km_batch, node_batch

    def node_view(self) -> dict[str, Any]:
        """Per node heard from: seconds since its last record, whether it is silent, and
        whether it relays on stale routes (a controller it lost)."""
        now = self.clock()
        return {n: {"age_s": now - came, "silent": now - came > self.silent_after_s,
                    "stale_routes": record.stale_routes}
                for n, (came, record) in self._last.items()}


class NmsService:
    """The NMS's intake of the EMSs' batches, behind the protocol of the module
    docstring, feeding ``state``. ``regions``: the regions whose EMS may send."""

    def __init__(self, state: NmsState, regions: Iterable[str]) -> None:
        self.state = state
        self.network: Network = state.network
        self.regions = frozenset(regions)
        self.satellites = tuple(s.id for s in satellites_of(self.network))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, self._handle(scope, receive), "NMS")

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        path = endpoint(scope, _ENDPOINTS)
        peer = peer_id(scope)
        if path == SATELLITE_PATH:
            if peer != DEVICES_ID:
                raise ApiError(403, f"the client certificate names {peer!r}, not the "
                                    f"devices service ({DEVICES_ID}) that flies the satellites")
            report = parse_report(await json_body(receive), self.network, self.satellites)
            return 200, {"taken": self.state.take_satellite(report)}
        region = peer.removeprefix(EMS_PREFIX)
        if not peer.startswith(EMS_PREFIX) or region not in self.regions:
            raise ApiError(403, f"the client certificate names {peer!r}, not the EMS of a "
                                "region of the deployment")
        if path == HEALTH_PATH:
            return 200, self.health()
        return 200, self.take(region, await json_body(receive))

    def health(self) -> dict[str, Any]:
        """Counts, and the nodes now silent or relaying on stale routes."""
        nodes = self.state.node_view()
        return {"status": "ok", "batches": self.state.batches, "records": self.state.records,
                "nodes_heard": len(nodes),
                "silent_nodes": sorted(n for n, v in nodes.items() if v["silent"]),
                "stale_routes": sorted(n for n, v in nodes.items() if v["stale_routes"])}

    def take(self, region: str, document: Any) -> dict[str, Any]:
        """Take the batch ``document`` sent by ``region``'s EMS, all or nothing."""
        if not isinstance(document, dict):
            raise ApiError(400, "body: must be a JSON object")
        for name in document:
            if name not in _BATCH:
                raise ApiError(400, f"{name}: unknown field")
        for name in sorted(_BATCH - document.keys()):
            raise ApiError(400, f"{name}: missing")
        if document["region"] != region:
            raise ApiError(403, f"region: the client certificate is of the EMS of {region!r}, "
                                f"the batch says {document['region']!r}")
        raw = document["records"]
        if not isinstance(raw, list):
            raise ApiError(400, "records: must be a list")
        records = []
        for i, item in enumerate(raw):
            where = f"records[{i}]"
            record = parse_record(item, self.network, where)
            if self.network.node[record.node].region != region:
                raise ApiError(403, f"{where}.node: {record.node!r} is not in region "
                                    f"{region!r}")
            check_ends(record, self.network, where)
            records.append(record)
        return {"taken": self.state.take(records)}


def make_nms_intake(service: NmsService, max_body_bytes: int = MAX_BATCH_BYTES) -> BodyLimit:
    """``service`` behind the body cap (bytes), for a mutual-TLS server."""
    return BodyLimit(service, max_bytes=max_body_bytes)
