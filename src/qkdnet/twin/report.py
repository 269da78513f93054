"""The twin's report folder: one self-contained HTML page (figures embedded), and the PNG
and CSV files behind every figure and table, so each number can be checked or re-plotted.

Written deterministically: the same result gives byte-identical CSV, JSON and HTML files
(no timestamps, no wall-clock figures, rounded numbers).

Files:

- ``index.html``: everything below, with the paper's figures beside ours;
- ``network_map.png``: the run's network over its geography
  (:func:`qkdnet.figures.network_map.draw_map`, as ``qkdnet topology map`` draws it);
- ``fig5a_link_skr.png/.csv``: average SKR of each QKD-link of the watched path;
- ``fig5b_segment_skr.png/.csv``: weekly end-to-end SKR of each segment (minimum over its
  links, instant by instant);
- ``table1_hours_unserved.csv``: hours per week each segment's service could not be served;
- ``fig3_4_measured_vs_ideal.png/.csv``: every fibre link's average SKR per device pair
  against its loss, over the ideal curves of its device type;
- ``pools.png/.csv``: key in all pools and the share of dry pools, hour by hour;
- ``services.csv``: each demand's route length, key served and availability;
- ``service_qos.csv``: each demand as a service: its state at the end and its ITU-T Y.3807
  QoS (throughput, KKDLR, availability, service restoration times);
- ``links.csv``: per QKD-link (and its direct KM-link): rates, outage hours, availability
  and the key accounting (made = used + pooled + discarded);
- ``alarms.csv``: every alarm the NMS's default rules raised, with raise and clear times;
- ``summary.json``: the headline figures;
- ``telemetry.npz``, ``network.json``: the run's recording for ``qkdnet console``
  (:mod:`qkdnet.files.recording`): hourly per-link telemetry, every alarm of the NMS,
  and the run's network (what-if removals applied), so the console rebuilds the exact
  network and shows exactly the run's alarms.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qkdnet.files.recording import save_recording
from qkdnet.management.availability import availability, hours_per_week, outages, total
from qkdnet.management.services import twin_qos
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES, device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.rates import skr
from qkdnet.topology.model import Network
from qkdnet.twin.engine import TwinResult
from qkdnet.units import HOUR_S, WEEK_S

#: What Chen et al. (npj Quantum Inf. 2025) observed, shown beside the twin's figures.
PAPER_SEGMENT_SKR_KBPS = (9.75, 16.41, 20.73, 20.85)
PAPER_HOURS_UNSERVED = (5.13, 0.0, 2.88, 0.0)
PAPER_LINK_SKR_KBPS = (9.75, 359.89)

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def write_report(result: TwinResult, folder: Path) -> Path:
    """Write the report of ``result`` into ``folder`` (created); returns index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = [_overview(result), _network_map(result, folder)]
    if result.segments:
        sections += [_fig5a(result, folder), _fig5b(result, folder), _table1(result, folder)]
    sections += [_services(result, folder), service_qos_section(result, folder),
                 _fig3_4(result, folder), _pools(result, folder)]
    if result.satellite is not None:
        sections.append(_satellite(result, folder))
    sections += [_alarms(result, folder), _links(result, folder)]
    (folder / "summary.json").write_text(json.dumps(summary(result), indent=2) + "\n")
    save_recording(result.recording(), folder)
    page = folder / "index.html"
    page.write_text(_page(result, sections), encoding="utf-8")
    return page


