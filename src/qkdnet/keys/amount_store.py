"""Key pools as amounts of key (bits), for the twin: the :class:`~qkdnet.keys.pool.KeyStore`
verbs over numbers instead of key material, so the twin's Key Managers run the same relay
rules as the live ones.

:class:`AmountPools` holds every KM-link of a network in numpy arrays, so that the twin
deposits a step's key on all links at once; :meth:`AmountPools.store` gives each node its
:class:`AmountStore`, the KeyStore view the node's Key Manager uses. As in the live stores
(:mod:`qkdnet.keys.supply`), a KM-link's key serves two directions: what end ``a`` sends
(direction 0) and what ``b`` sends (direction 1), the key going to the direction whose
sender holds less, and both ends hold a copy of each. The accounting proves nothing is lost:
on every KM-link, key made = key used + key pooled + key discarded (no room at either end).

Speed: a relay takes key hop by hop, and the twin deposits every link's key each step. So
the pools are kept in :class:`array.array` buffers, read and written element by element by
the stores (a numpy element costs several times as much) and as numpy views of the same
memory by the deposits, with no copy either way.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import numpy.typing as npt

from qkdnet.errors import KeyStoreError, NotEnoughKey, PadMismatch, ParameterError
from qkdnet.keys.held_keys import HeldKeys
from qkdnet.keys.pool import (
    UNIT_BITS,
    Deposit,
    HeldKey,
    UnitRange,
    check_block,
    check_ranges,
    check_room,
    direction_capacity,
)
from qkdnet.keys.satellite_pools import SatellitePools
from qkdnet.topology.model import KMLink

FloatArray = npt.NDArray[np.float64]

# AmountStore.batch's context: reusable, and one less object made per hop
_NO_BATCH: AbstractContextManager[None] = nullcontext()


class AmountPools:
    """Pools of ``km_links``, each end holding at most ``capacity_bits`` of the link's key
    (both directions together, each at most half); empty at start. Satellite KM-links
    draw on ``satellites``' pools instead (:mod:`qkdnet.keys.satellite_pools`): the
    stores relay over them with the same verbs."""

    def __init__(self, km_links: Sequence[KMLink], capacity_bits: float,
                 satellites: SatellitePools | None = None) -> None:
        if not capacity_bits > 0:
            raise ParameterError("capacity_bits", capacity_bits, "> 0 bits")
        self.satellites = satellites
        self.capacity_bits = float(capacity_bits)
        self.ids = tuple(k.id for k in km_links)
        self.index = {k.id: i for i, k in enumerate(km_links)}
        self.ends = {k.id: (k.a, k.b) for k in km_links}
        n = len(km_links)
        # Unused key per KM-link and direction (at 2 * row + direction), at the sending end
        # and at the receiving end; key used per KM-link; units handed out, to name them.
        # The buffers never change size, so the numpy views stay valid.
        self._send = array("d", bytes(16 * n))
        self._recv = array("d", bytes(16 * n))
        self._used = array("d", bytes(8 * n))
        self._named = array("q", bytes(16 * n))
        self._send_view = np.frombuffer(self._send, dtype=np.float64).reshape(-1, 2)
        self._recv_view = np.frombuffer(self._recv, dtype=np.float64).reshape(-1, 2)
        self.made = np.zeros(n)
        self._added = np.zeros((n, 2))  # deposit's scratch: a step's key per direction
        self.discarded = np.zeros(n)
        self._stores: dict[str, AmountStore] = {}
        # the satellite KM-links, fixed at start: a set test per hop, not a method call
        self._satellite_links = frozenset(satellites.ends) if satellites is not None \
            else frozenset()
        self._directions: dict[tuple[str, str, bool], tuple[int, int]] = {}

    def deposit(self, bits: FloatArray) -> None:
        """Add what each KM-link's QKD-link made (bits, in ``ids`` order) at both ends, to
        the direction whose sender holds less first and shared once they hold the same (the
        rule of :func:`~qkdnet.keys.supply.direction_of`, applied to a step's key); what
        does not fit in a direction (half the capacity, as in every store) at its fuller
        end is discarded."""
        # each block to the direction whose sender holds less (keys/supply.direction_of):
        # over a step, the emptier direction is filled up to the other, the rest shared
        # (every step: ufuncs writing into one buffer, without column_stack's and clip's
        # Python wrappers; the same operations, so the same numbers)
        send = self._send_view
        gap = send[:, 1] - send[:, 0]  # > 0: direction 0 holds less
        first = np.minimum(bits, np.abs(gap))
        share = (bits - first) / 2
        added = self._added
        np.add(share, np.where(gap > 0, first, 0.0), out=added[:, 0])
        np.add(share, np.where(gap < 0, first, 0.0), out=added[:, 1])
        room = self.capacity_bits / 2 - np.maximum(send, self._recv_view)
        # clip(added, 0, room >= 0), as min(max(.)): no NaN here
        kept = np.minimum(np.maximum(added, 0.0), np.maximum(room, 0.0))
        self.made += bits
        self.discarded += bits - np.add(kept[:, 0], kept[:, 1])
        send += kept
        self._recv_view += kept

    @property
    def sender(self) -> FloatArray:
        """Unused key (bits) per KM-link (rows) and direction (columns: what end ``a``
        sends, what ``b`` sends), at the sending end."""
        return self._send_view.copy()

    @property
    def receiver(self) -> FloatArray:
        """The same at the receiving end (key in flight is taken there when it arrives)."""
        return self._recv_view.copy()

    @property
    def used(self) -> FloatArray:
        """Key used per KM-link (bits): the pads and MAC keys relays took."""
        return np.frombuffer(self._used, dtype=np.float64).copy()

    @property
    def pooled(self) -> FloatArray:
        """Unused key per KM-link (bits, both directions, at the sending ends)."""
        pooled: FloatArray = self._send_view.sum(axis=1)
        return pooled

    @property
    def relayable(self) -> FloatArray:
        """Key per KM-link in its tighter direction (bits, whole bytes): what its KMs
        report (:func:`~qkdnet.keys.link_state.km_link_state`)."""
        relayable: FloatArray = np.floor(self._send_view.min(axis=1) / 8) * 8
        return relayable

    def imbalance(self) -> FloatArray:
        """made - used - pooled - discarded per KM-link (bits): zero up to rounding."""
        imbalance: FloatArray = self.made - self.used - self.pooled - self.discarded
        return imbalance

    def store(self, node: str) -> AmountStore:
        """The KeyStore of ``node``: its ends of the KM-links."""
        if node not in self._stores:
            self._stores[node] = AmountStore(node, self)
        return self._stores[node]

    def _direction(self, node: str, km_link: str, outbound: bool) -> int:
        """Where the key ``node`` sends (``outbound``) or receives on ``km_link`` is kept
        (2 * row + direction); NotEnoughKey if ``node`` holds no end of it."""
        key = (node, km_link, outbound)
        found = self._directions.get(key)
        if found is None:
            i = self.index.get(km_link)
            ends = self.ends.get(km_link)
            if i is None or ends is None or node not in ends:
                raise NotEnoughKey(f"KM-link {km_link!r} has no pool at {node}")
            found = self._directions[key] = (i, 2 * i + int((node == ends[0]) != outbound))
        return found[1]


class AmountStore:
    """One node's view of :class:`AmountPools` with the KeyStore verbs and rules: key is
    taken in units of :data:`~qkdnet.keys.pool.UNIT_BITS` and no material changes hands;
    keys held for slave SAEs keep their key_IDs (with empty material)."""

    def __init__(self, node: str, pools: AmountPools) -> None:
        self.node = node
        self._pools = pools
        self._held = HeldKeys()
        self._seen: set[tuple[str, int]] = set()
        # where this end sends / receives on each KM-link (2 * row + direction), found
        # once: every hop of every relay looks one up
        self._outbound: dict[str, int] = {}
        self._inbound: dict[str, int] = {}

    def _at(self, km_link: str, outbound: bool) -> int:
        """This end's place (2 * row + direction) on ``km_link``; NotEnoughKey if none."""
        found = (self._outbound if outbound else self._inbound).get(km_link)
        if found is None:
            found = self._pools._direction(self.node, km_link, outbound)
            (self._outbound if outbound else self._inbound)[km_link] = found
        return found

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Add block ``block``'s ``len(material)`` bytes of key to this end's copy of one
        direction; a block deposited before is a no-op; PoolFull if it does not fit."""
        check_block(km_link, block, material)
        at = self._pools._direction(self.node, km_link, outbound)
        if (km_link, block) in self._seen:
            return
        check_room(km_link, block, len(material), self.pool_bytes(km_link, outbound),
                   int(self._pools.capacity_bits // 8))
        self._seen.add((km_link, block))
        copy = self._pools._send if outbound else self._pools._recv
        copy[at] += len(material) * 8.0
        if outbound:  # a block is outbound at exactly one end: count it there
            self._pools.made[at // 2] += len(material) * 8.0

    def deposit_many(self, deposits: Iterable[Deposit]) -> int:
        """:meth:`deposit` each block in order, all or none (PoolFull or a malformed block
        for one adds none); how many were new."""
        todo = list(deposits)
        limit = int(self._pools.capacity_bits // 8)
        stored: dict[tuple[str, bool], int] = {}
        seen: set[tuple[str, int]] = set()
        for d in todo:
            check_block(d.km_link, d.block, d.material)
            self._pools._direction(self.node, d.km_link, d.outbound)
            if (d.km_link, d.block) in self._seen or (d.km_link, d.block) in seen:
                continue
            pool = (d.km_link, d.outbound)
            if pool not in stored:
                stored[pool] = self.pool_bytes(d.km_link, d.outbound)
            check_room(d.km_link, d.block, len(d.material), stored[pool], limit)
            stored[pool] += len(d.material)
            seen.add((d.km_link, d.block))
        for d in todo:
            self.deposit(d.km_link, d.block, d.material, d.outbound)
        return len(seen)

    def batch(self) -> AbstractContextManager[None]:
        """Nothing to share: amounts change at once."""
        return _NO_BATCH

    def room(self, km_link: str, outbound: bool) -> int:
        limit = direction_capacity(int(self._pools.capacity_bits // 8))
        return max(limit - self.pool_bytes(km_link, outbound), 0)

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        pools = self._pools
        if km_link in pools._satellite_links:
            sats = pools.satellites
            assert sats is not None  # only satellites' KM-links are in the set
            if self.node not in sats.ends[km_link]:
                raise NotEnoughKey(f"KM-link {km_link!r} has no pool at {self.node}")
            return int(sats.relayable(km_link) // 8)  # one pool for both ways (see there)
        at = (self._outbound if outbound else self._inbound).get(km_link)
        if at is None:
            at = self._at(km_link, outbound)
        copy = self._pools._send if outbound else self._pools._recv
        return int(copy[at] // 8)

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take ``units`` of the key this node sends on ``km_link``; NotEnoughKey if short.
        The ranges name the units in the order they were taken."""
        if units < 0:
            raise KeyStoreError(f"units={units} is not allowed: at least 0")
        pools = self._pools
        if km_link in pools._satellite_links:
            assert pools.satellites is not None  # only satellites' KM-links are in the set
            return (pools.satellites.send(km_link, self.node, units) if units else ()), b""
        at = self._outbound.get(km_link)
        if at is None:
            at = self._at(km_link, True)
        if units == 0:
            return (), b""
        bits = units * UNIT_BITS
        have = pools._send[at]
        if have < bits:
            raise NotEnoughKey(f"KM-link {km_link!r} holds {int(have)} bits "
                               f"to send from {self.node}; {bits} asked")
        pools._send[at] = have - bits
        pools._used[at // 2] += bits
        start = pools._named[at]
        pools._named[at] = start + units
        return (UnitRange(at % 2, start, units),), b""

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take the units the sender named; PadMismatch if this end holds fewer."""
        check_ranges(km_link, ranges)
        pools = self._pools
        if km_link in pools._satellite_links:
            assert pools.satellites is not None  # only satellites' KM-links are in the set
            pools.satellites.receive(km_link, self.node, ranges)
            return b""
        at = self._inbound.get(km_link)
        if at is None:
            at = self._at(km_link, False)
        units = ranges[0].count if len(ranges) == 1 else sum(r.count for r in ranges)
        bits = units * UNIT_BITS
        have = pools._recv[at]
        if have < bits:
            raise PadMismatch(f"KM-link {km_link!r}: {bits} bits named, "
                              f"{int(have)} held at {self.node}")
        pools._recv[at] = have - bits
        return b""

    def hold_keys(self, keys: Sequence[HeldKey], now: float) -> None:
        self._held.hold(keys, now)

    def release_keys(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        return self._held.release(key_ids, master_sae, caller)

    def held_count(self, master_sae: str, slave_sae: str) -> int:
        return self._held.count(master_sae, slave_sae)

    def held_for(self, key_id: str) -> tuple[str, str] | None:
        return self._held.pair_of(key_id)

    def expire_held(self, now: float, ttl_s: float) -> int:
        return self._held.expire(now, ttl_s)
