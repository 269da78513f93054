"""The Key Manager: one node's part in end-to-end key relay with one-time pad.

The source KM makes the keys K of a request and pads them with fresh units of the first
KM-link and sends them on; each trusted node removes the pad of the link they came over
and re-pads them for the next link; the destination KM holds the keys under their key_IDs
and tells the source, which only then hands them to the master SAE. The keys of one
request travel together (one relay, one MAC key per hop). Every pad is taken from the store
once and deleted; every hop is authenticated with a one-time MAC key from that hop's pad.
If any hop fails (no key on a KM-link, a pad the receiver does not hold, a bad MAC, a
timeout) the source is told and delivers nothing, and the destination drops the keys if
they arrive late.

What is done to key material (make, pad, authenticate) is the injected
:class:`~qkdnet.keys.relay_crypto.RelayCrypto`: real one-time pad in the live network,
amounts of key in the twin. The rules here are the same for both.

Sans-I/O: :meth:`KeyManager.handle` takes an event and the time and returns actions; the
driver owns transport and clocks.
"""

from __future__ import annotations

import contextlib
import hmac
from dataclasses import dataclass

from qkdnet.errors import KeyNotFound, KeyStoreError
from qkdnet.keys.messages import (
    Action,
    Event,
    ForwardKey,
    KeyDelivered,
    KeyFailed,
    KeyRequest,
    Received,
    RelayAbort,
    RelayComplete,
    RelayFailed,
    Send,
    StartTimer,
)
from qkdnet.keys.pool import HeldKey, KeyStore
from qkdnet.keys.relay_cost import pad_units
from qkdnet.keys.relay_crypto import RelayCrypto
from qkdnet.keys.route import Route

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class _Pending:
    material: bytes
    key_ids: tuple[str, ...]
    master_sae: str
    slave_sae: str
    destination: str


