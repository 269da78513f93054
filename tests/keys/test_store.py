"""Key stores: both implementations keep pools of key units per KM-link, give the two ends
of a link identical pads, use every unit once, push back when full, refuse what they do not
hold without changing anything, release held keys exactly once, and never put key material
into an error message. The SQLite store also keeps its promises on disk: WAL, overwritten
material, data across reopening, and consistency after SIGKILL."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import qkdnet
from qkdnet.errors import (
    KeyNotFound,
    KeyStoreError,
    NotAuthorized,
    NotEnoughKey,
    PadMismatch,
    ParameterError,
    PoolFull,
)
from qkdnet.keys import store as store_module
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.pool import UNIT_BYTES, Deposit, HeldKey, UnitRange
from qkdnet.keys.store import SCHEMA_VERSION, SQLiteKeyStore

Store = SQLiteKeyStore | MemoryKeyStore
Make = Callable[..., Store]  # make(node, capacity_bytes_per_link=...)
LINK = "A-B"
MiB = 2**20


def unit(block: int, index: int, tag: str = LINK) -> bytes:
    """The distinctive material of one unit: SHA-256 of where it sits."""
    return hashlib.sha256(f"{tag}:{block}:{index}".encode()).digest()


def material(block: int, units: int, tag: str = LINK) -> bytes:
    return b"".join(unit(block, i, tag) for i in range(units))


def units_of(ranges: tuple[UnitRange, ...]) -> list[tuple[int, int]]:
    return [(r.block, r.start + i) for r in ranges for i in range(r.count)]


def chunks(pad: bytes) -> list[bytes]:
    return [pad[i:i + UNIT_BYTES] for i in range(0, len(pad), UNIT_BYTES)]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """A factory of fresh stores of one kind (SQLite on a real file in tmp_path)."""
    opened: list[Store] = []
    names = itertools.count()

    def new(node: str, capacity_bytes_per_link: int = 64 * MiB) -> Store:
        store: Store
        if request.param == "sqlite":
            path = tmp_path / f"{node}-{next(names)}.sqlite"
            store = SQLiteKeyStore(path, node, capacity_bytes_per_link)
        else:
            store = MemoryKeyStore(node, capacity_bytes_per_link)
        opened.append(store)
        return store

    yield new
    for store in opened:
        store.close()


def pair(make: Make, blocks: dict[int, int]) -> tuple[Store, Store]:
    """Both ends of LINK holding ``blocks`` (number → units): even blocks outbound at A,
    odd ones at B, as the parity rule has it."""
    a, b = make("A"), make("B")
    for number, units in blocks.items():
        a.deposit(LINK, number, material(number, units), number % 2 == 0)
        b.deposit(LINK, number, material(number, units), number % 2 == 1)
    return a, b


# --- pools ---------------------------------------------------------------------------------

def test_takes_come_in_block_and_unit_order(make: Make) -> None:
    """Outbound units leave from the front, lowest block first, whatever the deposit order;
    inbound blocks are skipped."""
    store = make("A")
    store.deposit(LINK, 4, material(4, 2), True)
    store.deposit(LINK, 1, material(1, 3), False)
    store.deposit(LINK, 2, material(2, 3), True)
    ranges, pad = store.take_outbound(LINK, 4)
    assert ranges == (UnitRange(2, 0, 3), UnitRange(4, 0, 1))
    assert pad == material(2, 3) + unit(4, 0)
    assert store.take_outbound(LINK, 1) == ((UnitRange(4, 1, 1),), unit(4, 1))


def test_a_take_within_a_block_is_one_range(make: Make) -> None:
    """Consecutive units of one block come back coalesced, and the next take goes on."""
    store = make("A")
    store.deposit(LINK, 0, material(0, 8), True)
    assert store.take_outbound(LINK, 3)[0] == (UnitRange(0, 0, 3),)
    assert store.take_outbound(LINK, 5)[0] == (UnitRange(0, 3, 5),)


def test_both_ends_of_a_link_get_identical_pads(make: Make) -> None:
    """A's outbound take and B's inbound take of the named ranges are the same bytes, in
    both directions."""
    a, b = pair(make, {0: 3, 1: 3, 2: 3, 3: 4})
    for sender, receiver in ((a, b), (b, a), (a, b)):
        ranges, pad = sender.take_outbound(LINK, 3)
        assert receiver.take_inbound(LINK, ranges) == pad
        assert len(pad) == 3 * UNIT_BYTES


def test_pool_bytes_and_room_follow_deposits_and_takes(make: Make) -> None:
    """Each direction counts its own unused bytes; its room is half the capacity less
    them."""
    a, b = pair(make, {0: 4, 1: 2})
    assert (a.pool_bytes(LINK, True), a.pool_bytes(LINK, False)) == (128, 64)
    assert (b.pool_bytes(LINK, True), b.pool_bytes(LINK, False)) == (64, 128)
    ranges, _ = a.take_outbound(LINK, 3)
    b.take_inbound(LINK, ranges)
    assert a.pool_bytes(LINK, True) == b.pool_bytes(LINK, False) == 32
    assert a.room(LINK, True) == 32 * MiB - 32 and a.room(LINK, False) == 32 * MiB - 64
    assert a.room("elsewhere", True) == 32 * MiB and a.pool_bytes("elsewhere", True) == 0


def test_no_unit_is_returned_twice(make: Make) -> None:
    """Taking everything yields each unit once; the pool is then empty."""
    store = make("A")
    for number in range(5):
        store.deposit(LINK, number, material(number, 3), True)
    seen: list[bytes] = []
    for size in (1, 4, 2, 5, 3):
        seen += chunks(store.take_outbound(LINK, size)[1])
    assert sorted(seen) == sorted(chunks(b"".join(material(n, 3) for n in range(5))))
    assert store.pool_bytes(LINK, True) == 0
    with pytest.raises(NotEnoughKey):
        store.take_outbound(LINK, 1)


def test_not_enough_key_takes_nothing(make: Make) -> None:
    """Asking for one unit more than held fails and leaves every unit in place."""
    store = make("A")
    store.deposit(LINK, 0, material(0, 3), True)
    with pytest.raises(NotEnoughKey, match="3"):
        store.take_outbound(LINK, 4)
    assert store.take_outbound(LINK, 3)[1] == material(0, 3)
    with pytest.raises(NotEnoughKey):
        make("B").take_outbound("unknown", 1)


def test_taking_zero_units_is_empty_and_negative_is_refused(make: Make) -> None:
    """Zero units is an empty pad; a negative count is a KeyStoreError."""
    store = make("A")
    assert store.take_outbound(LINK, 0) == ((), b"")
    assert store.take_inbound(LINK, ()) == b""
    with pytest.raises(KeyStoreError, match="units"):
        store.take_outbound(LINK, -1)


def test_depositing_a_block_again_is_a_no_op(make: Make) -> None:
    """A replayed block changes nothing, before use and after its units are used."""
    store = make("A")
    store.deposit(LINK, 0, material(0, 2), True)
    store.deposit(LINK, 0, material(0, 2), True)
    store.deposit(LINK, 0, material(9, 4), False)
    assert store.pool_bytes(LINK, True) == 64 and store.pool_bytes(LINK, False) == 0
    store.take_outbound(LINK, 2)
    store.deposit(LINK, 0, material(0, 2), True)
    assert store.pool_bytes(LINK, True) == 0
    with pytest.raises(NotEnoughKey):
        store.take_outbound(LINK, 1)


@pytest.mark.parametrize("size", [0, 1, 31, 33, 65])
def test_a_block_must_be_whole_units(make: Make, size: int) -> None:
    """Material that is empty or not a multiple of UNIT_BYTES is refused, naming the rule."""
    store = make("A")
    with pytest.raises(KeyStoreError, match=f"{size} bytes.*multiple of {UNIT_BYTES}"):
        store.deposit(LINK, 0, bytes(size), True)
    assert store.links() == []


@pytest.mark.parametrize("number", [-1, 2**62, 2**64])
def test_a_block_number_out_of_range_is_refused(make: Make, number: int) -> None:
    """Block numbers count up from 0 and stay below 2**62."""
    with pytest.raises(KeyStoreError, match=f"block={number}"):
        make("A").deposit(LINK, number, material(0, 1), True)


def test_huge_numbers_from_a_peer_are_refusals_not_crashes(make: Make) -> None:
    """Ranges and counts past 64-bit integers are PadMismatch and NotEnoughKey."""
    store = make("A")
    store.deposit(LINK, 0, material(0, 2), False)
    for bad in (UnitRange(0, 0, 2**64), UnitRange(0, 2**64, 1), UnitRange(2**64, 0, 1)):
        with pytest.raises(PadMismatch):
            store.take_inbound(LINK, (bad,))
    with pytest.raises(NotEnoughKey):
        store.take_outbound(LINK, 2**64)
    assert store.pool_bytes(LINK, False) == 64


def test_pool_full_is_back_pressure_and_stores_nothing(make: Make) -> None:
    """Each direction fills half the capacity; a block that does not fit is refused whole,
    room comes back as units are used, and a full direction never stops the other."""
    store = make("A", capacity_bytes_per_link=4 * UNIT_BYTES)
    store.deposit(LINK, 0, material(0, 2), True)
    store.deposit(LINK, 1, material(1, 1), False)
    assert store.room(LINK, True) == 0 and store.room(LINK, False) == UNIT_BYTES
    with pytest.raises(PoolFull, match=LINK):
        store.deposit(LINK, 2, material(2, 2), True)
    assert store.pool_bytes(LINK, True) == 64 and store.pool_bytes(LINK, False) == 32
    store.deposit(LINK, 3, material(3, 1), False)  # the other direction still fills
    assert store.room(LINK, False) == 0
    store.take_outbound(LINK, 2)
    store.deposit(LINK, 2, material(2, 2), True)  # not remembered as deposited: it fits now
    assert store.room(LINK, True) == 0
    store.deposit("C-D", 0, material(0, 2, "C-D"), True)  # capacity is per link
    assert store.room("C-D", True) == 0
    with pytest.raises(PoolFull):
        store.deposit("E-F", 0, material(0, 3, "E-F"), True)
    assert store.links() == [LINK, "C-D"]


def test_capacity_must_hold_a_unit(make: Make) -> None:
    """A capacity below one unit is a ParameterError."""
    with pytest.raises(ParameterError, match="capacity_bytes_per_link"):
        make("A", capacity_bytes_per_link=UNIT_BYTES - 1)


BAD_PADS = {
    "never deposited": (UnitRange(9, 0, 1),),
    "outbound here": (UnitRange(0, 0, 1),),
    "past the block's end": (UnitRange(1, 2, 3),),
    "used already": (UnitRange(1, 0, 1),),
    "named twice": (UnitRange(1, 1, 2), UnitRange(1, 2, 1)),
    "empty range": (UnitRange(1, 1, 0),),
    "negative start": (UnitRange(1, -1, 2),),
    "negative count": (UnitRange(1, 1, -1),),
}


@pytest.mark.parametrize("bad", list(BAD_PADS.values()), ids=list(BAD_PADS))
def test_pad_mismatch_takes_nothing(make: Make, bad: tuple[UnitRange, ...]) -> None:
    """Ranges naming a unit this store does not hold inbound fail whole: the good range
    before the bad one is still there afterwards."""
    store = make("B")
    store.deposit(LINK, 0, material(0, 2), True)
    store.deposit(LINK, 1, material(1, 4), False)
    assert store.take_inbound(LINK, (UnitRange(1, 0, 1),)) == unit(1, 0)
    good = UnitRange(1, 3, 1)
    with pytest.raises(PadMismatch, match=LINK):
        store.take_inbound(LINK, (good, *bad))
    assert store.pool_bytes(LINK, False) == 3 * UNIT_BYTES
    assert store.take_inbound(LINK, (good,)) == unit(1, 3)
    assert store.take_outbound(LINK, 2)[1] == material(0, 2)


def test_inbound_units_can_be_taken_out_of_order(make: Make) -> None:
    """The receiver takes what the sender names, in the order named."""
    store = make("B")
    store.deposit(LINK, 1, material(1, 4), False)
    store.deposit(LINK, 3, material(3, 1), False)
    pad = store.take_inbound(LINK, (UnitRange(3, 0, 1), UnitRange(1, 2, 2)))
    assert pad == unit(3, 0) + unit(1, 2) + unit(1, 3)
    assert store.take_inbound(LINK, (UnitRange(1, 0, 2),)) == material(1, 2)


def test_links_lists_every_link_ever_deposited(make: Make) -> None:
    """Links with a pool, sorted, even once emptied."""
    store = make("A")
    assert store.links() == []
    store.deposit("Z-A", 0, material(0, 1), True)
    store.deposit("A-C", 0, material(0, 1), False)
    store.take_outbound("Z-A", 1)
    assert store.links() == ["A-C", "Z-A"]


def test_a_closed_store_refuses_everything(make: Make) -> None:
    """After close, every call is a KeyStoreError; closing twice is harmless."""
    store = make("A")
    store.deposit(LINK, 0, material(0, 1), True)
    store.close()
    store.close()
    calls: list[Callable[[], object]] = [
        lambda: store.deposit(LINK, 1, material(1, 1), True),
        lambda: store.room(LINK, True), lambda: store.pool_bytes(LINK, True),
        lambda: store.take_outbound(LINK, 1), lambda: store.take_inbound(LINK, ()),
        lambda: store.hold_keys([HeldKey("k", "m", "s", b"x")], 0.0), lambda: store.links(),
        lambda: store.release_keys(["k"], "m", "s"), lambda: store.held_count("m", "s")]
    for call in calls:
        with pytest.raises(KeyStoreError, match="closed"):
            call()


# --- held keys -----------------------------------------------------------------------------

def key(key_id: str, master: str = "sae-a", slave: str = "sae-b") -> HeldKey:
    return HeldKey(key_id, master, slave, unit(0, 0, key_id))


def test_a_key_is_released_exactly_once(make: Make) -> None:
    """The slave gets the key; asking again is KeyNotFound."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    assert store.held_count("sae-a", "sae-b") == 1
    assert store.release_keys(["k1"], "sae-a", "sae-b") == [key("k1")]
    assert store.held_count("sae-a", "sae-b") == 0
    with pytest.raises(KeyNotFound, match="k1"):
        store.release_keys(["k1"], "sae-a", "sae-b")


