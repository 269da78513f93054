"""How far a device reaches: the loss at which its key rate falls to zero or to a target,
and the smallest finite-key block that yields any key at all.

The loss searches solve rate(loss) = target by bisection on the loss, vectorised over per-link
parameter arrays; the rates fall monotonically with loss, so the root is unique.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import DeviceType
from qkdnet.quantum.finite_key import DEFAULT_EPSILON
from qkdnet.quantum.params import ProtocolParams
from qkdnet.quantum.rates import skr

FloatArray = NDArray[np.float64]

#: Upper end of the search (dB): no fibre QKD link keys beyond it.
MAX_SEARCH_LOSS_DB = 200.0
_ITERATIONS = 48  # 200 dB / 2^48: far below any meaningful precision


def loss_at_rate(
    device: DeviceType, target_bps: ArrayLike, params: ProtocolParams | None = None,
    block_size: ArrayLike | None = None, epsilon: float = DEFAULT_EPSILON,
) -> FloatArray:
    """Largest channel loss (dB) at which ``device`` still delivers ``target_bps``.

    NaN where even a lossless channel falls short of the target.
    """
    target = np.asarray(target_bps, dtype=np.float64)
    if np.any(~(target >= 0)):
        raise ParameterError("target_bps", float(target[~(target >= 0)].flat[0]),
                             "target key rate must be >= 0 bit/s")
    p = device.params if params is None else params
    block_shape = () if block_size is None else np.shape(block_size)
    shape = np.broadcast_shapes(target.shape, p.shape, block_shape)

    def meets(loss: FloatArray) -> NDArray[np.bool_]:
        rate = skr(device, loss, p, block_size, epsilon)
        return np.asarray((rate >= target) & (rate > 0))

    low = np.zeros(shape)
    high = np.full(shape, MAX_SEARCH_LOSS_DB)
    reachable = meets(low)
    for _ in range(_ITERATIONS):
        mid = (low + high) / 2.0
        ok = meets(mid)
        low = np.where(ok, mid, low)
        high = np.where(ok, high, mid)
    return np.where(reachable, low, np.nan)


def max_tolerable_loss(
    device: DeviceType, params: ProtocolParams | None = None,
    block_size: ArrayLike | None = None, epsilon: float = DEFAULT_EPSILON,
) -> FloatArray:
    """Channel loss (dB) at which ``device``'s secure key rate falls to zero."""
    return loss_at_rate(device, 0.0, params, block_size, epsilon)


def minimum_block_size(
    device: DeviceType, params: ProtocolParams | None = None, epsilon: float = DEFAULT_EPSILON,
    loss_db: float = 0.0,
) -> float:
    """Smallest block (bits for DV, symbols for CV) giving a positive finite key at
    ``loss_db`` (dB); infinite if no block up to 1e18 does. A scalar parameter set only."""
    p = device.params if params is None else params

    def keys(log_block: float) -> bool:
        return bool(np.all(skr(device, loss_db, p, 10.0**log_block, epsilon) > 0))

    low, high = 0.0, 18.0
    if not keys(high):
        return float("inf")
    for _ in range(40):
        mid = (low + high) / 2.0
        low, high = (low, mid) if keys(mid) else (mid, high)
    return float(np.ceil(10.0**high))
