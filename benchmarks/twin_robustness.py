"""How robust the twin's CN-QCN figures are: many topology seeds x twin seeds of the
built-in job, against the paper (Chen et al. 2025, Fig. 5 and Table 1).

Each run builds cn-qcn from a topology seed (``build_cn_qcn(seed, floor_bps)``: the
engineering rules fixed, the span lengths, fibre quality and field parameters drawn), runs
the built-in job on it for ``weeks`` with a twin seed (faults, dynamics), and keeps per
segment of the Harbin-Shenzhen path its mean end-to-end SKR and hours unserved, and the
slowest and fastest of the 64 watched links' mean SKR. The table gives per figure the
10th, 50th and 90th percentile over all runs beside the paper's value, and whether the
targets hold: the paper's segment mean inside the 10th-90th percentile range and the
median within 25 % of it; Beijing-Wuhan 0 h in every run; the links spanning 9.75-359.89
kbit/s (slowest at or below 9.75 and fastest at or above 359.89 in at least one run).

:func:`robustness_runs` and :func:`robustness_table` take any seeds (a planning sweep can
call them with its own); runs go to ``workers`` processes (1 by default: the machines this
is run on are shared).

    .venv/bin/python benchmarks/twin_robustness.py [--topology-seeds 20] [--twin-seeds 5]
        [--weeks 10] [--floor-kbps 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import numpy as np

from qkdnet.management.availability import total
from qkdnet.topology.cn_qcn import DESIGN_FLOOR_BPS, build_cn_qcn
from qkdnet.twin.engine import run_twin
from qkdnet.twin.report import (
    PAPER_HOURS_UNSERVED,
    PAPER_LINK_SKR_KBPS,
    PAPER_SEGMENT_SKR_KBPS,
)
from qkdnet.twin.scenario import built_in_scenario
from qkdnet.units import HOUR_S

SEGMENTS = ("Harbin-Beijing", "Beijing-Wuhan", "Wuhan-Guangzhou", "Guangzhou-Shenzhen")
PERCENTILES = (10, 50, 90)
MEDIAN_TOLERANCE = 0.25


@dataclass(frozen=True)
class RunFigures:
    """What one run gave: per segment its mean SKR (kbit/s) and hours unserved, and the
    slowest and fastest watched link's mean SKR (kbit/s)."""

    topology_seed: int
    twin_seed: int
    segment_kbps: tuple[float, ...]
    hours_unserved: tuple[float, ...]
    link_min_kbps: float
    link_max_kbps: float


def run_once(topology_seed: int, twin_seed: int, weeks: float = 10.0,
             floor_bps: float = DESIGN_FLOOR_BPS) -> RunFigures:
    """The built-in job for ``weeks`` on cn-qcn built from ``topology_seed`` (engineered to
    ``floor_bps``, bit/s), faults and dynamics drawn from ``twin_seed``."""
    scenario = dataclasses.replace(built_in_scenario(weeks, twin_seed),
                                   network=build_cn_qcn(topology_seed, floor_bps))
    result = run_twin(scenario)
    watched = result.mean_bps[[result.index[lk] for lk in result.watched_links]] / 1e3
    return RunFigures(
        topology_seed, twin_seed,
        tuple(float(s.mean_skr_bps / 1e3) for s in result.segments),
        tuple(float(total(s.service.outages) / HOUR_S) for s in result.segments),
        float(watched.min()), float(watched.max()))


def _run_pair(pair: tuple[int, int], weeks: float, floor_bps: float) -> RunFigures:
    return run_once(pair[0], pair[1], weeks, floor_bps)


def robustness_runs(topology_seeds: Iterable[int], twin_seeds: Iterable[int],
                    weeks: float = 10.0, floor_bps: float = DESIGN_FLOOR_BPS,
                    workers: int = 1, progress: bool = False) -> list[RunFigures]:
    """One run per (topology seed, twin seed), on ``workers`` processes, in seed order."""
    pairs = [(t, s) for t in topology_seeds for s in twin_seeds]
    job = partial(_run_pair, weeks=weeks, floor_bps=floor_bps)
    runs: list[RunFigures] = []
    with multiprocessing.get_context("spawn").Pool(processes=workers) as pool:
        for k, run in enumerate(pool.imap(job, pairs), start=1):
            runs.append(run)
            if progress:
                print(f"  run {k}/{len(pairs)}: topology {run.topology_seed}, twin "
                      f"{run.twin_seed}: segments "
                      + " ".join(f"{x:.2f}" for x in run.segment_kbps)
                      + " kbit/s, hours " + " ".join(f"{h:.2f}" for h in run.hours_unserved),
                      file=sys.stderr, flush=True)
    return runs