def test_keys_come_back_in_the_order_asked(make: Make) -> None:
    """Several keys at once, in the caller's order."""
    store = make("B")
    for key_id in ("k1", "k2", "k3"):
        store.hold_keys([key(key_id)], 0.0)
    assert [k.key_id for k in store.release_keys(["k3", "k1", "k2"], "sae-a", "sae-b")] == [
        "k3", "k1", "k2"]


def test_a_third_sae_is_not_authorized_and_the_key_stays(make: Make) -> None:
    """Another SAE asking with the right master gets NotAuthorized; the slave still gets
    the key afterwards."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    with pytest.raises(NotAuthorized, match="sae-c"):
        store.release_keys(["k1"], "sae-a", "sae-c")
    assert store.release_keys(["k1"], "sae-a", "sae-b") == [key("k1")]


def test_the_wrong_master_finds_no_key(make: Make) -> None:
    """A key held for another master is KeyNotFound, even for its own slave, and stays."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    with pytest.raises(KeyNotFound):
        store.release_keys(["k1"], "sae-x", "sae-b")
    with pytest.raises(KeyNotFound):  # not found beats not authorized
        store.release_keys(["k1", "k2"], "sae-a", "sae-c")
    assert store.held_count("sae-a", "sae-b") == 1


def test_release_is_all_or_none(make: Make) -> None:
    """One missing or unauthorized key of several releases none of them."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    store.hold_keys([key("k2")], 0.0)
    store.hold_keys([key("k3", slave="sae-c")], 0.0)
    with pytest.raises(KeyNotFound, match="k9"):
        store.release_keys(["k1", "k9", "k2"], "sae-a", "sae-b")
    with pytest.raises(NotAuthorized):
        store.release_keys(["k1", "k3"], "sae-a", "sae-b")
    with pytest.raises(KeyStoreError, match="more than once"):
        store.release_keys(["k1", "k1"], "sae-a", "sae-b")
    assert store.held_count("sae-a", "sae-b") == 2
    assert len(store.release_keys(["k2", "k1"], "sae-a", "sae-b")) == 2
    assert store.release_keys([], "sae-a", "sae-b") == []


def test_a_key_id_is_held_once(make: Make) -> None:
    """Holding a second key under a held key_ID is refused and keeps the first."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    with pytest.raises(KeyStoreError, match="k1"):
        store.hold_keys([key("k1", master="sae-x")], 0.0)
    assert store.held_count("sae-a", "sae-b") == 1
    assert store.held_count("sae-x", "sae-b") == 0


