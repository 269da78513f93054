"""The key network of one process: every served node's Key Manager and key store, the
in-process transport between them, timers on the asyncio clock, and the QKD-link
emulators filling the pools. The KMEs (:mod:`qkdnet.live.kme_app`) call into it.

Messages between KMs are handed over in process, in order, through a work queue (no deep
recursion along a 64-hop route). Timers use ``loop.call_later``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from qkdnet.control.link_state import KMLinkState
from qkdnet.errors import KeyNotFound, NotAuthorized, ParameterError, ScenarioError
from qkdnet.keys.etsi014 import KEYS_NOT_FOUND, NOT_ENOUGH_KEY, ApiError
from qkdnet.keys.manager import KeyManager, pad_units
from qkdnet.keys.messages import (
    Action,
    Event,
    KeyDelivered,
    KeyFailed,
    KeyRequest,
    Received,
    RelayAbort,
    Route,
    Send,
    StartTimer,
    TimerExpired,
)
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.routing import Router, ShortestPathRouter
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply import deliver
from qkdnet.live.key_ids import new_key_id
from qkdnet.quantum.emulator import KeyEmulator, emulator_for_link
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.model import KMLinkKind, Network, NodeKind

log = logging.getLogger("qkdnet.keys")

#: Pool size per KM-link end (1 Mbit): a metro CV link makes megabits per second, and an
#: SQLite store holds key in 32-byte units, so pools stay small and full ones stop filling.
DEFAULT_CAPACITY_BYTES = 2**17


@dataclass(frozen=True)
class _Supply:
    km_link: str
    a: str
    b: str
    emulator: KeyEmulator
    link: str = ""


def served_nodes(network: Network, everything: bool = False) -> list[str]:
    """Nodes that run a KM: every node with a KM-link except user nodes without an SAE
    (``everything``: all of them)."""
    with_sae = {s.node for s in network.saes}
    linked = {n for k in network.km_links for n in (k.a, k.b)}
    return [n.id for n in network.nodes
            if (n.id in linked or n.id in with_sae)
            and (everything or n.kind is not NodeKind.USER or n.id in with_sae)]


class KeyNetwork:
    """Key Managers and stores of ``nodes`` of ``network``, stores under ``folder``."""

    def __init__(self, network: Network, folder: Path, nodes: Iterable[str],
                 router: Router | None = None, timeout_s: float = 5.0,
                 capacity_bytes_per_link: int = DEFAULT_CAPACITY_BYTES) -> None:
        self.network = network
        self.nodes = list(nodes)
        folder.mkdir(parents=True, exist_ok=True)
        # checkpoints happen in pump(), one store at a time, not inside a relay
        self.stores = {n: SQLiteKeyStore(folder / f"{n}.sqlite", n, capacity_bytes_per_link,
                                         auto_checkpoint=False) for n in self.nodes}
        self.managers = {n: KeyManager(n, self.stores[n], timeout_s=timeout_s)
                         for n in self.nodes}
        served = set(self.nodes)
        self.router = router or ShortestPathRouter(_restricted(network, served))
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._queue: deque[tuple[str, Event]] = deque()
        self._supplies: list[_Supply] = []
        self.cut_links: set[str] = set()  # QKD-links an operator has cut: they make no key
        self.stopped_nodes: set[str] = set()  # nodes whose KM an operator has stopped
        # QKD-links whose detector-current monitor tripped (a blinding attack, injected):
        # the devices stop distilling, as key from blinded detectors cannot be trusted
        self.blinded_links: set[str] = set()
        self._links_of: dict[str, list[str]] = {n.id: [] for n in network.nodes}
        for lk in network.qkd_links:
            self._links_of[lk.a].append(lk.id)
            self._links_of[lk.b].append(lk.id)
        self._next_supply = 0
        self._next_checkpoint = 0

    # --- key delivery, for the KMEs ---------------------------------------------------------

    def sae_node(self, sae: str) -> str | None:
        """The node an SAE is attached to, None for an unknown SAE."""
        known = self.network.sae.get(sae)
        return known.node if known else None

    async def enc_keys(self, master_sae: str, slave_sae: str, number: int, size: int
                       ) -> list[tuple[str, bytes]]:
        """Make ``number`` keys of ``size`` bits and bring them to the slave's node; all or
        none (ApiError 503 when any cannot be relayed)."""
        route = self._route(master_sae, slave_sae)
        self._check_running(route.source, route.destination)
        ids = [new_key_id() for _ in range(number)]
        futures = [self._request(KeyRequest(i, size, master_sae, slave_sae, route)) for i in ids]
        results = await asyncio.gather(*futures, return_exceptions=True)
        if any(isinstance(r, BaseException) for r in results):
            for key_id, result in zip(ids, results, strict=True):
                if not isinstance(result, BaseException):  # drop what did arrive
                    self._feed(route.destination, Received(
                        route.source, RelayAbort(key_id, master_sae, slave_sae)))
            self._run()
            raise ApiError(503, NOT_ENOUGH_KEY)
        log.info("relayed %d keys of %d bits for %s -> %s over %d hops", number, size,
                 master_sae, slave_sae, route.hops)
        return [(i, r) for i, r in zip(ids, results, strict=True) if isinstance(r, bytes)]

    def dec_keys(self, caller_sae: str, master_sae: str, key_ids: list[str]
                 ) -> list[tuple[str, bytes]]:
        """Hand the slave its keys, each once; ApiError 400 unknown, 401 not the slave."""
        node = self.sae_node(caller_sae)
        if node is None or node not in self.stores:
            raise ApiError(401, f"SAE {caller_sae!r} is not attached to a served node")
        self._check_running(node)
        try:
            held = self.stores[node].release_keys(key_ids, master_sae, caller_sae)
        except KeyNotFound:
            if self._held_for_another(key_ids, master_sae, caller_sae):
                raise ApiError(401, "keys were not requested for this SAE") from None
            raise ApiError(400, KEYS_NOT_FOUND) from None
        except NotAuthorized:
            raise ApiError(401, "keys were not requested for this SAE") from None
        log.info("released %d keys of %s to %s", len(held), master_sae, caller_sae)
        return [(k.key_id, k.material) for k in held]

    def _held_for_another(self, key_ids: list[str], master_sae: str, caller_sae: str) -> bool:
        """Whether some key is held, anywhere, for ``master_sae`` and another slave: the
        caller is then not authorised (401) rather than asking for unknown keys (400)."""
        for store in self.stores.values():
            for key_id in key_ids:
                pair = store.held_for(key_id)
                if pair is not None and pair[0] == master_sae and pair[1] != caller_sae:
                    return True
        return False

    def stored_key_count(self, master_sae: str, slave_sae: str, size: int,
                         limit: int) -> int:
        """Keys of ``size`` bits the route could relay now (its tightest hop), at most
        ``limit``."""
        route = self._route(master_sae, slave_sae)
        self._check_running(route.source, route.destination)
        per_key = pad_units(size) * UNIT_BYTES
        counts = [self.stores[a].pool_bytes(km, outbound=True) // per_key
                  for a, km in zip(route.nodes, route.km_links, strict=False)]
        return min([limit, *counts])

    def _check_running(self, *nodes: str) -> None:
        stopped = [n for n in nodes if n in self.stopped_nodes]
        if stopped:
            raise ApiError(503, f"the Key Manager of node {stopped[0]} is stopped")

    def _route(self, master_sae: str, slave_sae: str) -> Route:
        source, target = self.sae_node(master_sae), self.sae_node(slave_sae)
        if source is None or target is None:
            raise ApiError(400, "unknown SAE ID")
        try:
            return self.router.route(source, target)
        except ScenarioError as exc:
            raise ApiError(503, f"no route between the SAEs' nodes: {exc.problem}") from None

    # --- the relay machinery --------------------------------------------------------------

    def _request(self, request: KeyRequest) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request.key_id] = future
        self._feed(request.route.source, request)
        self._run()
        return future

    def _feed(self, node: str, event: Event) -> None:
        self._queue.append((node, event))

    def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            node, event = self._queue.popleft()
            manager = self.managers.get(node)
            if manager is None or node in self.stopped_nodes:
                # a stopped KM hears nothing: the sender's own timer fails the request
                log.warning("message for %s node %s dropped",
                            "stopped" if manager else "unserved", node)
                continue
            self._act(node, manager.handle(event, loop.time()), loop)

    def _act(self, node: str, actions: list[Action], loop: asyncio.AbstractEventLoop) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._feed(action.to, Received(node, action.message))
            elif isinstance(action, StartTimer):
                loop.call_at(action.deadline, self._expire, node, action.tag)
            elif isinstance(action, KeyDelivered):
                self._settle(action.key_id, action.material, None)
            elif isinstance(action, KeyFailed):
                log.info("key %s not delivered: %s", action.key_id, action.reason)
                self._settle(action.key_id, None, action.reason)

    def _expire(self, node: str, tag: str) -> None:
        self._feed(node, TimerExpired(tag))
        self._run()

    def _settle(self, key_id: str, material: bytes | None, reason: str | None) -> None:
        future = self._waiting.pop(key_id, None)
        if future is None or future.done():
            return
        if material is not None:
            future.set_result(material)
        else:
            future.set_exception(ApiError(503, reason or NOT_ENOUGH_KEY))

    # --- key supply ---------------------------------------------------------------------

    def start_supply(self, now: float, speedup: float = 1.0, prefill_bits: int = 0) -> None:
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
                start=now - ahead, first_block=max(resume)),
                link.id))

    def pump(self, now: float, budget_s: float | None = None) -> int:
        """Deliver the blocks the emulators have made up to ``now`` (s); returns how many
        were deposited. A link whose pool is full at either end discards its new blocks
        unmade. With ``budget_s`` the work stops after about that much CPU time and the
        next call goes on with the links not yet served (they keep their blocks), so the
        event loop is never held long."""
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        self._checkpoint_next()
        deposited = 0
        down = self.down_links()
        for _ in range(len(self._supplies)):
            s = self._supplies[self._next_supply]
            self._next_supply = (self._next_supply + 1) % len(self._supplies)
            deposited += self._supply(s, now, deadline, s.link in down)
            if deadline is not None and time.perf_counter() > deadline:
                break
        return deposited

    def link_states(self) -> list[KMLinkState]:
        """What the control layer is told of each supplied KM-link: the key its tighter
        direction can still relay (bits), the modelled refill (bit/s), and up."""
        down = self.down_links()
        return [KMLinkState(s.km_link, 8.0 * min(self.stores[s.a].pool_bytes(s.km_link, True),
                                                 self.stores[s.b].pool_bytes(s.km_link, True)),
                            s.emulator.rate_bps * s.emulator.speedup, s.link not in down)
                for s in self._supplies]

    def set_rates(self, rates_bps: Mapping[str, float], now: float) -> None:
        """From ``now`` (s) on, make key on each QKD-link named in ``rates_bps`` at its new
        modelled rate (bit/s, before the speed-up); key made before ``now`` is kept."""
        for s in self._supplies:
            rate = rates_bps.get(s.link)
            if rate is not None:
                s.emulator.set_rate(rate, now)

    def down_links(self) -> set[str]:
        """The QKD-links that make no key: those cut or blinded and those of stopped
        nodes."""
        down = self.cut_links | self.blinded_links
        for node in self.stopped_nodes:
            down.update(self._links_of[node])
        return down

    def cut(self, link: str, cut: bool = True) -> None:
        """Cut QKD-link ``link`` (no key is made on it, its KM-links report down) or, with
        ``cut`` False, repair it (which also ends a blinding)."""
        self._check_link(link)
        if cut:
            self.cut_links.add(link)
        else:
            self.cut_links.discard(link)
            self.blinded_links.discard(link)

    def blind(self, link: str) -> None:
        """Shine bright light at QKD-link ``link``'s detectors: the detector-current monitor
        trips and the link makes no key until :meth:`cut` repairs it."""
        self._check_link(link)
        self.blinded_links.add(link)

    def _check_link(self, link: str) -> None:
        if link not in self.network.link:
            raise ParameterError("link", link, "the id of a QKD-link of the network")

    def stop(self, node: str, stop: bool = True) -> None:
        """Stop node ``node`` (its Key Manager and QKD devices: its QKD-links make no key, its
        KM-links report down, its KME answers 503, messages to it are lost) or, with
        ``stop`` False, start it again with the key its store kept."""
        if node not in self.network.node:
            raise ParameterError("node", node, "the id of a node of the network")
        if stop:
            self.stopped_nodes.add(node)
        else:
            self.stopped_nodes.discard(node)

    def checkpoint_all(self) -> None:
        """Checkpoint every store (after a large prefill, before serving)."""
        for store in self.stores.values():
            store.checkpoint()

    def _checkpoint_next(self) -> None:
        """Checkpoint one store per pump, in turn, so used key leaves the WAL files."""
        if self.nodes:
            self._next_checkpoint = (self._next_checkpoint + 1) % len(self.nodes)
            self.stores[self.nodes[self._next_checkpoint]].checkpoint()

    def _supply(self, s: _Supply, now: float, deadline: float | None, down: bool) -> int:
        """Deposit a link's new blocks (none while it is ``down``); past ``deadline`` the
        rest are lost, as key is when a device's buffer overflows."""
        a, b = self.stores[s.a], self.stores[s.b]
        if down or \
                min(a.room(s.km_link), b.room(s.km_link)) < s.emulator.block_bytes:
            s.emulator.skip(now)
            return 0
        deposited = 0
        for block in s.emulator.blocks(now):
            if deadline is not None and time.perf_counter() > deadline:
                break
            deposited += deliver(block, a, b)
        return deposited

    def close(self) -> None:
        """Close every store."""
        for store in self.stores.values():
            store.close()


def _restricted(network: Network, nodes: set[str]) -> Network:
    """``network`` with only the KM-links between served nodes (for routing)."""
    return replace(network, km_links=tuple(k for k in network.km_links
                                           if k.a in nodes and k.b in nodes))
