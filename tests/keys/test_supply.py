"""Key supply: the emulator makes identical blocks at the modelled rate, deliver() puts each
block at both ends of its KM-link by the parity rule and all-or-nothing under back-pressure,
and the key-file source hands over each complete device file once, in block order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.keys.emulator import KeyEmulator, emulator_for_link, link_rate_bps
from qkdnet.keys.keyfile import KeyFileSource
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.supply import KeyBlock, KeySource, deliver, outbound_at
from qkdnet.quantum import device_type, skr
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Multiplexing, Network

LINK = "km:a~b"
BLOCK = 1024  # bytes
BLOCK_BITS = BLOCK * 8


def _emulator(rate: float = 8000.0, **kw: object) -> KeyEmulator:
    return KeyEmulator(LINK, rate, BLOCK, **kw)  # type: ignore[arg-type]


# -- the emulator ------------------------------------------------------------------------

def test_emulator_makes_whole_blocks_at_its_rate() -> None:
    """10 s at 8,000 bit/s in 1024-byte blocks: floor(80,000 / 8,192) = 9 blocks, 0..8."""
    got = _emulator(seed=1).blocks(10.0)
    assert [b.block for b in got] == list(range(math.floor(10 * 8000 / BLOCK_BITS)))
    assert all(b.km_link == LINK and len(b.material) == BLOCK for b in got)


def test_fractional_bits_carry_over_across_odd_steps() -> None:
    """After each odd step the total is what one long step gives; numbers never skip."""
    em = _emulator(seed=1)
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


def test_same_seed_same_blocks_different_seeds_differ() -> None:
    """A seed makes runs repeat; another seed, another KM-link or no seed gives other key."""
    def material(em: KeyEmulator) -> list[bytes]:
        return [b.material for b in em.blocks(10.0)]

    assert material(_emulator(seed=7)) == material(_emulator(seed=7))
    assert material(_emulator(seed=b"seven")) == material(_emulator(seed=b"seven"))
    assert material(_emulator(seed=7)) != material(_emulator(seed=8))
    assert material(_emulator()) != material(_emulator())
    other_link = KeyEmulator("km:a~c", 8000.0, BLOCK, seed=7)
    assert material(other_link) != material(_emulator(seed=7))
    assert len(set(material(_emulator(seed=7)))) == 9  # blocks differ from each other


def test_emulator_refuses_bad_parameters() -> None:
    """Blocks are whole store units; rates are finite and not negative; speedup positive."""
    with pytest.raises(ParameterError, match="block_bytes"):
        KeyEmulator(LINK, 8000.0, block_bytes=1000)
    with pytest.raises(ParameterError, match="rate_bps"):
        KeyEmulator(LINK, -1.0)
    with pytest.raises(ParameterError, match="speedup"):
        KeyEmulator(LINK, 8000.0, speedup=0.0)


def test_emulator_is_a_key_source() -> None:
    """Both implementations fit the KeySource protocol."""
    sources: list[KeySource] = [_emulator(), KeyFileSource(Path("."), LINK)]
    assert len(sources) == 2


# -- rates from the quantum layer ------------------------------------------------------------

@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def test_emulator_for_a_backbone_link_runs_at_its_skr(net: Network) -> None:
    """The rate is the device type's SKR at the link's loss with the link's field parameters."""
    km = net.km_links[0]
    link = net.link[km.path[0]]
    device = device_type(link.device_type)
    by_hand = float(skr(device, link.loss_db, device.params.replace(**dict(link.field))))
    em = emulator_for_link(link, km.id, seed=1)
    assert em.km_link == km.id
    assert em.rate_bps == pytest.approx(by_hand, rel=1e-12)
    assert by_hand != pytest.approx(float(skr(device, link.loss_db)))  # field applied
    assert len(em.blocks(60.0)) == math.floor(60 * by_hand / BLOCK_BITS)


def test_a_user_link_behind_an_optical_switch_gets_its_share(net: Network) -> None:
    """A user link makes key only in its time slots: the SKR times 1/(users on the switch)."""
    link = next(lk for lk in net.qkd_links if lk.multiplexing is Multiplexing.OPTICAL_SWITCH)
    users = [lk for lk in net.qkd_links
             if lk.a == link.a and lk.multiplexing is Multiplexing.OPTICAL_SWITCH]
    device = device_type(link.device_type)
    full = float(skr(device, link.loss_db, device.params.replace(**dict(link.field))))
    assert link.time_share == pytest.approx(1 / len(users))
    assert link_rate_bps(link) == pytest.approx(full / len(users), rel=1e-12)
    em = emulator_for_link(link, f"km:{link.a}~{link.b}", speedup=2.0)
    assert em.rate_bps == link_rate_bps(link)
    assert len(em.blocks(10.0)) == math.floor(10 * 2 * full / len(users) / BLOCK_BITS)


# -- delivery to both ends -------------------------------------------------------------------