class KeyManager:
    """The KM of ``node``, keeping key in ``store``, handling material with ``crypto``."""

    def __init__(self, node: str, store: KeyStore, crypto: RelayCrypto,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.node = node
        self.store = store
        self._crypto = crypto
        self._timeout = timeout_s
        self._pending: dict[str, _Pending] = {}
        # relays the source gave up on: a late arrival must not be held
        self._dropped: set[str] = set()

    @property
    def pending(self) -> int:
        """Relays this KM started that have not completed or failed."""
        return len(self._pending)

    def handle(self, event: Event, now: float) -> list[Action]:
        """Update state for ``event`` at time ``now`` (s) and return what the driver does."""
        if isinstance(event, Received):  # most events: a hop of a relay
            message = event.message
            if isinstance(message, ForwardKey):
                return self._forwarded(message, now)
            if isinstance(message, RelayComplete):
                return self._completed(message)
            if isinstance(message, RelayFailed):
                return self._failed(message)
            return self._aborted(message)
        if isinstance(event, KeyRequest):
            return self._start(event, now)
        return self._expire(event.tag)

    # --- at the source --------------------------------------------------------------------

    def _start(self, request: KeyRequest, now: float) -> list[Action]:
        relay = request.relay_id
        if request.size_bits <= 0 or request.size_bits % 8:
            return [KeyFailed(relay, "size must be a positive multiple of 8 bits")]
        if len(set(request.key_ids)) != len(request.key_ids):
            return [KeyFailed(relay, "a key_ID is asked for twice")]
        keys = self._crypto.new_keys(request.size_bits // 8 * len(request.key_ids))
        route = request.route
        if route.hops == 0:
            return self._hold_here(request, keys, now)
        try:
            first = self._pad_and_seal(request.key_ids, request.size_bits, request.master_sae,
                                       request.slave_sae, route, 0, keys)
        except KeyStoreError as exc:
            return [KeyFailed(relay, f"no key on KM-link {route.km_links[0]}: {exc}")]
        self._pending[relay] = _Pending(keys, request.key_ids, request.master_sae,
                                        request.slave_sae, route.destination)
        return [Send(route.nodes[1], first), StartTimer(relay, now + self._timeout)]

    def _hold_here(self, request: KeyRequest, keys: bytes, now: float) -> list[Action]:
        try:
            self.store.hold_keys(_held(request.key_ids, request.size_bits, request.master_sae,
                                       request.slave_sae, keys), now)
        except KeyStoreError as exc:
            return [KeyFailed(request.relay_id, str(exc))]
        return [KeyDelivered(request.relay_id, keys)]

    def _completed(self, message: RelayComplete) -> list[Action]:
        pending = self._pending.get(message.relay_id)
        if pending is None or not hmac.compare_digest(
                message.tag, self._crypto.completion_tag(pending.material, message.relay_id)):
            return []  # late, duplicated or forged: the relay has already been settled
        del self._pending[message.relay_id]
        return [KeyDelivered(message.relay_id, pending.material)]

    def _failed(self, message: RelayFailed) -> list[Action]:
        if self._pending.pop(message.relay_id, None) is None:
            return []
        return [KeyFailed(message.relay_id, f"relay failed at {message.node}: {message.reason}")]

    def _expire(self, relay_id: str) -> list[Action]:
        pending = self._pending.pop(relay_id, None)
        if pending is None:
            return []
        abort = RelayAbort(pending.key_ids, pending.master_sae, pending.slave_sae)
        return [KeyFailed(relay_id, "relay timed out"), Send(pending.destination, abort)]

    # --- at a relay node or the destination -----------------------------------------------

    def _forwarded(self, message: ForwardKey, now: float) -> list[Action]:
        route, hop = message.route, message.hop
        if not 0 <= hop < len(route.km_links) or route.nodes[hop + 1] != self.node:
            return self._refuse(message, "message is not for this node")
        # the hop's store calls (its inbound pad, then its outbound pad or the held keys)
        # share one transaction; each is still whole, so a refusal keeps what came before
        try:
            with self.store.batch():
                return self._hop(message, now)
        except KeyStoreError as exc:  # the commit itself failed: nothing was taken
            return self._refuse(message, f"key store: {exc}")

    def _hop(self, message: ForwardKey, now: float) -> list[Action]:
        route, hop = message.route, message.hop
        nodes, km_links = route.nodes, route.km_links
        try:
            pad = self.store.take_inbound(km_links[hop], message.pad)
        except KeyStoreError as exc:
            return self._refuse(message, f"pad not held on {km_links[hop]}: {exc}")
        keys = self._crypto.unseal(message, pad)
        if keys is None:
            return self._refuse(message, "authentication failed")
        if hop + 1 == len(km_links):
            return self._arrive(message, keys, now)
        try:
            onward = self._pad_and_seal(message.key_ids, message.size_bits, message.master_sae,
                                        message.slave_sae, route, hop + 1, keys)
        except KeyStoreError as exc:
            return self._refuse(message, f"no key on KM-link {km_links[hop + 1]}: {exc}")
        return [Send(nodes[hop + 2], onward)]

    def _arrive(self, message: ForwardKey, keys: bytes, now: float) -> list[Action]:
        if message.relay_id in self._dropped:
            return self._refuse(message, "the source gave up on these keys")
        try:
            self.store.hold_keys(_held(message.key_ids, message.size_bits, message.master_sae,
                                       message.slave_sae, keys), now)
        except KeyStoreError as exc:
            return self._refuse(message, str(exc))
        tag = self._crypto.completion_tag(keys, message.relay_id)
        return [Send(message.route.source, RelayComplete(message.relay_id, tag))]

    def _aborted(self, message: RelayAbort) -> list[Action]:
        self._dropped.add(message.key_ids[0])
        # KeyNotFound: they never arrived, or the slave already took them (the master never
        # will)
        with contextlib.suppress(KeyNotFound):
            self.store.release_keys(list(message.key_ids), message.master_sae,
                                    message.slave_sae)
        return []

    def _refuse(self, message: ForwardKey, reason: str) -> list[Action]:
        return [Send(message.route.source, RelayFailed(message.relay_id, self.node, reason))]

    # --- one hop -------------------------------------------------------------------------

    def _pad_and_seal(self, key_ids: tuple[str, ...], size_bits: int, master: str,
                      slave: str, route: Route, hop: int, keys: bytes) -> ForwardKey:
        """Hop ``hop`` of the relay: ``keys`` padded with fresh units of that hop's KM-link,
        a pad for every key plus one MAC key."""
        ranges, pad = self.store.take_outbound(route.km_links[hop],
                                               pad_units(size_bits, len(key_ids)))
        unsealed = ForwardKey(key_ids, size_bits, master, slave, route, hop, ranges, b"", b"")
        return self._crypto.seal(unsealed, keys, pad)


def _held(key_ids: tuple[str, ...], size_bits: int, master: str, slave: str,
          keys: bytes) -> list[HeldKey]:
    """The relay's keys as held keys: key ``i`` is the ``i``-th slice of ``keys`` (all
    empty when the relay carries amounts, not material)."""
    size = size_bits // 8 if keys else 0
    return [HeldKey(key_id, master, slave, keys[i * size:(i + 1) * size])
            for i, key_id in enumerate(key_ids)]
