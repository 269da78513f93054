"""What a relay does with key material, apart from the relay rules: make the keys, pad and
authenticate each hop, prove arrival. The Key Manager takes it as an interface, so its rules
do not depend on what key is made of:

- :class:`OneTimePad` (the live network, tests): real keys from an injected random source
  (the driver's CSPRNG, or a seeded one in tests), one-time pad and HMAC-SHA256 with a
  one-time MAC key from the hop's pad;
- :class:`KeyAmounts` (the twin): no material at all; stores that hold amounts of key
  (:mod:`qkdnet.keys.amount_store`) charge every hop the same units.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Protocol

from qkdnet.keys.messages import ForwardKey
from qkdnet.keys.pool import UNIT_BYTES


class RelayCrypto(Protocol):
    """Key material handling of a relay."""

    def new_keys(self, size_bytes: int) -> bytes:
        """Fresh key material for a relay (all its keys, one after another)."""
        ...

    def seal(self, message: ForwardKey, keys: bytes, pad: bytes) -> ForwardKey:
        """``message`` with ``keys`` padded by ``pad`` and authenticated with the MAC key at
        the pad's end."""
        ...

    def unseal(self, message: ForwardKey, pad: bytes) -> bytes | None:
        """The keys ``message`` carries, unpadded with ``pad``; None if it fails
        authentication."""
        ...

    def completion_tag(self, keys: bytes, relay_id: str) -> bytes:
        """What the destination sends back to prove it holds ``keys``."""
        ...


def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equally long strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class OneTimePad:
    """Keys from ``random_bytes`` (a CSPRNG, injected by the driver), each hop's
    ciphertext the keys XOR the pad, authenticated by HMAC-SHA256 keyed by the last unit of
    the pad, used once."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes

    def new_keys(self, size_bytes: int) -> bytes:
        return self._random(size_bytes)

    def seal(self, message: ForwardKey, keys: bytes, pad: bytes) -> ForwardKey:
        unsealed = message._replace(ciphertext=xor(keys, pad[: len(keys)]), tag=b"")
        return unsealed._replace(tag=_seal_tag(pad[-UNIT_BYTES:], unsealed))

    def unseal(self, message: ForwardKey, pad: bytes) -> bytes | None:
        if not hmac.compare_digest(message.tag, _seal_tag(pad[-UNIT_BYTES:], message)):
            return None
        return xor(message.ciphertext, pad[: len(message.ciphertext)])

    def completion_tag(self, keys: bytes, relay_id: str) -> bytes:
        return hmac.new(keys, f"complete|{relay_id}".encode(), hashlib.sha256).digest()


class KeyAmounts:
    """No material: the twin relays amounts of key, so there is nothing to pad, MAC or
    prove; the stores still charge every hop its units."""

    def new_keys(self, size_bytes: int) -> bytes:
        return b""

    def seal(self, message: ForwardKey, keys: bytes, pad: bytes) -> ForwardKey:
        return message

    def unseal(self, message: ForwardKey, pad: bytes) -> bytes | None:
        return b""

    def completion_tag(self, keys: bytes, relay_id: str) -> bytes:
        return b""


def _header(message: ForwardKey) -> bytes:
    pad = ";".join(f"{r.block}:{r.start}:{r.count}" for r in message.pad)
    fields = (",".join(message.key_ids), str(message.size_bits), message.master_sae,
              message.slave_sae, ",".join(message.route.nodes),
              ",".join(message.route.km_links), str(message.hop), pad)
    return "|".join(fields).encode()


def _seal_tag(mac_key: bytes, message: ForwardKey) -> bytes:
    return hmac.new(mac_key, _header(message) + message.ciphertext, hashlib.sha256).digest()
