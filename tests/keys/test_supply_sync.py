"""Key supply across a process border: whatever the responder's device still has and
whichever acknowledgements are lost, no end ever holds a block to send with that the
other end does not hold to receive with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qkdnet.keys.pool import Deposit
from qkdnet.keys.supply_sync import (
    KeySupplyAck,
    Pools,
    PoolSync,
    SupplyInitiator,
    responder_deposits,
    unmatched,
)

LINK = "b-c"
BLOCK = 1024
ROOMY = Pools(0, 0, 1 << 20, 1 << 20)  # empty pools with room for 1,024 blocks each way


def _keys(start: int, n: int) -> list[tuple[str, bytes]]:
    return [(f"id-{start + i}", bytes([(start + i) % 256]) * BLOCK) for i in range(n)]


def test_the_initiator_stores_now_only_what_it_receives_with() -> None:
    """Blocks the initiator sends with wait for the acknowledgement; the others are stored
    at once, inbound; numbering goes on from next_block."""
    sync = SupplyInitiator(LINK, next_block=7, synced=True)
    now, supply = sync.plan(_keys(0, 6), ROOMY, now=0.0)
    assert [b.block for b in supply.blocks] == list(range(7, 13))
    sends = {b.block for b in supply.blocks if b.initiator_sends}
    assert sends and len(sends) < 6  # both directions get key
    assert all(not d.outbound and d.block not in sends for d in now)
    assert sync.busy
    stored, discard = sync.acked(KeySupplyAck(LINK, tuple(range(7, 13))))
    assert {d.block for d in stored} == sends and all(d.outbound for d in stored)
    assert discard == [] and not sync.busy


def test_blocks_the_responder_lacks_are_never_sent_with_and_are_discarded() -> None:
    sync = SupplyInitiator(LINK, next_block=0, synced=True)
    now, supply = sync.plan(_keys(0, 4), ROOMY, now=0.0)
    held = (supply.blocks[0].block,)  # its device had only the first key left
    stored, discard = sync.acked(KeySupplyAck(LINK, held))
    assert {d.block for d in stored} <= set(held)
    assert set(discard) == {d.block for d in now} - set(held)
    assert sync.lost_bits == 8 * BLOCK * sum(1 for b in supply.blocks if b.block not in held)
    assert sync.lost_bits == 8 * BLOCK * 3  # each block only this end received is counted


def test_an_abandoned_exchange_keeps_nothing_to_send_with() -> None:
    sync = SupplyInitiator(LINK, next_block=0, synced=True)
    _, supply = sync.plan(_keys(0, 4), ROOMY, now=0.0)
    sync.abandon()
    assert not sync.busy
    kept = sum(1 for b in supply.blocks if b.initiator_sends)
    assert sync.lost_bits == 8 * BLOCK * kept
    assert sync.acked(KeySupplyAck(LINK, (0, 1, 2, 3))) == ([], [])  # a late ack


@given(rounds=st.lists(st.tuples(st.integers(1, 8), st.sets(st.integers(0, 7)),
                                 st.booleans()), min_size=1, max_size=12))
def test_no_end_holds_a_block_to_send_with_that_the_other_lacks(
        rounds: list[tuple[int, set[int], bool]]) -> None:
    """Each round: the initiator takes n keys, the responder's device still has some of
    them, and the acknowledgement arrives or is lost. After every step, each block stored
    outbound at one end is stored (inbound) at the other."""
    sync = SupplyInitiator(LINK, next_block=0, synced=True)
    at_initiator: dict[int, bool] = {}  # block -> outbound there
    at_responder: dict[int, bool] = {}
    taken = 0

    def apply(store: dict[int, bool], deposits: list[Deposit]) -> None:
        for d in deposits:
            store.setdefault(d.block, d.outbound)

    def check() -> None:
        for block, out in at_initiator.items():
            assert not out or at_responder.get(block) is False, block
        for block, out in at_responder.items():
            assert not out or at_initiator.get(block) is False, block

    for n, device_has, ack_arrives in rounds:
        out = sum(BLOCK for o in at_initiator.values() if o)
        now, supply = sync.plan(_keys(taken, n), Pools(out, 0, 1 << 20, 1 << 20), now=0.0)
        taken += n
        apply(at_initiator, now)
        check()
        material = {b.key_id: b"\x00" * BLOCK for i, b in enumerate(supply.blocks)
                    if i in device_has}
        apply(at_responder, responder_deposits(supply, material, ROOMY))
        check()
        held = tuple(b.block for b in supply.blocks if b.key_id in material)
        if ack_arrives:
            stored, discard = sync.acked(KeySupplyAck(LINK, held))
            apply(at_initiator, stored)
            for block in discard:
                at_initiator.pop(block, None)  # discarded: no unit of it is taken again
        else:
            sync.abandon()
            _resynchronise(sync, at_initiator, at_responder)
        check()


def _resynchronise(sync: SupplyInitiator, at_initiator: dict[int, bool],
                   at_responder: dict[int, bool], responder_next: int = 0) -> None:
    """The pool synchronisation both ends run before the initiator's next exchange; the
    responder got blocks below ``responder_next`` (or those it holds) before."""
    assert sync.sync_due(now=0.0, timeout_s=10.0)
    request = sync.sync_request(sorted(at_initiator), now=0.0)
    for block in unmatched(sorted(at_responder), request):
        del at_responder[block]
    reply = PoolSync(LINK, tuple(sorted(at_responder)),
                     max(responder_next, max(at_responder, default=-1) + 1), reply=True)
    for block in sync.synced_with(reply, sorted(at_initiator)):
        del at_initiator[block]
    assert sync.synced and not sync.sync_due(now=0.0, timeout_s=10.0)


@given(rounds=st.lists(st.tuples(st.integers(1, 8), st.booleans(), st.booleans()),
                       min_size=1, max_size=12))
def test_after_a_restart_the_ends_agree_and_no_block_number_is_used_twice(
        rounds: list[tuple[int, bool, bool]]) -> None:
    """Each round: an exchange whose acknowledgement arrives or not, and the initiator
    restarting (its kept blocks gone, numbering from what its store holds) or not. After
    the pool synchronisation the ends hold the same blocks, and no new block takes a number
    the responder held before (which would pair different key under one number)."""
    sync = SupplyInitiator(LINK, next_block=0, synced=True)
    at_initiator: dict[int, bool] = {}
    at_responder: dict[int, bool] = {}
    ever_at_responder: set[int] = set()
    taken = 0
    for n, ack_arrives, restart in rounds:
        out = sum(BLOCK for o in at_initiator.values() if o)
        now, supply = sync.plan(_keys(taken, n), Pools(out, 0, 1 << 20, 1 << 20), now=0.0)
        assert not {b.block for b in supply.blocks} & ever_at_responder
        taken += n
        for d in now:
            at_initiator[d.block] = d.outbound
        for d in responder_deposits(supply, {b.key_id: bytes(BLOCK) for b in supply.blocks},
                                    ROOMY):
            at_responder[d.block] = d.outbound
            ever_at_responder.add(d.block)
        if ack_arrives and not restart:
            stored, _ = sync.acked(KeySupplyAck(LINK, tuple(b.block for b in supply.blocks)))
            for d in stored:
                at_initiator[d.block] = d.outbound
        elif restart:
            sync = SupplyInitiator(LINK, next_block=max(at_initiator, default=-1) + 1)
            _resynchronise(sync, at_initiator, at_responder, max(ever_at_responder) + 1)
        else:
            sync.abandon()
            _resynchronise(sync, at_initiator, at_responder, max(ever_at_responder) + 1)
        if not sync.busy:
            assert set(at_initiator) == set(at_responder)


def test_a_full_direction_takes_no_block_and_the_responder_stores_what_fits() -> None:
    """The initiator's inbound direction is full: every block goes the other way (the
    initiator sends with it); a responder with room for two keeps two and says so."""
    sync = SupplyInitiator(LINK, next_block=0, synced=True)
    now, supply = sync.plan(_keys(0, 4), Pools(0, 10 * BLOCK, 1 << 20, 0), now=0.0)
    assert now == [] and all(b.initiator_sends for b in supply.blocks)
    material = {b.key_id: bytes(BLOCK) for b in supply.blocks}
    kept = responder_deposits(supply, material, Pools(0, 0, 0, 2 * BLOCK))
    assert [d.block for d in kept] == [0, 1] and not any(d.outbound for d in kept)
    stored, _ = sync.acked(KeySupplyAck(LINK, tuple(d.block for d in kept)))
    assert [d.block for d in stored] == [0, 1]
    assert sync.lost_bits == 2 * 8 * BLOCK
