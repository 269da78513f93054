"""What a Key Manager reports of each of its KM-links: the key in its pool, the rate it
refills at, and whether it is up. The control layer routes with it, the management layer
watches it; both drivers report it the same way."""

from __future__ import annotations

from dataclasses import dataclass

from qkdnet.keys.pool import KeyStore


@dataclass(frozen=True, slots=True)
class KMLinkState:
    """A KM-link's state: ``key_bits`` pooled (bits) in its tighter direction,
    ``rate_bps`` refill (bit/s), ``up``."""

    km_link: str
    key_bits: float
    rate_bps: float = 0.0
    up: bool = True


def km_link_state(km_link: str, a: KeyStore, b: KeyStore, rate_bps: float,
                  up: bool) -> KMLinkState:
    """What the KMs at ends ``a`` and ``b`` report of ``km_link``: the key its tighter
    direction can still relay (each end's outbound pool), the refill rate, up. (The twin
    applies the same rule to all KM-links at once: ``AmountPools.relayable``.)"""
    key_bits = 8.0 * min(a.pool_bytes(km_link, True), b.pool_bytes(km_link, True))
    return KMLinkState(km_link, key_bits, rate_bps, up)