def test_held_count_is_per_pair(make: Make) -> None:
    """Counts keys per (master, slave), in that order."""
    store = make("B")
    store.hold_keys([key("k1")], 0.0)
    store.hold_keys([key("k2")], 0.0)
    store.hold_keys([key("k3", "sae-b", "sae-a")], 0.0)
    assert store.held_count("sae-a", "sae-b") == 2
    assert store.held_count("sae-b", "sae-a") == 1
    assert store.held_count("sae-a", "sae-c") == 0


# --- no key material in messages ----------------------------------------------------------

def _errors(store: Store) -> list[KeyStoreError]:
    """One of each refusal, on a store holding units of material(…) and held keys."""
    store.deposit(LINK, 0, material(0, 2), True)
    store.deposit(LINK, 1, material(1, 2), False)
    store.hold_keys([key("k1")], 0.0)
    attempts: list[Callable[[], object]] = [
        lambda: store.deposit(LINK, 2, material(2, 1)[:-1], True),
        lambda: store.deposit(LINK, 3, material(3, 40), True),
        lambda: store.take_outbound(LINK, 3),
        lambda: store.take_inbound(LINK, (UnitRange(1, 0, 1), UnitRange(0, 0, 1))),
        lambda: store.take_inbound(LINK, (UnitRange(1, 0, 2), UnitRange(1, 1, 1))),
        lambda: store.hold_keys([key("k1")], 0.0),
        lambda: store.release_keys(["k1", "k2"], "sae-a", "sae-b"),
        lambda: store.release_keys(["k1"], "sae-a", "sae-c"),
    ]
    errors: list[KeyStoreError] = []
    for attempt in attempts:
        with pytest.raises(KeyStoreError) as info:
            attempt()
        errors.append(info.value)
    return errors


