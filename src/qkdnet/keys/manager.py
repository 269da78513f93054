"""The Key Manager: one node's part in end-to-end key relay with one-time pad.

The source KM makes a random key K, pads it with fresh units of the first KM-link and sends
it on; each trusted node removes the pad of the link it came over and re-pads K for the
next link; the destination KM holds K under the key_ID and tells the source, which only then
hands K to the master SAE. Every pad is taken from the store once and deleted; every hop is
authenticated with HMAC-SHA256 keyed by one extra unit of that hop's pad. If any hop fails
(no key on a KM-link, a pad the receiver does not hold, a bad MAC, a timeout) the source is
told and delivers nothing, and the destination drops the key if it arrives late.

Sans-I/O: :meth:`KeyManager.handle` takes an event and the time and returns actions; the
driver owns transport and clocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from qkdnet.errors import KeyNotFound, KeyStoreError
from qkdnet.keys.messages import (
    Action,
    Event,
    ForwardKey,
    KeyDelivered,
    KeyFailed,
    KeyRequest,
    RelayAbort,
    RelayComplete,
    RelayFailed,
    Route,
    Send,
    StartTimer,
    TimerExpired,
)
from qkdnet.keys.pool import UNIT_BYTES, HeldKey, KeyStore

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class _Pending:
    material: bytes
    master_sae: str
    slave_sae: str
    destination: str


def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equally long strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def pad_units(size_bits: int) -> int:
    """Units one hop consumes for a key of ``size_bits``: the one-time pad plus a MAC key."""
    return -(-size_bits // (8 * UNIT_BYTES)) + 1


class KeyManager:
    """The KM of ``node``, keeping key material in ``store``."""

    def __init__(self, node: str, store: KeyStore,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.node = node
        self.store = store
        self._random = random_bytes
        self._timeout = timeout_s
        self._pending: dict[str, _Pending] = {}
        # key_IDs the source gave up on: a late arrival must not be held
        self._dropped: set[str] = set()

    @property
    def pending(self) -> int:
        """Relays this KM started that have not completed or failed."""
        return len(self._pending)

    def handle(self, event: Event, now: float) -> list[Action]:
        """Update state for ``event`` at time ``now`` (s) and return what the driver does."""
        if isinstance(event, KeyRequest):
            return self._start(event, now)
        if isinstance(event, TimerExpired):
            return self._expire(event.tag)
        message = event.message
        if isinstance(message, ForwardKey):
            return self._forwarded(message)
        if isinstance(message, RelayComplete):
            return self._completed(message)
        if isinstance(message, RelayFailed):
            return self._failed(message)
        return self._aborted(message)

    # --- at the source --------------------------------------------------------------------

    def _start(self, request: KeyRequest, now: float) -> list[Action]:
        if request.size_bits <= 0 or request.size_bits % 8:
            return [KeyFailed(request.key_id, "size must be a positive multiple of 8 bits")]
        key = self._random(request.size_bits // 8)
        route = request.route
        if route.hops == 0:
            return self._hold_here(request, key)
        try:
            first = self._pad_and_seal(request.key_id, request.size_bits, request.master_sae,
                                       request.slave_sae, route, 0, key)
        except KeyStoreError as exc:
            return [KeyFailed(request.key_id, f"no key on KM-link {route.km_links[0]}: {exc}")]
        self._pending[request.key_id] = _Pending(key, request.master_sae, request.slave_sae,
                                                 route.destination)
        return [Send(route.nodes[1], first),
                StartTimer(request.key_id, now + self._timeout)]

    def _hold_here(self, request: KeyRequest, key: bytes) -> list[Action]:
        try:
            self.store.hold_key(HeldKey(request.key_id, request.master_sae, request.slave_sae,
                                        key))
        except KeyStoreError as exc:
            return [KeyFailed(request.key_id, str(exc))]
        return [KeyDelivered(request.key_id, key)]

    def _completed(self, message: RelayComplete) -> list[Action]:
        pending = self._pending.get(message.key_id)
        if pending is None or not hmac.compare_digest(
                message.tag, _completion_tag(pending.material, message.key_id)):
            return []  # late, duplicated or forged: the relay has already been settled
        del self._pending[message.key_id]
        return [KeyDelivered(message.key_id, pending.material)]

    def _failed(self, message: RelayFailed) -> list[Action]:
        if self._pending.pop(message.key_id, None) is None:
            return []
        return [KeyFailed(message.key_id, f"relay failed at {message.node}: {message.reason}")]

    def _expire(self, key_id: str) -> list[Action]:
        pending = self._pending.pop(key_id, None)
        if pending is None:
            return []
        abort = RelayAbort(key_id, pending.master_sae, pending.slave_sae)
        return [KeyFailed(key_id, "relay timed out"), Send(pending.destination, abort)]

    # --- at a relay node or the destination -----------------------------------------------

    def _forwarded(self, message: ForwardKey) -> list[Action]:
        route, hop = message.route, message.hop
        if not 0 <= hop < route.hops or route.nodes[hop + 1] != self.node:
            return self._refuse(message, "message is not for this node")
        try:
            pad = self.store.take_inbound(route.km_links[hop], message.pad)
        except KeyStoreError as exc:
            return self._refuse(message, f"pad not held on {route.km_links[hop]}: {exc}")
        size = message.size_bits // 8
        if not hmac.compare_digest(message.tag, _seal_tag(pad[-UNIT_BYTES:], message)):
            return self._refuse(message, "authentication failed")
        key = xor(message.ciphertext, pad[:size])
        if self.node == route.destination:
            return self._arrive(message, key)
        try:
            onward = self._pad_and_seal(message.key_id, message.size_bits, message.master_sae,
                                        message.slave_sae, route, hop + 1, key)
        except KeyStoreError as exc:
            return self._refuse(message, f"no key on KM-link {route.km_links[hop + 1]}: {exc}")
        return [Send(route.nodes[hop + 2], onward)]

    def _arrive(self, message: ForwardKey, key: bytes) -> list[Action]:
        if message.key_id in self._dropped:
            return self._refuse(message, "the source gave up on this key")
        try:
            self.store.hold_key(HeldKey(message.key_id, message.master_sae, message.slave_sae,
                                        key))
        except KeyStoreError as exc:
            return self._refuse(message, str(exc))
        return [Send(message.route.source,
                     RelayComplete(message.key_id, _completion_tag(key, message.key_id)))]

    def _aborted(self, message: RelayAbort) -> list[Action]:
        self._dropped.add(message.key_id)
        # KeyNotFound: it never arrived, or the slave already took it (the master never will)
        with contextlib.suppress(KeyNotFound):
            self.store.release_keys([message.key_id], message.master_sae, message.slave_sae)
        return []

    def _refuse(self, message: ForwardKey, reason: str) -> list[Action]:
        return [Send(message.route.source, RelayFailed(message.key_id, self.node, reason))]

    # --- one hop -------------------------------------------------------------------------

    def _pad_and_seal(self, key_id: str, size_bits: int, master: str, slave: str,
                      route: Route, hop: int, key: bytes) -> ForwardKey:
        ranges, pad = self.store.take_outbound(route.km_links[hop], pad_units(size_bits))
        unsealed = ForwardKey(key_id, size_bits, master, slave, route, hop, ranges,
                              xor(key, pad[: len(key)]), b"")
        return replace(unsealed, tag=_seal_tag(pad[-UNIT_BYTES:], unsealed))


def _header(message: ForwardKey) -> bytes:
    pad = ";".join(f"{r.block}:{r.start}:{r.count}" for r in message.pad)
    fields = (message.key_id, str(message.size_bits), message.master_sae, message.slave_sae,
              ",".join(message.route.nodes), ",".join(message.route.km_links),
              str(message.hop), pad)
    return "|".join(fields).encode()


def _seal_tag(mac_key: bytes, message: ForwardKey) -> bytes:
    return hmac.new(mac_key, _header(message) + message.ciphertext, hashlib.sha256).digest()


def _completion_tag(key: bytes, key_id: str) -> bytes:
    return hmac.new(key, f"complete|{key_id}".encode(), hashlib.sha256).digest()


