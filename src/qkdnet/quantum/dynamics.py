"""How a deployed link's key rate moves over time, apart from outright failures.

Two effects, both entering through the error rate the devices see (Chen et al. name them as
why field links sit below the simulated curves):

- slow drift: temperature swings between day and night drift the polarisation or phase
  reference between compensations; modelled as extra QBER following a daily cosine that
  peaks mid-afternoon, with a per-link amplitude;
- fibre vibration and synchronisation-light leakage: short bursts (minutes) of extra QBER
  at random times, Poisson per link, each with its own strength.

For CV links the same disturbance shows up as excess noise: ``CV_XI_PER_QBER`` SNU per unit
of extra QBER. The model constants are project assumptions, stated below; with them a
typical backbone link keeps about 90% of its static field rate on average (measured in
tests/twin), which is how far the paper's long-term averages sit below commissioning
figures in our calibration.

Everything is drawn up front from a seed; :meth:`LinkDynamics.extra_qber` evaluates any
window of simulated time for all links at once (vectorised over steps x links).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.units import DAY_S, HOUR_S

#: Local time of the run's start (s after midnight, China Standard Time) and of peak drift.
START_OF_DAY_S = 0.0
DRIFT_PEAK_S = 15 * HOUR_S

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DynamicsModel:
    """Rates and sizes of the time-varying disturbances (QBER as a fraction).

    ``drift_amplitude`` is the largest day-night swing a link may have (each link draws
    its own uniformly below it); bursts arrive ``bursts_per_day`` per link, last a
    lognormal time of median ``burst_median_s`` and spread ``burst_sigma``, and add QBER
    drawn uniformly in ``burst_qber``.
    """

    drift_amplitude: float = 0.006
    bursts_per_day: float = 2.0
    burst_median_s: float = 300.0
    burst_sigma: float = 0.8
    burst_qber: tuple[float, float] = (0.003, 0.02)

    def __post_init__(self) -> None:
        for name in ("drift_amplitude", "bursts_per_day", "burst_sigma"):
            if not getattr(self, name) >= 0:
                raise ParameterError(name, getattr(self, name), ">= 0")
        if not self.burst_median_s > 0:
            raise ParameterError("burst_median_s", self.burst_median_s, "a time > 0 s")
        low, high = self.burst_qber
        if not 0 <= low <= high < 0.5:
            raise ParameterError("burst_qber", self.burst_qber, "0 <= low <= high < 0.5")


#: The defaults the twin runs with.
DEFAULT_DYNAMICS = DynamicsModel()
#: Extra excess noise (SNU) a CV link sees per unit of extra QBER of the same disturbance.
CV_XI_PER_QBER = 2.0


class LinkDynamics:
    """Drift amplitudes and bursts of ``n_links`` links over ``duration_s`` seconds."""

    def __init__(self, n_links: int, duration_s: float, seed: int,
                 model: DynamicsModel = DEFAULT_DYNAMICS) -> None:
        rng = np.random.default_rng(seed)
        self.n_links = n_links
        self.amplitude = rng.uniform(0.0, model.drift_amplitude, n_links)
        counts = rng.poisson(model.bursts_per_day * duration_s / DAY_S, n_links)
        link = np.repeat(np.arange(n_links), counts)
        start = rng.uniform(0.0, duration_s, link.size)
        length = rng.lognormal(np.log(model.burst_median_s), model.burst_sigma, link.size)
        order = np.argsort(start, kind="stable")
        self.burst_link = link[order]
        self.burst_start = start[order]
        self.burst_end = (start + length)[order]
        self.burst_qber = rng.uniform(*model.burst_qber, link.size)[order]
        self._longest = float(length.max()) if length.size else 0.0

    def extra_qber(self, times_s: FloatArray, step_s: float) -> FloatArray:
        """Mean extra QBER of every link over each step ``[t, t + step_s)``: shape
        ``(len(times_s), n_links)``. A burst counts for the part of a step it covers."""
        phase = 2 * np.pi * (times_s + step_s / 2 + START_OF_DAY_S - DRIFT_PEAK_S) / DAY_S
        drift = (1 + np.cos(phase))[:, None] / 2 * self.amplitude[None, :]
        if times_s.size == 0:
            return drift
        t0, t1 = float(times_s[0]), float(times_s[-1]) + step_s
        lo = int(np.searchsorted(self.burst_start, t0 - self._longest, side="left"))
        hi = int(np.searchsorted(self.burst_start, t1, side="left"))
        # A burst covers a step or two: in Python floats (the same IEEE arithmetic as
        # numpy's, so the same numbers) a burst costs far less than a few small arrays; the
        # shares are added in burst order by one unbuffered np.add.at, as a loop would.
        times = times_s.tolist()
        starts = self.burst_start[lo:hi].tolist()
        ends = self.burst_end[lo:hi].tolist()
        links = self.burst_link[lo:hi].tolist()
        qbers = self.burst_qber[lo:hi].tolist()
        rows: list[int] = []
        cols: list[int] = []
        shares: list[float] = []
        for start, end, link, qber in zip(starts, ends, links, qbers, strict=True):
            if end <= t0:
                continue
            first = max(0, int((start - t0) // step_s))
            last = min(len(times) - 1, int((end - t0) // step_s))
            for j in range(first, last + 1):
                t = times[j]
                covered = min(max(min(t + step_s, end) - max(t, start), 0.0), step_s) / step_s
                rows.append(j)
                cols.append(link)
                shares.append(covered * qber)
        if shares:
            np.add.at(drift, (np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)),
                      np.array(shares))
        return drift
