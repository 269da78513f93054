"""The key-aware cost of relaying over a KM-link, from what its KM last reported
(:class:`~qkdnet.keys.link_state.KMLinkState`): one plain hop, dearer as its key runs
short, unusable when it is down or cannot cover the demand."""

from __future__ import annotations

from qkdnet.keys.link_state import KMLinkState

#: Seconds of refill a route may count on beyond the key already pooled.
REFILL_HORIZON_S = 1.0
#: How much dearer than one plain hop a KM-link whose key barely covers the demand is.
SCARCITY_WEIGHT = 4.0



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
