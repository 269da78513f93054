"""The optical channel between two nodes: loss in dB and transmittance."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.errors import ParameterError

FloatArray = NDArray[np.float64]


def transmittance(loss_db: ArrayLike) -> FloatArray:
    """Channel transmittance T = 10^(-L/10) for a loss L in dB (L >= 0)."""
    loss = np.asarray(loss_db, dtype=np.float64)
    if np.any(np.isnan(loss)) or np.any(loss < 0):
        bad = loss[np.isnan(loss) | (loss < 0)].flat[0]
        raise ParameterError("loss_db", float(bad), "channel loss must be a number >= 0 dB")
    return np.power(10.0, -loss / 10.0)


def fibre_loss_db(length_km: ArrayLike, attenuation_db_per_km: float = 0.2) -> FloatArray:
    """Loss in dB of ``length_km`` of fibre at ``attenuation_db_per_km``."""
    return np.asarray(length_km, dtype=np.float64) * attenuation_db_per_km
