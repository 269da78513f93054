"""The tables of a twin run, as rows of plain values (raw units named in each column: bits,
kbit/s, hours), in one place for the report's files (:mod:`qkdnet.twin.report`) and the
Python API's DataFrames (:func:`qkdnet.twin.frames`).

Each table is a list of dicts with the same keys; :func:`tables` gives them all by name,
the name of the file the report writes them to (``links`` is ``links.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from qkdnet.management.availability import availability, hours_per_week, outages, total
from qkdnet.management.services import twin_qos
from qkdnet.quantum.devices import device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.rates import skr
from qkdnet.topology.model import KMLinkKind, Network
from qkdnet.twin.engine import TwinResult
from qkdnet.units import HOUR_S, WEEK_S

Rows = list[dict[str, Any]]

SATELLITE_DEMAND_COLUMNS = ("demand", "source", "target", "served_fraction",
                            "satellite_share", "hours_waiting", "mean_wait_h", "longest_wait_h")


def tables(result: TwinResult) -> dict[str, Rows]:
    """Every table of the run by name (the satellite ones only with satellites)."""
    out = {"services": services(result), "service_qos": service_qos(result),
           "links": links(result),
           "km_links": km_links(result), "pools": pools(result), "alarms": alarms(result),
           "fig3_4_measured_vs_ideal": measured_vs_ideal(result)}
    if result.segments:
        out |= {"segments": segments(result), "fig5a_link_skr": watched_links(result),
                "fig5b_segment_skr": segment_weeks(result),
                "table1_hours_unserved": hours_unserved(result)}
    if result.satellite is not None:
        out |= {"satellite_passes": satellite_passes(result),
                "satellite_pools": satellite_pools(result),
                "satellite_demands": satellite_demands(result)}
    return out


def segment_name(net: Network, a: str, b: str) -> str:
    """A segment by its ends' names: ``Beijing–Wuhan``."""
    return f"{net.node[a].name}–{net.node[b].name}"


def rounded(x: float) -> float:
    """``x`` to 6 significant digits (the files are byte-deterministic and readable)."""
    return float(f"{float(x):.6g}")


_r = rounded


def segments(result: TwinResult) -> Rows:
    """Per segment of the watched path: its QKD-links, mean end-to-end SKR (kbit/s) and
    hours its watched service was unserved."""
    net = result.scenario.network
    return [{"segment": segment_name(net, s.source, s.target), "source": s.source,
             "target": s.target, "links": len(s.links),
             "mean_skr_kbps": _r(s.mean_skr_bps / 1e3),
             "hours_unserved": _r(total(s.service.outages) / HOUR_S)}
            for s in result.segments]


def watched_links(result: TwinResult) -> Rows:
    """Fig. 5a: each QKD-link of the watched path in order (``from`` and ``to``: its ends
    along the path), its static and average SKR."""
    net = result.scenario.network
    rows: Rows = []
    at = result.segments[0].source if result.segments else ""
    for n, lk in enumerate(result.watched_links, start=1):
        i, link = result.index[lk], net.link[lk]
        seg = next(s for s in result.segments if lk in s.links)
        to = link.b if link.a == at else link.a
        rows.append({"index": n, "link": lk, "from": at, "to": to,
                     "segment": segment_name(net, seg.source, seg.target),
                     "loss_db": link.loss_db, "device_type": link.device_type,
                     "device_pairs": link.device_pairs,
                     "static_skr_kbps": _r(result.static_bps[i] / 1e3),
                     "average_skr_kbps": _r(result.mean_bps[i] / 1e3)})
        at = to
    return rows


def segment_weeks(result: TwinResult) -> Rows:
    """Fig. 5b: per week, each segment's mean end-to-end SKR (kbit/s)."""
    net = result.scenario.network
    names = [segment_name(net, s.source, s.target) for s in result.segments]
    return [{"week": w + 1, **{n: _r(s.weekly_skr_bps[w] / 1e3)
                               for n, s in zip(names, result.segments, strict=True)}}
            for w in range(result.scenario.weeks)]


def hours_unserved(result: TwinResult) -> Rows:
    """Table 1: per week, the hours each segment's service was unserved, and their sum."""
    net, weeks = result.scenario.network, result.scenario.weeks
    names = [segment_name(net, s.source, s.target) for s in result.segments]
    hours = [hours_per_week(s.service.outages, weeks) for s in result.segments]
    # the week is text: the last row is the sum
    rows: Rows = [{"week": str(w + 1), **{n: _r(h[w]) for n, h in zip(names, hours, strict=True)}}
                  for w in range(weeks)]
    rows.append({"week": "sum", **{n: _r(sum(h)) for n, h in zip(names, hours, strict=True)}})
    return rows