def _pct(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in np.percentile(values, PERCENTILES))


def robustness_table(runs: Sequence[RunFigures]) -> list[dict[str, object]]:
    """One row per figure: its 10th/50th/90th percentile over ``runs``, the paper's value
    and whether the target holds (see the module docstring)."""
    rows: list[dict[str, object]] = []
    for i, name in enumerate(SEGMENTS):
        paper = PAPER_SEGMENT_SKR_KBPS[i]
        p10, p50, p90 = _pct([r.segment_kbps[i] for r in runs])
        rows.append({"figure": f"{name} mean SKR (kbit/s)", "p10": p10, "p50": p50,
                     "p90": p90, "paper": paper,
                     "target": "paper in p10-p90, median within 25 %",
                     "met": p10 <= paper <= p90 and abs(p50 / paper - 1) <= MEDIAN_TOLERANCE})
    for i, name in enumerate(SEGMENTS):
        hours = [r.hours_unserved[i] for r in runs]
        p10, p50, p90 = _pct(hours)
        ring = name == "Beijing-Wuhan"
        rows.append({"figure": f"{name} hours unserved", "p10": p10, "p50": p50,
                     "p90": p90, "paper": PAPER_HOURS_UNSERVED[i],
                     "target": "0 h in every run" if ring else "paper in p10-p90",
                     "met": max(hours) == 0 if ring
                     else p10 <= PAPER_HOURS_UNSERVED[i] <= p90})
    low, high = PAPER_LINK_SKR_KBPS
    lows, highs = [r.link_min_kbps for r in runs], [r.link_max_kbps for r in runs]
    rows.append({"figure": "slowest watched link (kbit/s)", **dict(zip(
        ("p10", "p50", "p90"), _pct(lows), strict=True)), "paper": low,
        "target": "paper in p10-p90", "met": _pct(lows)[0] <= low <= _pct(lows)[2]})
    rows.append({"figure": "fastest watched link (kbit/s)", **dict(zip(
        ("p10", "p50", "p90"), _pct(highs), strict=True)), "paper": high,
        "target": "paper in p10-p90", "met": _pct(highs)[0] <= high <= _pct(highs)[2]})
    return rows


def markdown(rows: Sequence[dict[str, object]]) -> str:
    """The table as Markdown."""
    lines = ["| figure | p10 | median | p90 | paper | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        nums = " | ".join(f"{float(r[k]):.2f}" for k in ("p10", "p50", "p90", "paper"))  # type: ignore[arg-type]
        lines.append(f"| {r['figure']} | {nums} | {r['target']} | "
                     f"{'yes' if r['met'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology-seeds", type=int, default=20,
                        help="topology seeds 1..N")
    parser.add_argument("--twin-seeds", type=int, default=5, help="twin seeds 1..M")
    parser.add_argument("--weeks", type=float, default=10.0)
    parser.add_argument("--floor-kbps", type=float, default=DESIGN_FLOOR_BPS / 1e3,
                        help="design floor of the spans at the pessimistic field corner")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args()
    start = time.perf_counter()
    runs = robustness_runs(range(1, args.topology_seeds + 1), range(1, args.twin_seeds + 1),
                           args.weeks, args.floor_kbps * 1e3, args.workers, progress=True)
    print(f"{len(runs)} runs ({args.topology_seeds} topology seeds x {args.twin_seeds} twin "
          f"seeds, {args.weeks:g} weeks, design floor {args.floor_kbps:g} kbit/s) in "
          f"{time.perf_counter() - start:.0f} s on {platform.machine()}, "
          f"{platform.python_version()}, {args.workers} worker(s), "
          f"{datetime.now(UTC):%Y-%m-%d}")
    print(markdown(robustness_table(runs)))


if __name__ == "__main__":
    main()
