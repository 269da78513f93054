"""The satellite segment's report as it travels from the devices service, which flies the
satellites of a deployment (:mod:`qkdnet.live.satellite_device`), to the NMS: JSON, what
``qkdnet serve`` hands its NMS in process (:meth:`~qkdnet.management.monitor.
NetworkMonitor.report_satellite`). A report::

    {"start_utc": "2025-01-01T12:00:00+00:00", "clock_s": 5120.0, "speedup": 20.0,
     "pools": [{"satellite": "jinan-1", "station": "beijing-gs", "key_bits": 2.1e5}, ...],
     "in_progress": [pass, ...], "ended": [{**pass, "yielded_bits": 3.0e5}, ...]}

with each pass ``{"satellite", "station", "rise_s", "culmination_s", "set_s",
"max_elevation_deg", "key_bits"}`` (s on the satellite clock, degrees, bits). ``clock_s``
is the satellite clock (s after ``start_utc``), running ``speedup`` times the wall clock.
``ended`` holds the passes that ended and the NMS has not yet taken: the service sends them
again until a report is taken, and the NMS takes each pass once (by satellite, station
and rise). :func:`parse_report` refuses a malformed report with ApiError 400 naming the
field (``ended[0].yielded_bits: must be a number >= 0 (bits)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.telemetry_records import json_amount, json_list, json_object
from qkdnet.management.satellite import Cell
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import Network, NodeKind

#: Where the NMS takes the reports (:mod:`qkdnet.live.nms_service`).
SATELLITE_PATH = "/nms/v1/satellite"

_REPORT = frozenset({"start_utc", "clock_s", "speedup", "pools", "in_progress", "ended"})
_POOL = frozenset({"satellite", "station", "key_bits"})
_PASS = frozenset({"satellite", "station", "rise_s", "culmination_s", "set_s",
                   "max_elevation_deg", "key_bits"})
_ENDED = _PASS | {"yielded_bits"}


@dataclass(frozen=True)
class SatelliteReport:
    """One report of the satellite segment (see the module docstring)."""

    start_utc: datetime
    clock_s: float
    speedup: float
    pools: Mapping[Cell, float]
    in_progress: tuple[SatellitePass, ...]
    ended: tuple[tuple[SatellitePass, float], ...]  # (pass, key it left: bits)

    def document(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"start_utc": self.start_utc.isoformat(), "clock_s": self.clock_s,
                "speedup": self.speedup,
                "pools": [{"satellite": s, "station": x, "key_bits": bits}
                          for (s, x), bits in self.pools.items()],
                "in_progress": [_pass_document(p) for p in self.in_progress],
                "ended": [{**_pass_document(p), "yielded_bits": bits}
                          for p, bits in self.ended]}


def _pass_document(p: SatellitePass) -> dict[str, Any]:
    return {"satellite": p.satellite, "station": p.station, "rise_s": p.rise_s,
            "culmination_s": p.culmination_s, "set_s": p.set_s,
            "max_elevation_deg": p.max_elevation_deg, "key_bits": p.key_bits}


def parse_report(document: Any, network: Network, satellites: tuple[str, ...]
                 ) -> SatelliteReport:
    """The report of ``document``, its stations ground stations of ``network`` and its
    satellites among ``satellites``; ApiError 400 naming the field otherwise."""
    body = json_object(document, "", _REPORT, _REPORT)
    try:
        start = datetime.fromisoformat(body["start_utc"])
    except (TypeError, ValueError):
        start = None
    if start is None or start.tzinfo is None:
        raise ApiError(400, "start_utc: must be an ISO 8601 time with its UTC offset")
    stations = {n.id for n in network.nodes_of(NodeKind.GROUND_STATION)}

    def cell(item: Mapping[str, Any], where: str) -> Cell:
        sat, station = item["satellite"], item["station"]
        if sat not in satellites:
            raise ApiError(400, f"{where}.satellite: {sat!r} is not a satellite of the "
                                "network")
        if station not in stations:
            raise ApiError(400, f"{where}.station: {station!r} is not a ground station of "
                                "the network")
        return sat, station

    def a_pass(value: Any, where: str, fields: frozenset[str]) -> SatellitePass:
        item = json_object(value, where, fields, fields)
        sat, station = cell(item, where)
        rise, culmination, set_ = (json_amount(item[k], f"{where}.{k}", "s")
                                   for k in ("rise_s", "culmination_s", "set_s"))
        try:
            return SatellitePass(sat, station, rise, culmination, set_,
                                 json_amount(item["max_elevation_deg"],
                                             f"{where}.max_elevation_deg", "degrees", at_most=90),
                                 json_amount(item["key_bits"], f"{where}.key_bits", "bits"))
        except ValueError as exc:  # rise, culmination and set out of order
            raise ApiError(400, f"{where}: {exc}") from None

    pools = {}
    for i, value in enumerate(json_list(body["pools"], "pools")):
        where = f"pools[{i}]"
        item = json_object(value, where, _POOL, _POOL)
        pools[cell(item, where)] = json_amount(item["key_bits"], f"{where}.key_bits", "bits")
    in_progress = tuple(a_pass(v, f"in_progress[{i}]", _PASS)
                        for i, v in enumerate(json_list(body["in_progress"], "in_progress")))
    ended = []
    for i, value in enumerate(json_list(body["ended"], "ended")):
        where = f"ended[{i}]"
        ended.append((a_pass(value, where, _ENDED),
                      json_amount(value["yielded_bits"], f"{where}.yielded_bits", "bits")))
    speedup = json_amount(body["speedup"], "speedup", "times the wall clock")
    if not speedup > 0:
        raise ApiError(400, "speedup: must be > 0")
    return SatelliteReport(start, json_amount(body["clock_s"], "clock_s", "s"),
                           speedup, pools, in_progress, tuple(ended))


def scenario_clock(report: SatelliteReport, epoch: datetime, received: float, now: float
                   ) -> float:
    """Where the satellite clock of ``report`` (taken at wall-clock time ``received``, s)
    stands at wall-clock time ``now``, as s after ``epoch`` (the console's scenario
    clock)."""
    offset = (report.start_utc - epoch).total_seconds()
    return offset + report.clock_s + max(now - received, 0.0) * report.speedup

