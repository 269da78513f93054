"""What the controllers know of each KM-link: key in its pool, the rate it refills at, and
whether it is up. KMs (or the twin) report it; controllers route with it."""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds of refill a route may count on beyond the key already pooled.
REFILL_HORIZON_S = 1.0
#: How much dearer than one plain hop a KM-link whose key barely covers the demand is.
SCARCITY_WEIGHT = 4.0


@dataclass(frozen=True, slots=True)
class KMLinkState:
    """A KM-link's state: ``key_bits`` pooled (bits), ``rate_bps`` refill (bit/s), ``up``."""

    km_link: str
    key_bits: float
    rate_bps: float = 0.0
    up: bool = True


def key_aware_cost(state: KMLinkState | None, need_bits: float) -> float | None:
    """The cost of relaying ``need_bits`` over a KM-link: one hop, plus up to
    SCARCITY_WEIGHT more as its key runs short. None (unusable) when it is down or holds
    less than ``need_bits`` even counting REFILL_HORIZON_S of refill; a KM-link nobody has
    reported on is taken as plain (no state yet is not a failure)."""
    if state is None:
        return 1.0
    available = state.key_bits + state.rate_bps * REFILL_HORIZON_S
    if not state.up or available < need_bits:
        return None
    return 1.0 + SCARCITY_WEIGHT * need_bits / (available + need_bits)