def test_error_messages_hold_no_key_material(make: Make) -> None:
    """No unit, block or key shows up raw, in hex or in base64 in any refusal."""
    store = make("A", capacity_bytes_per_link=16 * UNIT_BYTES)
    secrets = [*(unit(b, i) for b in range(4) for i in range(2)), *chunks(material(3, 40)),
               unit(0, 0, "k1"), material(0, 2), material(1, 2), material(2, 1)[:-1]]
    for error in _errors(store):
        text = f"{error} {error!r}"
        for secret in secrets:
            for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1],
                         secret.hex()[:16], base64.b64encode(secret[:12]).decode()):
                assert form not in text, type(error).__name__


# --- properties ------------------------------------------------------------------------------

Op = tuple[str, int, bool, int]
OPS = st.lists(st.one_of(
    st.tuples(st.just("deposit"), st.integers(1, 6), st.booleans(), st.integers(0, 99)),
    st.tuples(st.just("take"), st.integers(0, 9), st.booleans(), st.integers(0, 0)),
), max_size=40)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_mirrored_stores_always_agree(make: Make, ops: list[Op]) -> None:
    """Random deposits (some replayed) and takes in both directions: every pad is the same
    at both ends, names the bytes deposited there, and no unit is ever returned twice."""
    a, b = make("A"), make("B")
    out_at_a: dict[int, bool] = {}
    free = {True: 0, False: 0}  # unused outbound units at A (True) and at B (False)
    seen: set[bytes] = set()
    for kind, size, flag, pick in ops:
        if kind == "deposit":
            _mirror_deposit(a, b, out_at_a, free, size, flag, pick)
        else:
            _mirror_take(a, b, free, size, flag, seen)
        for end, store in ((True, a), (False, b)):
            assert store.pool_bytes(LINK, True) == free[end] * UNIT_BYTES
            assert store.pool_bytes(LINK, False) == free[not end] * UNIT_BYTES
    a.close()
    b.close()


def _mirror_deposit(a: Store, b: Store, out_at_a: dict[int, bool], free: dict[bool, int],
                    units: int, a_sends: bool, pick: int) -> None:
    """A new block (or, for pick < 20 once blocks exist, a replay of an old one)."""
    if pick < 20 and out_at_a:
        number = sorted(out_at_a)[pick % len(out_at_a)]
    else:
        number = pick * 100 + len(out_at_a)  # new, and not always above the last
    if number in out_at_a:
        units, a_sends = 2, not out_at_a[number]  # a replay differing in all but the number
    else:
        out_at_a[number] = a_sends
        free[a_sends] += units
    a.deposit(LINK, number, material(number, units), a_sends)
    b.deposit(LINK, number, material(number, units), not a_sends)


def _mirror_take(a: Store, b: Store, free: dict[bool, int], units: int, from_a: bool,
                 seen: set[bytes]) -> None:
    sender, receiver = (a, b) if from_a else (b, a)
    if units > free[from_a]:
        with pytest.raises(NotEnoughKey):
            sender.take_outbound(LINK, units)
        return
    ranges, pad = sender.take_outbound(LINK, units)
    assert receiver.take_inbound(LINK, ranges) == pad
    assert chunks(pad) == [unit(n, i) for n, i in units_of(ranges)]
    assert seen.isdisjoint(chunks(pad)) and len(set(chunks(pad))) == units
    seen.update(chunks(pad))
    free[from_a] -= units


DIFF_OPS = st.lists(st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, 6), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("out"), st.integers(0, 6)),
    st.tuples(st.just("in"), st.lists(st.tuples(st.integers(0, 6), st.integers(-1, 4),
                                                st.integers(0, 3)), max_size=3)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("release"), st.lists(st.integers(0, 3), max_size=3),
              st.integers(0, 2), st.integers(0, 2)),
), max_size=30)


def _apply(store: Store, op: tuple[object, ...]) -> object:
    """Run one op; its result, or the type of its refusal."""
    saes = ["sae-a", "sae-b", "sae-c"]
    try:
        match op:
            case ("deposit", int(number), int(units), bool(outbound)):
                return store.deposit(LINK, number, material(number, units), outbound)
            case ("out", int(units)):
                return store.take_outbound(LINK, units)
            case ("in", list(triples)):
                return store.take_inbound(LINK, tuple(UnitRange(*t) for t in triples))
            case ("hold", int(index), int(master), int(slave)):
                return store.hold_keys([HeldKey(f"k{index}", saes[master], saes[slave],
                                              unit(index, 0, "key"))], 0.0)
            case ("release", list(indices), int(master), int(slave)):
                return store.release_keys([f"k{i}" for i in indices], saes[master],
                                          saes[slave])
    except KeyStoreError as exc:
        return type(exc)
    raise AssertionError(op)


def _state(store: Store) -> tuple[object, ...]:
    pairs = itertools.product(["sae-a", "sae-b", "sae-c"], repeat=2)
    return (store.room(LINK, True), store.pool_bytes(LINK, True), store.pool_bytes(LINK, False),
            store.links(), [store.held_count(m, s) for m, s in pairs])


