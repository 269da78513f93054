"""Fresh key_IDs for the keys a KME hands out: random UUIDs (version 4), in the driver
because the layers take no randomness of their own."""

from __future__ import annotations

import uuid


def new_key_id() -> str:
    """A fresh random key_ID in the UUID text form ETSI GS QKD 014 asks for."""
    return str(uuid.uuid4())