def summary(result: TwinResult) -> dict[str, Any]:
    """The headline figures (rates in kbit/s, times in hours), rounded."""
    sc = result.scenario
    watched = [result.index[lk] for lk in result.watched_links]
    out: dict[str, Any] = {
        "network": sc.network.name, "weeks": round(sc.duration_s / WEEK_S, 4),
        "seed": sc.seed, "qkd_links": len(result.link_ids), "faults": len(result.faults),
        "alarms": len(result.alarms),
        "key_made_bits": _r(result.made_bits.sum()), "key_used_bits": _r(result.used_bits.sum()),
        "key_pooled_bits": _r(result.pooled_bits.sum()),
        "key_discarded_bits": _r(result.discarded_bits.sum()),
        "max_conservation_error_bits": _r(np.abs(result.made_bits - result.used_bits
                                                 - result.pooled_bits
                                                 - result.discarded_bits).max()),
    }
    if watched:
        mean = result.mean_bps[watched] / 1e3
        out["watched_links"] = len(watched)
        out["watched_link_skr_kbps"] = {"min": _r(mean.min()), "max": _r(mean.max())}
    out["segments"] = [
        {"name": _segment_name(result.scenario.network, s.source, s.target),
         "links": len(s.links), "mean_skr_kbps": _r(s.mean_skr_bps / 1e3),
         "hours_unserved": _r(total(s.service.outages) / HOUR_S)}
        for s in result.segments]
    sat = result.satellite
    if sat is not None:
        out["satellite"] = {
            "satellites": len(sat.satellites), "passes": len(sat.passes),
            "key_per_pass_kbit": _r(float(np.mean([p.key_bits for p in sat.passes])) / 1e3
                                    if sat.passes else 0.0),
            "key_relayed_bits": _r(float(sat.relayed_bits.sum())),
            "max_conservation_error_bits": _r(float(np.abs(
                sat.made_bits - sat.used_bits - sat.pooled_bits - sat.discarded_bits
            ).max(initial=0.0)))}
    out["services"] = [
        {"id": v.demand.id, "hops": v.hops, "served_fraction": _r(v.served_fraction),
         "hours_unserved": _r(total(v.outages) / HOUR_S)} for v in result.services]
    return out


# -- sections ----------------------------------------------------------------------------

def _overview(result: TwinResult) -> str:
    s = summary(result)
    rows = [("network", s["network"]), ("simulated weeks", s["weeks"]), ("seed", s["seed"]),
            ("QKD-links", s["qkd_links"]), ("faults (random and scripted)", s["faults"]),
            ("key made (Gbit)", _r(s["key_made_bits"] / 1e9)),
            ("key used by relays (Gbit)", _r(s["key_used_bits"] / 1e9)),
            ("key in pools at the end (Gbit)", _r(s["key_pooled_bits"] / 1e9)),
            ("key discarded, pools full (Gbit)", _r(s["key_discarded_bits"] / 1e9)),
            ("largest conservation error on a link (bits)", s["max_conservation_error_bits"])]
    return _section("Run", "<p>Key made = key used + key in pools + key discarded, on "
                    "every KM-link.</p>" + _html_table(["figure", "value"], rows))


def _network_map(result: TwinResult, folder: Path) -> str:
    from qkdnet.figures.network_map import draw_map

    png = draw_map(result.scenario.network, folder / "network_map.png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return _section("Network", f'<figure><img alt="network map" src="data:image/png;base64,'
                    f'{data}"><figcaption>{html.escape(png.name)}: the network over Natural '
                    "Earth's coasts, borders and China's provinces</figcaption></figure>")