@contextmanager
def _sqlite_store(capacity_units: int) -> Iterator[SQLiteKeyStore]:
    """A SQLiteKeyStore of node A in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as folder, SQLiteKeyStore(
            Path(folder) / "a.sqlite", "A", capacity_units * UNIT_BYTES) as store:
        yield store


@settings(max_examples=80, deadline=None)
@given(ops=DIFF_OPS)
@example(ops=[("deposit", 2, 2, False), ("in", [(2, 0, 1)]), ("in", [(2, 0, 1)])])
def test_memory_and_sqlite_stores_behave_alike(ops: list[tuple[object, ...]]) -> None:
    """The same operations give the same results and the same refusals in both stores,
    near a small capacity."""
    with MemoryKeyStore("A", 10 * UNIT_BYTES) as memory, _sqlite_store(10) as durable:
        for op in ops:
            assert _apply(memory, op) == _apply(durable, op), op
            assert _state(memory) == _state(durable)


# --- the SQLite file -------------------------------------------------------------------------

def test_the_file_is_in_wal_mode_with_secure_delete(tmp_path: Path) -> None:
    """WAL (persistent, seen by any connection once the store is closed), exclusive locking,
    secure_delete, foreign keys and the asked synchronous level on the store's own
    connection."""
    with SQLiteKeyStore(tmp_path / "a.sqlite", "A") as store:
        conn = store._db()
        pragma = {name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("journal_mode", "locking_mode", "secure_delete", "foreign_keys",
                               "synchronous")}
        assert pragma == {"journal_mode": "wal", "locking_mode": "exclusive",
                          "secure_delete": 1, "foreign_keys": 1, "synchronous": 1}
    other = sqlite3.connect(tmp_path / "a.sqlite")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    with SQLiteKeyStore(tmp_path / "b.sqlite", "B", synchronous="FULL") as store:
        assert store._db().execute("PRAGMA synchronous").fetchone()[0] == 2


def test_an_open_store_is_its_owners_alone_and_maps_no_shared_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a store is open no other connection reads or writes its file, and there is no
    -shm file (the WAL index is in the owner's heap); both are free again once it closes."""
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.deposit(LINK, 0, material(0, 2), True)
        assert not Path(f"{path}-shm").exists()
        other = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT COUNT(*) FROM pools").fetchone()
        other.close()
        monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.0)
        with pytest.raises(KeyStoreError, match="open in another process"):
            SQLiteKeyStore(path, "A")
    with SQLiteKeyStore(path, "A") as again:
        assert again.pool_bytes(LINK, True) == 2 * UNIT_BYTES


