"""What relaying a key costs each hop: the one-time pad plus a one-time MAC key, in whole
units of the key stores. Both drivers charge this, the live Key Managers in units of key
material, the twin in amounts of key."""

from __future__ import annotations

from collections.abc import Mapping

from qkdnet.keys.pool import UNIT_BITS, UNIT_BYTES, KeyStore
from qkdnet.keys.route import Route


def key_units(size_bits: int) -> int:
    """Whole units of pad one key of ``size_bits`` takes on a hop."""
    return -(-size_bits // UNIT_BITS)


def pad_units(size_bits: int, count: int = 1) -> int:
    """Units one hop consumes to relay ``count`` keys of ``size_bits`` together: a pad of
    whole units per key, plus one unit of MAC key for the message."""
    return count * key_units(size_bits) + 1


def hop_cost_bits(size_bits: int, count: int = 1) -> int:
    """Key (bits) one hop consumes to relay ``count`` keys of ``size_bits`` together."""
    return pad_units(size_bits, count) * UNIT_BITS


def relayable_keys(stores: Mapping[str, KeyStore], route: Route, size_bits: int,
                   limit: int) -> int:
    """How many keys of ``size_bits`` one relay along ``route`` could carry now, at most
    ``limit``: what the tightest hop's sending end holds, less the hop's MAC key. Hops
    whose sending end has no store in ``stores`` (a node of another process) are not
    known here and not counted."""
    per_key = key_units(size_bits)
    counts = [(stores[node].pool_bytes(km, outbound=True) // UNIT_BYTES - 1) // per_key
              for node, km in zip(route.nodes, route.km_links, strict=False)
              if node in stores]
    return max(min([limit, *counts]), 0)
