"""The key-aware cost of relaying over a KM-link, from what its KM last reported
(:class:`~qkdnet.keys.link_state.KMLinkState`): one plain hop, dearer as its key runs
short, unusable when it is down or cannot cover the demand; and the cost of a satellite
KM-link, which follows the key in its satellite pools rather than counting a hop."""

from __future__ import annotations

from qkdnet.keys.link_state import KMLinkState

#: Seconds of refill a route may count on beyond the key already pooled.
REFILL_HORIZON_S = 1.0
#: How much dearer than one plain hop a KM-link whose key barely covers the demand is.
SCARCITY_WEIGHT = 4.0
#: Key (bits) in a satellite KM-link's pools at which a hop through the satellite costs as
#: much as one fibre hop. A fibre KM-link refills ~1e9 bits a day where a pass leaves
#: 1e5-6e5 bits (Jinan-1: up to 0.59 Mbit a pass, Li et al., Nature 640, 47 (2025)), so a
#: satellite hop costs hundreds to thousands of fibre hops: the route of last resort (a
#: metro network reached only by satellite, a fibre failure with no fibre detour), the
#: cheaper the more key its pools hold.
SATELLITE_KEY_SCALE_BITS = 1e9

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


def satellite_cost(state: KMLinkState | None, need_bits: float) -> float | None:
    """The cost of relaying ``need_bits`` over a satellite KM-link whose KMs report
    ``state.key_bits`` (the smaller of its two satellite pools, through the best
    satellite): 1 + SATELLITE_KEY_SCALE_BITS / key_bits. None (unusable) when it is down,
    holds less than ``need_bits`` (passes refill it, not a steady rate) or nobody has
    reported its pools (a satellite KM-link with no known key carries none)."""
    if state is None or not state.up or state.key_bits < need_bits or state.key_bits <= 0:
        return None
    return 1.0 + SATELLITE_KEY_SCALE_BITS / state.key_bits