IMMUTABLE_CHILD = textwrap.dedent("""
    import subprocess, sys
    from pathlib import Path
    from qkdnet.errors import StoreFault
    from qkdnet.keys.store import SQLiteKeyStore
    path = Path(sys.argv[1])
    store = SQLiteKeyStore(path, "A")
    store.deposit("km:A~B", 0, bytes(64), True)
    files = [str(p) for p in path.parent.glob(path.name + "*")]
    subprocess.run(["chattr", "+i", *files], check=True)
    try:
        store.deposit("km:A~B", 1, bytes(64), True)
    except StoreFault as exc:
        print("fault:", exc)
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)
    print("alive")
""")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="chattr +i needs root")
def test_a_store_whose_files_turn_immutable_fails_writes_and_lives(tmp_path: Path) -> None:
    """chattr +i on an open store's files makes the next write a StoreFault; the process
    goes on (with a shared-memory WAL index it died of SIGBUS)."""
    probe = tmp_path / "probe"
    probe.touch()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    env = {**os.environ, "PYTHONPATH": str(Path(qkdnet.__file__).parents[1])}
    child = subprocess.run([sys.executable, "-c", IMMUTABLE_CHILD, str(tmp_path / "a.sqlite")],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == 0, (child.returncode, child.stderr)
    assert "fault: " in child.stdout and "alive" in child.stdout


def test_written_says_whether_a_checkpoint_has_work(tmp_path: Path) -> None:
    """A store is written after opening, deposits, takes and held keys, and not after a
    checkpoint with nothing since (its owner skips such checkpoints)."""
    with SQLiteKeyStore(tmp_path / "a.sqlite", "A") as store:
        assert store.written
        store.checkpoint()
        assert not store.written
        store.deposit(LINK, 0, material(0, 4), True)
        assert store.written
        store.checkpoint()
        assert not store.written
        store.take_outbound(LINK, 1)
        assert store.written
        store.checkpoint()
        store.hold_keys([key("k1")], 0.0)
        assert store.written
        store.checkpoint()
        assert not store.written


def test_synchronous_is_normal_or_full(tmp_path: Path) -> None:
    """Any other level is a ParameterError naming the parameter."""
    with pytest.raises(ParameterError, match="synchronous"):
        SQLiteKeyStore(tmp_path / "a.sqlite", "A", synchronous="OFF")


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    """Pools, used units, remembered blocks and held keys are all still there."""
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.deposit(LINK, 0, material(0, 3), True)
        store.deposit(LINK, 1, material(1, 2), False)
        store.take_outbound(LINK, 1)
        store.hold_keys([key("k1")], 0.0)
    with SQLiteKeyStore(path, "A") as store:
        assert store.links() == [LINK]
        store.deposit(LINK, 0, material(0, 3), True)  # still remembered: a no-op
        assert store.take_outbound(LINK, 2) == ((UnitRange(0, 1, 2),), material(0, 3)[32:])
        assert store.take_inbound(LINK, (UnitRange(1, 0, 2),)) == material(1, 2)
        assert store.release_keys(["k1"], "sae-a", "sae-b") == [key("k1")]


def test_a_store_file_belongs_to_one_node(tmp_path: Path) -> None:
    """Opening A's file as B's store is refused, naming both."""
    SQLiteKeyStore(tmp_path / "a.sqlite", "A").close()
    with pytest.raises(KeyStoreError, match="'A', not of 'B'"):
        SQLiteKeyStore(tmp_path / "a.sqlite", "B")


def test_a_file_that_is_not_a_database_is_a_key_store_error(tmp_path: Path) -> None:
    """SQLite's refusal comes out as a KeyStoreError naming the file."""
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(KeyStoreError, match=r"junk\.sqlite"):
        SQLiteKeyStore(path, "A")


def _on_disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


PROBE = b"QKDNET/secure-delete/probe/unit!"
KEY_PROBE = b"QKDNET/secure-delete/probe/key!!"


def test_used_material_is_overwritten_on_disk(tmp_path: Path) -> None:
    """After a unit (or held key) is used and the WAL checkpointed, its bytes are nowhere in
    the database file or its WAL."""
    assert len(PROBE) == len(KEY_PROBE) == UNIT_BYTES
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.deposit(LINK, 0, PROBE + material(0, 3), True)
        store.deposit(LINK, 1, material(1, 2) + PROBE[::-1], False)
        store.hold_keys([HeldKey("k1", "sae-a", "sae-b", KEY_PROBE)], 0.0)
        store.checkpoint()
        assert all(p in _on_disk(path) for p in (PROBE, PROBE[::-1], KEY_PROBE))
        assert store.take_outbound(LINK, 1)[1] == PROBE
        assert store.take_inbound(LINK, (UnitRange(1, 2, 1),)) == PROBE[::-1]
        store.release_keys(["k1"], "sae-a", "sae-b")
        store.checkpoint()
        disk = _on_disk(path)
        assert all(u in disk for u in chunks(material(0, 3)))  # unused units are still there
        assert PROBE not in disk and PROBE[::-1] not in disk and KEY_PROBE not in disk


CHILD = textwrap.dedent("""
    import hashlib, random, sys
    from pathlib import Path
    from qkdnet.errors import NotEnoughKey
    from qkdnet.keys.store import SQLiteKeyStore

    path, log_path = Path(sys.argv[1]), sys.argv[2]
    first, units, most = (int(x) for x in sys.argv[3:6])
    rng = random.Random(first)
    store = SQLiteKeyStore(path, "A")
    with open(log_path, "a") as log:
        print("ready", flush=True)
        for block in range(first, first + 10**7):
            material = b"".join(hashlib.sha256(f"A-B:{block}:{i}".encode()).digest()
                                for i in range(units))
            store.deposit("A-B", block, material, True)
            log.write(f"D {block}\\n")
            log.flush()
            try:
                ranges, _ = store.take_outbound("A-B", rng.randint(1, most))
            except NotEnoughKey:
                continue
            log.write("T " + " ".join(f"{r.block}:{r.start}:{r.count}" for r in ranges)
                      + "\\n")
            log.flush()
""")
BLOCK_UNITS, MOST_TAKEN = 6, 8


def _read_log(log: Path) -> tuple[set[int], list[tuple[int, int]]]:
    """Blocks logged as deposited and units logged as taken (whole lines only: the child
    may die in the middle of one)."""
    deposited: set[int] = set()
    taken: list[tuple[int, int]] = []
    for line in log.read_text().split("\n")[:-1]:
        kind, *fields = line.split()
        if kind == "D":
            deposited.add(int(fields[0]))
        for field in fields if kind == "T" else []:
            block, start, count = (int(x) for x in field.split(":"))
            taken += [(block, start + i) for i in range(count)]
    return deposited, taken


def _take_all(path: Path) -> list[tuple[int, int]]:
    """Reopen the store, check its counters against its units, and take every unit."""
    with SQLiteKeyStore(path, "A") as store:
        ranges, pad = store.take_outbound(LINK, store.pool_bytes(LINK, True) // UNIT_BYTES)
        with pytest.raises(NotEnoughKey):
            store.take_outbound(LINK, 1)
    present = units_of(ranges)
    assert chunks(pad) == [unit(b, i) for b, i in present]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    return present


def _kill_child_at_random(path: Path, log: Path, first: int, rng: random.Random) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(qkdnet.__file__).parents[1])}
    args = [str(path), str(log), str(first), str(BLOCK_UNITS), str(MOST_TAKEN)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    time.sleep(rng.uniform(0.005, 0.12))
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_a_killed_process_leaves_the_store_consistent(tmp_path: Path) -> None:
    """A child deposits and takes in a loop and is SIGKILLed at random moments. After each
    kill: no unit it logged as taken is still stored, the counters match the units, and
    the only units neither stored nor logged are one take's worth from the front."""
    path, log = tmp_path / "a.sqlite", tmp_path / "taken.log"
    rng = random.Random(2024)
    accounted: set[tuple[int, int]] = set()  # taken by the parent, or lost in flight
    for round_ in range(6):
        _kill_child_at_random(path, log, round_ * 10**6, rng)
        deposited, logged = _read_log(log)
        assert len(set(logged)) == len(logged), "a unit was taken twice"
        present = _take_all(path)
        assert not set(present) & (set(logged) | accounted)
        blocks = deposited | {b for b, _ in present} | {b for b, _ in logged}
        every = {(b, i) for b in blocks for i in range(BLOCK_UNITS)}
        lost = every - set(present) - set(logged) - accounted
        assert len(lost) <= MOST_TAKEN, "more than the take in flight went missing"
        assert not present or not lost or max(lost) < min(present)
        accounted |= lost | set(present)
    assert len(_read_log(log)[1]) > 0


def test_held_for_names_the_pair_without_the_material(make: Make) -> None:
    """A KME can tell whose a key is (to answer 401 rather than 400) without taking it."""
    store = make("A")
    store.hold_keys([HeldKey("k1", "sae-m", "sae-s", unit(0, 0, "k1"))], 0.0)
    assert store.held_for("k1") == ("sae-m", "sae-s")
    assert store.held_for("k2") is None
    assert store.held_count("sae-m", "sae-s") == 1


def test_checkpoints_can_be_left_to_the_owner(tmp_path: Path) -> None:
    """A store opened without automatic checkpoints leaves them to its owner, whose
    checkpoint() empties the WAL file."""
    store = SQLiteKeyStore(tmp_path / "a.sqlite", "A", auto_checkpoint=False)
    assert store._db().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    store.deposit(LINK, 0, material(0, 64), outbound=True)
    assert (tmp_path / "a.sqlite-wal").stat().st_size > 0
    store.checkpoint()
    assert (tmp_path / "a.sqlite-wal").stat().st_size == 0
    store.close()


# --- held keys expire ----------------------------------------------------------------------

def test_expire_held_erases_exactly_the_keys_past_their_ttl(make: Make) -> None:
    """Keys held more than ttl seconds before now go (and are counted); younger ones stay."""
    store = make("A")
    store.hold_keys([key("old1"), key("old2")], 100.0)
    store.hold_keys([key("young", slave="sae-c")], 150.0)
    assert store.expire_held(now=155.0, ttl_s=60.0) == 0
    assert store.expire_held(now=161.0, ttl_s=60.0) == 2
    assert store.held_for("old1") is None and store.held_count("sae-a", "sae-b") == 0
    with pytest.raises(KeyNotFound):
        store.release_keys(["old2"], "sae-a", "sae-b")
    assert [k.key_id for k in store.release_keys(["young"], "sae-a", "sae-c")] == ["young"]
    assert store.expire_held(now=1000.0, ttl_s=60.0) == 0


def test_a_key_stamped_after_now_expires_too(make: Make) -> None:
    """A stamp later than now comes from a clock that has restarted (a reboot): it goes."""
    store = make("A")
    store.hold_keys([key("k1")], 5000.0)
    assert store.expire_held(now=10.0, ttl_s=3600.0) == 1
    assert store.held_for("k1") is None


def test_an_expired_key_is_overwritten_on_disk(tmp_path: Path) -> None:
    """An expired held key's bytes are nowhere in the file or its WAL after a checkpoint."""
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.hold_keys([HeldKey("k1", "sae-a", "sae-b", KEY_PROBE)], 0.0)
        store.checkpoint()
        assert KEY_PROBE in _on_disk(path)
        assert store.expire_held(now=10.0, ttl_s=5.0) == 1
        store.checkpoint()
        assert KEY_PROBE not in _on_disk(path)


def test_a_schema_1_file_is_migrated_and_its_held_keys_expire_first(tmp_path: Path) -> None:
    """A store written before held_at existed opens; its held keys (of unknown age) go at the
    first expiry, while keys held after the migration stay."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1'), ('node', 'A');
        CREATE TABLE held_keys (key_id TEXT PRIMARY KEY, master_sae TEXT NOT NULL,
            slave_sae TEXT NOT NULL, material BLOB NOT NULL) WITHOUT ROWID;
        INSERT INTO held_keys VALUES ('orphan', 'sae-a', 'sae-b', x'00');
    """)
    db.close()
    with SQLiteKeyStore(path, "A") as store:
        assert store.held_for("orphan") == ("sae-a", "sae-b")
        store.hold_keys([key("new")], 50.0)
        assert store.expire_held(now=60.0, ttl_s=3600.0) == 1
        assert store.held_for("orphan") is None and store.held_for("new") is not None
    check = sqlite3.connect(path)
    schema = check.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
    assert schema == (SCHEMA_VERSION,)
    check.close()


