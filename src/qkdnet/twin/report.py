"""The twin's report folder: one self-contained HTML page (figures embedded), and the PNG
and CSV files behind every figure and table, so each number can be checked or re-plotted.

With ``fmt="parquet"`` the tables are written as ``.parquet`` files (pyarrow) instead of
``.csv``; the rows are the same (:mod:`qkdnet.twin.tables`). The page speaks human units
(:func:`~qkdnet.twin.quantities.human`: 1.18 Pbit, 9.75 kbit/s); the files keep raw numbers
with the unit in the column name.

Written deterministically: the same result gives byte-identical CSV, JSON and HTML files
(no timestamps, no wall-clock figures, rounded numbers).

Files:

- ``index.html``: everything below (the paper's figures beside ours on a cn-qcn run of its
  path: :func:`paper_run`);
- ``network_map.png``: the run's network over its geography
  (:func:`qkdnet.figures.network_map.draw_map`, as ``qkdnet topology map`` draws it);
- ``fig5a_link_skr.png/.csv``: average SKR of each QKD-link of the watched path;
- ``fig5b_segment_skr.png/.csv``: weekly end-to-end SKR of each segment (minimum over its
  links, instant by instant);
- ``table1_hours_unserved.csv``: hours per week each segment's service could not be served;
- ``fig3_4_measured_vs_ideal.png/.csv``: every fibre link's average SKR per device pair
  against its loss, over the ideal curves of its device type;
- ``pools.png/.csv``: key in all pools and the share of dry pools, hour by hour;
- ``segments.csv``: each segment's links, mean end-to-end SKR and hours unserved;
- ``services.csv``: each demand's route length, key served and availability;
- ``service_qos.csv``: each demand as a service: its state at the end and its ITU-T Y.3807
  QoS (throughput, KKDLR, availability, service restoration times);
- ``links.csv``: per QKD-link (and its direct KM-link): rates, outage hours, availability
  and the key accounting (made = used + pooled + discarded);
- ``km_links.csv``: per KM-link with a pool (direct and remote): the key accounting;
- ``satellite_*.csv`` with satellites: passes, pools, demands served through them;
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from qkdnet.files.recording import save_recording
from qkdnet.management.availability import total
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES, device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.rates import skr
from qkdnet.twin import tables as tb
from qkdnet.twin.engine import TwinResult
from qkdnet.twin.quantities import hours, human
from qkdnet.twin.scenario import CN_QCN_SEGMENTS
from qkdnet.units import HOUR_S, WEEK_S

#: What Chen et al. (npj Quantum Inf. 2025) observed on cn-qcn, shown beside the twin's
#: figures of a cn-qcn run watching the paper's path (and of no other).
PAPER_SEGMENT_SKR_KBPS = (9.75, 16.41, 20.73, 20.85)
PAPER_HOURS_UNSERVED = (5.13, 0.0, 2.88, 0.0)
PAPER_LINK_SKR_KBPS = (9.75, 359.89)

TableFormat = Literal["csv", "parquet"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("csv", "parquet")

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class _Out:
    """Where the report goes: its folder, and the format of its tables."""

    folder: Path
    fmt: TableFormat

    def table(self, name: str, rows: tb.Rows) -> None:
        """Write the table ``name`` (``name.csv`` or ``name.parquet``)."""
        if self.fmt == "parquet":
            _parquet(self.folder / f"{name}.parquet", rows)
        else:
            _csv(self.folder / f"{name}.csv", rows)


def write_report(result: TwinResult, folder: Path, fmt: TableFormat = "csv") -> Path:
    """Write the report of ``result`` into ``folder`` (created), its tables as ``fmt``;
    returns index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    out = _Out(folder, fmt)
    rows = tb.tables(result)
    sections = [_overview(result), _network_map(result, out)]
    if result.segments:
        out.table("segments", rows["segments"])
        sections += [_fig5a(result, out, rows), _fig5b(result, out, rows),
                     _table1(result, out, rows)]
    sections += [_services(result, out, rows), _service_qos(out, rows),
                 _fig3_4(result, out, rows), _pools(result, out, rows)]
    if result.satellite is not None:
        sections.append(_satellite(result, out, rows))
    sections += [_alarms(result, out, rows), _links(result, out, rows)]
    (folder / "summary.json").write_text(json.dumps(summary(result), indent=2) + "\n")
    save_recording(result.recording(), folder)
    page = folder / "index.html"
    page.write_text(_page(result, sections), encoding="utf-8")
    return page


