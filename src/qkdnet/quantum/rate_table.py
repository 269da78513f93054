"""Each link's secure key rate as a function of the extra QBER the dynamics add, tabulated
once from :func:`~qkdnet.quantum.link_rate.links_skr_bps` so a run of weeks only
interpolates.

The table folds in everything static about a link: device type, loss, its own field
parameters, device pairs and its share of an optical switch. Rates fall monotonically with
extra QBER, so linear interpolation between grid points stays between true values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from qkdnet.quantum.devices import device_type
from qkdnet.quantum.link_rate import LinkSpec, links_skr_bps
from qkdnet.quantum.params import DecoyBB84Params

FloatArray = npt.NDArray[np.float64]

#: Extra QBER grid: 0 to 5% in steps of 0.25% (beyond, DV links have long stopped).
QBER_STEP = 0.0025
QBER_POINTS = 21


class RateTable:
    """Rates (bit/s) of ``links`` on the extra-QBER grid: ``rates[link, k]`` at
    ``k * QBER_STEP``."""

    def __init__(self, links: Sequence[LinkSpec]) -> None:
        self.rates = links_skr_bps(links, (np.arange(QBER_POINTS) * QBER_STEP).tolist())

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


def intrinsic_qber(links: Sequence[LinkSpec]) -> FloatArray:
    """Each link's intrinsic QBER (fraction): its own field ``e_d``, else its device type's;
    NaN for CV links, which measure excess noise rather than a bit error rate."""
    out = np.full(len(links), np.nan)
    for i, lk in enumerate(links):
        params = device_type(lk.device_type).params
        if isinstance(params, DecoyBB84Params):
            out[i] = float(lk.field.get("e_d", params.e_d))
    return out
