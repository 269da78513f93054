"""The in-memory key store: :class:`MemoryKeyStore` behaves exactly like
:class:`~qkdnet.keys.store.SQLiteKeyStore` (same rules, same errors) but keeps everything in
Python structures and forgets it on exit. For the digital twin and the property tests.

A block is kept as its material and one flag per unit; a used unit's bytes are zeroed in
place. Outbound units only ever leave from the front of a block (the sender takes them in
order), so an outbound block's unused units are always one run at its end.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from qkdnet.errors import KeyStoreError, NotEnoughKey, PadMismatch, ParameterError
from qkdnet.keys.held_keys import HeldKeys
from qkdnet.keys.pool import (
    UNIT_BYTES,
    Deposit,
    HeldKey,
    UnitRange,
    check_block,
    check_ranges,
    check_room,
    direction_capacity,
)


@dataclass(slots=True)
class _Block:
    """One deposited block with units left: material, a 1 per unused unit, their count."""

    outbound: bool
    material: bytearray
    unused: bytearray
    left: int

    def holds(self, start: int, count: int) -> bool:
        """Whether units ``start`` … ``start + count - 1`` all exist and are unused."""
        end = start + count
        return end <= len(self.unused) and self.unused.find(0, start, end) < 0

    def take(self, start: int, count: int) -> bytes:
        """The bytes of the (unused) units, zeroed here and marked used."""
        lo, hi = start * UNIT_BYTES, (start + count) * UNIT_BYTES
        taken = bytes(self.material[lo:hi])
        self.material[lo:hi] = bytes(hi - lo)
        self.unused[start:start + count] = bytes(count)
        self.left -= count
        return taken


@dataclass(slots=True)
class _Link:
    """A KM-link's pool: blocks with units left, blocks ever deposited, unused units."""

    blocks: dict[int, _Block] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    outbound_order: list[int] = field(default_factory=list)  # sorted, with units left
    units: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    def add(self, number: int, block: _Block) -> None:
        self.seen.add(number)
        self.blocks[number] = block
        self.units[block.outbound] += block.left
        if block.outbound:
            insort(self.outbound_order, number)

    def take(self, number: int, start: int, count: int) -> bytes:
        block = self.blocks[number]
        taken = block.take(start, count)
        self.units[block.outbound] -= count
        if block.left == 0:
            del self.blocks[number]
            if block.outbound:
                del self.outbound_order[bisect_left(self.outbound_order, number)]
        return taken


