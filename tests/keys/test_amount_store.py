"""Key pools as amounts of key: every KM-link's key split half per direction at both ends and
capped per direction, each node's KeyStore view following the parity rule of the live
stores, refusals that change nothing, the KMs' reported key computed for all links at once,
relays through the Key Managers charged per hop, and accounting in which no bit is lost
(made = used + pooled + discarded)."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdnet.errors import (
    KeyNotFound,
    KeyStoreError,
    NotAuthorized,
    NotEnoughKey,
    PadMismatch,
    ParameterError,
    PoolFull,
)
from qkdnet.keys.amount_store import AmountPools
from qkdnet.keys.in_memory import InMemoryKMs
from qkdnet.keys.link_state import km_link_state
from qkdnet.keys.manager import KeyManager
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.messages import KeyDelivered, KeyFailed, KeyRequest
from qkdnet.keys.pool import UNIT_BITS, UNIT_BYTES, HeldKey, KeyStore, UnitRange
from qkdnet.keys.relay_cost import hop_cost_bits, relayable_keys
from qkdnet.keys.relay_crypto import KeyAmounts
from qkdnet.keys.route import Route
from qkdnet.keys.supply import deliver
from qkdnet.quantum.key_source import KeyBlock
from qkdnet.topology.model import KMLink, KMLinkKind

Snapshot = tuple[npt.NDArray[np.float64], ...]
BIG = 1e9  # bits: a capacity no test fills


def _pools(hops: int = 3, capacity_bits: float = BIG) -> AmountPools:
    """Nodes n0..n<hops> in a line, KM-link l<i> from n<i> (end a) to n<i+1> (end b)."""
    links = [KMLink(f"l{i}", f"n{i}", f"n{i + 1}", KMLinkKind.DIRECT, (f"q{i}",))
             for i in range(hops)]
    return AmountPools(links, capacity_bits)


def _kms(pools: AmountPools, hops: int = 3) -> InMemoryKMs:
    crypto = KeyAmounts()
    return InMemoryKMs({f"n{i}": KeyManager(f"n{i}", pools.store(f"n{i}"), crypto)
                        for i in range(hops + 1)})


def _route(a: int, b: int) -> Route:
    """The route from n<a> to n<b> along the line."""
    step = 1 if b >= a else -1
    nodes = tuple(f"n{i}" for i in range(a, b + step, step))
    return Route(nodes, tuple(f"l{min(i, i + step)}" for i in range(a, b, step)))


def _request(key_id: str, a: int, b: int, size: int = 256, count: int = 1) -> KeyRequest:
    ids = tuple(f"{key_id}.{i}" for i in range(count))
    return KeyRequest(ids, size, "master", "slave", _route(a, b))


def _snapshot(pools: AmountPools) -> Snapshot:
    return tuple(a.copy() for a in (pools.sender, pools.receiver, pools.made, pools.used,
                                    pools.discarded))


def _unchanged(pools: AmountPools, before: Snapshot) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(_snapshot(pools), before, strict=True))


# --- deposits --------------------------------------------------------------------------


def test_pools_start_empty_with_nothing_made_used_or_discarded() -> None:
    """A fresh set of pools holds no key at either end and has no history."""
    pools = _pools()
    for counter in (pools.pooled, pools.relayable, pools.made, pools.used, pools.discarded):
        assert counter.tolist() == [0.0, 0.0, 0.0]
    assert not pools.receiver.any()


def test_a_deposit_goes_half_to_each_direction_at_both_ends() -> None:
    """Each KM-link's key pads half what end a sends and half what end b sends, and the
    sending and receiving copies of each direction hold the same amount."""
    pools = _pools()
    pools.deposit(np.array([1024.0, 512.0, 0.0]))
    assert pools.sender.tolist() == [[512.0, 512.0], [256.0, 256.0], [0.0, 0.0]]
    assert np.array_equal(pools.receiver, pools.sender)
    assert pools.pooled.tolist() == [1024.0, 512.0, 0.0]
    for node, link in (("n0", "l0"), ("n1", "l0"), ("n1", "l1"), ("n2", "l1")):
        store = pools.store(node)
        half = pools.sender[pools.index[link], 0] / 8
        assert store.pool_bytes(link, True) == store.pool_bytes(link, False) == half


def test_each_direction_is_capped_at_half_the_capacity_and_the_rest_discarded() -> None:
    """What does not fit in a direction (half the capacity) is discarded and counted, link
    by link; made = used + pooled + discarded holds throughout."""
    pools = _pools(capacity_bits=1000.0)
    pools.deposit(np.array([600.0, 1400.0, 0.0]))
    assert pools.sender[:, 0].tolist() == [300.0, 500.0, 0.0]
    assert pools.discarded.tolist() == [0.0, 400.0, 0.0]
    pools.deposit(np.array([600.0, 10.0, 100.0]))
    assert pools.pooled.tolist() == [1000.0, 1000.0, 100.0]
    assert pools.discarded.tolist() == [200.0, 410.0, 0.0]
    assert pools.made.tolist() == [1200.0, 1410.0, 100.0]
    assert pools.imbalance().tolist() == [0.0, 0.0, 0.0]


def test_a_direction_fills_only_as_far_as_its_fuller_copy_allows() -> None:
    """Key a sender has used but its receiver not yet taken still occupies the receiver's
    copy, so a deposit keeps only what fits at both ends: the copies never drift apart."""
    pools = _pools(hops=1, capacity_bits=8 * UNIT_BITS)
    pools.deposit(np.array([8.0 * UNIT_BITS]))
    a, b = pools.store("n0"), pools.store("n1")
    ranges, _ = a.take_outbound("l0", 2)
    pools.deposit(np.array([4.0 * UNIT_BITS]))
    assert pools.sender[0].tolist() == [2.0 * UNIT_BITS, 4.0 * UNIT_BITS]
    assert pools.discarded.tolist() == [4.0 * UNIT_BITS]
    b.take_inbound("l0", ranges)
    pools.deposit(np.array([4.0 * UNIT_BITS]))
    assert np.array_equal(pools.receiver, pools.sender)
    assert pools.sender[0].tolist() == [4.0 * UNIT_BITS, 4.0 * UNIT_BITS]
    assert pools.imbalance().tolist() == [0.0]


def test_a_pool_must_hold_something() -> None:
    """A capacity of 0 bits or less is refused naming ``capacity_bits``."""
    with pytest.raises(ParameterError, match="capacity_bits"):
        _pools(capacity_bits=0.0)


Op = tuple[str, int, int, int, int]
OPS = st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, 3000), st.integers(0, 3000),
              st.integers(0, 3000), st.just(0)),
    st.tuples(st.just("take"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 12),
              st.just(0)),
    st.tuples(st.just("relay"), st.integers(0, 3), st.integers(0, 3),
              st.sampled_from([64, 256, 1024]), st.integers(1, 3)))


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(OPS, max_size=40), scale=st.floats(0.1, 3.0))
def test_random_deposits_takes_and_relays_keep_every_bit_accounted_for(
        ops: list[Op], scale: float) -> None:
    """Whatever is deposited, taken hop by hop or relayed, made = used + pooled + discarded
    on every KM-link, every copy lies in [0, capacity / 2], and once the relays have
    settled the sending and receiving copies of each direction agree."""
    capacity = 4000.0
    pools = _pools(capacity_bits=capacity)
    kms = _kms(pools)
    for n, (kind, x, y, z, w) in enumerate(ops):
        if kind == "deposit":
            pools.deposit(np.array([x, y, z], dtype=float) * scale)
        elif kind == "take":  # one hop's pad, taken at the sender, then at the receiver
            sender, receiver = pools.store(f"n{x + y}"), pools.store(f"n{x + 1 - y}")
            try:
                ranges, _ = sender.take_outbound(f"l{x}", z)
            except NotEnoughKey:
                continue
            receiver.take_inbound(f"l{x}", ranges)
        else:
            [outcome] = kms.submit(f"n{x}", _request(f"k{n}", x, y, z, w), 0.0)
            assert isinstance(outcome, KeyDelivered | KeyFailed)
        assert np.allclose(pools.imbalance(), 0.0, atol=1e-9 * max(capacity, *pools.made))
        assert ((pools.sender >= 0) & (pools.sender <= capacity / 2 + 1e-9)).all()
        assert np.array_equal(pools.receiver, pools.sender)


# --- one node's KeyStore view ------------------------------------------------------------


def test_deliver_follows_the_parity_rule_on_amount_stores() -> None:
    """An even block raises a's outbound and b's inbound pool, an odd one b's outbound and
    a's inbound; the key made is counted once, at the block's sending end."""
    pools = _pools(hops=1)
    a, b = pools.store("n0"), pools.store("n1")
    assert deliver(KeyBlock("l0", 0, bytes(2 * UNIT_BYTES)), a, b)
    assert (a.pool_bytes("l0", True), a.pool_bytes("l0", False)) == (2 * UNIT_BYTES, 0)
    assert (b.pool_bytes("l0", True), b.pool_bytes("l0", False)) == (0, 2 * UNIT_BYTES)
    assert deliver(KeyBlock("l0", 1, bytes(3 * UNIT_BYTES)), a, b)
    assert (a.pool_bytes("l0", True), a.pool_bytes("l0", False)) == (2 * UNIT_BYTES,
                                                                     3 * UNIT_BYTES)
    assert (b.pool_bytes("l0", True), b.pool_bytes("l0", False)) == (3 * UNIT_BYTES,
                                                                     2 * UNIT_BYTES)
    assert pools.sender[0].tolist() == [2.0 * UNIT_BITS, 3.0 * UNIT_BITS]  # (a's, b's)
    assert pools.made.tolist() == [5.0 * UNIT_BITS]
    assert pools.imbalance().tolist() == [0.0]


def test_amount_stores_answer_as_memory_stores_holding_the_same_blocks() -> None:
    """Fed the same blocks and the same hop-by-hop takes, an AmountStore reports the same
    pools and room per direction as a MemoryKeyStore, and refuses the same blocks."""
    units = 16  # per KM-link: 8 units per direction
    pools = _pools(hops=1, capacity_bits=units * UNIT_BITS)
    amount = (pools.store("n0"), pools.store("n1"))
    memory = (MemoryKeyStore("n0", units * UNIT_BYTES), MemoryKeyStore("n1", units * UNIT_BYTES))
    rng = random.Random(3)

    def agree() -> None:
        for x, m in zip(amount, memory, strict=True):
            for outbound in (True, False):
                assert x.pool_bytes("l0", outbound) == m.pool_bytes("l0", outbound)
                assert x.room("l0", outbound) == m.room("l0", outbound)

    refused = 0
    for number in range(40):
        block = KeyBlock("l0", number, rng.randbytes(rng.randint(1, 3) * UNIT_BYTES))
        accepted = deliver(block, *amount)
        assert accepted == deliver(block, *memory)
        refused += not accepted
        agree()
        if number % 3 == 2:
            end = rng.randrange(2)
            count = min(rng.randint(1, 4), memory[end].pool_bytes("l0", True) // UNIT_BYTES)
            if not count:
                continue
            ranges, _ = amount[end].take_outbound("l0", count)
            amount[1 - end].take_inbound("l0", ranges)
            ranges, _ = memory[end].take_outbound("l0", count)
            memory[1 - end].take_inbound("l0", ranges)
            agree()
    assert 0 < refused < 40


def test_room_is_counted_per_direction() -> None:
    """Filling one direction leaves the other's room whole, a block goes to the direction
    holding less, and a full direction has no room, never less than none."""
    pools = _pools(hops=1, capacity_bits=8 * UNIT_BITS)
    a, b = pools.store("n0"), pools.store("n1")
    assert a.room("l0", True) == a.room("l0", False) == 4 * UNIT_BYTES
    assert deliver(KeyBlock("l0", 0, bytes(3 * UNIT_BYTES)), a, b)
    assert (a.room("l0", True), a.room("l0", False)) == (UNIT_BYTES, 4 * UNIT_BYTES)
    assert (b.room("l0", True), b.room("l0", False)) == (4 * UNIT_BYTES, UNIT_BYTES)
    # b's direction holds less: the next blocks go to b, until it holds no less than a
    assert deliver(KeyBlock("l0", 2, bytes(2 * UNIT_BYTES)), a, b)
    assert (b.room("l0", True), a.room("l0", False)) == (2 * UNIT_BYTES, 2 * UNIT_BYTES)
    assert not deliver(KeyBlock("l0", 4, bytes(3 * UNIT_BYTES)), a, b)  # room for 2 only
    assert deliver(KeyBlock("l0", 6, bytes(2 * UNIT_BYTES)), a, b)
    assert b.room("l0", True) == a.room("l0", False) == 0
    assert a.room("l0", True) == UNIT_BYTES  # a's direction kept its own room


def test_taking_more_than_the_outbound_pool_raises_and_changes_nothing() -> None:
    """NotEnoughKey, naming the KM-link, when the sender's pool is short; no bit moves."""
    pools = _pools(hops=1)
    pools.deposit(np.array([6.0 * UNIT_BITS]))
    before = _snapshot(pools)
    with pytest.raises(NotEnoughKey, match="l0"):
        pools.store("n0").take_outbound("l0", 4)
    assert _unchanged(pools, before)
    ranges, pad = pools.store("n0").take_outbound("l0", 3)
    assert pad == b"" and sum(r.count for r in ranges) == 3
    assert pools.sender[0].tolist() == [0.0, 3.0 * UNIT_BITS]


