"""The quantum layer's link dynamics on the wall clock, for ``qkdnet serve``.

The twin draws each link's day-night drift and bursts of extra QBER for the whole run; a
live network runs for as long as it runs, so here they are drawn afresh for each local day
(China Standard Time, where the drift peaks mid-afternoon) from the serve seed and the day's
number. Each link's secure key rate then follows from the same rate table the twin uses, so
the live emulators make key, and the NMS sees SKR and QBER, the way the twin models them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qkdnet.quantum.dynamics import DEFAULT_DYNAMICS, DynamicsModel, LinkDynamics
from qkdnet.quantum.rate_table import FloatArray, RateTable
from qkdnet.topology.model import QKDLink
from qkdnet.units import DAY_S, HOUR_S

#: China Standard Time is UTC+8, all year.
CST_OFFSET_S = 8 * HOUR_S


class LiveDynamics:
    """Extra QBER and secure key rate (bit/s) of each of ``links`` at a wall-clock time."""

    def __init__(self, links: Sequence[QKDLink], seed: int,
                 model: DynamicsModel = DEFAULT_DYNAMICS) -> None:
        self.table = RateTable(links)
        self.seed = seed
        self.model = model
        self._day: int | None = None
        self._dynamics: LinkDynamics | None = None

    def extra_qber(self, t: float) -> FloatArray:
        """Each link's extra QBER (fraction) at ``t`` (s since the epoch)."""
        local = t + CST_OFFSET_S
        day = int(local // DAY_S)
        if self._dynamics is None or day != self._day:
            seed = int(np.random.SeedSequence([self.seed, day]).generate_state(1)[0])
            self._dynamics = LinkDynamics(self.table.rates.shape[0], DAY_S, seed, self.model)
            self._day = day
        extra: FloatArray = self._dynamics.extra_qber(np.array([local - day * DAY_S]), 1.0)[0]
        return extra

    def skr(self, extra_qber: FloatArray) -> FloatArray:
        """Each link's secure key rate (bit/s) under ``extra_qber``."""
        rates: FloatArray = self.table.at(extra_qber[None, :])[0]
        return rates
