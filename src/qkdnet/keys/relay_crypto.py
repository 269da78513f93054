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


#: HMAC's inner and outer pads (RFC 2104) as byte translations: ``key.translate(_INNER)``
#: is every byte of the key XOR 0x36.
_INNER = bytes(b ^ 0x36 for b in range(256))
_OUTER = bytes(b ^ 0x5C for b in range(256))
_SHA256_BLOCK = 64  # bytes


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (RFC 2104), the same tag as
    ``hmac.digest(key, message, "sha256")``: a hop's MAC key is one 32-byte unit, shorter
    than SHA-256's 64-byte block, so it is zero-padded to the block and the pads applied by
    translation. Why not ``hmac.digest``: OpenSSL 3 looks the HMAC and digest algorithms up
    on every one-shot call, which made it ~10 % of a 64-hop relay's CPU; two
    ``hashlib.sha256`` calls cost less (see benchmarks/kme_load.py, ``inprocess``).
    Longer keys take ``hmac.digest``."""
    if len(key) > _SHA256_BLOCK:
        return hmac.digest(key, message, "sha256")
    tail = _SHA256_BLOCK - len(key)  # the zero padding, XOR the pad bytes
    inner = hashlib.sha256(key.translate(_INNER) + b"\x36" * tail + message).digest()
    return hashlib.sha256(key.translate(_OUTER) + b"\x5c" * tail + inner).digest()


class OneTimePad:
    """Keys from ``random_bytes`` (a CSPRNG, injected by the driver), each hop's
    ciphertext the keys XOR the pad, authenticated by HMAC-SHA256 keyed by the last unit of
    the pad, used once."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        # the header fields every hop of a relay shares, encoded once per relay: the last
        # relay's (key_ids, route) objects and their encoding (a 64-hop route is joined
        # once, not at every seal and unseal)
        self._shared: tuple[ForwardKey, bytes] | None = None

    def new_keys(self, size_bytes: int) -> bytes:
        return self._random(size_bytes)

    def seal(self, message: ForwardKey, keys: bytes, pad: bytes) -> ForwardKey:
        ciphertext = xor(keys, pad[: len(keys)])
        tag = hmac_sha256(pad[-UNIT_BYTES:], self._header(message) + ciphertext)
        return ForwardKey(*message[:7], ciphertext, tag)

    def unseal(self, message: ForwardKey, pad: bytes) -> bytes | None:
        tag = hmac_sha256(pad[-UNIT_BYTES:], self._header(message) + message.ciphertext)
        if not hmac.compare_digest(message.tag, tag):
            return None
        return xor(message.ciphertext, pad[: len(message.ciphertext)])

    def _header(self, message: ForwardKey) -> bytes:
        """Every field of ``message`` but its ciphertext and tag, as its MAC covers them; the
        relay's shared fields encoded and digested once."""
        last = self._shared
        if last is None or not _same_relay(last[0], message):
            last = self._shared = (message, _shared_header(message))
        return last[1] + _hop_header(message)

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


def _shared_header(message: ForwardKey) -> bytes:
    """What a hop's MAC covers besides the ciphertext is every field of the message
    (``_shared_header + _hop_header``): here the fields every hop of a relay has alike, as
    the SHA-256 digest (32 bytes) of their encoding, made once per relay. Why a digest: a
    64-hop route encodes to ~1.8 kB, which every seal and unseal would otherwise hash
    again (two thirds of their time); the digest binds the fields as SHA-256 resists
    collisions, and its fixed length keeps the header unambiguous."""
    fields = (",".join(message.key_ids), str(message.size_bits), message.master_sae,
              message.slave_sae, ",".join(message.route.nodes),
              ",".join(message.route.km_links))
    return hashlib.sha256("|".join(fields).encode()).digest()


def _hop_header(message: ForwardKey) -> bytes:
    """The header's fields of one hop: its number and its pad's ranges."""
    if len(message.pad) == 1:  # most hops: one range, without a join
        r = message.pad[0]
        return f"{message.hop}|{r.block}:{r.start}:{r.count}".encode()
    pad = ";".join(f"{r.block}:{r.start}:{r.count}" for r in message.pad)
    return f"{message.hop}|{pad}".encode()


def _same_relay(known: ForwardKey, message: ForwardKey) -> bool:
    """Whether ``message`` has the shared header fields of ``known``: the same key_ids and
    route objects (immutable tuples, so the same objects encode alike; a copy that is
    equal but not the same object is simply encoded again), SAEs and size."""
    return (message.key_ids is known.key_ids and message.route is known.route
            and message.size_bits == known.size_bits
            and message.master_sae == known.master_sae
            and message.slave_sae == known.slave_sae)
