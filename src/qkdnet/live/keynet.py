"""The Key Managers of one process, for the KMEs: every node's KM and SQLite key store
that this process hosts, joined by the in-memory transport
(:class:`~qkdnet.keys.in_memory.InMemoryKMs`), with relay timers on the asyncio clock and
routes from the control layer. The KMEs (:mod:`qkdnet.live.kme_app`) call
:meth:`KeyNetwork.enc_keys` and :meth:`KeyNetwork.dec_keys`; the key supply
(:mod:`qkdnet.live.supply_pump`) and the operator's faults
(:mod:`qkdnet.live.operator_faults`) are its parts.

Nodes of other processes are reached through ``remote``
(:class:`~qkdnet.live.km_transport.RemoteKMs`, mutual TLS), and their messages come in
through :meth:`KeyNetwork.receive` (from the process's KM listener,
:mod:`qkdnet.live.km_app`). A message for another process leaves only once the round that
wrote its pad has committed here: sent earlier, a rollback here would leave the pad's
units unused at this end while the other end has spent them, and this end could use them
again.

Exactly once across crashes, both ways: a relay's message for another process is kept in
the sending node's store in the transaction that made it, until the other process
acknowledges it (a crash between the commit and the send loses nothing: it is sent again,
under the same id, by :meth:`KeyNetwork.resend_kept` at the next start); and a message from
another process is recorded as done, by its sender and id, in the receiving node's store
in the transaction of what it does (a retry after a crash here, whose acknowledgement was
lost, is recognised and not done again). A receiver forgets the ids after
:data:`RECEIVED_KEEP_S`, far past the time a sender keeps sending (``give_up_s``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from qkdnet.control.controller import Controller
from qkdnet.errors import KeyNotFound, KeyStoreError, NoRoute, NotAuthorized, StoreFault
from qkdnet.keys.commit_group import CommitGroup, Member
from qkdnet.keys.domain_border import CrossBorder, Crossed, StagedKeys
from qkdnet.keys.etsi014 import KEYS_NOT_FOUND, NOT_ENOUGH_KEY, NOT_KME_CONFIGURATION, ApiError
from qkdnet.keys.in_memory import InMemoryKMs, Outcome
from qkdnet.keys.km_wire import Envelope, WireError, decode_batch, encode_batch
from qkdnet.keys.messages import (
    Event,
    ForwardKey,
    KeyDelivered,
    KeyRequest,
    Received,
    StartTimer,
    TimerExpired,
)
from qkdnet.keys.pool import UNIT_BYTES, direction_capacity
from qkdnet.keys.relay_cost import pad_units, relayable_keys
from qkdnet.keys.relay_crypto import OneTimePad
from qkdnet.keys.route import Route, Router
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply_sync import KeySupply, KeySupplyAck, PoolSync
from qkdnet.live.border_supply import BorderSupply
from qkdnet.live.key_ids import new_key_id
from qkdnet.live.km_transport import RemoteKMs
from qkdnet.live.operator_faults import OperatorFaults
from qkdnet.live.qkd_device import DeviceEnd
from qkdnet.live.satellite_supply import SatelliteSupply
from qkdnet.live.store_faults import fault_message
from qkdnet.live.supply_pump import SupplyPump
from qkdnet.management.services import RequestCounts
from qkdnet.topology.model import Network
from qkdnet.topology.served import served_nodes

__all__ = ["DEFAULT_CAPACITY_BYTES", "DEFAULT_HELD_KEY_TTL_S", "KeyNetwork", "served_nodes"]

log = logging.getLogger("qkdnet.keys")

#: How long a key held for a slave SAE waits to be fetched before it is erased (s).
DEFAULT_HELD_KEY_TTL_S = 3600.0

#: Pool size per KM-link end (1 Mbit): a metro CV link makes megabits per second, and an
#: SQLite store holds key in 32-byte units, so pools stay small and full ones stop filling.
DEFAULT_CAPACITY_BYTES = 2**17

#: A message for another process: (receiving node, the message, its id).
_Outgoing = tuple[str, Received, str]

#: How long a node remembers the id of a message from another process it has done (s):
#: far longer than a sender keeps sending one (its transport's ``give_up_s``, 10 s).
RECEIVED_KEEP_S = 600.0


class KeyNetwork:
    """Key Managers and stores of ``nodes`` of ``network``, stores under ``folder``,
    routes from ``router`` (by default the network's control layer); the KMs of other
    nodes through ``remote`` (none: every node of a route must be one of ``nodes``), and
    the KM-links to them supplied from the device ends in ``devices`` (by KM-link id);
    KM-links between ``nodes`` with a device pair in ``device_pairs`` (by KM-link id: end
    ``a``'s and end ``b``'s device end; needs ``remote``) take their key from it, the others
    from the emulated devices of the supply pump."""

    def __init__(self, network: Network, folder: Path, nodes: Iterable[str],
                 router: Router | None = None, timeout_s: float = 5.0,
                 capacity_bytes_per_link: int = DEFAULT_CAPACITY_BYTES,
                 held_key_ttl_s: float = DEFAULT_HELD_KEY_TTL_S,
                 remote: RemoteKMs | None = None,
                 devices: Mapping[str, DeviceEnd] | None = None,
                 device_pairs: Mapping[str, tuple[DeviceEnd, DeviceEnd]] | None = None
                 ) -> None:
        self.network = network
        # the relays' keys: fresh from the CSPRNG, or the keys a relay is handed (relay())
        self._keys = StagedKeys(secrets.token_bytes)
        self.remote = remote
        # messages for other processes made by the submit under way (see _submit), each
        # kept in its sender's store under an id of this incarnation until acknowledged
        self._outgoing: list[_Outgoing] = []
        self._incarnation = secrets.token_hex(8)
        self._sequence = itertools.count()
        self._settled: dict[str, list[str]] = {}  # sender -> ids acknowledged or given up
        if remote is not None:
            remote.on_settled = self._message_settled
        #: Messages from other processes recognised as done before (a retry after a crash),
        #: and kept messages sent again at start or given up as too old then.
        self.replayed = 0
        self.resent = 0
        self.stale = 0
        # nodes that may hold message ids to forget: all at start, then those that took one
        self._receivers: set[str] = set(nodes)
        self.held_key_ttl_s = held_key_ttl_s
        self.nodes = list(nodes)
        #: Held keys erased unfetched since start, per node.
        self.expired_held_keys = dict.fromkeys(self.nodes, 0)
        folder.mkdir(parents=True, exist_ok=True)
        # checkpoints happen in the pump, one store at a time, not inside a relay
        self.stores = {n: SQLiteKeyStore(folder / f"{n}.sqlite", n, capacity_bytes_per_link,
                                         auto_checkpoint=False) for n in self.nodes}
        # group commit: the calls of one turn of the loop commit each store once, and each
        # is answered once its round has committed (keys/commit_group.py)
        self.commits = CommitGroup()
        for store in self.stores.values():
            store.group = self.commits
        self._round: asyncio.Future[None] | None = None
        self._round_end: asyncio.Handle | None = None
        self.kms = InMemoryKMs.over(
            self.stores, OneTimePad(self._keys), timeout_s, on_timer=self._start_timer,
            on_lost=_log_lost, on_remote=self._outgoing_message if remote is not None else None)
        self.router: Router = router or Controller.for_network(network)
        self.faults = OperatorFaults(network)
        self.kms.stopped = self.faults.stopped_nodes  # a stopped KM hears nothing
        # a KM-link with a device pair of its own (a vendor's) takes no key from the pump
        self.supply = SupplyPump(network, self.stores, self.faults,
                                 skip=frozenset(device_pairs or ()))
        #: The satellite KM-links' supply, where the driver emulates passes (serve).
        self.satellite: SatelliteSupply | None = None
        #: The supply of the KM-links to other processes and of those with a device pair
        #: (None without a transport).
        self.border = BorderSupply(network, self.stores, remote, devices or {},
                                   pairs=device_pairs) if remote is not None else None
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        #: Most pad one relay may take from a hop (bytes): what one direction of a pool holds.
        self.max_relay_bytes = direction_capacity(capacity_bytes_per_link)
        # key_ID -> node holding it, for the 401-vs-400 answer of dec_keys without asking
        # every store; a hint (the store is asked to confirm), so a key erased behind its
        # back (expiry) is only a stale entry, dropped when found
        self._held_at: dict[str, str] = {key_id: node for node, store in self.stores.items()
                                         for key_id in store.held_key_ids()}
        # the nodes whose store may hold keys: those holding some at start and every relay's
        # destination (added before the relay can hold anything, kept: a relay that fails
        # may leave its keys held there), so that expiry leaves the other stores alone
        self._may_hold: set[str] = set(self._held_at.values())
        #: Keys relayed to a slave's node (enc_keys) and released to a slave (dec_keys)
        #: since start; a summary line, not a line per call, goes to the log.
        self.keys_relayed = 0
        self.keys_released = 0
        self._summarised = (0, 0)
        self._route_used: dict[tuple[str, str], Route] = {}  # last route keys took, by ends
        #: What the KMEs counted of each SAE pair's requests (the services' QoS, for the NMS).
        self.requests = RequestCounts()

    # --- key delivery, for the KMEs ---------------------------------------------------------

    def sae_node(self, sae: str) -> str | None:
        """The node an SAE is attached to, None for an unknown SAE."""
        known = self.network.sae.get(sae)
        return known.node if known else None

    async def enc_keys(self, master_sae: str, slave_sae: str, number: int, size: int
                       ) -> list[tuple[str, bytes]]:
        """Make ``number`` keys of ``size`` bits and bring them to the slave's node in one
        relay; all or none (ApiError 503 when they cannot be relayed, naming a key store
        that cannot be written when that is why; 400 before anything is spent when their
        pad, in bytes per hop, exceeds what one direction of a pool holds)."""
        cost = pad_units(size, number) * UNIT_BYTES
        if cost > self.max_relay_bytes:
            # no pool end can ever hold this: refuse before a relay spends any pad
            raise ApiError(400, NOT_KME_CONFIGURATION, [{
                "parameter": "number, size",
                "reason": f"{number} keys of {size} bits need {cost} bytes of pad per hop; "
                          f"a KM-link holds at most {self.max_relay_bytes} in one direction"}])
        self._check_stores(*(n for n in (self.sae_node(master_sae), self.sae_node(slave_sae))
                             if n is not None))
        route = self._route(master_sae, slave_sae)
        self._check_running(route.source, route.destination)
        self._check_stores(*route.nodes)
        ids = tuple(new_key_id() for _ in range(number))
        material = await self.relay(KeyRequest(ids, size, master_sae, slave_sae, route))
        self.keys_relayed += number  # counted, not logged: see log_delivery_summary
        ends = (route.source, route.destination)
        if self._route_used.get(ends) != route:  # a line per route taken, not per key
            self._route_used[ends] = route
            log.info("keys from node %s to node %s now go over %d hops", *ends, route.hops)
        step = size // 8
        return [(key_id, material[i * step:(i + 1) * step]) for i, key_id in enumerate(ids)]

    async def relay(self, request: KeyRequest, material: bytes | None = None) -> bytes:
        """Relay ``request`` along its route and return its keys once they are held at the
        destination: keys the relay makes, or ``material`` when given (a relay that
        carries keys handed to it, as on from a domain border). ApiError 503 when they are
        not held (naming a key store that cannot be written when that is why)."""
        route = request.route
        here = route.destination in self.stores
        if here:
            self._may_hold.add(route.destination)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request.relay_id] = future
        with self.commits.member(route.nodes) as member:
            if material is not None:
                self._keys.stage(material)
            try:
                sends = self._submit(route.source, request)
            finally:
                unused = self._keys.clear()
        self._end_round_soon(member)
        try:
            await self._committed(member)
        except ApiError:
            self._waiting.pop(request.relay_id, None)
            if future.done():
                future.exception()  # the relay's own outcome: the commit's failure answers
            raise
        self._release(sends)
        try:
            keys = await future
        except ApiError:
            self._check_stores(*route.nodes)  # a store fault the relay ran into
            raise
        if material is not None and unused:  # never: a relay draws its keys first thing
            raise ApiError(503, "the relay did not carry the keys handed to it")
        if here:
            self._held_at.update(dict.fromkeys(request.key_ids, route.destination))
        return keys

    async def dec_keys(self, caller_sae: str, master_sae: str, key_ids: list[str]
                       ) -> list[tuple[str, bytes]]:
        """Hand the slave its keys, each once; ApiError 400 unknown, 401 not the slave,
        503 when the store cannot record the release (the keys then stay held)."""
        node = self.sae_node(caller_sae)
        if node is None or node not in self.stores:
            raise ApiError(401, f"SAE {caller_sae!r} is not attached to a served node")
        self._check_running(node)
        if self.sae_node(master_sae) is not None:  # an unknown master's keys: 400 below
            self._check_pair(master_sae, caller_sae)
        try:
            with self.commits.member((node,)) as member:
                held = self.stores[node].release_keys(key_ids, master_sae, caller_sae)
        except KeyNotFound:
            if self._held_for_another(key_ids, master_sae, caller_sae):
                raise ApiError(401, "keys were not requested for this SAE") from None
            raise ApiError(400, KEYS_NOT_FOUND) from None
        except NotAuthorized:
            raise ApiError(401, "keys were not requested for this SAE") from None
        except StoreFault as exc:
            # the keys stay held: the slave gets them once the store can be written
            raise ApiError(503, fault_message(exc.node, exc.cause)) from None
        self._end_round_soon(member)
        await self._committed(member)
        for key_id in key_ids:
            self._held_at.pop(key_id, None)
        self.keys_released += len(held)
        return [(k.key_id, k.material) for k in held]

    def _held_for_another(self, key_ids: list[str], master_sae: str, caller_sae: str) -> bool:
        """Whether some key is held, anywhere, for ``master_sae`` and another slave: the
        caller is then not authorised (401) rather than asking for unknown keys (400)."""
        for key_id in key_ids:
            node = self._held_at.get(key_id)
            if node is None:
                continue
            pair = self.stores[node].held_for(key_id)
            if pair is None:
                del self._held_at[key_id]  # erased behind the index's back (expired)
            elif pair[0] == master_sae and pair[1] != caller_sae:
                return True
        return False

    def stored_key_count(self, master_sae: str, slave_sae: str, size: int,
                         limit: int) -> int:
        """Keys of ``size`` bits one relay along the route could carry now, at most
        ``limit``."""
        route = self._route(master_sae, slave_sae)
        self._check_running(route.source, route.destination)
        return relayable_keys(self.stores, route, size, limit)

    def _check_stores(self, *nodes: str) -> None:
        """ApiError 503 naming the cause when the key store of one of ``nodes`` cannot be
        written."""
        for node in nodes:
            cause = self.supply.store_fault(node) if node in self.stores else None
            if cause is not None:
                raise ApiError(503, fault_message(node, cause))

    def _check_running(self, *nodes: str) -> None:
        stopped = [n for n in nodes if n in self.faults.stopped_nodes]
        if stopped:
            raise ApiError(503, f"the Key Manager of node {stopped[0]} is stopped")

    def _check_pair(self, master_sae: str, slave_sae: str) -> None:
        """ApiError 401 unless the scenario's SAE pair policy lets the two share keys."""
        if not self.network.may_share_keys(master_sae, slave_sae):
            raise ApiError(401, f"SAEs {master_sae!r} and {slave_sae!r} may not share keys "
                           "(not a pair of the scenario's sae_pairs)")

    def _route(self, master_sae: str, slave_sae: str) -> Route:
        source, target = self.sae_node(master_sae), self.sae_node(slave_sae)
        if source is None or target is None:
            raise ApiError(400, "unknown SAE ID")
        self._check_pair(master_sae, slave_sae)  # before any route is chosen or pad spent
        try:
            return self.router.route(source, target)
        except NoRoute as exc:
            raise ApiError(503, f"no route between the SAEs' nodes: {exc}") from None

    # --- group commit ---------------------------------------------------------------------

    def _end_round_soon(self, member: Member) -> None:
        """Have the round ``member`` wrote in commit at the loop's next turn (once per
        round), after the calls of this turn have joined it."""
        if not member.settled and self._round_end is None:
            self._round_end = asyncio.get_running_loop().call_soon(self.end_round)

    def end_round(self) -> None:
        """Commit the open round (if any) and wake the calls waiting for it."""
        self._round_end = None
        self.commits.commit()
        round_, self._round = self._round, None
        if round_ is not None and not round_.done():
            round_.set_result(None)

    async def _committed(self, member: Member) -> None:
        """Return once what ``member`` wrote has committed; ApiError 503 naming the node
        whose store could not commit it (it is then undone)."""
        while not member.settled:
            if self._round is None:
                self._round = asyncio.get_running_loop().create_future()
            self._end_round_soon(member)
            await asyncio.shield(self._round)  # shared by the round's calls: never cancelled
        failure = member.failure
        if isinstance(failure, StoreFault):
            raise ApiError(503, fault_message(failure.node, failure.cause))
        if failure is not None:
            raise ApiError(503, f"key store: {failure}")

    # --- messages from other processes ----------------------------------------------------

    async def receive(self, sender: str, envelopes: Sequence[Envelope]) -> list[str]:
        """Do the messages node ``sender`` (of another process) sent to nodes of this one,
        each in the group round as its relay's part here, and return once the round has
        committed: the ids of those whose writes could not be committed (undone; the
        sender sends them again), none when all were."""
        done: list[tuple[Envelope, Member, list[_Outgoing]]] = []
        failed = []
        for envelope in envelopes:
            message = envelope.message
            if isinstance(message, KeySupply | KeySupplyAck | PoolSync):
                if not await self._supply_message(sender, envelope.to, message):
                    failed.append(envelope.id)
                continue
            if isinstance(message, CrossBorder | Crossed):  # BorderKeyNetwork's to take
                log.warning("border crossing message from node %s unused: no interop KMS "
                            "here", sender)
                continue
            with self.commits.member(self._local_part(envelope)) as member:
                try:
                    fresh = self.stores[envelope.to].receive_once(sender, envelope.id,
                                                                  time.time())
                except KeyStoreError as exc:
                    log.warning("KM message for node %s not taken: %s", envelope.to, exc)
                    failed.append(envelope.id)
                    continue
                self._receivers.add(envelope.to)
                if fresh:
                    sends = self._submit(envelope.to, Received(sender, message))
                else:
                    sends = []
                    self.replayed += 1
            self._end_round_soon(member)
            done.append((envelope, member, sends))
        for envelope, member, sends in done:
            try:
                await self._committed(member)
            except ApiError:
                failed.append(envelope.id)
                continue
            self._release(sends)
        return failed

    async def _supply_message(self, sender: str, to: str,
                              message: KeySupply | KeySupplyAck | PoolSync) -> bool:
        """Hand a border KM-link's supply message to the border supply; whether it was
        done (a store that cannot be written: not, and the sender sends it again)."""
        if self.border is None:
            return True  # nothing here supplies border KM-links: acknowledged, unused
        try:
            await self.border.receive(sender, to, message)
        except KeyStoreError as exc:
            log.warning("key supply message for KM-link %s not stored: %s",
                        message.km_link, exc)
            return False
        return True

    def _local_part(self, envelope: Envelope) -> tuple[str, ...]:
        """The nodes of this process whose stores a message may write, in its route's
        order: for a hop, its receiver and the route's later nodes hosted here."""
        message = envelope.message
        if isinstance(message, ForwardKey):
            return tuple(n for n in message.route.nodes[message.hop + 1:]
                         if n in self.stores)
        return (envelope.to,)

    # --- the relay machinery --------------------------------------------------------------

    def _submit(self, node: str, event: Event) -> list[_Outgoing]:
        """Give ``event`` to the KM of ``node`` and carry its messages between this
        process's KMs; the messages it made for other processes (to be released with
        :meth:`_release` once what made them has committed)."""
        sends: list[_Outgoing] = []
        self._outgoing = sends
        for outcome in self.kms.submit(node, event, asyncio.get_running_loop().time()):
            self._settle(outcome)
        self._outgoing = []
        return sends

    def _outgoing_message(self, to: str, received: Received) -> None:
        """Keep a message for another process in its sender's store, in the transaction
        under way (the round's, or a timer's own)."""
        ident = f"{self._incarnation}:{next(self._sequence)}"
        body = encode_batch(received.sender, [Envelope(ident, to, received.message)])
        try:
            self.stores[received.sender].queue_outgoing(ident, to, body, time.time())
        except KeyStoreError as exc:
            # inside a round the round rolls back and the message is never released;
            # outside one it leaves now, unkept
            log.warning("KM message of node %s for node %s not kept: %s", received.sender,
                        to, exc)
        self._outgoing.append((to, received, ident))

    def _release(self, sends: list[_Outgoing]) -> None:
        """Hand messages for other processes to the transport."""
        if self.remote is None:
            return
        for to, received, ident in sends:
            self.remote.send(received.sender, to, received.message, ident)

    def _message_settled(self, sender: str, ident: str) -> None:
        if sender in self.stores:
            self._settled.setdefault(sender, []).append(ident)

    def forget_settled(self) -> int:
        """Drop from the stores the kept messages acknowledged (or given up) since the last
        call, one transaction per sending node; how many. Called by the pump: a message
        acknowledged but not yet forgotten when the process dies is only sent again, and
        recognised there."""
        done = 0
        for node in list(self._settled):
            self.stores[node].forget_outgoing(self._settled[node])  # kept if this fails
            done += len(self._settled.pop(node))
        return done

    def forget_received(self) -> int:
        """Forget the ids of messages from other processes done more than
        :data:`RECEIVED_KEEP_S` ago, in the stores that hold any; how many."""
        before = time.time() - RECEIVED_KEEP_S
        gone = 0
        for node in sorted(self._receivers):
            store = self.stores[node]
            gone += store.forget_received(before)
            if not store.remembers_received():
                self._receivers.discard(node)  # back when it takes a message again
        return gone

    def resend_kept(self, give_up_s: float = 10.0) -> int:
        """Send again, under their ids, the messages kept in the stores from before a
        restart; those kept longer than ``give_up_s`` are dropped (their relay has failed
        at its source by now), counted in :attr:`stale`. How many were sent."""
        if self.remote is None:
            return 0
        now = time.time()
        for node, store in self.stores.items():
            old = []
            for ident, to, body, at in store.outgoing():
                try:
                    sender, (envelope,) = decode_batch(body)
                except (WireError, ValueError):
                    sender = ""
                if sender != node or now - at > give_up_s:
                    old.append(ident)
                    continue
                self.remote.send(node, to, envelope.message, ident, age_s=max(0.0, now - at))
                self.resent += 1
            if old:
                store.forget_outgoing(old)
                self.stale += len(old)
                log.warning("node %s: %d KM messages kept from before the restart were "
                            "older than %g s and are dropped", node, len(old), give_up_s)
        if self.resent:
            log.info("%d KM messages kept from before the restart sent again", self.resent)
        return self.resent

    def _start_timer(self, node: str, timer: StartTimer) -> None:
        asyncio.get_running_loop().call_at(timer.deadline, self._timer_expired, node,
                                           timer.tag)

    def _timer_expired(self, node: str, tag: str) -> None:
        # a timer's writes are not a member's: each commits on its own at once (the round
        # first), so what it sends may leave now
        self._release(self._submit(node, TimerExpired(tag)))

    def _settle(self, outcome: Outcome) -> None:
        future = self._waiting.pop(outcome.relay_id, None)
        if future is None or future.done():
            return
        if isinstance(outcome, KeyDelivered):
            future.set_result(outcome.material)
        else:
            log.info("relay %s not delivered: %s", outcome.relay_id, outcome.reason)
            future.set_exception(ApiError(503, outcome.reason or NOT_ENOUGH_KEY))

    def log_delivery_summary(self) -> bool:
        """One INFO line with the keys relayed and released since the last line and in
        all, if any were; whether a line was written. Called periodically by the server:
        a line per delivered key would cost more than the key (failures are still logged
        one by one)."""
        now = (self.keys_relayed, self.keys_released)
        if now == self._summarised:
            return False
        relayed, released = (a - b for a, b in zip(now, self._summarised, strict=True))
        log.info("delivered keys: %d relayed, %d released to slaves since the last summary "
                 "(%d and %d since start)", relayed, released, *now)
        self._summarised = now
        return True

    def expire_held(self) -> int:
        """Erase the held keys older than the TTL on the relay clock of every store that
        may hold keys (crash orphans too: a relay the master never completed leaves its
        keys held), count them per node and return how many went now. Stores that never
        held a key are not visited: each visit is a write transaction."""
        now = asyncio.get_running_loop().time()
        gone = 0
        for node in sorted(self._may_hold):
            erased = self.stores[node].expire_held(now, self.held_key_ttl_s)
            self.expired_held_keys[node] += erased
            gone += erased
        if gone:
            log.info("erased %d held keys not fetched within %.0f s", gone, self.held_key_ttl_s)
        return gone

    def close(self) -> None:
        """Commit the open round and close every store (the transport is closed by its
        owner)."""
        self.commits.commit()
        if self._round_end is not None:
            self._round_end.cancel()
            self._round_end = None
        for store in self.stores.values():
            store.close()
        if self.satellite is not None:
            self.satellite.close()


def _log_lost(node: str, event: Event) -> None:
    log.warning("message for stopped or unserved node %s dropped", node)
