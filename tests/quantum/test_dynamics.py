"""Link dynamics: the day-night drift of extra QBER peaks mid-afternoon, bursts add their
QBER for the part of a step they cover, and the rate table turns extra QBER into key rate."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.dynamics import DRIFT_PEAK_S, DynamicsModel, LinkDynamics
from qkdnet.quantum.rate_table import QBER_STEP, RateTable, intrinsic_qber
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.units import DAY_S

CALM = DynamicsModel(bursts_per_day=0.0)


def test_the_drift_peaks_mid_afternoon_at_each_links_amplitude() -> None:
    dyn = LinkDynamics(50, DAY_S, seed=4, model=CALM)
    hours = np.arange(24) * 3600.0
    extra = dyn.extra_qber(hours, step_s=1e-9)
    assert np.all(np.argmax(extra, axis=0) == int(DRIFT_PEAK_S // 3600))
    assert np.allclose(extra.max(axis=0), dyn.amplitude, rtol=1e-6)
    assert np.allclose(extra[3], 0.0, atol=1e-4 * CALM.drift_amplitude)  # 03:00, the trough
    assert np.all(dyn.amplitude <= CALM.drift_amplitude)


def test_a_burst_counts_for_the_part_of_a_step_it_covers() -> None:
    model = DynamicsModel(drift_amplitude=0.0, bursts_per_day=20.0)
    dyn = LinkDynamics(1, DAY_S, seed=9, model=model)
    k = 0
    start, end, qber = dyn.burst_start[k], dyn.burst_end[k], dyn.burst_qber[k]
    others = [(s, e) for s, e in zip(dyn.burst_start[1:], dyn.burst_end[1:], strict=True)
              if s < end + 600 and e > start - 600]
    assert not others  # the seed is chosen so that the first burst stands alone
    step = end - start  # one step exactly over the burst, one half over it
    full = dyn.extra_qber(np.array([start]), step)[0, 0]
    half = dyn.extra_qber(np.array([start + step / 2]), step)[0, 0]
    assert full == pytest.approx(qber)
    assert half == pytest.approx(qber / 2)
    assert dyn.extra_qber(np.array([end + 1.0]), 1.0)[0, 0] == 0.0


def test_rates_fall_with_extra_qber() -> None:
    links = build_cn_qcn().qkd_links[:200]
    table = RateTable(links)
    assert np.all(np.diff(table.rates, axis=1) <= 1e-9 * table.rates[:, :1])
    between = table.at(np.full((1, len(links)), QBER_STEP / 2))[0]
    assert np.all(between <= table.rates[:, 0]) and np.all(between >= table.rates[:, 1])


def test_intrinsic_qber_is_the_links_own_else_the_devices_and_none_for_cv() -> None:
    links = build_cn_qcn().qkd_links
    qber = intrinsic_qber(links)
    for lk, q in zip(links, qber, strict=True):
        if lk.device_type in ("VI", "VII"):
            assert np.isnan(q)
        else:
            assert q == lk.field.get("e_d", 0.005) and 0 < q < 0.05