SCHEMA_2_FILE = Path(__file__).parent / "data" / "schema2.sqlite"


def test_a_schema_2_file_is_migrated_with_its_unused_units(tmp_path: Path) -> None:
    """A store file written by schema 2 (a row per unit; made by qkdnet 80c8a2a: A-B blocks
    0-3 of 4 units, 0 and 2 outbound, 5 units taken out and 3 in; C-A block 0 used up, block
    5 outbound; key k1 held) opens as schema 3 with exactly its unused units, its used ones
    refused, its replays no-ops and its held key."""
    path = tmp_path / "a.sqlite"
    path.write_bytes(SCHEMA_2_FILE.read_bytes())
    with SQLiteKeyStore(path, "A") as store:
        assert (store.pool_bytes(LINK, True), store.pool_bytes(LINK, False)) == (96, 160)
        assert (store.pool_bytes("C-A", True), store.pool_bytes("C-A", False)) == (32, 0)
        assert store.links() == [LINK, "C-A"]
        assert (store.next_block(LINK), store.next_block("C-A")) == (4, 6)
        store.deposit(LINK, 0, material(0, 4), True)  # remembered: a no-op
        with pytest.raises(PadMismatch):
            store.take_inbound(LINK, (UnitRange(1, 1, 1),))
        assert store.take_outbound(LINK, 3) == ((UnitRange(2, 1, 3),), material(2, 4)[32:])
        pad = store.take_inbound(LINK, (UnitRange(3, 1, 3), UnitRange(1, 0, 1),
                                        UnitRange(1, 3, 1)))
        assert pad == material(3, 4)[32:] + unit(1, 0) + unit(1, 3)
        assert store.take_outbound("C-A", 1)[1] == unit(5, 0, "C-A")
        assert store.pool_bytes(LINK, False) == store.pool_bytes(LINK, True) == 0
        assert [k.key_id for k in store.release_keys(["k1"], "sae-a", "sae-b")] == ["k1"]
    check = sqlite3.connect(path)
    tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
    assert "units" not in tables and "pads" in tables
    schema = check.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
    assert schema == (SCHEMA_VERSION,)
    check.close()


def test_a_batch_commits_once_and_keeps_each_call_whole(tmp_path: Path) -> None:
    """Inside batch(), a refused call changes nothing while the calls around it stand, and
    all of them are committed at the end (seen by a reopened store)."""
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.deposit(LINK, 0, material(0, 4), True)
        store.deposit(LINK, 1, material(1, 4), False)
        with store.batch():
            assert store.take_inbound(LINK, (UnitRange(1, 0, 2),)) == material(1, 2)
            assert store._db().in_transaction
            with pytest.raises(NotEnoughKey):
                store.take_outbound(LINK, 5)
            with pytest.raises(PadMismatch):
                store.take_inbound(LINK, (UnitRange(1, 2, 1), UnitRange(1, 0, 1)))
            assert store.take_outbound(LINK, 1)[0] == (UnitRange(0, 0, 1),)
        assert not store._db().in_transaction
    with SQLiteKeyStore(path, "A") as store:
        assert (store.pool_bytes(LINK, True), store.pool_bytes(LINK, False)) == (96, 64)
        assert store.take_inbound(LINK, (UnitRange(1, 2, 2),)) == material(1, 4)[64:]


def test_deposit_many_is_all_or_none(make: Make) -> None:
    """Several blocks in one call: replays and repeats are no-ops, counted out of what is new;
    one block that does not fit stores none of them."""
    store = make("A", capacity_bytes_per_link=12 * UNIT_BYTES)
    store.deposit(LINK, 0, material(0, 2), True)
    new = store.deposit_many([Deposit(LINK, 0, material(0, 2), True),
                              Deposit(LINK, 1, material(1, 2), True),
                              Deposit(LINK, 1, material(1, 2), True),
                              Deposit(LINK, 2, material(2, 3), False)])
    assert new == 2
    assert (store.pool_bytes(LINK, True), store.pool_bytes(LINK, False)) == (128, 96)
    with pytest.raises(PoolFull):
        store.deposit_many([Deposit(LINK, 3, material(3, 1), False),
                            Deposit(LINK, 4, material(4, 3), True)])
    assert (store.pool_bytes(LINK, True), store.pool_bytes(LINK, False)) == (128, 96)
    assert store.take_outbound(LINK, 4)[1] == material(0, 2) + material(1, 2)
    assert "material=<64 bytes>" in repr(Deposit(LINK, 1, material(1, 2), True))


