"""The key supply of the live network: an emulator on every direct KM-link between served
nodes, pumped into both ends' key stores on the event loop, and what the KMs report of each
KM-link to the control and management layers.

How a pump shares its time (:meth:`SupplyPump.pump`): the emulators only count the blocks
their links have completed; blocks are made only as fast as the stores take them. Each pump
first works out how many blocks it can store in its budget (from the measured cost of a
block), shares that number among the links with blocks waiting in turns (each link up to
:data:`TURN_BLOCKS` of them, the next pump going on after the last link served, so every
link has its turn within a few pumps and each store commits many blocks at once), makes
those blocks and gives each store
all of its blocks in one transaction (:meth:`~qkdnet.keys.pool.KeyStore.deposit_many`, at
most :data:`MAX_BATCH_BLOCKS` at a time). The blocks a link has not been given time for
wait in its device, made on a later pump; a device holds at most :data:`BACKLOG_S` of its
key, and what it cannot hold is lost and counted (:attr:`SupplyPump.backlog_lost_bits`). A
block that fits in neither direction of its pools is discarded unmade and counted
(:attr:`SupplyPump.discarded_full_bits`), as a device whose key buffer is full discards key;
such a link is looked at again only after :data:`FULL_RECHECK_S`, and its room counted
again only if a store at either end may have had key taken since it was full (it has written
since, or the pump checkpointed it: a take writes) or :data:`FULL_RECOUNT_S` has passed;
otherwise what its device made meanwhile is just discarded and counted. A store is
checkpointed only when it has written since its last checkpoint, so an idle network's pump
(every pool full) costs next to nothing.

A store that cannot be written (disk full, read-only, I/O error) stops nothing but its own
KM-links: their key is discarded unmade, as a device's full buffer discards it, and the
store is tried again with back-off (:class:`~qkdnet.live.store_faults.StoreFaults`) until its
folder takes a scratch file of new room and the store a write; a block that reached only
one end is delivered again first, so the two ends never diverge."""

from __future__ import annotations

import bisect
import math
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from qkdnet.errors import KeyStoreError, PoolFull, StoreFault
from qkdnet.keys.link_state import KMLinkState, km_link_state
from qkdnet.keys.pool import Deposit
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply import outbound_at_a
from qkdnet.live.operator_faults import OperatorFaults
from qkdnet.live.store_faults import StoreFaults, check_room
from qkdnet.quantum.emulator import KeyEmulator, emulator_for_link
from qkdnet.quantum.key_source import KeyBlock
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.model import KMLinkKind, Network

#: Most blocks one store takes in one transaction (bounds the time a transaction holds the
#: event loop, whatever the budget).
MAX_BATCH_BLOCKS = 512
#: Key a link's device keeps while the pump has no time for it (s of the link's output):
#: what it makes beyond is lost and counted.
BACKLOG_S = 10.0
#: A device keeps at least this many blocks waiting, however slow its link.
BACKLOG_MIN_BLOCKS = 64
#: The cost of one block at both ends (s of the pump's time) assumed before any is measured.
FIRST_BLOCK_COST_S = 100e-6
#: How long the pump leaves a link whose pools have no room for a block before it looks
#: again (s): what its device makes meanwhile is discarded and counted then. Key a KM takes
#: out of such a pool is refilled at most this much later; an idle network's pump then
#: costs next to nothing.
FULL_RECHECK_S = 0.5
#: Longest time a full link's room goes uncounted while neither end's store shows that key
#: may have been taken (s): bounds what a take the pump could not see would wait.
FULL_RECOUNT_S = 5.0
#: Least time between two checkpoints of one store (s): how long a copy of used key may
#: stay in a busy store's WAL, beside the one store a pump checkpoints in turn.
CHECKPOINT_EVERY_S = 1.0
#: Pumps over which every store is asked once whether it has written (a share a pump): a
#: store first written after a quiet spell is found within this many pumps.
CHECKPOINT_SCAN_PUMPS = 4
#: Most blocks one link is given in a pump's turn (:func:`_turn_shares`).
TURN_BLOCKS = 32
#: Fewest blocks a pump must deposit to measure their cost: a pump that tops up a block or
#: two pays mostly its transactions, and would make blocks look dear and the budget small.
MEASURED_BLOCKS = 16
#: Weight of the newest measurement in the running cost of a block.
COST_WEIGHT = 0.2