def test_a_negative_take_is_refused_and_changes_nothing() -> None:
    """Taking -1 units is refused with a KeyStoreError, as by the memory store."""
    pools = _pools(hops=1)
    pools.deposit(np.array([6.0 * UNIT_BITS]))
    before = _snapshot(pools)
    with pytest.raises(KeyStoreError):
        pools.store("n0").take_outbound("l0", -1)
    assert _unchanged(pools, before)


def test_taking_more_inbound_than_held_raises_and_changes_nothing() -> None:
    """PadMismatch when the receiver is named more units than its copy holds, or a
    malformed range; no bit moves."""
    pools = _pools(hops=1)
    pools.deposit(np.array([6.0 * UNIT_BITS]))
    before = _snapshot(pools)
    b = pools.store("n1")
    for ranges in ((UnitRange(0, 0, 4),), (UnitRange(0, 0, 2), UnitRange(0, 2, 2)),
                   (UnitRange(0, 0, 0),), (UnitRange(0, 0, 2), UnitRange(0, 1, 1))):
        with pytest.raises(PadMismatch, match="l0"):
            b.take_inbound("l0", ranges)
        assert _unchanged(pools, before)
    assert b.take_inbound("l0", (UnitRange(0, 0, 3),)) == b""
    assert pools.receiver[0].tolist() == [0.0, 3.0 * UNIT_BITS]