BATCH_OPS = st.lists(st.one_of(
    st.tuples(st.just("many"), st.lists(st.tuples(st.integers(0, 8), st.integers(1, 4),
                                                  st.booleans()), max_size=4)),
    st.tuples(st.just("out"), st.integers(0, 6)),
    st.tuples(st.just("in"), st.lists(st.tuples(st.integers(0, 8), st.integers(-1, 4),
                                                st.integers(0, 3)), max_size=3)),
    st.tuples(st.just("hop"), st.lists(st.tuples(st.integers(0, 8), st.integers(0, 4),
                                                 st.integers(1, 3)), max_size=2),
              st.integers(0, 6)),
), max_size=25)


def _apply_batched(store: Store, op: tuple[object, ...]) -> object:
    """Run one op of BATCH_OPS: deposit_many, a take, or a relay hop's two takes in one
    batch; its result, or the types of its refusals."""
    match op:
        case ("many", list(blocks)):
            try:
                return store.deposit_many([Deposit(LINK, n, material(n, u), out)
                                           for n, u, out in blocks])
            except KeyStoreError as exc:
                return type(exc)
        case ("hop", list(triples), int(units)):
            results: list[object] = []
            with store.batch():
                for call in (lambda: store.take_inbound(LINK, tuple(UnitRange(*t)
                                                                    for t in triples)),
                             lambda: store.take_outbound(LINK, units)):
                    try:
                        results.append(call())
                    except KeyStoreError as exc:
                        results.append(type(exc))
            return results
    return _apply(store, op)


@settings(max_examples=80, deadline=None)
@given(ops=BATCH_OPS)
def test_deposit_many_and_batches_behave_alike_in_both_stores(
        ops: list[tuple[object, ...]]) -> None:
    """deposit_many and a hop's takes in one batch give the same results, refusals and pools
    in memory and on SQLite, near a small capacity."""
    with MemoryKeyStore("A", 10 * UNIT_BYTES) as memory, _sqlite_store(10) as durable:
        for op in ops:
            assert _apply_batched(memory, op) == _apply_batched(durable, op), op
            assert _state(memory) == _state(durable)


def test_discard_from_deletes_every_later_block_and_remembers_them(tmp_path: Path) -> None:
    """Blocks numbered from ``first`` on go, in both directions, counters with them; earlier
    ones stay; a replay of a discarded block stays a no-op."""
    with SQLiteKeyStore(tmp_path / "a.sqlite", "A") as store:
        for number in range(6):
            store.deposit(LINK, number, material(number, 2), number % 2 == 0)
        store.take_inbound(LINK, (UnitRange(3, 0, 1),))
        assert store.discard_from(LINK, 3) == 3
        assert (store.pool_bytes(LINK, True), store.pool_bytes(LINK, False)) == (128, 64)
        store.deposit(LINK, 4, material(4, 2), True)
        assert store.pool_bytes(LINK, True) == 128 and store.next_block(LINK) == 6
        assert store.take_outbound(LINK, 4)[1] == material(0, 2) + material(2, 2)


def test_pool_counters_are_written_at_closing_and_recounted_from_the_pads(
        tmp_path: Path) -> None:
    """Takes leave the file's pool counters to the checkpoint; a file whose counters lag
    (a crash before it) is counted right from its pads when opened."""
    path = tmp_path / "a.sqlite"
    with SQLiteKeyStore(path, "A") as store:
        store.deposit(LINK, 0, material(0, 64), outbound=True)
        store.deposit(LINK, 1, material(1, 8), outbound=False)
        store.take_outbound(LINK, 10)
        store.take_inbound(LINK, (UnitRange(1, 2, 3),))
    conn = sqlite3.connect(path)
    assert dict(((link, out), units) for link, out, units in conn.execute(
        "SELECT km_link, outbound, units FROM pools")) == {(LINK, 1): 54, (LINK, 0): 5}
    conn.execute("UPDATE pools SET units = 999")  # counters as a crash may leave them
    conn.commit()
    conn.close()
    with SQLiteKeyStore(path, "A") as store:
        assert store.pool_bytes(LINK, True) == 54 * UNIT_BYTES
        assert store.pool_bytes(LINK, False) == 5 * UNIT_BYTES
        ranges, _ = store.take_outbound(LINK, 54)
        assert units_of(ranges)[0] == (0, 10)
        with pytest.raises(NotEnoughKey):
            store.take_outbound(LINK, 1)


def test_a_discarded_block_is_never_taken_from_again(tmp_path: Path) -> None:
    """The store keeps the pad it spends now for the next take (no SELECT): a discard of
    that block drops it, so the next take goes on from the next block (outbound) or is
    refused (inbound)."""
    with SQLiteKeyStore(tmp_path / "a.sqlite", "A") as store:
        for block in (0, 1):
            store.deposit(LINK, block, material(block, 4), True)
        assert units_of(store.take_outbound(LINK, 1)[0]) == [(0, 0)]
        store.discard_block(LINK, 0)
        assert units_of(store.take_outbound(LINK, 1)[0]) == [(1, 0)]
        store.discard_from(LINK, 1)
        with pytest.raises(NotEnoughKey):
            store.take_outbound(LINK, 1)
        store.deposit(LINK, 2, material(2, 4), False)
        assert store.take_inbound(LINK, (UnitRange(2, 0, 1),)) == unit(2, 0)
        store.discard_block(LINK, 2)
        with pytest.raises(PadMismatch):
            store.take_inbound(LINK, (UnitRange(2, 1, 1),))


def test_an_inbound_unit_is_taken_once_even_from_the_kept_pad(tmp_path: Path) -> None:
    """The inbound pad a relay last named is kept for the next relay; naming one of its
    spent units again is refused (PadMismatch), never answered with its zeroed bytes."""
    with SQLiteKeyStore(tmp_path / "a.sqlite", "A") as store:
        store.deposit(LINK, 0, material(0, 4), False)
        assert store.take_inbound(LINK, (UnitRange(0, 0, 2),)) == unit(0, 0) + unit(0, 1)
        for spent in (UnitRange(0, 0, 1), UnitRange(0, 1, 1), UnitRange(0, 1, 2)):
            with pytest.raises(PadMismatch):
                store.take_inbound(LINK, (spent,))
        assert store.take_inbound(LINK, (UnitRange(0, 2, 1),)) == unit(0, 2)
        assert store.pool_bytes(LINK, False) == UNIT_BYTES
