"""The PLOB repeaterless bound: Pirandola, Laurenza, Ottaviani, Banchi, Nat. Commun. 8,
15043 (2017)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.quantum.channel import transmittance

FloatArray = NDArray[np.float64]


def plob_bits_per_use(loss_db: ArrayLike) -> FloatArray:
    """-log2(1 - T): the most secret bits per channel use any point-to-point protocol
    can distil over a pure-loss channel of loss ``loss_db`` (dB); infinite at 0 dB."""
    with np.errstate(divide="ignore"):
        return np.asarray(-np.log2(-np.expm1(np.log(transmittance(loss_db)))), dtype=np.float64)


def plob_skr(loss_db: ArrayLike, rep_rate_hz: ArrayLike) -> FloatArray:
    """The PLOB bound in bit/s at ``rep_rate_hz`` channel uses per second."""
    return np.asarray(np.multiply(rep_rate_hz, plob_bits_per_use(loss_db)), dtype=np.float64)