def summary(result: TwinResult) -> dict[str, Any]:
    """The headline figures (rates in kbit/s, times in hours, key in bits), rounded."""
    sc = result.scenario
    watched = [result.index[lk] for lk in result.watched_links]
    out: dict[str, Any] = {
        "network": sc.network.name, "weeks": round(sc.duration_s / WEEK_S, 4),
        "seed": sc.seed, "qkd_links": len(result.link_ids),
        "km_link_pools": len(result.km_link_ids), "faults": len(result.faults),
        "alarms": len(result.alarms),
        "key_made_bits": _r(result.made_bits.sum()), "key_used_bits": _r(result.used_bits.sum()),
        "key_pooled_bits": _r(result.pooled_bits.sum()),
        "key_discarded_bits": _r(result.discarded_bits.sum()),
        "max_conservation_error_bits": _r(np.abs(result.made_bits - result.used_bits
                                                 - result.pooled_bits
                                                 - result.discarded_bits).max(initial=0.0)),
    }
    if watched:
        mean = result.mean_bps[watched] / 1e3
        out["watched_links"] = len(watched)
        out["watched_link_skr_kbps"] = {"min": _r(mean.min()), "max": _r(mean.max())}
    out["segments"] = [{"name": r["segment"], "links": r["links"],
                        "mean_skr_kbps": r["mean_skr_kbps"],
                        "hours_unserved": r["hours_unserved"]} for r in tb.segments(result)]
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


def paper_run(result: TwinResult) -> bool:
    """Whether the paper's figures apply: a cn-qcn run watching the paper's path."""
    return (result.scenario.network.name == "cn-qcn"
            and result.scenario.segments == CN_QCN_SEGMENTS)


# -- sections ----------------------------------------------------------------------------

def _overview(result: TwinResult) -> str:
    s = summary(result)
    rows = [("network", s["network"]), ("simulated weeks", s["weeks"]), ("seed", s["seed"]),
            ("QKD-links", s["qkd_links"]), ("KM-link pools", s["km_link_pools"]),
            ("faults (random and scripted)", s["faults"]),
            ("key made", human(s["key_made_bits"], "bit")),
            ("key used by relays", human(s["key_used_bits"], "bit")),
            ("key in pools at the end", human(s["key_pooled_bits"], "bit")),
            ("key discarded, pools full", human(s["key_discarded_bits"], "bit")),
            ("largest conservation error on a KM-link",
             human(s["max_conservation_error_bits"], "bit"))]
    return _section("Run", "<p>Key made = key used + key in pools + key discarded, on "
                    "every KM-link.</p>" + _html_table(["figure", "value"], rows)
                    + _discarded(result))