def test_both_ends_receive_identical_material_with_parity_direction() -> None:
    """Even blocks are outbound at end a and inbound at b; odd blocks the other way; the
    pad one end takes outbound is exactly what the other end takes inbound."""
    a, b = MemoryKeyStore("a"), MemoryKeyStore("b")
    blocks = _emulator(seed=5).blocks(5.0)  # blocks 0..3
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
    blocks = _emulator(seed=5).blocks(5.0)
    for full_end in ("a", "b"):
        a = MemoryKeyStore("a", 2 * BLOCK if full_end == "a" else 1 << 20)
        b = MemoryKeyStore("b", 2 * BLOCK if full_end == "b" else 1 << 20)
        assert deliver(blocks[0], a, b)
        before = (_state(a), _state(b))
        assert not deliver(blocks[2], a, b)  # same direction as block 0: full
        assert (_state(a), _state(b)) == before
    assert deliver(blocks[2], a, b) is False  # still full: the refusal repeats
    assert deliver(blocks[1], a, b)  # the other direction has its own half


def test_key_block_repr_hides_material() -> None:
    """Key material never reaches logs: the repr shows its length only."""
    block = KeyBlock(LINK, 3, bytes(range(32)))
    assert repr(block) == f"KeyBlock(km_link={LINK!r}, block=3, material=<32 bytes>)"
    assert "\\x01" not in repr(block) and "material=b" not in str(block)


def test_key_block_holds_whole_units() -> None:
    """A block is a positive multiple of the store's unit; its number is not negative."""
    with pytest.raises(ParameterError, match="material"):
        KeyBlock(LINK, 0, bytes(UNIT_BYTES + 1))
    with pytest.raises(ParameterError, match="material"):
        KeyBlock(LINK, 0, b"")
    with pytest.raises(ParameterError, match="block"):
        KeyBlock(LINK, -1, bytes(UNIT_BYTES))


# -- key files from a real device ------------------------------------------------------------

def _write(folder: Path, name: str, size: int = 64) -> bytes:
    material = bytes((len(name) + i) % 256 for i in range(size))
    (folder / name).write_bytes(material)
    return material


def test_key_files_are_delivered_once_in_block_order(tmp_path: Path) -> None:
    """New .key files come out in block order, each once; a .tmp file waits for its rename."""
    source = KeyFileSource(tmp_path, LINK)
    one, zero = _write(tmp_path, "1.key"), _write(tmp_path, "0.key", 96)
    two = _write(tmp_path, "2.key.tmp")
    (tmp_path / "notes.txt").write_text("not key")
    first = source.blocks(0.0)
    assert [(b.km_link, b.block, b.material) for b in first] == [(LINK, 0, zero), (LINK, 1, one)]
    assert source.blocks(1.0) == []
    (tmp_path / "2.key.tmp").rename(tmp_path / "2.key")
    five, three = _write(tmp_path, "5.key"), _write(tmp_path, "3.key")
    assert [(b.block, b.material) for b in source.blocks(2.0)] == [
        (2, two), (3, three), (5, five)]
    assert source.blocks(3.0) == []
    assert [b.block for b in source.blocks(0.0)] == []  # `now` is ignored


def test_a_key_file_of_the_wrong_size_is_refused_by_name(tmp_path: Path) -> None:
    """A size that is not a multiple of 32 bytes names the file; nothing is delivered."""
    source = KeyFileSource(tmp_path, LINK)
    _write(tmp_path, "0.key")
    _write(tmp_path, "7.key", 33)
    with pytest.raises(ScenarioError, match=r"7\.key.*33 bytes"):
        source.blocks(0.0)
    (tmp_path / "7.key").unlink()
    assert [b.block for b in source.blocks(0.0)] == [0]


def test_a_key_file_with_a_bad_name_is_refused_by_name(tmp_path: Path) -> None:
    """Only decimal block numbers name key files; one file per block."""
    (tmp_path / "abc.key").write_bytes(bytes(32))
    with pytest.raises(ScenarioError, match=r"abc\.key.*block number"):
        KeyFileSource(tmp_path, LINK).blocks(0.0)
    (tmp_path / "abc.key").unlink()
    _write(tmp_path, "4.key")
    _write(tmp_path, "004.key")
    with pytest.raises(ScenarioError, match="block 4"):
        KeyFileSource(tmp_path, LINK).blocks(0.0)


def test_a_missing_key_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    """A folder that is not there is reported with its path."""
    with pytest.raises(ScenarioError, match="missing"):
        KeyFileSource(tmp_path / "missing", LINK).blocks(0.0)


def test_skipping_lets_blocks_go_unmade_and_never_reuses_their_numbers() -> None:
    """A full pool discards what the device makes meanwhile; numbering goes on past it."""
    emulator = KeyEmulator("l", 8192.0, block_bytes=1024)
    assert emulator.skip(3.0) == 3
    [block] = emulator.blocks(4.0)
    assert block.block == 3