def test_a_km_link_not_ending_at_the_node_is_refused_by_every_verb() -> None:
    """An unknown KM-link, or one whose ends are other nodes, raises a KeyStoreError naming
    it (so a Key Manager refuses the hop) and changes nothing."""
    pools = _pools()
    pools.deposit(np.array([4.0 * UNIT_BITS] * 3))
    before = _snapshot(pools)
    for node, link in (("n0", "l9"), ("n0", "l1"), ("n3", "l0"), ("x", "l0")):
        store = pools.store(node)
        calls: list[tuple[Callable[..., object], tuple[object, ...]]] = [
            (store.deposit, (link, 0, bytes(UNIT_BYTES), True)), (store.room, (link, True)),
            (store.pool_bytes, (link, False)), (store.take_outbound, (link, 1)),
            (store.take_inbound, (link, (UnitRange(0, 0, 1),)))]
        for call, args in calls:
            with pytest.raises(KeyStoreError, match=link):
                call(*args)
    assert _unchanged(pools, before)


def test_relayable_is_what_the_kms_of_each_link_report() -> None:
    """For every KM-link, ``relayable`` equals ``km_link_state``'s key_bits computed
    through the stores at its two ends (whole bytes, even when the twin deposits fractions
    of a bit): the same rule, applied to all links at once."""
    rng = random.Random(11)
    pools = _pools(hops=5, capacity_bits=64.0 * UNIT_BITS)
    for _ in range(30):
        pools.deposit(np.array([rng.uniform(0, 32 * UNIT_BITS) for _ in range(5)]))
        for i in range(5):
            end = rng.randrange(2)
            sender, receiver = pools.store(f"n{i + end}"), pools.store(f"n{i + 1 - end}")
            have = sender.pool_bytes(f"l{i}", True) // UNIT_BYTES
            if have:
                ranges, _ = sender.take_outbound(f"l{i}", rng.randint(1, have))
                receiver.take_inbound(f"l{i}", ranges)
        reported = [km_link_state(f"l{i}", pools.store(f"n{i}"), pools.store(f"n{i + 1}"),
                                  0.0, True).key_bits for i in range(5)]
        assert pools.relayable.tolist() == reported
    assert len(set(pools.relayable.tolist())) > 1