def _discarded(result: TwinResult) -> str:
    """Why key was thrown away: the pools were full."""
    made, gone = float(result.made_bits.sum()), float(result.discarded_bits.sum())
    if gone <= 0:
        return "<p>No key was discarded: no pool ever filled up.</p>"
    full = np.nonzero(result.discarded_bits > 0)[0]
    worst = sorted(full.tolist(), key=lambda j: -result.discarded_bits[j])[:3]
    names = ", ".join(f"{result.km_link_ids[j]} ({human(result.discarded_bits[j], 'bit')})"
                      for j in worst)
    cap = human(result.scenario.pool_bits, "bit")
    return (f"<p><b>Key discarded because pools were full</b>: {human(gone, 'bit')}, "
            f"{100 * gone / made:.1f}% of the key made. Each KM-link's pool holds at most "
            f"{cap} at each end ({human(result.scenario.pool_bits / 2, 'bit')} per "
            "direction, the scenario's <code>pool_bits</code>); a QKD-link that makes more "
            "key than the demands over it use fills its pool, and the key it makes after "
            "that is thrown away (the devices keep running; the KMs have no room). "
            f"{full.size} of {len(result.km_link_ids)} pools overflowed, most on {names}. "
            "This is key no demand asked for, not key lost to a fault: a larger "
            "<code>pool_bits</code> keeps more in reserve for outages, more demand on those "
            "links uses it.</p>")


def _network_map(result: TwinResult, out: _Out) -> str:
    from qkdnet.figures.network_map import draw_map

    png = draw_map(result.scenario.network, out.folder / "network_map.png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return _section("Network", f'<figure><img alt="network map" src="data:image/png;base64,'
                    f'{data}"><figcaption>{html.escape(png.name)}: the network over Natural '
                    "Earth's coasts, borders and China's provinces</figcaption></figure>")


