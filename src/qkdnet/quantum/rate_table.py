"""Each link's secure key rate as a function of the extra QBER the dynamics add, tabulated
once from the quantum layer so a run of weeks only interpolates.

The table folds in everything static about a link: device type, loss, its own field
parameters, device pairs and its share of an optical switch. Rates fall monotonically with
extra QBER, so linear interpolation between grid points stays between true values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from qkdnet.quantum.devices import device_type
from qkdnet.quantum.dynamics import CV_XI_PER_QBER
from qkdnet.quantum.params import DecoyBB84Params
from qkdnet.quantum.rates import skr
from qkdnet.topology.model import QKDLink

FloatArray = npt.NDArray[np.float64]

#: Extra QBER grid: 0 to 5% in steps of 0.25% (beyond, DV links have long stopped).
QBER_STEP = 0.0025
QBER_POINTS = 21


class RateTable:
    """Rates (bit/s) of ``links`` on the extra-QBER grid: ``rates[link, k]`` at
    ``k * QBER_STEP``."""

    def __init__(self, links: Sequence[QKDLink]) -> None:
        grid = np.arange(QBER_POINTS) * QBER_STEP
        self.rates = np.zeros((len(links), QBER_POINTS))
        by_type: dict[str, list[int]] = {}
        for i, lk in enumerate(links):
            by_type.setdefault(lk.device_type, []).append(i)
        for name, rows in by_type.items():
            device = device_type(name)
            chosen = [links[i] for i in rows]
            field = {key: np.array([[lk.field.get(key, getattr(device.params, key))]
                                    for lk in chosen])
                     for key in {k for lk in chosen for k in lk.field}}
            # The disturbance: excess noise for CV links, error rate for DV links.
            name, per_qber = ("xi", CV_XI_PER_QBER) if device.is_cv else ("e_d", 1.0)
            base = field.get(name, np.full((len(rows), 1), getattr(device.params, name)))
            field[name] = base + per_qber * grid[None, :]
            loss = np.array([[lk.loss_db] for lk in chosen])
            scale = np.array([[lk.device_pairs * lk.time_share] for lk in chosen])
            self.rates[rows] = skr(device, loss, device.params.replace(**field)) * scale

    @property
    def static(self) -> FloatArray:
        """Each link's rate with no disturbance (bit/s)."""
        return self.rates[:, 0]

    def at(self, extra_qber: FloatArray) -> FloatArray:
        """Rates (bit/s) for extra QBER of shape ``(steps, links)``, interpolated."""
        x = np.clip(extra_qber / QBER_STEP, 0.0, QBER_POINTS - 1.000001)
        k = x.astype(np.intp)
        frac = x - k
        cols = np.arange(self.rates.shape[0])[None, :]
        low = self.rates[cols, k]
        high = self.rates[cols, k + 1]
        return low + (high - low) * frac


def intrinsic_qber(links: Sequence[QKDLink]) -> FloatArray:
    """Each link's intrinsic QBER (fraction): its own field ``e_d``, else its device type's;
    NaN for CV links, which measure excess noise rather than a bit error rate."""
    out = np.full(len(links), np.nan)
    for i, lk in enumerate(links):
        params = device_type(lk.device_type).params
        if isinstance(params, DecoyBB84Params):
            out[i] = float(lk.field.get("e_d", params.e_d))
    return out