# --- relays through the Key Managers ---------------------------------------------------


def test_a_relay_over_amount_stores_charges_each_hop_its_cost_at_both_ends() -> None:
    """Three keys over three hops are delivered and held at the destination; each hop's
    sending and receiving copies lose exactly hop_cost_bits in the relay's direction,
    and a relay back pays in the other direction."""
    pools = _pools()
    pools.deposit(np.full(3, 40.0 * UNIT_BITS))
    kms = _kms(pools)
    before = pools.sender.copy()
    [outcome] = kms.submit("n0", _request("k", 0, 3, size=512, count=3), 0.0)
    assert isinstance(outcome, KeyDelivered) and outcome.relay_id == "k.0"
    cost = hop_cost_bits(512, 3)
    assert cost > 3 * 512
    assert (before - pools.sender).tolist() == [[cost, 0.0]] * 3
    assert np.array_equal(pools.receiver, pools.sender)
    assert pools.used.tolist() == [cost] * 3
    assert pools.store("n3").held_count("master", "slave") == 3
    [back] = kms.submit("n3", _request("b", 3, 0, size=256), 0.0)
    assert isinstance(back, KeyDelivered)
    assert (before - pools.sender).tolist() == [[cost, hop_cost_bits(256)]] * 3
    assert pools.store("n0").held_count("master", "slave") == 1
    assert pools.imbalance().tolist() == [0.0] * 3


