"""One entry point for the secure key rate of any device type: the interface the key
management layer and the twin use, whatever the protocol behind it."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.errors import ParameterError
from qkdnet.quantum.cv_gg02 import cv_skr
from qkdnet.quantum.decoy_bb84 import decoy_bb84_skr
from qkdnet.quantum.devices import DeviceType
from qkdnet.quantum.finite_key import DEFAULT_EPSILON, cv_finite_skr, decoy_bb84_finite_skr
from qkdnet.quantum.params import CVParams, DecoyBB84Params, ProtocolParams
from qkdnet.quantum.plob import plob_skr

FloatArray = NDArray[np.float64]


def skr(
    device: DeviceType, loss_db: ArrayLike, params: ProtocolParams | None = None,
    block_size: ArrayLike | None = None, epsilon: float = DEFAULT_EPSILON,
) -> FloatArray:
    """Secure key rate (bit/s) of ``device`` at channel loss ``loss_db`` (dB).

    ``params`` overrides the device's calibration (it may hold per-link arrays);
    ``block_size`` (bits for DV, symbols for CV) selects the finite-key rate.
    """
    p = device.params if params is None else params
    if type(p) is not type(device.params):
        raise ParameterError("params", type(p).__name__,
                             f"type {device.name} needs {type(device.params).__name__}")
    if isinstance(p, DecoyBB84Params):
        if block_size is None:
            return decoy_bb84_skr(loss_db, p)
        return decoy_bb84_finite_skr(loss_db, p, block_size, epsilon)
    assert isinstance(p, CVParams)
    if block_size is None:
        return cv_skr(loss_db, p)
    return cv_finite_skr(loss_db, p, block_size, epsilon)


def plob(device: DeviceType, loss_db: ArrayLike, params: ProtocolParams | None = None
         ) -> FloatArray:
    """The PLOB bound (bit/s) at ``device``'s repetition rate: no rate can exceed it."""
    p = device.params if params is None else params
    return plob_skr(loss_db, p.rep_rate_hz)
