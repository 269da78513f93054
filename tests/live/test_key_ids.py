"""key_IDs: random version-4 UUIDs in their canonical text form, every random bit used."""

from __future__ import annotations

import uuid

from qkdnet.live.key_ids import new_key_id


def test_key_ids_are_canonical_random_uuid4s() -> None:
    """2,000 key_IDs: each a canonical RFC 4122 version-4 UUID, all distinct, and each of
    the 122 random bits seen both 0 and 1 (the fixed version and variant bits never)."""
    ids = [new_key_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(k) for k in ids]
    assert all(str(u) == k and u.version == 4 and u.variant == uuid.RFC_4122
               for u, k in zip(parsed, ids, strict=True))
    ones = zeros = 0
    for u in parsed:
        ones |= u.int
        zeros |= ~u.int & (2**128 - 1)
    fixed = (0xF << 76) | (0x3 << 62)  # version nibble, variant's two bits
    assert ones & ~fixed == zeros & ~fixed == (2**128 - 1) & ~fixed