def test_a_relay_over_a_hop_without_key_fails_and_delivers_nothing() -> None:
    """An empty third hop fails the relay and nothing is held at the destination; the
    hops before it have paid at both ends (pads used before a failure are gone, as in the
    live network) and the empty hop has paid nothing."""
    pools = _pools()
    pools.deposit(np.array([20.0 * UNIT_BITS, 20.0 * UNIT_BITS, 0.0]))
    kms = _kms(pools)
    [outcome] = kms.submit("n0", _request("k", 0, 3), 0.0)
    assert isinstance(outcome, KeyFailed) and "l2" in outcome.reason
    assert pools.store("n3").held_count("master", "slave") == 0
    cost = hop_cost_bits(256)
    assert pools.used.tolist() == [cost, cost, 0.0]
    assert pools.sender[:, 0].tolist() == [10.0 * UNIT_BITS - cost] * 2 + [0.0]
    assert np.array_equal(pools.receiver, pools.sender)


@pytest.mark.parametrize("size", [64, 256, 1000])
def test_relayable_keys_is_the_largest_relay_that_succeeds(size: int) -> None:
    """relayable_keys over amount stores gives a count that relays in one request, and one
    key more fails on the tightest hop."""
    def fresh() -> tuple[AmountPools, InMemoryKMs]:
        pools = _pools()
        pools.deposit(np.array([60.0, 23.0, 41.0]) * UNIT_BITS)
        return pools, _kms(pools)

    pools, kms = fresh()
    stores: dict[str, KeyStore] = {f"n{i}": pools.store(f"n{i}") for i in range(4)}
    count = relayable_keys(stores, _route(0, 3), size, limit=10**6)
    assert 0 < count < 10**6
    assert relayable_keys(stores, _route(0, 3), size, limit=count - 1) == count - 1
    [ok] = kms.submit("n0", _request("k", 0, 3, size, count), 0.0)
    assert isinstance(ok, KeyDelivered)
    assert pools.store("n3").held_count("master", "slave") == count
    pools, kms = fresh()
    [failed] = kms.submit("n0", _request("k", 0, 3, size, count + 1), 0.0)
    assert isinstance(failed, KeyFailed) and "l1" in failed.reason