def services(result: TwinResult) -> Rows:
    """Each demand: its rate, route length at the end, key served and availability."""
    end = result.scenario.duration_s
    return [{"demand": v.demand.id, "source": v.demand.source, "target": v.demand.target,
             "rate_kbps": _r(v.demand.rate_bps / 1e3), "key_bits": v.demand.key_bits,
             "hops_at_end": v.hops, "requested_bits": _r(v.requested_bits),
             "served_bits": _r(v.served_bits), "served_fraction": _r(v.served_fraction),
             "hours_unserved": _r(total(v.outages) / HOUR_S),
             "availability": _r(availability(v.outages, 0.0, end)),
             "route_changes": len(v.route_changes)}
            for v in result.services]


def twin_service_state(served_fraction: float, timeline: Sequence[Any], end: float) -> str:
    """A demand's state at the end of the run, as the live services': ``unserved`` with no
    route then (an outage open at the end), ``degraded`` when it lost key or was unserved
    for a while, ``served`` otherwise."""
    if timeline and timeline[-1].end >= end:
        return "unserved"
    if timeline or served_fraction < 1.0:
        return "degraded"
    return "served"


def service_qos(result: TwinResult) -> Rows:
    """Each demand as a service: its state at the end and its ITU-T Y.3807 QoS over the run
    (:func:`~qkdnet.management.services.twin_qos`): throughput (kbit/s), KKDLR,
    availability, outages and restoration times (h; None, blank in the file, with no
    restoration in the run)."""
    end = result.scenario.duration_s
    rows: Rows = []
    for v in result.services:
        qos = twin_qos(v.requested_bits, v.served_bits, v.outages, 0.0, end)
        rows.append({
            "service": v.demand.id,
            "state_at_end": twin_service_state(v.served_fraction, v.outages, end),
            "throughput_kbps": _r(qos.throughput_bps / 1e3), "kkdlr": _r(qos.kkdlr),
            "availability": _r(qos.availability), "outages": qos.outages,
            "last_restoration_h": _hours_or_none(qos.restoration_s),
            "mean_restoration_h": _hours_or_none(qos.mean_restoration_s)})
    return rows


def _hours_or_none(seconds: float) -> float | None:
    return None if math.isnan(seconds) else _r(seconds / HOUR_S)


def measured_vs_ideal(result: TwinResult) -> Rows:
    """Fig. 3/4: every QKD-link's average SKR per device pair, its type's ideal SKR and
    the pessimistic corner of the field spread at its loss (kbit/s)."""
    rows: Rows = []
    for i, lk in enumerate(result.scenario.network.qkd_links):
        per_pair = lk.device_pairs * lk.time_share
        device = device_type(lk.device_type)
        rows.append({"link": lk.id, "device_type": lk.device_type, "loss_db": lk.loss_db,
                     "average_skr_per_pair_kbps": _r(result.mean_bps[i] / per_pair / 1e3),
                     "ideal_skr_kbps": _r(float(skr(device, lk.loss_db)) / 1e3),
                     "pessimistic_skr_kbps": _r(float(skr(
                         device, lk.loss_db, pessimistic_params(device))) / 1e3)})
    return rows


def pools(result: TwinResult) -> Rows:
    """Hourly: key in all pools (Gbit), the share of dry pools, and each demand's emptiest
    pool on its route (Mbit)."""
    names = [v.demand.id for v in result.services]
    return [{"hour": _r(t / HOUR_S), "key_in_pools_gbit": _r(b / 1e9),
             "dry_pool_share": _r(d),
             **{f"{n}_route_min_mbit": _r(m / 1e6) for n, m in zip(names, mins, strict=True)}}
            for t, b, d, mins in zip(result.pool_times_s, result.pool_total_bits,
                                     result.pool_dry_fraction, result.pool_route_min_bits,
                                     strict=True)]


def alarms(result: TwinResult) -> Rows:
    """Every alarm the NMS raised, with raise and clear times (h)."""
    return [{"id": a.id, "rule": a.rule, "severity": a.severity.name.lower(),
             "subject": a.subject, "raised_h": _r(a.raised_at / HOUR_S),
             "cleared_h": None if a.cleared_at is None else _r(a.cleared_at / HOUR_S),
             "value": _r(a.value)} for a in result.alarms]


