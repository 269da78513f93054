"""Link dynamics on the wall clock: drawn per local day (China Standard Time) from the
seed, so a day's values are reproducible and the drift peaks at 15:00 in Beijing."""

from __future__ import annotations

import numpy as np

from qkdnet.live.dynamics import CST_OFFSET_S, LiveDynamics
from qkdnet.quantum.dynamics import DynamicsModel
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.units import DAY_S

MIDNIGHT_CST = 1_795_000_000 // DAY_S * DAY_S - CST_OFFSET_S  # a day in 2026, 00:00 CST


def test_the_drift_peaks_at_three_in_the_afternoon_beijing_time() -> None:
    links = build_cn_qcn().qkd_links[:100]
    live = LiveDynamics(links, seed=3, model=DynamicsModel(bursts_per_day=0.0))
    afternoon = live.extra_qber(MIDNIGHT_CST + 15 * 3600)
    night = live.extra_qber(MIDNIGHT_CST + 3 * 3600)
    assert np.all(afternoon >= night) and afternoon.max() > 0.001
    assert np.all(live.skr(afternoon) <= live.skr(night))
    assert np.allclose(live.skr(np.zeros(len(links))), live.table.static)


def test_a_day_is_reproducible_from_the_seed_and_the_next_day_is_drawn_afresh() -> None:
    links = build_cn_qcn().qkd_links
    t = MIDNIGHT_CST + 10 * 3600
    a, b = LiveDynamics(links, seed=5), LiveDynamics(links, seed=5)
    assert np.array_equal(a.extra_qber(t), b.extra_qber(t))
    assert not np.array_equal(a.extra_qber(t), LiveDynamics(links, 6).extra_qber(t))
    # the same time of day, one day on: other burst draws and amplitudes
    assert not np.array_equal(a.extra_qber(t), a.extra_qber(t + DAY_S))
    assert np.array_equal(a.extra_qber(t), b.extra_qber(t))  # back again: the same