def _fig5a(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    net = result.scenario.network
    rows = tables["fig5a_link_skr"]
    out.table("fig5a_link_skr", rows)
    paper = paper_run(result)
    nodes = [rows[0]["from"], *(r["to"] for r in rows)]  # the watched path's nodes
    plt, fig, ax = _figure((max(10.0, 0.16 * len(rows)), 6.0))
    names = list(dict.fromkeys(r["segment"] for r in rows))
    for k, name in enumerate(names):
        xs = [r["index"] for r in rows if r["segment"] == name]
        ys = [r["average_skr_kbps"] for r in rows if r["segment"] == name]
        ax.bar(xs, ys, color=_COLOURS[k % len(_COLOURS)], label=name)
    ax.set_yscale("log")
    # each bar is the QKD-link between the two nodes named either side of it
    ax.set_xticks([i + 0.5 for i in range(len(nodes))], [net.node[n].name for n in nodes],
                  rotation=90, fontsize=6)
    ax.set_xlim(0.5, len(rows) + 0.5)
    ax.set_xlabel("nodes along the watched path (each bar: the QKD-link between two)")
    ax.set_ylabel("average SKR (kbit/s)")
    title = "Fig. 5a analogue: average SKR of each QKD-link"
    if paper:
        for y in PAPER_LINK_SKR_KBPS:
            ax.axhline(y, color="grey", ls=":", lw=1)
        title += (f" (paper: {PAPER_LINK_SKR_KBPS[0]}-{PAPER_LINK_SKR_KBPS[1]} kbit/s, "
                  "dotted)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    png = _save(plt, fig, out.folder / "fig5a_link_skr.png")
    mean = [r["average_skr_kbps"] * 1e3 for r in rows]
    text = (f"<p>{len(rows)} QKD-links, average SKR from {human(min(mean), 'bit/s')} to "
            f"{human(max(mean), 'bit/s')}")
    if paper:
        text += (f" (paper: {human(PAPER_LINK_SKR_KBPS[0] * 1e3, 'bit/s')} to "
                 f"{human(PAPER_LINK_SKR_KBPS[1] * 1e3, 'bit/s')})")
    return _section("Fig. 5a: per-link average SKR along the watched path",
                    text + ".</p>" + _img(png))


def _fig5b(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    weeks = result.scenario.weeks
    out.table("fig5b_segment_skr", tables["fig5b_segment_skr"])
    names = [r["segment"] for r in tables["segments"]]
    paper = paper_run(result)
    plt, fig, ax = _figure((8, 4.8))
    for k, (name, seg) in enumerate(zip(names, result.segments, strict=True)):
        colour = _COLOURS[k % len(_COLOURS)]
        ax.plot(range(1, weeks + 1), np.array(seg.weekly_skr_bps) / 1e3, "o-",
                color=colour, label=name)
        if paper:
            ax.axhline(PAPER_SEGMENT_SKR_KBPS[k], color=colour, ls="--", lw=1)
    ax.set_xlabel("week")
    ax.set_ylabel("end-to-end SKR (kbit/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Fig. 5b analogue: weekly end-to-end SKR of each segment"
                 + (" (paper: dashed)" if paper else ""))
    ax.legend(fontsize=8)
    png = _save(plt, fig, out.folder / "fig5b_segment_skr.png")
    head = ["segment", "links", "twin mean"]
    if paper:
        head += ["paper", "difference"]
    body = []
    for k, (n, s) in enumerate(zip(names, result.segments, strict=True)):
        row: list[Any] = [n, len(s.links), human(s.mean_skr_bps, "bit/s")]
        if paper:
            p = PAPER_SEGMENT_SKR_KBPS[k]
            row += [human(p * 1e3, "bit/s"), f"{100 * (s.mean_skr_bps / 1e3 / p - 1):+.1f}%"]
        body.append(row)
    return _section("Fig. 5b: weekly end-to-end SKR of the segments",
                    _html_table(head, body) + _img(png))


def _table1(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    rows = tables["table1_hours_unserved"]
    out.table("table1_hours_unserved", rows)
    head = list(rows[0])
    body: list[list[Any]] = [[r["week"], *(hours(r[c]) for c in head[1:])] for r in rows]
    if paper_run(result):
        body.append(["paper sum", *map(hours, PAPER_HOURS_UNSERVED)])
    return _section("Table 1: hours per week each segment could not serve keys",
                    "<p>A segment is unserved while the control layer finds no usable "
                    "route between its ends (a ring segment switches to its backup).</p>"
                    + _html_table(head, body))


def _services(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    rows = tables["services"]
    out.table("services", rows)
    if not rows:
        return _section("Demands", "<p>No demands in this scenario.</p>")
    head = ["demand", "source", "target", "rate", "key size", "hops at end", "key asked",
            "key served", "served", "hours unserved", "availability", "route changes"]
    body = [[r["demand"], r["source"], r["target"], human(r["rate_kbps"] * 1e3, "bit/s"),
             human(r["key_bits"], "bit", digits=4), r["hops_at_end"],
             human(r["requested_bits"], "bit"),
             human(r["served_bits"], "bit"), f"{100 * r['served_fraction']:.1f}%",
             hours(r["hours_unserved"]), f"{100 * r['availability']:.3f}%",
             r["route_changes"]] for r in rows]
    return _section("Demands: key served end to end",
                    "<p>Each demand is routed by the control layer (working route and "
                    "edge-disjoint backup); every hop pays the pad and a MAC key per relayed "
                    "key. Served = key delivered / key asked.</p>" + _html_table(head, body))


def _service_qos(out: _Out, tables: dict[str, tb.Rows]) -> str:
    """Each demand as a service with its ITU-T Y.3807 QoS over the run."""
    rows = tables["service_qos"]
    out.table("service_qos", rows)
    if not rows:
        return ""
    head = ["service", "state at end", "throughput", "KKDLR", "availability", "outages",
            "last restoration", "mean restoration"]
    body = [[r["service"], r["state_at_end"], human(r["throughput_kbps"] * 1e3, "bit/s"),
             _percent(r["kkdlr"], 3), _percent(r["availability"], 3), r["outages"],
             "-" if r["last_restoration_h"] is None else hours(r["last_restoration_h"]),
             "-" if r["mean_restoration_h"] is None else hours(r["mean_restoration_h"])]
            for r in rows]
    return _section(
        "Services: ITU-T Y.3807 QoS per demand",
        "<p>Each demand is a service. Throughput = key served over the run; KKDLR (key "
        "delivery loss ratio) = key asked for but not served over key asked for; "
        "availability = share of the run with a route; restoration time = how long an "
        "unserved spell lasted (one still open at the end is none). The twin relays between "
        "Key Managers with no application waiting on a KME, so key response delay (KKRD, "
        "KKRDV) and delivery error ratio (KKDER) are measured live only "
        "(<code>qkdnet serve</code>: <code>/api/services</code>).</p>"
        + _html_table(head, body))


def _percent(share: float, digits: int) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.{digits}f}%"


def _fig3_4(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    rows = tables["fig3_4_measured_vs_ideal"]
    out.table("fig3_4_measured_vs_ideal", rows)
    below = sum(r["average_skr_per_pair_kbps"] <= r["ideal_skr_kbps"] for r in rows)
    panels = [(types, title) for types, title in
              ((BACKBONE_DEVICE_TYPES, "Fig. 3: backbone types I-IV"),
               (METRO_DEVICE_TYPES, "Fig. 4: metro types V-VII"))
              if any(r["device_type"] in types for r in rows)]  # no empty panel
    if not panels:
        return ""
    plt, fig, axes = _figure((6 * len(panels), 4.8), ncols=len(panels))
    for ax, (types, title) in zip(np.atleast_1d(axes), panels, strict=True):
        mine = [r for r in rows if r["device_type"] in types]
        top = max(float(r["loss_db"]) for r in mine) + 2
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
            if pts:
                ax.scatter([r["loss_db"] for r in pts],
                           [max(r["average_skr_per_pair_kbps"], 1e-3) for r in pts],
                           s=9, color=colour, alpha=0.6,
                           label=f"type {name}: {len(pts)} links (twin)")
        ax.set_yscale("log")
        ax.set_xlabel("link loss (dB)")
        ax.set_ylabel("average SKR per device pair (kbit/s)")
        ax.set_title(title)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    png = _save(plt, fig, out.folder / "fig3_4_measured_vs_ideal.png")
    counts = ", ".join(f"type {t}: {n}" for t in (*BACKBONE_DEVICE_TYPES, *METRO_DEVICE_TYPES)
                       if (n := sum(r["device_type"] == t for r in rows)))
    return _section("Fig. 3 and 4: field links against the ideal and pessimistic curves",
                    f"<p>As the paper draws them: each link's average SKR per device pair "
                    f"in this run at its loss, over its type's ideal curve (solid) and the "
                    f"pessimistic corner of the field spread (dashed). Links per type: "
                    f"{counts}. {below} of {len(rows)} links run at or below their type's "
                    "ideal curve (field parameters, drift, vibration and outages), "
                    "following its trend in loss.</p>" + _img(png))


def _pools(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    out.table("pools", tables["pools"])
    names = [v.demand.id for v in result.services]
    hours = result.pool_times_s / HOUR_S
    if names:
        plt, fig, (top, bottom) = _figure((10, 6.4), nrows=2)
        for k, name in enumerate(names):
            top.plot(hours, np.maximum(result.pool_route_min_bits[:, k] / 1e6, 1e-3), lw=1,
                     color=_COLOURS[k % len(_COLOURS)], label=name)
        top.set_yscale("log")
        top.set_ylabel("emptiest pool on route (Mbit)")
        top.set_title("Key pools: the bottleneck of each demand's route, hour by hour")
        top.legend(fontsize=7, ncol=2)
    else:  # no demand: no route panel
        plt, fig, bottom = _figure((10, 3.6))
        bottom.set_title("Key pools, hour by hour")
    bottom.plot(hours, result.pool_total_bits / 1e9, color=_COLOURS[0], lw=1)
    bottom.set_xlabel("hour")
    bottom.set_ylabel("key in all pools (Gbit)", color=_COLOURS[0])
    dry = bottom.twinx()
    dry.plot(hours, 100 * result.pool_dry_fraction, color=_COLOURS[1], lw=1)
    dry.set_ylabel("dry KM-link pools (%)", color=_COLOURS[1])
    png = _save(plt, fig, out.folder / "pools.png")
    return _section("Key pools", f"<p>A pool is dry below {human(4096, 'bit')}; a demand "
                    "whose route pool runs dry is served only what its bottleneck "
                    "refills.</p>" + _img(png))


def _satellite(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    """Passes per station per week, key per pass, the satellite pools over time and the
    demands served through the satellite."""
    sat = result.satellite
    assert sat is not None
    out.table("satellite_passes", tables["satellite_passes"])
    out.table("satellite_pools", tables["satellite_pools"])
    out.table("satellite_demands", tables["satellite_demands"])
    per_week = tb.passes_per_week(result)
    head = list(per_week[0]) if per_week else ["station"]
    body = [[human(v * 1e3, "bit") if c in ("key per pass kbit (mean)", "min", "max") else v
             for c, v in r.items()] for r in per_week]
    head = [c.replace(" kbit (mean)", " (mean)") for c in head]
    served = tables["satellite_demands"]
    text = (f"<p>{len(sat.satellites)} satellite(s) ({', '.join(sat.satellites)}) share key "
            f"with {len(sat.stations)} ground stations pass by pass; a satellite KM-link "
            "relays through the satellite as a trusted relay, each relayed bit spending a bit "
            "of both stations' pools. Passes per station per week and key per pass:</p>"
            + _html_table(head, body)
            + "<p>Demands served through the satellite (share of their served key that "
              "crossed a satellite KM-link; waiting = time with no route, the pools empty "
              "between passes):</p>"
            + (_html_table(list(tb.SATELLITE_DEMAND_COLUMNS),
                           [list(r.values()) for r in served]) if served else "<p>None.</p>"))
    if sat.passes:  # no pass, no figure
        text += _img(_satellite_figure(result, out.folder / "satellite_passes.png"))
    return _section("Satellite", text)


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


def _alarms(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    rows = tables["alarms"]
    out.table("alarms", rows)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_rule.setdefault(row["rule"], []).append(row)
    if not by_rule:
        return _section("Alarms", "<p>The NMS's default rules raised no alarm.</p>")
    table = _html_table(["rule", "severity", "alarms", "links"],
                        [(rule, got[0]["severity"], len(got), len({r["subject"] for r in got}))
                         for rule, got in sorted(by_rule.items())])
    return _section("Alarms", "<p>The NMS's default rules applied to every QKD-link's "
                    "SKR, QBER and state at each step (raise and clear times in "
                    f"<code>alarms.{out.fmt}</code>).</p>" + table)


def _links(result: TwinResult, out: _Out, tables: dict[str, tb.Rows]) -> str:
    rows = tables["links"]
    out.table("links", rows)
    out.table("km_links", tables["km_links"])
    avail = np.array([r["availability"] for r in rows], dtype=float)
    worst = sorted(rows, key=lambda r: (r["availability"], r["link"]))[:10]
    body = [[r["link"], r["faults"], hours(r["hours_down"]),
             f"{100 * r['availability']:.3f}%", human(r["average_skr_kbps"] * 1e3, "bit/s")]
            for r in worst]
    return _section(
        "Availability",
        f"<p>{len(rows)} QKD-links; mean availability {100 * avail.mean():.3f}%, "
        f"{int((avail < 1).sum())} links had an outage. The ten least available:</p>"
        + _html_table(["link", "faults", "hours down", "availability", "average SKR"], body)
        + f"<p>Every link, with its key accounting: <code>links.{out.fmt}</code>; every "
          f"KM-link pool: <code>km_links.{out.fmt}</code>.</p>")


# -- rendering helpers ---------------------------------------------------------------------

_r = tb.rounded


def _csv(path: Path, rows: tb.Rows) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _parquet(path: Path, rows: tb.Rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


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
            "control layer."
            + (" The paper's figures (Chen et al., npj Quantum Inf. 2025) are shown beside "
               "the twin's where they apply." if paper_run(result) else "")
            + "</p>" + "".join(sections) + "</body></html>\n")