def links(result: TwinResult) -> Rows:
    """Per QKD-link: rates, faults, outage hours, availability and the key accounting of
    its direct KM-link (bits; None, blank in the file, for a QKD-link without one, whose
    key feeds remote KM-links: see ``km_links``)."""
    net, end = result.scenario.network, result.scenario.duration_s
    faults: dict[str, int] = {}
    for f in result.faults:
        faults[f.link] = faults.get(f.link, 0) + 1
    pool = {km: i for i, km in enumerate(result.km_link_ids)}
    direct = {k.path[0]: pool[k.id] for k in net.km_links
              if k.id in pool and k.kind is KMLinkKind.DIRECT}
    rows: Rows = []
    for i, lk in enumerate(net.qkd_links):
        down = result.link_outages.get(lk.id, outages(()))
        j = direct.get(lk.id)
        rows.append({"link": lk.id, "device_type": lk.device_type,
                     "device_pairs": lk.device_pairs, "loss_db": lk.loss_db,
                     "static_skr_kbps": _r(result.static_bps[i] / 1e3),
                     "average_skr_kbps": _r(result.mean_bps[i] / 1e3),
                     "faults": faults.get(lk.id, 0), "hours_down": _r(total(down) / HOUR_S),
                     "availability": _r(availability(down, 0.0, end)),
                     **_accounting(result, j)})
    return rows


def km_links(result: TwinResult) -> Rows:
    """Per KM-link with a pool: its ends, kind, QKD-links and key accounting (bits: made =
    used + pooled + discarded)."""
    km = {k.id: k for k in result.scenario.network.km_links}
    return [{"km_link": k, "a": km[k].a, "b": km[k].b, "kind": km[k].kind.value,
             "qkd_links": len(km[k].path), **_accounting(result, j)}
            for j, k in enumerate(result.km_link_ids)]


def _accounting(result: TwinResult, j: int | None) -> dict[str, Any]:
    names = ("made_bits", "used_bits", "pooled_bits", "discarded_bits")
    if j is None:
        return dict.fromkeys(names)
    arrays = (result.made_bits, result.used_bits, result.pooled_bits, result.discarded_bits)
    return {n: _r(a[j]) for n, a in zip(names, arrays, strict=True)}


def satellite_passes(result: TwinResult) -> Rows:
    """Every satellite pass: its times (h), elevation, key made and kept (kbit)."""
    sat = result.satellite
    assert sat is not None
    return [{"satellite": p.satellite, "station": p.station, "rise_h": _r(p.rise_s / HOUR_S),
             "culmination_h": _r(p.culmination_s / HOUR_S), "set_h": _r(p.set_s / HOUR_S),
             "max_elevation_deg": _r(p.max_elevation_deg), "key_kbit": _r(p.key_bits / 1e3),
             "kept_kbit": _r(float(kept) / 1e3)}
            for p, kept in zip(sat.passes, sat.kept_bits, strict=True)]


def satellite_pools(result: TwinResult) -> Rows:
    """Hourly: key in each ground station's satellite pools, all satellites (kbit)."""
    sat = result.satellite
    assert sat is not None
    levels = sat.pool_bits.sum(axis=1)  # samples x stations, all satellites together
    return [{"hour": _r(t / HOUR_S), **{f"{st}_kbit": _r(float(v) / 1e3)
                                        for st, v in zip(sat.stations, row, strict=True)}}
            for t, row in zip(sat.pool_times_s, levels, strict=True)]


def satellite_demands(result: TwinResult) -> Rows:
    """The demands served through a satellite: the share of their key that crossed one and
    how long they waited with no route (h)."""
    rows = [[v.demand.id, v.demand.source, v.demand.target, _r(v.served_fraction),
             _r(v.satellite_bits / max(v.served_bits, 1.0)),
             _r(total(v.outages) / HOUR_S), _r(_mean_wait_h(v.outages)),
             _r(max((o.end - o.start for o in v.outages), default=0.0) / HOUR_S)]
            for v in result.services if v.satellite_bits > 0]
    return [dict(zip(SATELLITE_DEMAND_COLUMNS, r, strict=True)) for r in rows]


def passes_per_week(result: TwinResult) -> Rows:
    """Per ground station: passes per week and key per pass (kbit: mean, min, max)."""
    sat = result.satellite
    assert sat is not None
    rows: Rows = []
    for station in sat.stations:
        mine = [p for p in sat.passes if p.station == station]
        keys = np.array([p.key_bits for p in mine]) / 1e3
        rows.append({"station": station,
                     **{f"week {w + 1}": sum(int(p.set_s // WEEK_S) == w for p in mine)
                        for w in range(result.scenario.weeks)},
                     "key per pass kbit (mean)": _r(float(keys.mean())) if keys.size else 0.0,
                     "min": _r(float(keys.min(initial=0.0))),
                     "max": _r(float(keys.max(initial=0.0)))})
    return rows


def _mean_wait_h(spans: Sequence[Any]) -> float:
    return float(np.mean([o.end - o.start for o in spans])) / HOUR_S if spans else 0.0
