"""Group commit: the writes of many calls to the SQLite key stores of one process, each
store committed once per round instead of once per call.

Why: a commit is most of a write's cost (the WAL frames of the pages it changed, ~18 us on
the development machine), and a relay over ``n`` hops commits ``n`` stores. With ``k``
relays in a round, each store they cross commits once for all ``k``. The live driver
closes a round at the next turn of its event loop and answers each call only once the
round it wrote in has committed (:attr:`Member.settled`), so nothing is delivered that a
crash could take back.

Rules, and why they keep a pad used once and lose no key:

- A call's writes join the round only inside :meth:`CommitGroup.member`. A write to a store
  of the round from anywhere else (the key supply, a timer, a checkpoint, closing) first
  commits the round, so that write is its own transaction as before.
- Stores commit in the order of the members' routes, each route's nodes in order: a pad's
  sender (its outbound take) commits before its receiver (the inbound take of the same
  units). A member whose route runs against the round's order (a relay the other way)
  commits the round before it starts.
- When a store fails to commit (a disk fault), it and every store after it roll back.
  So no receiver keeps a take whose sender rolled back, which would have the sender use
  those units again; the other way round (sender committed, receiver rolled back) leaves
  units unused for good at the receiver, which loses key but never reuses it.
- Each member learns, once settled, the fault of the first store it wrote that did not
  commit (:attr:`Member.failure`), or None: its caller answers with an error, and what it
  wrote is gone with the rollback (held keys stay held, a release is undone).

Sans-I/O: the group never waits; its owner decides when a round ends (:meth:`commit`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qkdnet.errors import KeyStoreError

__all__ = ["CommitGroup", "GroupedStore", "Member"]


class GroupedStore(Protocol):
    """What a store of a group does for it (:class:`~qkdnet.keys.store.SQLiteKeyStore`)."""

    node: str

    def begin_round(self) -> None:
        """Open the store's transaction for the round (KeyStoreError if it cannot)."""

    def end_round(self, commit: bool) -> KeyStoreError | None:
        """Commit (or roll back) the round's transaction; the error if the commit failed."""


@dataclass(eq=False)
class Member:
    """One call's part of a round: the nodes of its route, the stores it wrote, and, once
    the round has committed, whether all of them did."""

    nodes: tuple[str, ...]
    wrote: set[str] = field(default_factory=set)
    settled: bool = False
    failure: KeyStoreError | None = None


class CommitGroup:
    """The open round of a set of stores (each store given this group as its ``group``)."""

    def __init__(self) -> None:
        self._rank: dict[str, int] = {}  # node -> its place in the round's commit order
        self._joined: list[GroupedStore] = []
        self._members: list[Member] = []
        self._current: Member | None = None
        #: Rounds committed, and how many stores they committed in all (for benchmarks).
        self.rounds = 0
        self.commits = 0

    @property
    def open(self) -> bool:
        """Whether a round has uncommitted writes."""
        return bool(self._joined)

    @contextlib.contextmanager
    def member(self, nodes: Sequence[str]) -> Iterator[Member]:
        """Within the block, the stores' writes join the round as ``nodes``'s (a route's
        nodes in hop order, or one node); members do not nest."""
        if self._current is not None:
            raise RuntimeError("a member of the round is already open")
        if not self._fits(nodes):
            self.commit()
        for node in nodes:
            self._rank.setdefault(node, len(self._rank))
        member = Member(tuple(nodes))
        self._current = member
        try:
            yield member
        finally:
            self._current = None
            if member.wrote:
                self._members.append(member)
            else:
                member.settled = True

    def writing(self, store: GroupedStore, joined: bool) -> None:
        """Called by ``store`` before each write (``joined``: its transaction is the
        round's): inside a member the write joins the round, outside one it first commits
        the round the store is in."""
        member = self._current
        if member is None:
            if joined:
                self.commit()
            return
        if not joined:
            store.begin_round()
            self._joined.append(store)
        member.wrote.add(store.node)

    def commit(self) -> list[Member]:
        """End the round: commit its stores in order, roll back from the first that fails;
        settle its members and return them."""
        joined, members, rank = self._joined, self._members, self._rank
        self._joined, self._members, self._rank = [], [], {}
        joined.sort(key=lambda s: rank.get(s.node, len(rank)))
        failed: dict[str, KeyStoreError] = {}
        first: KeyStoreError | None = None
        for store in joined:
            if first is None:
                first = store.end_round(commit=True)
                if first is not None:
                    failed[store.node] = first
            else:
                store.end_round(commit=False)
                failed[store.node] = first
        for member in members:
            member.settled = True
            member.failure = next((failed[n] for n in member.nodes if n in failed and
                                   n in member.wrote), None)
        if joined:
            self.rounds += 1
            self.commits += len(joined)
        return members

    def _fits(self, nodes: Sequence[str]) -> bool:
        """Whether ``nodes`` in order keep the round's commit order (new nodes go last)."""
        last, new = -1, len(self._rank)
        for node in nodes:
            place = self._rank.get(node)
            if place is None:
                place, new = new, new + 1
            if place <= last:
                return False
            last = place
        return True
