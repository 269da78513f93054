"""Key supply: deliver() puts each device block at both ends of its KM-link by the parity
rule, and all or nothing under back-pressure."""

from __future__ import annotations

from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.supply import deliver, outbound_at
from qkdnet.quantum.emulator import KeyEmulator
from qkdnet.quantum.key_source import KeyBlock

LINK = "km:a~b"
BLOCK = 1024  # bytes


def _blocks(seconds: float) -> list[KeyBlock]:
    """The blocks a seeded emulator makes in ``seconds`` at 8,000 bit/s."""
    return KeyEmulator(LINK, 8000.0, seed=5, block_bytes=BLOCK).blocks(seconds)


def test_both_ends_receive_identical_material_with_parity_direction() -> None:
    """Even blocks are outbound at end a and inbound at b; odd blocks the other way; the
    pad one end takes outbound is exactly what the other end takes inbound."""
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
    assert [outbound_at(n, end_a=True) for n in range(4)] == [True, False, True, False]
    assert [outbound_at(n, end_a=False) for n in range(4)] == [False, True, False, True]


def _state(store: MemoryKeyStore) -> tuple[int, int, int]:
    return (store.room(LINK, True), store.pool_bytes(LINK, outbound=True),
            store.pool_bytes(LINK, outbound=False))


def test_deliver_deposits_nothing_when_either_end_is_full() -> None:
    """Back-pressure at one end: deliver returns False and the other end is unchanged; the
    other direction, with room, still fills."""
    blocks = _blocks(5.0)
    for full_end in ("a", "b"):
        a = MemoryKeyStore("a", 2 * BLOCK if full_end == "a" else 1 << 20)
        b = MemoryKeyStore("b", 2 * BLOCK if full_end == "b" else 1 << 20)
        assert deliver(blocks[0], a, b)
        before = (_state(a), _state(b))
        assert not deliver(blocks[2], a, b)  # same direction as block 0: full
        assert (_state(a), _state(b)) == before
    assert deliver(blocks[2], a, b) is False  # still full: the refusal repeats
    assert deliver(blocks[1], a, b)  # the other direction has its own half
