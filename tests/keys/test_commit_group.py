"""Group commit of SQLite key stores: the writes of a round's members share one transaction
per store, committed in route order when the round ends; a store that cannot commit is
rolled back with every store after it, so no pad is ever used twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import qkdnet
from qkdnet.errors import StoreFault
from qkdnet.keys.commit_group import CommitGroup
from qkdnet.keys.pool import UnitRange
from qkdnet.keys.store import SQLiteKeyStore

AB, BC = "km:A~B", "km:B~C"
UNITS = 8  # units per deposited block
CHAIN = ("A", "B", "C")


def _open(folder: Path, group: CommitGroup | None) -> dict[str, SQLiteKeyStore]:
    stores = {n: SQLiteKeyStore(folder / f"{n}.sqlite", n, auto_checkpoint=False)
              for n in CHAIN}
    for store in stores.values():
        store.group = group
    return stores


def _deposit(stores: dict[str, SQLiteKeyStore], block: int = 0) -> None:
    """A block of each link at both its ends (outside any member: committed at once)."""
    for link, sender, receiver in ((AB, "A", "B"), (BC, "B", "C")):
        material = bytes([block + 1, ord(sender)]) * (16 * UNITS)
        stores[sender].deposit(link, block, material, True)
        stores[receiver].deposit(link, block, material, False)


def _relay(stores: dict[str, SQLiteKeyStore], units: int = 2
           ) -> tuple[tuple[UnitRange, ...], tuple[UnitRange, ...]]:
    """One relay's store calls A -> B -> C: each hop's sender takes outbound, its receiver
    takes the same units inbound (and gets the same bytes)."""
    first, pad = stores["A"].take_outbound(AB, units)
    assert stores["B"].take_inbound(AB, first) == pad
    second, pad = stores["B"].take_outbound(BC, units)
    assert stores["C"].take_inbound(BC, second) == pad
    return first, second


def _units(stores: dict[str, SQLiteKeyStore]) -> dict[str, int]:
    """Unused units per pool end along the chain."""
    return {"A>": stores["A"].pool_bytes(AB, True) // 32,
            "B<": stores["B"].pool_bytes(AB, False) // 32,
            "B>": stores["B"].pool_bytes(BC, True) // 32,
            "C<": stores["C"].pool_bytes(BC, False) // 32}


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[CommitGroup, dict[str, SQLiteKeyStore]]]:
    group = CommitGroup()
    stores = _open(tmp_path, group)
    _deposit(stores)
    yield group, stores
    for store in stores.values():
        store.close()


def test_members_of_a_round_commit_each_store_once(
        chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]]) -> None:
    """Three relays in one round: three commits (one per store), not nine; every member
    is settled without a failure only once the round has ended."""
    group, stores = chain
    members = []
    for _ in range(3):
        with group.member(CHAIN) as member:
            _relay(stores)
        members.append(member)
    assert group.open and not any(m.settled for m in members)
    assert group.commit() == members
    assert all(m.settled and m.failure is None for m in members)
    assert (group.rounds, group.commits, group.open) == (1, 3, False)
    assert _units(stores) == {"A>": 2, "B<": 2, "B>": 2, "C<": 2}


def test_a_member_that_writes_nothing_is_settled_at_once(
        chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]]) -> None:
    """Reads only (a status call): nothing to wait for, no round opened."""
    group, stores = chain
    with group.member(("B",)) as member:
        assert stores["B"].pool_bytes(AB, False) == UNITS * 32
    assert member.settled and not group.open


CRASH_CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from test_commit_group import CHAIN, _open, _relay
    from qkdnet.keys.commit_group import CommitGroup
    group = CommitGroup()
    stores = _open(Path(sys.argv[1]), group)
    with group.member(CHAIN):
        _relay(stores)
    if sys.argv[2] == "commit":
        group.commit()
    os._exit(0)  # a crash: no close, no checkpoint
""")


@pytest.mark.parametrize("end", ["commit", "crash"])
def test_a_round_is_durable_once_committed_and_absent_after_a_crash_before(
        tmp_path: Path, end: str) -> None:
    """A process that dies before its round commits leaves every store as it was (the
    members were never answered); one that dies after leaves the takes done."""
    stores = _open(tmp_path, None)
    _deposit(stores)
    for store in stores.values():
        store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(qkdnet.__file__).parents[1])}
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(tmp_path), end,
                            str(Path(__file__).parent)],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == 0, child.stderr
    stores = _open(tmp_path, None)
    left = 6 if end == "commit" else UNITS
    assert _units(stores) == dict.fromkeys(("A>", "B<", "B>", "C<"), left)
    for store in stores.values():
        store.close()


def test_a_member_against_the_rounds_order_commits_the_round_first(
        chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]]) -> None:
    """A relay C -> A after one A -> C in the same round would need C to commit both
    before and after A: the round ends before the second member starts. One in the same
    order joins."""
    group, stores = chain
    with group.member(CHAIN) as first:
        _relay(stores)
    with group.member(("A", "B")) as same_way:
        pass
    assert not first.settled and same_way.settled
    with group.member(("C", "B", "A")) as other_way:
        assert first.settled and first.failure is None and not group.open
        stores["C"].hold_keys([], 0.0)
    assert not other_way.settled


def test_a_write_outside_a_member_commits_the_round_first(
        chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]]) -> None:
    """The key supply's deposit (or a checkpoint, or closing) on a store of the round is
    its own transaction: the round ends before it."""
    group, stores = chain
    with group.member(CHAIN) as member:
        _relay(stores)
    _deposit(stores, block=1)
    assert member.settled and not group.open
    assert _units(stores) == dict.fromkeys(("A>", "B<", "B>", "C<"), 2 * UNITS - 2)
    with group.member(CHAIN) as member:
        _relay(stores)
    stores["C"].checkpoint()
    assert member.settled and not group.open


def test_members_do_not_nest(chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]]) -> None:
    """A member inside a member is a programming error, said at once."""
    group, _ = chain
    with group.member(("A",)), pytest.raises(RuntimeError, match="already open"), \
            group.member(("B",)):
        pass


def _immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="chattr +i needs root")
def test_a_store_that_cannot_commit_rolls_back_with_every_store_after_it(
        chain: tuple[CommitGroup, dict[str, SQLiteKeyStore]], tmp_path: Path) -> None:
    """B's files turn immutable: A (before B in the route) commits, B and C roll back and
    the member learns B's fault. B's inbound units from A stay unused for good (A never
    sends them again), B's outbound and C's inbound still match, so once B can write the
    chain relays on and no unit is taken twice."""
    group, stores = chain
    probe = tmp_path / "probe"
    probe.touch()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    _immutable([probe], False)
    with group.member(CHAIN) as member:
        first, second = _relay(stores)
    b_files = sorted(tmp_path.glob("B.sqlite*"))
    _immutable(b_files, True)
    try:
        group.commit()
    finally:
        _immutable(b_files, False)
    assert isinstance(member.failure, StoreFault) and member.failure.node == "B"
    assert _units(stores) == {"A>": 6, "B<": 8, "B>": 8, "C<": 8}
    stores["B"].probe()
    with group.member(CHAIN) as again:
        first_again, second_again = _relay(stores)
    group.commit()
    assert again.failure is None
    assert set(first_again).isdisjoint(first)  # A never sends its spent units again
    assert second_again == second  # B's rolled-back take is B's and C's next, both ends
    assert _units(stores) == {"A>": 4, "B<": 6, "B>": 6, "C<": 6}