def _fig5a(result: TwinResult, folder: Path) -> str:
    net = result.scenario.network
    rows: list[dict[str, Any]] = []
    for n, lk in enumerate(result.watched_links, start=1):
        i, link = result.index[lk], net.link[lk]
        seg = next(s for s in result.segments if lk in s.links)
        rows.append({"index": n, "link": lk, "segment": _segment_name(net, seg.source,
                                                                      seg.target),
                     "loss_db": link.loss_db, "device_type": link.device_type,
                     "device_pairs": link.device_pairs,
                     "static_skr_kbps": _r(result.static_bps[i] / 1e3),
                     "average_skr_kbps": _r(result.mean_bps[i] / 1e3)})
    _csv(folder / "fig5a_link_skr.csv", rows)
    plt, fig, ax = _figure((10, 4.8))
    seg_of = [r["segment"] for r in rows]
    names = list(dict.fromkeys(seg_of))
    for k, name in enumerate(names):
        xs = [r["index"] for r in rows if r["segment"] == name]
        ys = [r["average_skr_kbps"] for r in rows if r["segment"] == name]
        ax.bar(xs, ys, color=_COLOURS[k % len(_COLOURS)], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("KM-link along the path (1 = first)")
    ax.set_ylabel("average SKR (kbit/s)")
    for y in PAPER_LINK_SKR_KBPS:
        ax.axhline(y, color="grey", ls=":", lw=1)
    ax.set_title("Fig. 5a analogue: average SKR of each KM-link "
                 f"(paper: {PAPER_LINK_SKR_KBPS[0]}-{PAPER_LINK_SKR_KBPS[1]} kbit/s, dotted)")
    ax.legend(fontsize=8)
    png = _save(plt, fig, folder / "fig5a_link_skr.png")
    mean = [r["average_skr_kbps"] for r in rows]
    return _section("Fig. 5a: per-link average SKR along the watched path",
                    f"<p>{len(rows)} KM-links, average SKR from {min(mean):g} to "
                    f"{max(mean):g} kbit/s (paper: {PAPER_LINK_SKR_KBPS[0]} to "
                    f"{PAPER_LINK_SKR_KBPS[1]} kbit/s).</p>" + _img(png))


def _fig5b(result: TwinResult, folder: Path) -> str:
    net = result.scenario.network
    weeks = result.scenario.weeks
    names = [_segment_name(net, s.source, s.target) for s in result.segments]
    rows = [{"week": w + 1, **{n: _r(s.weekly_skr_bps[w] / 1e3)
                               for n, s in zip(names, result.segments, strict=True)}}
            for w in range(weeks)]
    _csv(folder / "fig5b_segment_skr.csv", rows)
    plt, fig, ax = _figure((8, 4.8))
    for k, (name, seg) in enumerate(zip(names, result.segments, strict=True)):
        ax.plot(range(1, weeks + 1), np.array(seg.weekly_skr_bps) / 1e3, "o-",
                color=_COLOURS[k % len(_COLOURS)], label=name)
    ax.set_xlabel("week")
    ax.set_ylabel("end-to-end SKR (kbit/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Fig. 5b analogue: weekly end-to-end SKR of each segment")
    ax.legend(fontsize=8)
    png = _save(plt, fig, folder / "fig5b_segment_skr.png")
    paper = _paper(PAPER_SEGMENT_SKR_KBPS, len(names))
    table = _html_table(
        ["segment", "links", "twin mean (kbit/s)", "paper (kbit/s)", "difference"],
        [(n, len(s.links), _r(s.mean_skr_bps / 1e3), p,
          "" if p == "" else f"{100 * (s.mean_skr_bps / 1e3 / float(p) - 1):+.1f}%")
         for n, s, p in zip(names, result.segments, paper, strict=True)])
    return _section("Fig. 5b: weekly end-to-end SKR of the segments", table + _img(png))


def _table1(result: TwinResult, folder: Path) -> str:
    net = result.scenario.network
    weeks = result.scenario.weeks
    names = [_segment_name(net, s.source, s.target) for s in result.segments]
    hours = [hours_per_week(s.service.outages, weeks) for s in result.segments]
    rows: list[dict[str, Any]] = [
        {"week": w + 1, **{n: _r(h[w]) for n, h in zip(names, hours, strict=True)}}
        for w in range(weeks)]
    rows.append({"week": "sum", **{n: _r(sum(h)) for n, h in zip(names, hours, strict=True)}})
    _csv(folder / "table1_hours_unserved.csv", rows)
    head = ["week", *names]
    body: list[list[Any]] = [[r[c] for c in head] for r in rows]
    body.append(["paper sum", *_paper(PAPER_HOURS_UNSERVED, len(names))])
    return _section("Table 1: hours per week each segment could not serve keys",
                    "<p>A segment is unserved while the control layer finds no usable "
                    "route between its ends (a ring segment switches to its backup).</p>"
                    + _html_table(head, body))


def _services(result: TwinResult, folder: Path) -> str:
    end = result.scenario.duration_s
    rows = [{"demand": v.demand.id, "source": v.demand.source, "target": v.demand.target,
             "rate_kbps": _r(v.demand.rate_bps / 1e3), "key_bits": v.demand.key_bits,
             "hops_at_end": v.hops, "served_fraction": _r(v.served_fraction),
             "hours_unserved": _r(total(v.outages) / HOUR_S),
             "availability": _r(availability(v.outages, 0.0, end)),
             "route_changes": len(v.route_changes)}
            for v in result.services]
    _csv(folder / "services.csv", rows)
    if not rows:
        return _section("Demands", "<p>No demands in this scenario.</p>")
    return _section("Demands: key served end to end",
                    "<p>Each demand is routed by the control layer (working route and "
                    "edge-disjoint backup); every hop pays the pad and a MAC key per relayed "
                    "key. Served fraction = key delivered / key asked.</p>"
                    + _html_table(list(rows[0]), [list(r.values()) for r in rows]))


def twin_service_state(served_fraction: float, timeline: Sequence[Any], end: float) -> str:
    """A demand's state at the end of the run, as the live services': ``unserved`` with no
    route then (an outage open at the end), ``degraded`` when it lost key or was unserved
    for a while, ``served`` otherwise."""
    if timeline and timeline[-1].end >= end:
        return "unserved"
    if timeline or served_fraction < 1.0:
        return "degraded"
    return "served"


def _hours_or_blank(seconds: float) -> float | str:
    """Hours, rounded; blank for NaN (no restoration in the run)."""
    return "" if math.isnan(seconds) else _r(seconds / HOUR_S)


def service_qos_section(result: TwinResult, folder: Path) -> str:
    """Each demand as a service with its ITU-T Y.3807 QoS over the run
    (:func:`~qkdnet.management.services.twin_qos`); also ``service_qos.csv``. Throughput in
    kbit/s, restoration times in hours."""
    end = result.scenario.duration_s
    rows = []
    for v in result.services:
        qos = twin_qos(v.requested_bits, v.served_bits, v.outages, 0.0, end)
        rows.append({
            "service": v.demand.id, "state_at_end": twin_service_state(
                v.served_fraction, v.outages, end),
            "throughput_kbps": _r(qos.throughput_bps / 1e3), "kkdlr": _r(qos.kkdlr),
            "availability": _r(qos.availability), "outages": qos.outages,
            "last_restoration_h": _hours_or_blank(qos.restoration_s),
            "mean_restoration_h": _hours_or_blank(qos.mean_restoration_s)})
    _csv(folder / "service_qos.csv", rows)
    if not rows:
        return ""
    return _section(
        "Services: ITU-T Y.3807 QoS per demand",
        "<p>Each demand is a service. Throughput = key served over the run; KKDLR (key "
        "delivery loss ratio) = key asked for but not served over key asked for; "
        "availability = share of the run with a route; restoration time = how long an "
        "unserved spell lasted (one still open at the end is none). The twin relays between "
        "Key Managers with no application waiting on a KME, so key response delay (KKRD, "
        "KKRDV) and delivery error ratio (KKDER) are measured live only "
        "(<code>qkdnet serve</code>: <code>/api/services</code>).</p>"
        + _html_table(list(rows[0]), [list(r.values()) for r in rows]))


def _fig3_4(result: TwinResult, folder: Path) -> str:
    net = result.scenario.network
    rows: list[dict[str, Any]] = []
    for i, lk in enumerate(net.qkd_links):
        per_pair = lk.device_pairs * lk.time_share
        rows.append({"link": lk.id, "device_type": lk.device_type, "loss_db": lk.loss_db,
                     "average_skr_per_pair_kbps": _r(result.mean_bps[i] / per_pair / 1e3),
                     "ideal_skr_kbps": _r(float(skr(device_type(lk.device_type),
                                                    lk.loss_db)) / 1e3),
                     "pessimistic_skr_kbps": _r(float(skr(
                         device_type(lk.device_type), lk.loss_db,
                         pessimistic_params(device_type(lk.device_type)))) / 1e3)})
    _csv(folder / "fig3_4_measured_vs_ideal.csv", rows)
    below = sum(r["average_skr_per_pair_kbps"] <= r["ideal_skr_kbps"] for r in rows)
    plt, fig, axes = _figure((12, 4.8), ncols=2)
    for ax, types, title in ((axes[0], BACKBONE_DEVICE_TYPES, "Fig. 3: backbone types I-IV"),
                             (axes[1], METRO_DEVICE_TYPES, "Fig. 4: metro types V-VII")):
        mine = [r for r in rows if r["device_type"] in types]
        top = max([float(r["loss_db"]) for r in mine], default=10.0) + 2
        grid = np.linspace(0.0, top, 120)
        for k, name in enumerate(types):
            colour = _COLOURS[k % len(_COLOURS)]
            device = device_type(name)
            ideal = skr(device, grid) / 1e3
            worst = skr(device, grid, pessimistic_params(device)) / 1e3
            ax.plot(grid[ideal > 0], ideal[ideal > 0], color=colour, lw=1.5,
                    label=f"type {name} ideal")
            ax.plot(grid[worst > 0], worst[worst > 0], color=colour, lw=1, ls="--",
                    label=f"type {name} pessimistic field")
            pts = [r for r in mine if r["device_type"] == name]
            ax.scatter([r["loss_db"] for r in pts],
                       [max(r["average_skr_per_pair_kbps"], 1e-3) for r in pts],
                       s=9, color=colour, alpha=0.6,
                       label=f"type {name}: {len(pts)} links (twin)")
        ax.set_yscale("log")
        ax.set_xlabel("link loss (dB)")
        ax.set_ylabel("average SKR per device pair (kbit/s)")
        ax.set_title(title)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    png = _save(plt, fig, folder / "fig3_4_measured_vs_ideal.png")
    counts = ", ".join(f"type {t}: {sum(r['device_type'] == t for r in rows)}"
                       for t in (*BACKBONE_DEVICE_TYPES, *METRO_DEVICE_TYPES))
    return _section("Fig. 3 and 4: field links against the ideal and pessimistic curves",
                    f"<p>As the paper draws them: each link's average SKR per device pair "
                    f"in this run at its loss, over its type's ideal curve (solid) and the "
                    f"pessimistic corner of the field spread (dashed). Links per type: "
                    f"{counts}. {below} of {len(rows)} links run at or below their type's "
                    "ideal curve (field parameters, drift, vibration and outages), "
                    "following its trend in loss.</p>" + _img(png))


def _pools(result: TwinResult, folder: Path) -> str:
    names = [v.demand.id for v in result.services]
    rows = [{"hour": _r(t / HOUR_S), "key_in_pools_gbit": _r(b / 1e9), "dry_pool_share": _r(d),
             **{f"{n}_route_min_mbit": _r(m / 1e6) for n, m in zip(names, mins, strict=True)}}
            for t, b, d, mins in zip(result.pool_times_s, result.pool_total_bits,
                                     result.pool_dry_fraction, result.pool_route_min_bits,
                                     strict=True)]
    _csv(folder / "pools.csv", rows)
    plt, fig, (top, bottom) = _figure((10, 6.4), nrows=2)
    hours = result.pool_times_s / HOUR_S
    for k, name in enumerate(names):
        top.plot(hours, np.maximum(result.pool_route_min_bits[:, k] / 1e6, 1e-3), lw=1,
                 color=_COLOURS[k % len(_COLOURS)], label=name)
    top.set_yscale("log")
    top.set_ylabel("emptiest pool on route (Mbit)")
    top.set_title("Key pools: the bottleneck of each demand's route, hour by hour")
    if names:
        top.legend(fontsize=7, ncol=2)
    bottom.plot(hours, result.pool_total_bits / 1e9, color=_COLOURS[0], lw=1)
    bottom.set_xlabel("hour")
    bottom.set_ylabel("key in all pools (Gbit)", color=_COLOURS[0])
    dry = bottom.twinx()
    dry.plot(hours, 100 * result.pool_dry_fraction, color=_COLOURS[1], lw=1)
    dry.set_ylabel("dry KM-link pools (%)", color=_COLOURS[1])
    png = _save(plt, fig, folder / "pools.png")
    return _section("Key pools", "<p>A pool is dry below 4096 bits; a demand whose route "
                    "pool runs dry is served only what its bottleneck refills.</p>" + _img(png))


def _satellite(result: TwinResult, folder: Path) -> str:
    """Passes per station per week, key per pass, the satellite pools over time and the
    demands served through the satellite."""
    sat = result.satellite
    assert sat is not None
    weeks = result.scenario.weeks
    _csv(folder / "satellite_passes.csv", [
        {"satellite": p.satellite, "station": p.station, "rise_h": _r(p.rise_s / HOUR_S),
         "culmination_h": _r(p.culmination_s / HOUR_S), "set_h": _r(p.set_s / HOUR_S),
         "max_elevation_deg": _r(p.max_elevation_deg), "key_kbit": _r(p.key_bits / 1e3),
         "kept_kbit": _r(float(kept) / 1e3)}
        for p, kept in zip(sat.passes, sat.kept_bits, strict=True)])
    rows = []
    for station in sat.stations:
        mine = [p for p in sat.passes if p.station == station]
        keys = np.array([p.key_bits for p in mine]) / 1e3
        rows.append([station, *(sum(int(p.set_s // WEEK_S) == w for p in mine)
                                for w in range(weeks)),
                     _r(float(keys.mean())) if keys.size else 0.0,
                     _r(float(keys.min(initial=0.0))), _r(float(keys.max(initial=0.0)))])
    head = ["station", *(f"week {w + 1}" for w in range(weeks)), "key per pass kbit (mean)",
            "min", "max"]
    levels = sat.pool_bits.sum(axis=1)  # samples x stations, all satellites together
    _csv(folder / "satellite_pools.csv", [
        {"hour": _r(t / HOUR_S), **{f"{st}_kbit": _r(float(v) / 1e3)
                                    for st, v in zip(sat.stations, row, strict=True)}}
        for t, row in zip(sat.pool_times_s, levels, strict=True)])
    served = [[v.demand.id, v.demand.source, v.demand.target, _r(v.served_fraction),
               _r(v.satellite_bits / max(v.served_bits, 1.0)),
               _r(total(v.outages) / HOUR_S), _r(_mean_wait_h(v.outages)),
               _r(max((o.end - o.start for o in v.outages), default=0.0) / HOUR_S)]
              for v in result.services if v.satellite_bits > 0]
    _csv(folder / "satellite_demands.csv", [dict(zip(_SAT_DEMAND_HEAD, r, strict=True))
                                            for r in served])
    png = _satellite_figure(result, folder / "satellite_passes.png")
    return _section(
        "Satellite",
        f"<p>{len(sat.satellites)} satellite(s) ({', '.join(sat.satellites)}) share key "
        f"with {len(sat.stations)} ground stations pass by pass; a satellite KM-link relays "
        "through the satellite as a trusted relay, each relayed bit spending a bit of both "
        "stations' pools. Passes per station per week and key per pass:</p>"
        + _html_table(head, rows)
        + "<p>Demands served through the satellite (share of their served key that crossed "
          "a satellite KM-link; waiting = time with no route, the pools empty between "
          "passes):</p>"
        + (_html_table(_SAT_DEMAND_HEAD, served) if served else "<p>None.</p>")
        + _img(png))


_SAT_DEMAND_HEAD = ["demand", "source", "target", "served_fraction", "satellite_share",
                    "hours_waiting", "mean_wait_h", "longest_wait_h"]


def _mean_wait_h(spans: Sequence[Any]) -> float:
    return float(np.mean([o.end - o.start for o in spans])) / HOUR_S if spans else 0.0


def _satellite_figure(result: TwinResult, path: Path) -> Path:
    sat = result.satellite
    assert sat is not None
    plt, fig, (top, bottom) = _figure((10, 6.4), nrows=2)
    row = {st: i for i, st in enumerate(sat.stations)}
    days = np.array([p.culmination_s for p in sat.passes]) / 86400.0
    keys = np.array([p.key_bits for p in sat.passes]) / 1e3
    spots = top.scatter(days, [row[p.station] for p in sat.passes], c=keys, s=12,
                        cmap="viridis", marker="|")
    top.set_yticks(range(len(sat.stations)), sat.stations)
    top.set_title("Satellite passes over the ground stations (colour: key per pass)")
    fig.colorbar(spots, ax=top, label="key per pass (kbit)")
    for k, st in enumerate(sat.stations):
        bottom.plot(sat.pool_times_s / 86400.0, sat.pool_bits[:, :, k].sum(axis=1) / 1e3,
                    lw=1, color=_COLOURS[k % len(_COLOURS)], label=st)
    bottom.set_xlabel("day")
    bottom.set_ylabel("key in satellite pools (kbit)")
    bottom.legend(fontsize=7, ncol=3)
    return _save(plt, fig, path)


def _alarms(result: TwinResult, folder: Path) -> str:
    rows: list[dict[str, Any]] = [{"id": a.id, "rule": a.rule, "severity": a.severity.name.lower(),
             "subject": a.subject, "raised_h": _r(a.raised_at / HOUR_S),
             "cleared_h": "" if a.cleared_at is None else _r(a.cleared_at / HOUR_S),
             "value": _r(a.value)} for a in result.alarms]
    _csv(folder / "alarms.csv", rows)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_rule.setdefault(row["rule"], []).append(row)
    table = _html_table(["rule", "severity", "alarms", "links"],
                        [(rule, got[0]["severity"], len(got), len({r["subject"] for r in got}))
                         for rule, got in sorted(by_rule.items())])
    return _section("Alarms", "<p>The NMS's default rules applied to every QKD-link's "
                    "SKR, QBER and state at each step (raise and clear times in "
                    "<code>alarms.csv</code>).</p>" + table)


def _links(result: TwinResult, folder: Path) -> str:
    net, end = result.scenario.network, result.scenario.duration_s
    faults: dict[str, int] = {}
    for f in result.faults:
        faults[f.link] = faults.get(f.link, 0) + 1
    rows = []
    for i, lk in enumerate(net.qkd_links):
        down = result.link_outages.get(lk.id, outages(()))
        rows.append({"link": lk.id, "device_type": lk.device_type,
                     "device_pairs": lk.device_pairs, "loss_db": lk.loss_db,
                     "static_skr_kbps": _r(result.static_bps[i] / 1e3),
                     "average_skr_kbps": _r(result.mean_bps[i] / 1e3),
                     "faults": faults.get(lk.id, 0), "hours_down": _r(total(down) / HOUR_S),
                     "availability": _r(availability(down, 0.0, end)),
                     "made_bits": _r(result.made_bits[i]), "used_bits": _r(result.used_bits[i]),
                     "pooled_bits": _r(result.pooled_bits[i]),
                     "discarded_bits": _r(result.discarded_bits[i])})
    _csv(folder / "links.csv", rows)
    avail = np.array([r["availability"] for r in rows], dtype=float)
    worst = sorted(rows, key=lambda r: (r["availability"], r["link"]))[:10]
    cols = ["link", "faults", "hours_down", "availability", "average_skr_kbps"]
    return _section(
        "Availability",
        f"<p>{len(rows)} QKD-links; mean availability {_r(avail.mean() * 100)}%, "
        f"{int((avail < 1).sum())} links had an outage. The ten least available:</p>"
        + _html_table(cols, [[r[c] for c in cols] for r in worst])
        + "<p>Every link, with its key accounting: <code>links.csv</code>.</p>")


# -- rendering helpers ---------------------------------------------------------------------

def _segment_name(net: Network, a: str, b: str) -> str:
    return f"{net.node[a].name}–{net.node[b].name}"


def _paper(values: Sequence[float], n: int) -> list[float | str]:
    """The paper's figures where the segments are the paper's four, else blanks."""
    return list(values) if n == len(values) else [""] * n


def _r(x: float) -> float:
    return float(f"{float(x):.6g}")


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _figure(size: tuple[float, float], ncols: int = 1, nrows: int = 1
            ) -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(nrows, ncols, figsize=size, dpi=110, sharex=nrows > 1)
    return plt, fig, ax


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def _img(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(png.name)} (CSV beside it)</figcaption></figure>")


def _html_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f2f2f2; }
img { max-width: 100%; } figure { margin: 1em 0; }
figcaption { color: #666; font-size: 0.85em; }
"""


def _page(result: TwinResult, sections: list[str]) -> str:
    sc = result.scenario
    title = f"qkdnet twin: {sc.network.name}, {summary(result)['weeks']:g} weeks, seed {sc.seed}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            "<p>Digital twin of the network in simulated time: key rates from the quantum "
            "layer with each link's field parameters, day-night drift and vibration bursts; "
            "random and scripted faults; KM-link pools; demands routed and protected by the "
            "control layer. The paper's figures (Chen et al., npj Quantum Inf. 2025) are "
            "shown beside the twin's where they apply.</p>"
            + "".join(sections) + "</body></html>\n")