@dataclass
class _Supply:
    km_link: str
    a: str
    b: str
    emulator: KeyEmulator
    link: str = ""
    #: Until when (s) the pump leaves the link alone: its pools had no room for a block.
    full_until: float = float("-inf")
    #: Blocks its pools had room for at least, when last counted less those deposited
    #: since (a KM's take only adds room): up to this many need no count of the room.
    fit_hint: int = 0
    #: When its pools were last found without room for a block (s; -inf: not full), and
    #: the pump's checkpoint count then (a later checkpoint of an end may hide a take).
    full_since: float = float("-inf")
    full_checkpoints: int = 0
    #: Blocks a store fault left at one end only (with their direction: outbound at a),
    #: delivered again first.
    unfinished: list[tuple[KeyBlock, bool]] = field(default_factory=list)

    @property
    def backlog_blocks(self) -> int:
        """Most blocks the link's device keeps waiting."""
        em = self.emulator
        return max(BACKLOG_MIN_BLOCKS,
                   int(em.rate_bps * em.speedup * BACKLOG_S / em.block_bits))


class SupplyPump:
    """Fills the ``stores`` (by node) of ``network`` from the QKD-links that ``faults``
    leave up, but for the KM-links in ``skip``."""

    def __init__(self, network: Network, stores: Mapping[str, SQLiteKeyStore],
                 faults: OperatorFaults, skip: Collection[str] = ()) -> None:
        self.network = network
        self._skip = frozenset(skip)  # KM-links whose key comes from elsewhere
        self.stores = stores
        self.faults = faults
        self._supplies: list[_Supply] = []
        self._order: dict[str, int] = {}  # KM-link -> its place in _supplies (start())
        self._nodes = list(stores)
        self._store_list = [stores[node] for node in self._nodes]
        #: Stores asked per pump whether they have written, from position _scan_next on;
        #: positions of those found written and not checkpointed since.
        self._scan_share = max(1, math.ceil(len(self._store_list) / CHECKPOINT_SCAN_PUMPS))
        self._scan_next = 0
        self._found_written: set[int] = set()
        #: Position (in the links' order) of the last link a pump served: turns go on after it.
        self._last_served = -1
        self._next_checkpoint = 0
        #: When (s) each store was last checkpointed by the pump.
        self._checkpointed: dict[str, float] = {}
        #: Checkpoints the pump has made, and each store's count at its last one.
        self._checkpoints = 0
        self._checkpoint_count: dict[str, int] = {}
        self.store_faults = StoreFaults()
        #: Key (bits) per KM-link discarded because neither direction of its pools had
        #: room for it (at either end), since start.
        self.discarded_full_bits: dict[str, int] = {}
        #: Key (bits) per KM-link its device could not keep while the pump had no time
        #: for it (more than BACKLOG_S waiting), since start.
        self.backlog_lost_bits: dict[str, int] = {}
        #: Blocks deposited at both ends since start.
        self.deposited_blocks = 0
        #: The running cost of one block at both ends (s): made, stored, committed.
        self.block_cost_s = FIRST_BLOCK_COST_S

    def start(self, now: float, speedup: float = 1.0, prefill_bits: int = 0) -> None:
        """Start an emulator on every direct KM-link between served nodes at time ``now``
        (s), making key at the link's modelled rate x ``speedup``, with ``prefill_bits`` made
        at once. After a restart each resumes past the highest block either end holds;
        blocks only one end received (a crash between the two ends' deposits) are
        discarded."""
        for km in self.network.km_links:
            if km.kind is not KMLinkKind.DIRECT or km.a not in self.stores \
                    or km.b not in self.stores or km.id in self._skip:
                continue
            ends = (self.stores[km.a], self.stores[km.b])
            resume = [store.next_block(km.id) for store in ends]
            if resume[0] != resume[1]:
                ends[resume.index(max(resume))].discard_from(km.id, min(resume))
            link = self.network.link[km.path[0]]
            speed = link_skr_bps(link) * speedup
            early = prefill_bits / speed if speed > 0 else 0.0
            self._supplies.append(_Supply(km.id, km.a, km.b, emulator_for_link(
                link, km.id, random_bytes=secrets.token_bytes, speedup=speedup,
                start=now - early, first_block=max(resume)), link.id))
            self.discarded_full_bits[km.id] = 0
            self.backlog_lost_bits[km.id] = 0
        self._order = {s.km_link: k for k, s in enumerate(self._supplies)}

    @property
    def discarded_bits(self) -> int:
        """Key (bits) discarded for full pools on all KM-links since start."""
        return sum(self.discarded_full_bits.values())

    def pump(self, now: float, budget_s: float | None = None) -> int:
        """Deliver the blocks the emulators have made up to ``now`` (s), as many as fit in
        about ``budget_s`` of CPU time (all of them without a budget), shared fairly among
        the links; returns how many were deposited at both ends. Blocks that do not fit in
        a link's pools are discarded and counted; blocks there was no time for wait in
        their device for the next call."""
        faulty = self._retry_faulty(now)
        self._checkpoint_next(faulty, now)
        # the budget is for making and storing blocks: a checkpoint's fsync is not
        # theirs, and counted against them it would leave a pump no time for a block
        started = time.perf_counter()
        down = self.faults.down_links()
        waiting: list[tuple[_Supply, int]] = []
        stopped = bool(faulty or down)
        for s in self._supplies:
            if stopped and (s.a in faulty or s.b in faulty or s.link in down):
                s.emulator.skip(now)
                continue
            if not s.unfinished:
                if now < s.full_until:
                    continue  # its key is discarded (and counted) when it is looked at again
                if s.full_since > -math.inf and self._still_full(s, now):
                    gone = s.emulator.skip(now)
                    self.discarded_full_bits[s.km_link] += gone * s.emulator.block_bits
                    s.full_until = now + FULL_RECHECK_S
                    continue
            want = self._waiting(s, now, budget_s is not None)
            if want or s.unfinished:
                waiting.append((s, want))
        if not waiting:
            return 0
        spent = time.perf_counter() - started
        most = None if budget_s is None else max(1, int((budget_s - spent)
                                                         / self.block_cost_s))
        # the turn goes on from the first waiting link after the last one served
        first = next((k for k, (s, _) in enumerate(waiting)
                      if self._order[s.km_link] > self._last_served), 0)
        shares, last = _turn_shares([want for _, want in waiting], most, first)
        if last is not None:
            self._last_served = self._order[waiting[last][0].km_link]
        work = time.perf_counter()
        deposited = self._deliver([(s, share) for (s, _), share in zip(waiting, shares,
                                                                        strict=True)], now)
        if deposited >= MEASURED_BLOCKS:
            cost = (time.perf_counter() - work) / deposited
            self.block_cost_s += COST_WEIGHT * (cost - self.block_cost_s)
        self.deposited_blocks += deposited
        return deposited

    def store_fault(self, node: str) -> str | None:
        """Why ``node``'s key store cannot be written (SQLite's words), None when it can: a
        fault the supply found, or one a KM's write found since."""
        return self.store_faults.cause(node) or self.stores[node].write_fault

    def _retry_faulty(self, now: float) -> frozenset[str]:
        """Take up the faults the KMs' writes found, try again each faulty store whose wait
        is over, and return the nodes still at fault."""
        for k in [k for k, store in enumerate(self._store_list) if store.write_fault is not None]:
            node, fault = self._nodes[k], self._store_list[k].write_fault
            if fault is not None and node not in self.store_faults.nodes:
                self.store_faults.failed(node, fault, now)
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

    def link_state(self, km_link: str) -> KMLinkState | None:
        """What the KMs report of one supplied KM-link (None if it is not supplied here)."""
        k = self._order.get(km_link)
        if k is None:
            return None
        s = self._supplies[k]
        return self._state(s, s.link not in self.faults.down_links())

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
        for node, store in self.stores.items():
            self._checkpoint(node, store)

    def _checkpoint(self, node: str, store: SQLiteKeyStore) -> None:
        self._checkpoints += 1
        self._checkpoint_count[node] = self._checkpoints
        store.checkpoint()

    def _still_full(self, s: _Supply, now: float) -> bool:
        """Whether the link's pools surely still have no room for a block: full when last
        counted, less than FULL_RECOUNT_S ago, and no key taken at either end since (a take
        writes its store, which stays :attr:`~SQLiteKeyStore.written` until a checkpoint,
        and the pump counts its checkpoints)."""
        if now - s.full_since >= FULL_RECOUNT_S:
            return False
        for node in (s.a, s.b):
            if self.stores[node].written \
                    or self._checkpoint_count.get(node, 0) > s.full_checkpoints:
                return False
        return True

    def _checkpoint_next(self, faulty: frozenset[str], now: float) -> None:
        """Checkpoint the next store, in turn, found to have written since its last
        checkpoint (a share of the stores is asked at each pump, all of them every
        CHECKPOINT_SCAN_PUMPS) and not checkpointed in the last CHECKPOINT_EVERY_S, one per
        pump, so used key leaves the WAL files (not a store at fault: its tries are
        :meth:`_retry_faulty`'s). A store nothing wrote to costs nothing; a busy one is not
        checkpointed (an fsync) at every pump."""
        # each pump asks the next share of the stores whether they have written (asking all
        # 217 of cn-qcn 20 times a second was a third of an idle pump); those found written
        # are kept until checkpointed, and the turn goes on among them
        n, share = len(self._store_list), self._scan_share
        for k in range(self._scan_next, self._scan_next + share):
            if self._store_list[k % n].written:
                self._found_written.add(k % n)
        self._scan_next = (self._scan_next + share) % n
        written = sorted(self._found_written)
        after = bisect.bisect_right(written, self._next_checkpoint)
        for k in written[after:] + written[:after]:
            node, store = self._nodes[k], self._store_list[k]
            if not store.written:
                self._found_written.discard(k)  # checkpointed meanwhile (checkpoint_all)
                continue
            if node in faulty \
                    or now - self._checkpointed.get(node, -math.inf) < CHECKPOINT_EVERY_S:
                continue
            self._found_written.discard(k)
            self._next_checkpoint = k
            self._checkpointed[node] = now
            try:
                self._checkpoint(node, store)
            except KeyStoreError as exc:
                self._failed(exc, (node,), now)
            return

    def _waiting(self, s: _Supply, now: float, bounded: bool) -> int:
        """How many of the link's waiting blocks can be stored: those that fit in neither
        direction of its pools are discarded (counted), and with ``bounded`` those beyond
        what its device keeps are lost (counted)."""
        em = s.emulator
        pending = em.pending(now)
        if not pending:
            return 0
        if pending <= s.fit_hint and (not bounded or pending <= s.backlog_blocks):
            return pending  # room only grows between pumps: KMs take, only pumps deposit
        fit = sum(room // em.block_bytes for room in self._room(s).values())
        fit -= len(s.unfinished)
        s.fit_hint = max(fit, 0)
        if fit <= 0:
            s.full_until = now + FULL_RECHECK_S
            s.full_since, s.full_checkpoints = now, self._checkpoints
        else:
            s.full_since = -math.inf
        if pending > fit:
            gone = em.skip(now, pending - max(fit, 0))
            self.discarded_full_bits[s.km_link] += gone * em.block_bits
            pending -= gone
        if bounded and pending > s.backlog_blocks:
            gone = em.skip(now, pending - s.backlog_blocks)
            self.backlog_lost_bits[s.km_link] += gone * em.block_bits
            pending -= gone
        return pending

    def _room(self, s: _Supply) -> dict[bool, int]:
        """Bytes the link takes in each direction (True: outbound at a, inbound at b)."""
        a, b = self.stores[s.a], self.stores[s.b]
        return {out: min(a.room(s.km_link, out), b.room(s.km_link, not out))
                for out in (True, False)}

    def _deliver(self, shares: list[tuple[_Supply, int]], now: float) -> int:
        """Make each link's share of blocks and deposit them, each store's in one
        transaction; a store that fails leaves its blocks unfinished at the links (where
        the other end holds them they are delivered again first). How many blocks both
        ends now hold."""
        batches: dict[str, list[Deposit]] = {}
        made: list[tuple[_Supply, KeyBlock, bool]] = []
        for s, share in shares:
            if not share and not s.unfinished:
                continue
            a, b = self.stores[s.a], self.stores[s.b]
            # outbound bytes at a (True) and at b (False), as this pump fills them
            held = {True: a.pool_bytes(s.km_link, True), False: b.pool_bytes(s.km_link, True)}
            room = self._room(s)
            # blocks one end may hold already keep their direction; new ones take the rule's
            blocks = [(k, out, True) for k, out in s.unfinished]
            blocks += [(k, outbound_at_a(k.block, held[True], held[False]), False)
                       for k in s.emulator.blocks(now, share)]
            s.unfinished = []
            for block, a_out, fixed in blocks:
                size = len(block.material)
                if not fixed and room[a_out] < size <= room[not a_out]:
                    a_out = not a_out  # the emptier direction is full: the other takes it
                if room[a_out] < size:
                    if fixed:
                        s.unfinished.append((block, a_out))  # waits for room to finish it
                    else:
                        self.discarded_full_bits[s.km_link] += size * 8
                    continue
                room[a_out] -= size
                held[a_out] += size
                s.fit_hint -= 1
                made.append((s, block, a_out))
                batches.setdefault(s.a, []).append(
                    Deposit(s.km_link, block.block, block.material, a_out))
                batches.setdefault(s.b, []).append(
                    Deposit(s.km_link, block.block, block.material, not a_out))
        stored = {node: self._store(node, deposits, now) for node, deposits in batches.items()}
        done = 0
        for s, block, a_out in made:
            if stored[s.a] and stored[s.b]:
                done += 1
            else:  # delivered again (a no-op where held) once both stores write again
                s.unfinished.append((block, a_out))
        return done

    def _store(self, node: str, deposits: list[Deposit], now: float) -> bool:
        """Deposit ``deposits`` at ``node``, MAX_BATCH_BLOCKS per transaction; False (the
        fault noted) if the store refused them."""
        store = self.stores[node]
        try:
            for i in range(0, len(deposits), MAX_BATCH_BLOCKS):
                store.deposit_many(deposits[i:i + MAX_BATCH_BLOCKS])
        except PoolFull:
            return False  # a KM's relay filled it meanwhile: delivered again
        except KeyStoreError as exc:
            self._failed(exc, (node,), now)
            return False
        return True


def _turn_shares(wants: list[int], most: int | None, first: int,
                 quantum: int = TURN_BLOCKS) -> tuple[list[int], int | None]:
    """Shares of ``most`` blocks (all wanted when None) among links wanting ``wants``, in
    turn from position ``first``: each link gets what it wants up to ``quantum`` blocks,
    the next link the same, round again while blocks are left. Returns the shares and the
    position of the last link served (None if none), where the next pump's turn follows.

    Why turns and not an equal split of each pump: a pump's budget split over hundreds of
    links gives each a block or none, so every store commits a transaction for one block;
    in turns, few stores commit many blocks each, and over a few pumps every link, slow or
    fast, has had its turn (a fast link cannot take more than ``quantum`` of a turn)."""
    if most is None or sum(wants) <= most:
        last = max((i for i, w in enumerate(wants) if w), default=None)
        return list(wants), last
    n = len(wants)
    shares = [0] * n
    left, last = most, None
    while left > 0:
        for k in range(n):
            i = (first + k) % n
            give = min(wants[i] - shares[i], quantum, left)
            if give > 0:
                shares[i] += give
                left -= give
                last = i
            if left == 0:
                break
    return shares, last
