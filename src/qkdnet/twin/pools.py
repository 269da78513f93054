"""KM-link key pools as amounts of key (bits), with the accounting that proves nothing is
lost: on every KM-link, key made = key used + key in the pool + key discarded.

The twin does not hold key material: a pool is a number. Key is made by the QKD-links,
used by relays (every hop of a route pays the pad and the MAC key of each relayed key), and
discarded when a full pool has no room for what the link makes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class KeyPools:
    """Pools of ``n`` KM-links, each holding at most ``capacity_bits``; empty at start."""

    def __init__(self, n: int, capacity_bits: float) -> None:
        if not capacity_bits > 0:
            raise ParameterError("capacity_bits", capacity_bits, "> 0 bits")
        self.capacity_bits = float(capacity_bits)
        self.pooled = np.zeros(n)
        self.made = np.zeros(n)
        self.used = np.zeros(n)
        self.discarded = np.zeros(n)

    def deposit(self, bits: FloatArray) -> None:
        """Add what each link made in one step (bits); until :meth:`spill` a pool may hold
        more than its capacity, so the step's demand can use the step's key."""
        self.made += bits
        self.pooled += bits

    def spill(self) -> None:
        """Discard what does not fit in each pool (the end of a step)."""
        over = self.pooled - self.capacity_bits
        np.maximum(over, 0.0, out=over)
        self.discarded += over
        self.pooled -= over

    def draw(self, links: IndexArray, bits: float) -> float:
        """Take ``bits`` from each of ``links`` (one relay route) if all hold it, else the
        largest common share; returns the share served, 0 to 1. A route with no links
        (source and target on one node) is served in full."""
        if links.size == 0 or bits <= 0:
            return 1.0
        held = self.pooled[links]
        taken = min(bits, float(held.min()))
        if taken <= 0:
            return 0.0
        # The emptiest pool gives exactly what it held: rounding never leaves it below 0.
        self.pooled[links] = np.maximum(held - taken, 0.0)
        self.used[links] += held - self.pooled[links]
        return taken / bits

    def imbalance(self) -> FloatArray:
        """made - used - pooled - discarded per link (bits): zero up to rounding."""
        return self.made - self.used - self.pooled - self.discarded
