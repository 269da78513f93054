"""Entropy functions shared by the key-rate models (all in bits)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def binary_entropy(p: ArrayLike) -> FloatArray:
    """Shannon entropy H2(p) in bits; p is clipped to [0, 1/2] from above as BB84 needs.

    Error rates above 1/2 carry no more information than 1/2, so H2 saturates at 1 there.
    """
    x = np.clip(np.asarray(p, dtype=np.float64), 0.0, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -x * np.log2(x) - (1.0 - x) * np.log2(1.0 - x)
    return np.where(x > 0.0, h, 0.0)


def thermal_entropy(nu: ArrayLike) -> FloatArray:
    """Von Neumann entropy G(nu) in bits of a one-mode Gaussian state with symplectic
    eigenvalue ``nu`` (shot-noise units, nu >= 1): g((nu - 1) / 2) with
    g(x) = (x + 1) log2(x + 1) - x log2(x)."""
    x = np.maximum((np.asarray(nu, dtype=np.float64) - 1.0) / 2.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (x + 1.0) * np.log2(x + 1.0) - x * np.log2(x)
    return np.where(x > 0.0, g, 0.0)
