"""The device emulator makes identical blocks at the modelled rate, in whole blocks that
carry fractional bits over, from the random bytes its driver injects or, for repeatable
runs, from a seed."""

from __future__ import annotations

import math
import secrets

import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.emulator import KeyEmulator, emulator_for_link
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.cn_qcn import build_cn_qcn

LINK = "km:a~b"
BLOCK = 1024  # bytes
BLOCK_BITS = BLOCK * 8


def _emulator(rate: float = 8000.0, seed: int | bytes = 1, block_bytes: int = BLOCK,
              speedup: float = 1.0, start: float = 0.0) -> KeyEmulator:
    return KeyEmulator(LINK, rate, seed=seed, block_bytes=block_bytes, speedup=speedup,
                       start=start)


def test_emulator_makes_whole_blocks_at_its_rate() -> None:
    """10 s at 8,000 bit/s in 1024-byte blocks: floor(80,000 / 8,192) = 9 blocks, 0..8."""
    got = _emulator().blocks(10.0)
    assert [b.block for b in got] == list(range(math.floor(10 * 8000 / BLOCK_BITS)))
    assert all(b.km_link == LINK and len(b.material) == BLOCK for b in got)


def test_fractional_bits_carry_over_across_odd_steps() -> None:
    """After each odd step the total is what one long step gives; numbers never skip."""
    em = _emulator()
    numbers: list[int] = []
    for now in (0.3, 1.7, 1.7, 2.9, 4.45, 7.1, 9.999, 10.0):
        numbers += [b.block for b in em.blocks(now)]
        assert len(numbers) == math.floor(now * 8000 / BLOCK_BITS)
    assert numbers == list(range(9))


def test_speedup_multiplies_the_rate() -> None:
    """Speedup 3 makes three times the bits in the same time."""
    assert len(_emulator(speedup=3.0).blocks(10.0)) == math.floor(10 * 3 * 8000 / BLOCK_BITS)


def test_emulator_counts_from_its_start_time() -> None:
    """An emulator started at t=100 s has made nothing at 100 s and 9 blocks at 110 s."""
    em = _emulator(start=100.0)
    assert em.blocks(100.0) == []
    assert len(em.blocks(110.0)) == 9


def test_going_back_in_time_raises() -> None:
    """A time earlier than the last call's is refused (a ValueError)."""
    em = _emulator()
    em.blocks(5.0)
    with pytest.raises(ValueError, match="now"):
        em.blocks(4.0)
    with pytest.raises(ValueError):
        _emulator(start=1.0).blocks(0.5)


def test_next_block_at_is_when_the_next_block_is_ready() -> None:
    """Calling at next_block_at() gives exactly one block, just before it gives none."""
    em = _emulator(rate=7919.3, seed=3)
    for expected in range(5):
        t = em.next_block_at()
        assert em.blocks(math.nextafter(t, -math.inf)) == []
        assert [b.block for b in em.blocks(t)] == [expected]
    assert _emulator(rate=0.0).next_block_at() == math.inf


def test_a_rate_change_keeps_the_bits_already_made() -> None:
    """Half a block at the old rate plus half at the new one make one block."""
    em = _emulator(rate=BLOCK_BITS)  # one block per second
    assert em.blocks(0.5) == []
    em.set_rate(BLOCK_BITS / 2, 0.5)  # the other half takes one second more
    assert em.blocks(1.49) == []
    assert len(em.blocks(1.5)) == 1


def test_skipping_lets_blocks_go_unmade_and_never_reuses_their_numbers() -> None:
    """A full pool discards what the device makes meanwhile; numbering goes on past it."""
    emulator = KeyEmulator("l", 8192.0, seed=1, block_bytes=1024)
    assert emulator.skip(3.0) == 3
    [block] = emulator.blocks(4.0)
    assert block.block == 3


def test_same_seed_same_blocks_different_seeds_differ() -> None:
    """A seed makes runs repeat; another seed or another KM-link gives other key."""
    def material(em: KeyEmulator) -> list[bytes]:
        return [b.material for b in em.blocks(10.0)]

    assert material(_emulator(seed=7)) == material(_emulator(seed=7))
    assert material(_emulator(seed=b"seven")) == material(_emulator(seed=b"seven"))
    assert material(_emulator(seed=7)) != material(_emulator(seed=8))
    other_link = KeyEmulator("km:a~c", 8000.0, seed=7, block_bytes=BLOCK)
    assert material(other_link) != material(_emulator(seed=7))
    assert len(set(material(_emulator(seed=7)))) == 9  # blocks differ from each other


def test_fresh_key_is_the_injected_random_bytes() -> None:
    """Without a seed every block is exactly what the driver's random_bytes returned."""
    handed: list[bytes] = []

    def random_bytes(n: int) -> bytes:
        handed.append(secrets.token_bytes(n))
        return handed[-1]

    em = KeyEmulator(LINK, 8000.0, random_bytes=random_bytes, block_bytes=BLOCK)
    assert [b.material for b in em.blocks(10.0)] == handed and len(handed) == 9
    assert "seeded=False" in repr(em)


def test_emulator_refuses_bad_parameters() -> None:
    """Blocks are whole store units; rates are finite and not negative; speedup positive;
    the material has exactly one source, which returns what is asked of it."""
    with pytest.raises(ParameterError, match="block_bytes"):
        _emulator(block_bytes=1000)
    with pytest.raises(ParameterError, match="rate_bps"):
        _emulator(rate=-1.0)
    with pytest.raises(ParameterError, match="speedup"):
        _emulator(speedup=0.0)
    with pytest.raises(ParameterError, match="exactly one of random_bytes"):
        KeyEmulator(LINK, 8000.0)
    with pytest.raises(ParameterError, match="exactly one of random_bytes"):
        KeyEmulator(LINK, 8000.0, seed=1, random_bytes=secrets.token_bytes)
    short = KeyEmulator(LINK, 8000.0, random_bytes=lambda n: bytes(n - 32), block_bytes=BLOCK)
    with pytest.raises(ParameterError, match="random_bytes"):
        short.blocks(10.0)


def test_emulator_for_a_link_runs_at_the_links_rate() -> None:
    """The emulator of a QKD-link makes key at link_skr_bps x speedup."""
    net = build_cn_qcn()
    km = net.km_links[0]
    link = net.link[km.path[0]]
    em = emulator_for_link(link, km.id, seed=1, speedup=2.0)
    assert em.km_link == km.id
    assert em.rate_bps == link_skr_bps(link)
    assert len(em.blocks(60.0)) == math.floor(60 * 2 * link_skr_bps(link) / BLOCK_BITS)
