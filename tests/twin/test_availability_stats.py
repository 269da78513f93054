"""Availability statistics over a sweep (``qkdnet.twin.availability_stats``) on inputs
whose percentiles and Clopper–Pearson intervals are computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from qkdnet.twin.availability_stats import availability_table, clopper_pearson

N = 20


def _runs() -> pd.DataFrame:
    """20 one-week runs of cn-qcn: Harbin–Beijing unserved 0, 1, ..., 19 h; Beijing–Wuhan
    never; a service always 1 h; one more run failed."""
    rows = []
    for seed in range(1, N + 1):
        base = {"variant": "base", "seed": seed, "network": "cn-qcn", "duration_h": 168.0,
                "source": "a", "target": "b", "error": ""}
        rows += [{**base, "kind": "segment", "position": 0, "name": "Harbin–Beijing",
                  "mean_skr_kbps": float(seed), "hours_unserved": float(seed - 1),
                  "served_fraction": 1.0},
                 {**base, "kind": "segment", "position": 1, "name": "Beijing–Wuhan",
                  "mean_skr_kbps": 16.0, "hours_unserved": 0.0, "served_fraction": 1.0},
                 {**base, "kind": "service", "position": 0, "name": "otp",
                  "mean_skr_kbps": math.nan, "hours_unserved": 1.0,
                  "served_fraction": 0.5}]
    rows.append({"variant": "base", "seed": 99, "network": "cn-qcn", "duration_h": 168.0,
                 "kind": "failed", "position": 0, "name": "", "source": "", "target": "",
                 "mean_skr_kbps": math.nan, "hours_unserved": math.nan,
                 "served_fraction": math.nan, "error": "RuntimeError: x"})
    return pd.DataFrame.from_records(rows)


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, object]]:
    stats = availability_table(_runs())
    return {str(r["name"]): r for r in stats.to_dict("records")}


def test_percentiles_interpolate_between_runs(table: dict[str, dict[str, object]]) -> None:
    """Hours 0..19: mean and median 9.5, p5 = 0.95 and p95 = 18.05 (linear between order
    statistics), max 19; SKR 1..20 kbit/s: p5 1.95, median 10.5."""
    hb = table["Harbin–Beijing"]
    assert (hb["runs"], hb["failed_runs"]) == (N, 1)
    assert hb["hours_mean"] == pytest.approx(9.5)
    assert hb["hours_median"] == pytest.approx(9.5)
    assert hb["hours_p5"] == pytest.approx(0.95)
    assert hb["hours_p95"] == pytest.approx(18.05)
    assert hb["hours_max"] == 19.0
    assert hb["skr_p5_kbps"] == pytest.approx(1.95)
    assert hb["skr_median_kbps"] == pytest.approx(10.5)


def test_probability_of_meeting_a_target_with_its_exact_interval(
        table: dict[str, dict[str, object]]) -> None:
    """Of 20 one-week runs only the 0 h one meets 99.9 % (0.168 h allowed): 1/20. All 20
    meeting it: [0.025^(1/20), 1]; none: [0, 1 − 0.025^(1/20)] (Clopper–Pearson, 95 %)."""
    hb, bw, otp = table["Harbin–Beijing"], table["Beijing–Wuhan"], table["otp"]
    assert hb["p_meet_99_9"] == pytest.approx(1 / N)
    assert hb["p_meet_99_99"] == pytest.approx(1 / N)
    edge = 0.025 ** (1 / N)
    assert (bw["p_meet_99_99"], bw["p_meet_99_99_low"], bw["p_meet_99_99_high"]) == \
        pytest.approx((1.0, edge, 1.0))
    # 1 h of 168 is 99.405 %: below both targets in every run
    assert (otp["p_meet_99_9"], otp["p_meet_99_9_low"], otp["p_meet_99_9_high"]) == \
        pytest.approx((0.0, 0.0, 1 - edge))
    # one success of 20: the lower bound solves P(X >= 1) = 0.025, 1 - (1 - p)^20 = 0.025
    low, high = clopper_pearson(1, N)
    assert low == pytest.approx(1 - 0.975 ** (1 / N))
    assert low < 1 / N < high < 0.5


def test_paper_value_marks_cn_qcn_segments_only(table: dict[str, dict[str, object]]) -> None:
    """Table 1's 5.13 h beside Harbin–Beijing and 0 h beside Beijing–Wuhan; none for a
    service; services have no SKR figures."""
    assert table["Harbin–Beijing"]["paper_hours"] == 5.13
    assert table["Beijing–Wuhan"]["paper_hours"] == 0.0
    assert math.isnan(float(table["otp"]["paper_hours"]))  # type: ignore[arg-type]
    assert math.isnan(float(table["otp"]["skr_mean_kbps"]))  # type: ignore[arg-type]
    assert table["otp"]["served_fraction_mean"] == 0.5
