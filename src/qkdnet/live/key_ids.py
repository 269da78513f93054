"""Fresh key_IDs for the keys a KME hands out: random UUIDs (version 4), in the driver
because the layers take no randomness of their own."""

from __future__ import annotations

import os

#: The variant (RFC 4122, bits 10xx) and version (4) nibbles a random UUID carries.
_VARIANT_MASK, _VARIANT = 0x3F, 0x80
_VERSION_MASK, _VERSION = 0x0F, 0x40


def new_key_id() -> str:
    """A fresh random key_ID in the UUID text form ETSI GS QKD 014 asks for: 122 random
    bits from ``os.urandom``, as ``str(uuid.uuid4())`` gives them, written without building
    a ``uuid.UUID`` (whose constructor and ``str`` cost ~4 times as much, at every key)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & _VERSION_MASK | _VERSION
    raw[8] = raw[8] & _VARIANT_MASK | _VARIANT
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