# --- the rules every key store keeps ------------------------------------------------------


def test_a_take_of_nothing_names_no_units_and_the_receiver_accepts_it() -> None:
    """Zero units: no ranges, nothing changes, and the receiving end takes the empty set."""
    pools = _pools(hops=1)
    pools.deposit(np.array([4.0 * UNIT_BITS]))
    before = _snapshot(pools)
    ranges, pad = pools.store("n0").take_outbound("l0", 0)
    assert ranges == () and pad == b""
    assert pools.store("n1").take_inbound("l0", ranges) == b""
    assert _unchanged(pools, before)


def test_a_block_deposited_twice_counts_once_and_a_full_direction_refuses_more() -> None:
    """Depositing a block again is a no-op; a block that does not fit in its direction's
    half of the capacity is refused whole (PoolFull), as in every store."""
    pools = _pools(hops=1, capacity_bits=4.0 * UNIT_BITS)
    a = pools.store("n0")
    a.deposit("l0", 0, bytes(2 * UNIT_BYTES), outbound=True)
    a.deposit("l0", 0, bytes(2 * UNIT_BYTES), outbound=True)
    assert a.pool_bytes("l0", True) == 2 * UNIT_BYTES and a.room("l0", True) == 0
    with pytest.raises(PoolFull):
        a.deposit("l0", 2, bytes(UNIT_BYTES), outbound=True)
    a.deposit("l0", 1, bytes(UNIT_BYTES), outbound=False)  # the other direction has room
    assert a.pool_bytes("l0", True) == 2 * UNIT_BYTES and a.room("l0", False) == UNIT_BYTES


def test_held_keys_keep_their_ids_and_are_released_once_to_their_slave() -> None:
    """A key_ID is held once; only its slave gets it, once; an abort can drop it."""
    store = _pools(hops=1).store("n1")
    store.hold_keys([HeldKey("k1", "m", "s", b""), HeldKey("k2", "m", "s", b"")], 0.0)
    with pytest.raises(KeyStoreError, match="k1"):
        store.hold_keys([HeldKey("k3", "m", "s", b""), HeldKey("k1", "m", "s", b"")], 0.0)
    assert store.held_count("m", "s") == 2 and store.held_for("k1") == ("m", "s")
    with pytest.raises(NotAuthorized):
        store.release_keys(["k1"], "m", "someone-else")
    assert [k.key_id for k in store.release_keys(["k1"], "m", "s")] == ["k1"]
    with pytest.raises(KeyNotFound):
        store.release_keys(["k1"], "m", "s")
    assert store.held_count("m", "s") == 1 and store.held_for("k3") is None


def test_held_amounts_expire_after_their_ttl() -> None:
    """The twin's store forgets held keys past their time to live, as the others do."""
    store = _pools(hops=1).store("n1")
    store.hold_keys([HeldKey("k1", "m", "s", b"")], 10.0)
    store.hold_keys([HeldKey("k2", "m", "s", b"")], 20.0)
    assert store.expire_held(now=25.0, ttl_s=10.0) == 1
    assert store.held_for("k1") is None and store.held_count("m", "s") == 1
