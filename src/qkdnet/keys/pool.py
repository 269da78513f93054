"""What a node's key store offers the Key Manager: the :class:`KeyStore` protocol and the
records it exchanges. Two implementations: :mod:`qkdnet.keys.store` (SQLite, durable) and
:mod:`qkdnet.keys.memory_store` (in memory, for the twin and property tests).

Key material on a KM-link arrives in blocks (both ends get identical blocks with the same
sequence number) and is kept in units of :data:`UNIT_BYTES`. Each block is owned by one
direction: at one end it is *outbound* (this node pads what it sends with it), at the other
*inbound*. So the two ends never spend the same bits for different messages. A sender takes
outbound units from the front of its pool and names them (:class:`UnitRange`); the receiver
takes exactly those units. Every unit is used once and deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple, Protocol

from qkdnet.errors import KeyNotFound, KeyStoreError, NotAuthorized, PadMismatch, PoolFull

# Key material is stored, taken and deleted in units of UNIT_BYTES (256 bits): the unit
# devices deliver whole blocks of, defined with the device interface in the lower layer and
# re-exported here for the key management code.
from qkdnet.quantum.key_source import UNIT_BYTES as UNIT_BYTES
from qkdnet.quantum.key_source import whole_units

UNIT_BITS = UNIT_BYTES * 8
#: Block, unit and count numbers stay below this (they fit SQLite's integers).
MAX_NUMBER = 2**62


@dataclass(frozen=True, slots=True)
class UnitRange:
    """``count`` consecutive units of block ``block`` of a KM-link, from unit ``start``."""

    block: int
    start: int
    count: int


class Deposit(NamedTuple):
    """Block ``block`` of ``km_link`` for :meth:`KeyStore.deposit_many`: its ``material``
    (a positive multiple of UNIT_BYTES, never shown in a repr), outbound here or not."""

    km_link: str
    block: int
    material: bytes
    outbound: bool

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return (f"Deposit(km_link={self.km_link!r}, block={self.block}, "
                f"material=<{len(self.material)} bytes>, outbound={self.outbound})")


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key held for an SAE pair under its key_ID (material never logged)."""

    key_id: str
    master_sae: str
    slave_sae: str
    material: bytes

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return (f"HeldKey(key_id={self.key_id!r}, master_sae={self.master_sae!r}, "
                f"slave_sae={self.slave_sae!r}, material=<{len(self.material)} bytes>)")


