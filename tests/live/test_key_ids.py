"""key_IDs: time-ordered version-7 UUIDs in their canonical text form, every random bit
used."""

from __future__ import annotations

import time
import uuid

from qkdnet.live.key_ids import new_key_id


def test_key_ids_are_canonical_time_ordered_uuid7s() -> None:
    """2,000 key_IDs: each a canonical RFC 9562 version-7 UUID whose first 48 bits are the
    millisecond it was made, in the order made, all distinct, and each of the 74 random
    bits seen both 0 and 1 (the fixed version and variant bits never)."""
    before = time.time_ns() // 1_000_000
    ids = [new_key_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(k) for k in ids]
    assert all(str(u) == k and u.version == 7 and u.variant == uuid.RFC_4122
               for u, k in zip(parsed, ids, strict=True))
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    ones = zeros = 0
    for u in parsed:
        ones |= u.int
        zeros |= ~u.int & (2**128 - 1)
    random_bits = (2**80 - 1) & ~((0xF << 76) | (0x3 << 62))  # less version and variant
    assert ones & random_bits == zeros & random_bits == random_bits
