"""The key supply of the live network: an emulator on every direct KM-link between served
nodes, pumped into both ends' key stores on the event loop, and what the KMs report of each
KM-link to the control and management layers.

A store that cannot be written (disk full, read-only, I/O error) stops nothing but its own
KM-links: their key is discarded unmade, as a device's full buffer discards it, and the
store is tried again with back-off (:class:`~qkdnet.live.store_faults.StoreFaults`) until its
folder takes a scratch file of new room and the store a write; a block that reached only
one end is delivered again first, so the two ends never diverge."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from qkdnet.errors import KeyStoreError, StoreFault
from qkdnet.keys.link_state import KMLinkState, km_link_state
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply import deliver, direction_of
from qkdnet.live.operator_faults import OperatorFaults
from qkdnet.live.store_faults import StoreFaults, check_room
from qkdnet.quantum.emulator import KeyEmulator, emulator_for_link
from qkdnet.quantum.key_source import KeyBlock
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.model import KMLinkKind, Network


@dataclass(frozen=True)
class _Supply:
    km_link: str
    a: str
    b: str
    emulator: KeyEmulator
    link: str = ""


class SupplyPump:
    """Fills the ``stores`` (by node) of ``network`` from the QKD-links that ``faults``
    leave up."""

    def __init__(self, network: Network, stores: Mapping[str, SQLiteKeyStore],
                 faults: OperatorFaults) -> None:
        self.network = network
        self.stores = stores
        self.faults = faults
        self._supplies: list[_Supply] = []
        self._nodes = list(stores)
        self._next_supply = 0
        self._next_checkpoint = 0
        self.store_faults = StoreFaults()
        # km_link -> a block a store fault left at one end only, delivered again first
        self._unfinished: dict[str, tuple[KeyBlock, bool]] = {}

    def start(self, now: float, speedup: float = 1.0, prefill_bits: int = 0) -> None:
        """Start an emulator on every direct KM-link between served nodes at time ``now``
        (s), making key at the link's modelled rate x ``speedup``, with ``prefill_bits`` made
        at once. After a restart each resumes past the highest block either end holds; a
        block only one end received (a crash between the two deposits) is discarded."""
        for km in self.network.km_links:
            if km.kind is not KMLinkKind.DIRECT or km.a not in self.stores \
                    or km.b not in self.stores:
                continue
            ends = (self.stores[km.a], self.stores[km.b])
            resume = [store.next_block(km.id) for store in ends]
            if resume[0] != resume[1]:
                ends[resume.index(max(resume))].discard_block(km.id, max(resume) - 1)
            link = self.network.link[km.path[0]]
            speed = link_skr_bps(link) * speedup
            ahead = prefill_bits / speed if speed > 0 else 0.0
            self._supplies.append(_Supply(km.id, km.a, km.b, emulator_for_link(
                link, km.id, random_bytes=secrets.token_bytes, speedup=speedup,
                start=now - ahead, first_block=max(resume)), link.id))

    def pump(self, now: float, budget_s: float | None = None) -> int:
        """Deliver the blocks the emulators have made up to ``now`` (s); returns how many
        were deposited. A link whose pools are full at either end discards its new blocks
        unmade. With ``budget_s`` the work stops after about that much CPU time and the
        next call goes on with the links not yet served (they keep their blocks), so the
        event loop is never held long."""
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        faulty = self._retry_faulty(now)
        self._checkpoint_next(faulty, now)
        deposited = 0
        down = self.faults.down_links()
        for _ in range(len(self._supplies)):
            s = self._supplies[self._next_supply]
            self._next_supply = (self._next_supply + 1) % len(self._supplies)
            if s.a in faulty or s.b in faulty:
                s.emulator.skip(now)
            else:
                try:
                    deposited += self._supply(s, now, deadline, s.link in down)
                except KeyStoreError as exc:
                    s.emulator.skip(now)
                    self._failed(exc, (s.a, s.b), now)
                    faulty = self.store_faults.nodes
            if deadline is not None and time.perf_counter() > deadline:
                break
        return deposited

    def store_fault(self, node: str) -> str | None:
        """Why ``node``'s key store cannot be written (SQLite's words), None when it can: a
        fault the supply found, or one a KM's write found since."""
        return self.store_faults.cause(node) or self.stores[node].write_fault

    def _retry_faulty(self, now: float) -> frozenset[str]:
        """Take up the faults the KMs' writes found, try again each faulty store whose wait
        is over, and return the nodes still at fault."""
        for node, store in self.stores.items():
            if store.write_fault is not None and node not in self.store_faults.nodes:
                self.store_faults.failed(node, store.write_fault, now)
        for node in self.store_faults.nodes:
            if not self.store_faults.due(node, now):
                continue
            try:
                check_room(self.stores[node].path)
            except OSError as exc:
                # the same fault goes on: keep SQLite's words for it, which the KME shows
                self.store_faults.failed(node, self.store_faults.cause(node) or str(exc), now)
                continue
            try:
                self.stores[node].probe()
            except KeyStoreError as exc:
                self._failed(exc, (node,), now)
            else:
                self.store_faults.recovered(node)
        return self.store_faults.nodes

    def _failed(self, exc: KeyStoreError, nodes: tuple[str, ...], now: float) -> None:
        """A store of ``nodes`` raised ``exc``: the store that named itself at fault, or
        else each of ``nodes``, is tried again after a back-off."""
        if isinstance(exc, StoreFault):
            self.store_faults.failed(exc.node, exc.cause, now)
            return
        for node in nodes:
            self.store_faults.failed(node, str(exc), now)

    def link_states(self) -> list[KMLinkState]:
        """What the KMs report of each supplied KM-link (:func:`km_link_state`): key, the
        modelled refill (bit/s, with the speed-up), and up."""
        down = self.faults.down_links()
        return [self._state(s, s.link not in down) for s in self._supplies]

    def _state(self, s: _Supply, up: bool) -> KMLinkState:
        rate = s.emulator.rate_bps * s.emulator.speedup
        try:
            return km_link_state(s.km_link, self.stores[s.a], self.stores[s.b], rate, up)
        except KeyStoreError:
            # a store that cannot even be read (an I/O error) has no key to offer; its
            # fault is raised as the node's store alarm
            return KMLinkState(s.km_link, 0.0, rate, up)

    def set_rates(self, rates_bps: Mapping[str, float], now: float) -> None:
        """From ``now`` (s) on, make key on each QKD-link named in ``rates_bps`` at its new
        modelled rate (bit/s, before the speed-up); key made before ``now`` is kept."""
        for s in self._supplies:
            rate = rates_bps.get(s.link)
            if rate is not None:
                s.emulator.set_rate(rate, now)

    def checkpoint_all(self) -> None:
        """Checkpoint every store (after a large prefill, before serving)."""
        for store in self.stores.values():
            store.checkpoint()

    def _checkpoint_next(self, faulty: frozenset[str], now: float) -> None:
        """Checkpoint one store per pump, in turn, so used key leaves the WAL files (not a
        store at fault: its tries are :meth:`_retry_faulty`'s)."""
        if self._nodes:
            self._next_checkpoint = (self._next_checkpoint + 1) % len(self._nodes)
            node = self._nodes[self._next_checkpoint]
            if node not in faulty:
                try:
                    self.stores[node].checkpoint()
                except KeyStoreError as exc:
                    self._failed(exc, (node,), now)

    def _supply(self, s: _Supply, now: float, deadline: float | None, down: bool) -> int:
        """Deposit a link's new blocks (none while it is ``down``); past ``deadline`` the
        rest are lost, as key is when a device's buffer overflows."""
        a, b = self.stores[s.a], self.stores[s.b]
        if down or max(min(a.room(s.km_link, True), b.room(s.km_link, False)),
                       min(a.room(s.km_link, False), b.room(s.km_link, True))
                       ) < s.emulator.block_bytes:
            s.emulator.skip(now)
            return 0
        deposited = 0
        unfinished = self._unfinished.pop(s.km_link, None)
        blocks: list[tuple[KeyBlock, bool | None]] = [(k, None) for k in s.emulator.blocks(now)]
        if unfinished is not None:
            blocks.insert(0, unfinished)
        for i, (block, a_out) in enumerate(blocks):
            if i and deadline is not None and time.perf_counter() > deadline:
                break
            if a_out is None:
                a_out = direction_of(block, a, b)
            try:
                deposited += deliver(block, a, b, a_out)
            except KeyStoreError:
                # one end may hold it: delivering it again, in the direction chosen now,
                # completes the other (a deposit of a block already held is a no-op)
                self._unfinished[s.km_link] = (block, a_out)
                raise
        return deposited