class KeyStore(Protocol):
    """One node's key store. Every method is atomic: it happens whole or not at all, and a
    refusal raises a :class:`~qkdnet.errors.KeyStoreError` having changed nothing."""

    node: str

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Store a block of QKD-key (a multiple of UNIT_BYTES). Depositing the same block
        again is a no-op; raises PoolFull when the link's capacity would be exceeded."""

    def deposit_many(self, deposits: Iterable[Deposit]) -> int:
        """:meth:`deposit` each block in order, all or none (PoolFull or a malformed block
        for one stores none); how many were new. One transaction in a durable store."""

    def batch(self) -> AbstractContextManager[None]:
        """A block whose store calls share one transaction in a durable store (each call
        still whole or absent, its refusals changing nothing): a relay hop's two takes
        commit once. Nothing to share in memory."""

    def room(self, km_link: str, outbound: bool) -> int:
        """How many more bytes the link's outbound (or inbound) pool accepts before
        PoolFull (each direction holds at most half the link's capacity)."""

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        """Unused bytes of the link's outbound (or inbound) pool."""

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take and delete the first ``units`` outbound units; NotEnoughKey if short."""

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take and delete exactly the named inbound units; PadMismatch if any is missing."""

    def hold_keys(self, keys: Sequence[HeldKey], now: float) -> None:
        """Keep keys for their slave SAE under their key_IDs (unique), all or none, as held
        at ``now`` (the driver's clock, s)."""

    def release_keys(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        """Hand the keys to ``caller`` and delete them, all or none: KeyNotFound if any
        is not held (or was held for another master), NotAuthorized if ``caller`` is not
        their slave."""

    def held_count(self, master_sae: str, slave_sae: str) -> int:
        """How many keys are held for the pair."""

    def held_for(self, key_id: str) -> tuple[str, str] | None:
        """The (master, slave) SAE pair a key_ID is held for, None if it is not held."""

    def expire_held(self, now: float, ttl_s: float) -> int:
        """Erase every held key held more than ``ttl_s`` seconds before ``now`` (and any
        stamped after ``now``: its clock has restarted since), returning how many."""


# --- rules every store applies the same way ---------------------------------------------


def check_block(km_link: str, block: int, material: bytes) -> int:
    """The number of units in a block to deposit; KeyStoreError if the block number is
    negative or ``material`` is not a positive multiple of UNIT_BYTES."""
    if not 0 <= block < MAX_NUMBER:
        raise KeyStoreError(f"block={block} on KM-link {km_link!r} is not allowed: "
                            "block numbers are >= 0 and < 2**62")
    size = len(material)
    if not whole_units(size):
        raise KeyStoreError(f"block {block} on KM-link {km_link!r} has {size} bytes: "
                            f"a block holds a positive multiple of {UNIT_BYTES} bytes")
    return size // UNIT_BYTES


def direction_capacity(capacity_bytes: int) -> int:
    """Bytes one direction of a KM-link's pool holds at most: half the pool, in whole units,
    so key one direction never uses cannot stop the other from filling."""
    return capacity_bytes // 2 // UNIT_BYTES * UNIT_BYTES


def check_room(km_link: str, block: int, size: int, stored: int, capacity_bytes: int) -> None:
    """PoolFull if a block of ``size`` bytes does not fit beside the ``stored`` bytes of its
    direction of the pool."""
    limit = direction_capacity(capacity_bytes)
    if stored + size > limit:
        raise PoolFull(f"KM-link {km_link!r} holds {stored} of {limit} bytes in this "
                       f"direction; block {block} of {size} bytes does not fit")


def check_ranges(km_link: str, ranges: Sequence[UnitRange]) -> None:
    """PadMismatch if a range is malformed (start < 0, count < 1, a number past
    :data:`MAX_NUMBER`) or two ranges overlap."""
    for r in ranges:
        if not (0 <= r.block < MAX_NUMBER and 0 <= r.start < MAX_NUMBER
                and 0 < r.count < MAX_NUMBER):
            raise PadMismatch(f"KM-link {km_link!r}: malformed pad range block={r.block} "
                              f"start={r.start} count={r.count}")
    if len(ranges) < 2:
        return  # nothing to overlap (most relays name one range)
    ordered = sorted(ranges, key=lambda r: (r.block, r.start))
    for a, b in pairwise(ordered):
        if a.block == b.block and a.start + a.count > b.start:
            raise PadMismatch(f"KM-link {km_link!r}: pad ranges name units of block "
                              f"{a.block} twice (from unit {b.start})")


def coalesce(units: Iterable[tuple[int, int]]) -> tuple[UnitRange, ...]:
    """``(block, unit)`` pairs as ranges: consecutive units of one block become one range."""
    runs: list[list[int]] = []  # [block, start, count]
    for block, unit in units:
        if runs and runs[-1][0] == block and runs[-1][1] + runs[-1][2] == unit:
            runs[-1][2] += 1
        else:
            runs.append([block, unit, 1])
    return tuple(UnitRange(*run) for run in runs)


def is_expired(held_at: float, now: float, ttl_s: float) -> bool:
    """Whether a key held at ``held_at`` is past its time to live ``ttl_s`` at ``now`` (all
    s on one clock). A stamp after ``now`` comes from a clock that has restarted since (the
    live driver's monotonic clock after a reboot): that key's age is unknown, so it goes."""
    return held_at < now - ttl_s or held_at > now


def check_release(key_ids: Sequence[str], found: Sequence[HeldKey | None], master_sae: str,
                  caller: str) -> list[HeldKey]:
    """The keys ``found`` for ``key_ids`` if ``caller`` may take all of them: KeyStoreError
    for a repeated key_ID, KeyNotFound for one not held for ``master_sae`` (whatever
    ``caller``), then NotAuthorized for one whose slave SAE is not ``caller``."""
    if len(set(key_ids)) != len(key_ids):
        raise KeyStoreError("key_IDs asked for more than once: each key is released once")
    keys: list[HeldKey] = []
    for key_id, key in zip(key_ids, found, strict=True):
        if key is None or key.master_sae != master_sae:
            raise KeyNotFound(f"no key held under key_ID {key_id!r} for master SAE "
                              f"{master_sae!r}")
        keys.append(key)
    for key in keys:
        if key.slave_sae != caller:
            raise NotAuthorized(f"SAE {caller!r} is not the slave SAE of key_ID "
                                f"{key.key_id!r}")
    return keys
