"""Availability statistics over a sweep's runs (:func:`qkdnet.twin.sweep.run_sweep`).

Per variant and per segment or service, over its successful runs: the mean, median and
5th/95th percentiles of hours unserved per run (numpy's linear interpolation between order
statistics), the SKR distribution (segments), and the probability that a run meets an
availability target (99.9 %, 99.99 %: availability = 1 − hours unserved / run length) with
its exact binomial (Clopper–Pearson) confidence interval, from scipy's ``binomtest``. A
run meets a target when its availability is at or above it.

For cn-qcn's watched segments the paper's single observation (Chen et al. 2025, Table 1:
hours unserved in ten weeks) stands beside the distribution, in ``paper_hours``; it is a
ten-week figure, comparable only with ten-week runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qkdnet.twin.report import PAPER_HOURS_UNSERVED

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CONFIDENCE", "PAPER_SEGMENTS", "TARGETS", "availability_table",
           "clopper_pearson", "paper_hours", "target_tag"]

#: Availability targets a run is checked against (0 to 1).
TARGETS = (0.999, 0.9999)
#: Confidence level of the intervals.
CONFIDENCE = 0.95
#: cn-qcn's watched segments in Table 1's order (PAPER_HOURS_UNSERVED's order).
PAPER_SEGMENTS = ("Harbin–Beijing", "Beijing–Wuhan", "Wuhan–Guangzhou", "Guangzhou–Shenzhen")


def paper_hours(network: str, kind: str, name: str) -> float:
    """The paper's hours unserved in ten weeks (Table 1) for a cn-qcn segment; NaN for
    anything else."""
    if network == "cn-qcn" and kind == "segment" and name in PAPER_SEGMENTS:
        return PAPER_HOURS_UNSERVED[PAPER_SEGMENTS.index(name)]
    return float("nan")


def clopper_pearson(successes: int, trials: int,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper–Pearson) two-sided interval of a binomial proportion: ``successes``
    of ``trials``, at ``confidence`` (0 to 1)."""
    from scipy.stats import binomtest

    if trials < 1:
        return (float("nan"), float("nan"))
    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence,
                                                   method="exact")
    return (float(ci.low), float(ci.high))


def availability_table(runs: pd.DataFrame, targets: Sequence[float] = TARGETS,
                       confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (variant, kind, name) of ``runs`` (a sweep's DataFrame; ``failed`` rows
    are counted in ``failed_runs`` and left out of the figures): ``runs``, hours unserved
    ``hours_mean``, ``hours_median``, ``hours_p5``, ``hours_p95``, ``hours_max``, SKR
    (kbit/s) ``skr_mean_kbps``, ``skr_p5_kbps``, ``skr_median_kbps``, ``skr_p95_kbps`` (NaN
    for services), ``served_fraction_mean``, ``paper_hours`` and per target ``t`` (e.g.
    ``99_9``): ``p_meet_<t>``, ``p_meet_<t>_low``, ``p_meet_<t>_high``."""
    import pandas as pd

    ok = runs[runs["kind"] != "failed"]
    failed = runs[runs["kind"] == "failed"].groupby("variant", sort=False).size()
    rows: list[dict[str, Any]] = []
    for (variant, kind, name), g in ok.groupby(["variant", "kind", "name"], sort=False):
        hours = g["hours_unserved"].to_numpy(dtype=float)
        skr = g["mean_skr_kbps"].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "variant": variant, "kind": kind, "name": name, "runs": len(g),
            "failed_runs": int(failed.get(variant, 0)),
            "hours_mean": float(hours.mean()), "hours_median": float(np.median(hours)),
            "hours_p5": float(np.percentile(hours, 5)),
            "hours_p95": float(np.percentile(hours, 95)), "hours_max": float(hours.max()),
            **_skr(skr),
            "served_fraction_mean": float(g["served_fraction"].mean()),
            "paper_hours": paper_hours(str(g["network"].iloc[0]), str(kind), str(name))}
        availability = 1.0 - hours / g["duration_h"].to_numpy(dtype=float)
        for t in targets:
            met = int(np.count_nonzero(availability >= t))
            low, high = clopper_pearson(met, len(g), confidence)
            tag = target_tag(t)
            row |= {f"p_meet_{tag}": met / len(g), f"p_meet_{tag}_low": low,
                    f"p_meet_{tag}_high": high}
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def _skr(skr: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, float]:
    if np.isnan(skr).all():
        nan = float("nan")
        return {"skr_mean_kbps": nan, "skr_p5_kbps": nan, "skr_median_kbps": nan,
                "skr_p95_kbps": nan}
    return {"skr_mean_kbps": float(skr.mean()), "skr_p5_kbps": float(np.percentile(skr, 5)),
            "skr_median_kbps": float(np.median(skr)),
            "skr_p95_kbps": float(np.percentile(skr, 95))}


def target_tag(target: float) -> str:
    """99_9 for 0.999: the target in per cent, the point as an underscore."""
    return f"{target * 100:.10g}".replace(".", "_")
