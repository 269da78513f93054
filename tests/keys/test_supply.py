"""Key supply: deliver() puts each device block at both ends of its KM-link, outbound at
the end whose outbound pool holds less (parity on a tie), and all or nothing under
back-pressure."""

from __future__ import annotations

from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.supply import deliver, direction_of
from qkdnet.quantum.emulator import KeyEmulator
from qkdnet.quantum.key_source import KeyBlock

LINK = "km:a~b"
BLOCK = 1024  # bytes


def _blocks(seconds: float) -> list[KeyBlock]:
    """The blocks a seeded emulator makes in ``seconds`` at 8,000 bit/s."""
    return KeyEmulator(LINK, 8000.0, seed=5, block_bytes=BLOCK).blocks(seconds)


def test_both_ends_receive_identical_material_the_directions_taking_turns() -> None:
    """With no key used, blocks alternate (0 outbound at a, 1 at b, ...): each end's
    outbound pool is the other's inbound, and the pad one end takes outbound is exactly
    what the other end takes inbound."""
    a, b = MemoryKeyStore("a"), MemoryKeyStore("b")
    blocks = _blocks(5.0)  # blocks 0..3
    assert all(deliver(block, a, b) for block in blocks)
    for store in (a, b):
        assert store.pool_bytes(LINK, outbound=True) == 2 * BLOCK
        assert store.pool_bytes(LINK, outbound=False) == 2 * BLOCK
    units = 2 * BLOCK // UNIT_BYTES
    for sender, receiver, parity in ((a, b, 0), (b, a, 1)):
        ranges, pad = sender.take_outbound(LINK, units)
        assert {r.block % 2 for r in ranges} == {parity}
        assert receiver.take_inbound(LINK, ranges) == pad
        assert pad == b"".join(k.material for k in blocks if k.block % 2 == parity)


def test_key_used_one_way_is_made_for_that_way() -> None:
    """While a sends and b does not, every new block goes to a's outbound pool: a link
    asked for key one way serves that way at its whole rate."""
    a, b = MemoryKeyStore("a"), MemoryKeyStore("b")
    blocks = _blocks(9.0)  # blocks 0..7
    assert deliver(blocks[0], a, b) and deliver(blocks[1], a, b)
    for block in blocks[2:]:
        a.take_outbound(LINK, a.pool_bytes(LINK, True) // UNIT_BYTES)  # a sends it all
        assert direction_of(block, a, b) is True
        assert deliver(block, a, b)
    assert a.pool_bytes(LINK, True) == BLOCK and b.pool_bytes(LINK, True) == BLOCK
    assert b.pool_bytes(LINK, False) == 7 * BLOCK  # a's blocks: 0 and 2..7, none relayed


def _state(store: MemoryKeyStore) -> tuple[int, int, int]:
    return (store.room(LINK, True), store.pool_bytes(LINK, outbound=True),
            store.pool_bytes(LINK, outbound=False))


def test_deliver_deposits_nothing_when_either_end_is_full() -> None:
    """Back-pressure at one end: when the direction a block would serve is full there,
    deliver returns False and neither end changes; the refusal repeats."""
    blocks = _blocks(5.0)
    for full_end in ("a", "b"):
        a = MemoryKeyStore("a", 2 * BLOCK if full_end == "a" else 1 << 20)
        b = MemoryKeyStore("b", 2 * BLOCK if full_end == "b" else 1 << 20)
        assert deliver(blocks[0], a, b) and deliver(blocks[1], a, b)  # one block each way
        before = (_state(a), _state(b))
        assert not deliver(blocks[2], a, b)  # a tie: to a, whose direction is full
        assert (_state(a), _state(b)) == before
        assert deliver(blocks[2], a, b) is False  # still full: the refusal repeats
