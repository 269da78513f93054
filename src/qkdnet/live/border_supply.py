"""The key supply of the KM-links whose ends take their key each from its own device end
(:class:`~qkdnet.live.qkd_device.DeviceEnd`): the KM-links whose ends are in different
processes (border KM-links), and those of one process with a vendor device pair. The ends
synchronise by the rules of :mod:`qkdnet.keys.supply_sync` (a block is stored at the end
that receives with it before the end that sends with it may use it), over the KM-to-KM
transport, or, both ends here, by handing the messages over in this process.

This process initiates on the KM-links whose end ``a`` it hosts and responds on those
whose end ``b`` it hosts (both, for a pair in this process). :meth:`BorderSupply.step`
(called by the driver's pump) starts one exchange per idle initiated link;
:meth:`BorderSupply.receive` takes the other end's messages (from
:meth:`~qkdnet.live.keynet.KeyNetwork.receive`).
:meth:`BorderSupply.figures` tells, per link, the blocks stored and the key lost (a block
only one end received, or an exchange never acknowledged); a node process writes them to
``supply.json`` in its data folder (:func:`write_figures`) for ``qkdnet status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply_sync import (
    KeySupply,
    KeySupplyAck,
    Pools,
    PoolSync,
    SupplyInitiator,
    responder_deposits,
    unmatched,
)
from qkdnet.live.km_transport import RemoteKMs
from qkdnet.live.qkd_device import DeviceEnd, DeviceError
from qkdnet.live.satellite_supply import DEFAULT_PAD_BYTES
from qkdnet.topology.model import KMLinkKind, Network

log = logging.getLogger("qkdnet.supply")

#: The border supply's figures in a node process's data folder (read by ``qkdnet status``).
FIGURES_FILE = "supply.json"
#: Most blocks one exchange carries.
EXCHANGE_BLOCKS = 64
#: How long an exchange waits for its acknowledgement before it is abandoned (s).
ACK_TIMEOUT_S = 10.0


@dataclass
class _Initiated:
    node: str
    peer: str
    sync: SupplyInitiator
    device: DeviceEnd


@dataclass(frozen=True)
class SupplyFigures:
    """One border KM-link's supply at one end since the process started: blocks stored
    there (and kept: both ends hold them), and key (bits) dropped because only one end
    received it or its exchange was never acknowledged (counted at the initiating end
    ``a``)."""

    stored_blocks: int
    lost_bits: int


class BorderSupply:
    """The border KM-links of ``network`` with one end in ``stores`` (by node) and a device
    end in ``devices`` (by KM-link id), synchronised through ``remote``; and the KM-links
    with both ends in ``stores`` and a device end each in ``pairs`` (by KM-link id: end
    ``a``'s, end ``b``'s), synchronised here."""

    def __init__(self, network: Network, stores: Mapping[str, SQLiteKeyStore],
                 remote: RemoteKMs, devices: Mapping[str, DeviceEnd],
                 ack_timeout_s: float = ACK_TIMEOUT_S,
                 pairs: Mapping[str, tuple[DeviceEnd, DeviceEnd]] | None = None) -> None:
        self.stores = stores
        self.remote = remote
        #: Most unused key (bytes) end ``a`` takes each way, by KM-link: a satellite
        #: KM-link's pad, as in ``qkdnet serve`` (the rest stays in the satellite's pools,
        #: shared by every satellite KM-link of its stations); others: what the pools hold.
        self.ceilings = {km.id: DEFAULT_PAD_BYTES for km in network.km_links
                         if km.kind is KMLinkKind.SATELLITE}
        #: Key (bits) the device of each KM-link here said it had ready when last asked
        #: (:meth:`ask_ready`).
        self.ready_bits: dict[str, float] = {}
        self._handovers: set[asyncio.Task[None]] = set()  # messages between ends here
        #: How long an exchange waits for its acknowledgement before it is abandoned (s).
        self.ack_timeout_s = ack_timeout_s
        self._initiated: dict[str, _Initiated] = {}
        self._responding: dict[str, tuple[str, DeviceEnd]] = {}
        for km in network.km_links:
            here = [n for n in (km.a, km.b) if n in stores]
            if km.kind is KMLinkKind.REMOTE or len(here) != 1 or km.id not in devices:
                continue
            if here[0] == km.a:
                store = stores[km.a]
                self._initiated[km.id] = _Initiated(
                    km.a, km.b, SupplyInitiator(km.id, store.next_block(km.id)),
                    devices[km.id])
            else:
                self._responding[km.id] = (km.b, devices[km.id])
        for km_link, (end_a, end_b) in (pairs or {}).items():
            km = network.km_link[km_link]
            if km.a not in stores or km.b not in stores:
                raise ValueError(f"KM-link {km_link}: both ends must be served here")
            self._initiated[km_link] = _Initiated(
                km.a, km.b, SupplyInitiator(km_link, stores[km.a].next_block(km_link)), end_a)
            self._responding[km_link] = (km.b, end_b)
        #: Blocks stored by this process's border supply since start, and bits of key
        #: discarded by pool synchronisation (blocks only this end held), by KM-link.
        self._stored: dict[str, int] = dict.fromkeys([*self._initiated, *self._responding], 0)
        self._discarded: dict[str, int] = dict.fromkeys(self._stored, 0)

    @property
    def stored_blocks(self) -> int:
        """Blocks stored by this process's border supply since start."""
        return sum(self._stored.values())

    @property
    def discarded_bits(self) -> int:
        """Key (bits) this process discarded in pool synchronisations since start."""
        return sum(self._discarded.values())

    def figures(self) -> dict[str, SupplyFigures]:
        """Each border KM-link this process supplies: blocks stored, key lost (bits: at
        end a, exchanges never acknowledged and blocks the other end lacked; at either end,
        blocks a pool synchronisation discarded here)."""
        return {link: SupplyFigures(
            self._stored[link],
            self._discarded[link]
            + (self._initiated[link].sync.lost_bits if link in self._initiated else 0))
            for link in self.links}

    @property
    def links(self) -> list[str]:
        """The border KM-links this process supplies (initiating or responding)."""
        return sorted([*self._initiated, *self._responding])

    @property
    def lost_bits(self) -> int:
        """Key (bits) dropped by abandoned exchanges and blocks the other end lacked."""
        return sum(i.sync.lost_bits for i in self._initiated.values())

    async def step(self, now: float) -> int:
        """Start an exchange on every initiated link that has none open, room in its pools
        and key in its device; abandon exchanges unanswered for :attr:`ack_timeout_s`.
        Returns the blocks offered."""
        offered = 0
        for link, side in self._initiated.items():
            if side.sync.sync_due(now, self.ack_timeout_s):
                live = self.stores[side.node].live_blocks(link)
                self._send(side.node, side.peer, side.sync.sync_request(live, now))
            if not side.sync.synced:
                continue
            started = side.sync.started()
            if started is not None:
                if now - started > self.ack_timeout_s:
                    log.warning("KM-link %s: no acknowledgement of key supply from node %s "
                                "within %g s; its blocks are dropped", link, side.peer,
                                self.ack_timeout_s)
                    side.sync.abandon()
                continue
            store = self.stores[side.node]
            size = side.device.key_bytes
            pools = _pools(store, link, self.ceilings.get(link))
            wanted = min(pools.out_room // size + pools.in_room // size, EXCHANGE_BLOCKS)
            if wanted <= 0:
                continue
            ready = await side.device.available()
            self.ready_bits[link] = 8.0 * ready * size
            if ready <= 0:
                continue
            keys = await side.device.enc_keys(min(wanted, ready))
            deposits, supply = side.sync.plan(keys, pools, now)
            store.deposit_many(deposits)
            self._stored[link] += len(deposits)
            self._send(side.node, side.peer, supply)
            offered += len(supply.blocks)
        return offered

    async def ask_ready(self, links: Iterable[str]) -> None:
        """Ask the devices of ``links`` (KM-links with an end here) how much key they
        have ready, into :attr:`ready_bits`; a device that does not answer is logged and
        counts as none."""
        for link in links:
            side = self._initiated.get(link)
            device = side.device if side is not None else self._responding[link][1]
            try:
                self.ready_bits[link] = 8.0 * await device.available() * device.key_bytes
            except DeviceError as exc:
                self.ready_bits[link] = 0.0
                log.warning("KM-link %s: its device's status failed: %s", link, exc)

    async def receive(self, sender: str, to: str,
                      message: KeySupply | KeySupplyAck | PoolSync) -> None:
        """Take a supply message of the other end of a border KM-link."""
        if isinstance(message, KeySupply):
            await self._respond(sender, to, message)
            return
        if isinstance(message, PoolSync):
            self._pool_sync(sender, to, message)
            return
        side = self._initiated.get(message.km_link)
        if side is None or side.node != to or side.peer != sender:
            log.warning("key supply acknowledgement for KM-link %s from node %s ignored: "
                        "not a border KM-link node %s initiates with it", message.km_link,
                        sender, to)
            return
        deposits, discard = side.sync.acked(message)
        store = self.stores[to]
        store.deposit_many(deposits)
        # blocks stored at the exchange's start that the other end lacks: not stored after all
        self._stored[message.km_link] += len(deposits) - len(discard)
        for block in discard:
            store.discard_block(message.km_link, block)

    def _pool_sync(self, sender: str, to: str, sync: PoolSync) -> None:
        """The other end's blocks: discard the blocks held here that it does not hold; the
        responder answers with its own."""
        link = sync.km_link
        side = self._initiated.get(link)
        responding = self._responding.get(link)
        if sync.reply and side is not None and (side.node, side.peer) == (to, sender):
            self._discard(to, link, side.sync.synced_with(sync, self.stores[to].live_blocks(
                link)))
        elif not sync.reply and responding is not None and responding[0] == to:
            store = self.stores[to]
            self._discard(to, link, unmatched(store.live_blocks(link), sync))
            self._send(to, sender, PoolSync(link, tuple(store.live_blocks(link)),
                                            store.next_block(link), reply=True))
        else:
            log.warning("pool synchronisation of KM-link %s from node %s ignored: not a "
                        "border KM-link node %s shares with it", link, sender, to)

    def _discard(self, node: str, link: str, blocks: list[int]) -> None:
        if not blocks:
            return
        store = self.stores[node]
        bits = 8 * UNIT_BYTES * sum(store.discard_block(link, b) for b in blocks)
        self._discarded[link] += bits
        log.warning("KM-link %s: node %s discarded %d blocks (%d bits) the other end does "
                    "not hold", link, node, len(blocks), bits)

    async def _respond(self, sender: str, to: str, supply: KeySupply) -> None:
        responding = self._responding.get(supply.km_link)
        if responding is None or responding[0] != to:
            log.warning("key supply for KM-link %s from node %s ignored: node %s does not "
                        "respond on it", supply.km_link, sender, to)
            return
        store, device = self.stores[to], responding[1]
        # blocks stored before (a supply sent again after a crash here): not asked again
        known = store.known_blocks(supply.km_link, (b.block for b in supply.blocks))
        new = [b for b in supply.blocks if b.block not in known]
        material: dict[str, bytes] = {}
        if new:
            try:
                material = dict(await device.dec_keys([b.key_id for b in new]))
            except DeviceError as exc:
                log.warning("KM-link %s: the device did not give the supplied keys (%s); "
                            "none of them is stored", supply.km_link, exc)
        deposits = responder_deposits(supply, material, _pools(store, supply.km_link))
        store.deposit_many(deposits)
        self._stored[supply.km_link] += len(deposits)
        stored = {d.block for d in deposits}
        held = tuple(b.block for b in supply.blocks if b.block in known or b.block in stored)
        self._send(to, sender, KeySupplyAck(supply.km_link, held))

    def _send(self, sender: str, to: str, message: KeySupply | KeySupplyAck | PoolSync
              ) -> None:
        """To the other end: over the transport, or handed over at the loop's next turn
        when it is served here (as a message from another process would come)."""
        if to not in self.stores:
            self.remote.send(sender, to, message)
            return
        task = asyncio.get_running_loop().create_task(self._hand_over(sender, to, message))
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)

    async def _hand_over(self, sender: str, to: str,
                         message: KeySupply | KeySupplyAck | PoolSync) -> None:
        try:
            await self.receive(sender, to, message)
        except Exception:  # a lost supply message is what the protocol survives
            log.exception("key supply message of KM-link %s from node %s to node %s "
                          "failed", message.km_link, sender, to)


def _pools(store: SQLiteKeyStore, km_link: str, ceiling: int | None = None) -> Pools:
    """The store's pools on ``km_link``, each way: unused bytes and room (up to
    ``ceiling`` bytes unused, where given)."""
    out, inbound = store.pool_bytes(km_link, True), store.pool_bytes(km_link, False)
    out_room, in_room = store.room(km_link, True), store.room(km_link, False)
    if ceiling is not None:
        out_room, in_room = (min(out_room, max(ceiling - out, 0)),
                             min(in_room, max(ceiling - inbound, 0)))
    return Pools(out, inbound, out_room, in_room)


def write_figures(path: Path, supply: BorderSupply) -> None:
    """Write ``supply``'s figures to ``path`` as JSON (KM-link -> stored_blocks, lost_bits),
    atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(f) for k, f in supply.figures().items()}),
                   encoding="utf-8")
    os.replace(tmp, path)


def read_figures(path: Path) -> dict[str, SupplyFigures]:
    """The figures :func:`write_figures` wrote at ``path``; none if there is no such file
    or it is not what was written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): SupplyFigures(int(v["stored_blocks"]), int(v["lost_bits"]))
                for k, v in data.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