class MemoryKeyStore:
    """The key store of ``node`` in memory; each KM-link's pool holds at most
    ``capacity_bytes_per_link`` bytes, each direction at most half of it."""

    def __init__(self, node: str, capacity_bytes_per_link: int = 64 * 2**20) -> None:
        if capacity_bytes_per_link < UNIT_BYTES:
            raise ParameterError("capacity_bytes_per_link", capacity_bytes_per_link,
                                 f"at least {UNIT_BYTES} bytes")
        self.node = node
        self.capacity = capacity_bytes_per_link
        self._links: dict[str, _Link] = {}
        self._held = HeldKeys()
        self._closed = False

    # --- pools ---------------------------------------------------------------------------

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Store block ``block`` of ``km_link`` (a positive multiple of UNIT_BYTES). A block
        deposited before is a no-op, even once its units are used; PoolFull when the link's
        pool would exceed its capacity."""
        self.deposit_many([Deposit(km_link, block, material, outbound)])

    def deposit_many(self, deposits: Iterable[Deposit]) -> int:
        """Store every block of ``deposits`` as :meth:`deposit` would, in order, all or none
        (a malformed block or PoolFull for one stores none of them); how many were new."""
        todo = [(d, check_block(d.km_link, d.block, d.material)) for d in deposits]
        self._check_open()
        stored: dict[tuple[str, bool], int] = {}
        seen: set[tuple[str, int]] = set()
        new: list[tuple[Deposit, int]] = []
        for d, units in todo:
            link = self._links.get(d.km_link)
            if (d.km_link, d.block) in seen or (link is not None and d.block in link.seen):
                continue
            pool = (d.km_link, d.outbound)
            if pool not in stored:
                stored[pool] = self.pool_bytes(d.km_link, d.outbound)
            check_room(d.km_link, d.block, len(d.material), stored[pool], self.capacity)
            stored[pool] += len(d.material)
            seen.add((d.km_link, d.block))
            new.append((d, units))
        for d, units in new:
            block = _Block(d.outbound, bytearray(d.material), bytearray(b"\x01" * units),
                           units)
            self._links.setdefault(d.km_link, _Link()).add(d.block, block)
        return len(new)

    def batch(self) -> AbstractContextManager[None]:
        """Nothing to share in memory: every call is already immediate."""
        return nullcontext()

    def room(self, km_link: str, outbound: bool) -> int:
        """How many more bytes the link's outbound (or inbound) pool accepts before
        PoolFull."""
        return max(0, direction_capacity(self.capacity) - self.pool_bytes(km_link, outbound))

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        """Unused bytes of the link's outbound (or inbound) pool."""
        link = self._link(km_link)
        return 0 if link is None else link.units[outbound] * UNIT_BYTES

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take and delete the first ``units`` outbound units in (block, unit) order:
        their ranges (consecutive units of a block as one range) and their bytes.
        NotEnoughKey, taking nothing, if the pool holds fewer."""
        if units < 0:
            raise KeyStoreError(f"units={units} is not allowed: at least 0")
        link = self._link(km_link)
        have = 0 if link is None else link.units[True]
        if have < units:
            raise NotEnoughKey(f"KM-link {km_link!r} holds {have} outbound units; "
                               f"{units} asked for")
        ranges: list[UnitRange] = []
        parts: list[bytes] = []
        while units and link is not None:
            number = link.outbound_order[0]
            block = link.blocks[number]
            r = UnitRange(number, block.unused.find(1), min(units, block.left))
            ranges.append(r)
            parts.append(link.take(number, r.start, r.count))
            units -= r.count
        return tuple(ranges), b"".join(parts)

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take and delete exactly the named inbound units, in range order. PadMismatch,
        taking nothing, if any is malformed, named twice, outbound, used or never held."""
        check_ranges(km_link, ranges)
        link = self._link(km_link)
        for r in ranges:
            block = None if link is None else link.blocks.get(r.block)
            if block is None or block.outbound or not block.holds(r.start, r.count):
                raise PadMismatch(f"KM-link {km_link!r}: units {r.start}.."
                                  f"{r.start + r.count - 1} of block {r.block} are not all "
                                  "held inbound")
        if link is None:
            return b""
        return b"".join(link.take(r.block, r.start, r.count) for r in ranges)

    def links(self) -> list[str]:
        """The KM-links that ever had a block deposited, sorted."""
        self._check_open()
        return sorted(self._links)

    # --- held keys -----------------------------------------------------------------------

    def hold_keys(self, keys: Sequence[HeldKey], now: float) -> None:
        """Keep ``keys`` for their slave SAE as held at ``now`` (s), all or none;
        KeyStoreError if a key_ID is already held (or given twice)."""
        self._check_open()
        self._held.hold(keys, now)

    def release_keys(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        """Hand the keys to ``caller`` in the order asked and delete them, all or none:
        KeyNotFound if any is not held for ``master_sae``, NotAuthorized if ``caller`` is
        not the slave SAE of one, KeyStoreError if a key_ID is asked for twice."""
        self._check_open()
        return self._held.release(key_ids, master_sae, caller)

    def held_count(self, master_sae: str, slave_sae: str) -> int:
        """How many keys are held for the pair."""
        self._check_open()
        return self._held.count(master_sae, slave_sae)

    def held_for(self, key_id: str) -> tuple[str, str] | None:
        """The (master, slave) SAE pair a key_ID is held for, None if it is not held."""
        self._check_open()
        return self._held.pair_of(key_id)

    def expire_held(self, now: float, ttl_s: float) -> int:
        """Forget every held key held more than ``ttl_s`` s before ``now`` (or stamped after
        it); how many."""
        self._check_open()
        return self._held.expire(now, ttl_s)

    # --- life ----------------------------------------------------------------------------

    def close(self) -> None:
        """Zero and forget all key material; further calls raise KeyStoreError."""
        for link in self._links.values():
            for block in link.blocks.values():
                block.material[:] = bytes(len(block.material))
        self._links.clear()
        self._held.clear()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryKeyStore(node={self.node!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError(f"key store of node {self.node!r} is closed")

    def _link(self, km_link: str) -> _Link | None:
        self._check_open()
        return self._links.get(km_link)

