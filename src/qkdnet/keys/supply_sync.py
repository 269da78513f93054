"""Key supply across a process border: the two ends of a KM-link hosted by different
processes each take the link's key from their own end of the QKD device pair, and agree
over the KM-to-KM interface on which blocks they both hold before either end spends one
(ITU-T Y.3803 key synchronisation; ITU-T Q.4163 calls the message a key supply
notification).

Each end's KM is an SAE of its device (ETSI GS QKD 014). The *initiating* end (end ``a``
of the KM-link) asks its device for blocks (Get key: key_IDs and material), numbers them
and picks each block's direction (the end whose outbound pool holds less sends with it,
:func:`~qkdnet.keys.supply.outbound_at_a`; the other end's outbound pool is this end's
inbound pool, the same blocks; a direction without room takes none), then tells the other
end the blocks' numbers, key_IDs and directions (:class:`KeySupply`). The *responding*
end gets the same material from its device by key_ID (Get key with key IDs), stores the
blocks that fit and says which it holds (:class:`KeySupplyAck`).

The rule that keeps a pad used once and every relay decryptable: **a block is stored at
the end that receives with it before the end that sends with it may use it.** So the
initiator stores at once only the blocks it receives with (the responder sends with them,
and it holds none before it has answered), and keeps the blocks it sends with until the
acknowledgement names them; a block the acknowledgement leaves out (the responder's device
no longer had it) is never stored there and is discarded where it was stored. An
exchange whose acknowledgement never comes is abandoned: its kept blocks are dropped and
counted (the responder may hold them, unused for good: key lost, never reused).

**Resynchronisation.** An end that restarts, or whose exchange went unanswered, cannot know
which blocks of the open exchange the other end kept. So before its next exchange the
initiator sends the blocks it holds unused units of, and one past the highest it ever got
(:class:`PoolSync`); the responder discards its own blocks the initiator does not hold and
answers the same of itself; the initiator discards its blocks the responder does not hold
and goes on numbering past both ends' highest. A block only one end received is so never
used, and its bits are counted as discarded; a relay in flight over a block discarded
meanwhile fails at the receiver (its pad is gone), never reuses one.

Sans-I/O: the driver (:mod:`qkdnet.live.border_supply`) talks to the devices and the
transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from qkdnet.keys.domain_border import CrossBorder, Crossed
from qkdnet.keys.messages import Message
from qkdnet.keys.pool import Deposit
from qkdnet.keys.supply import outbound_at_a


@dataclass(frozen=True, slots=True)
class SuppliedBlock:
    """Block ``block`` of a KM-link, under ``key_id`` at both ends' device; whether the
    initiating end sends with it."""

    block: int
    key_id: str
    initiator_sends: bool


@dataclass(frozen=True, slots=True)
class KeySupply:
    """Initiator to responder: the blocks of ``km_link`` it took from its device."""

    km_link: str
    blocks: tuple[SuppliedBlock, ...]


@dataclass(frozen=True, slots=True)
class KeySupplyAck:
    """Responder to initiator: the blocks of ``km_link`` it now holds (of a KeySupply)."""

    km_link: str
    blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PoolSync:
    """One end of ``km_link`` to the other: the blocks it holds unused units of (``live``)
    and one past the highest block it ever got (``next_block``); ``reply``: whether this
    answers the other end's."""

    km_link: str
    live: tuple[int, ...]
    next_block: int
    reply: bool = False


def unmatched(own: Sequence[int], other: PoolSync) -> list[int]:
    """The blocks of ``own`` (held here) that the other end, by ``other``, does not hold:
    to discard here."""
    theirs = set(other.live)
    return [b for b in own if b not in theirs]


#: Every message between KMs: the relay's, the supply's and the domain border's.
KmMessage = Message | KeySupply | KeySupplyAck | PoolSync | CrossBorder | Crossed


@dataclass(frozen=True, slots=True)
class Pools:
    """One end's pools on a KM-link: unused bytes and room (bytes) each way."""

    out_bytes: int
    in_bytes: int
    out_room: int
    in_room: int


@dataclass
class _Exchange:
    supply: KeySupply
    started: float
    kept: dict[int, bytes] = field(repr=False)  # blocks the initiator sends with, by number
    received: dict[int, int] = field(default_factory=dict)  # stored here inbound: size (bytes)


class SupplyInitiator:
    """The initiating end of border KM-link ``km_link``, going on from block
    ``next_block`` (one past the highest this end got); ``synced``: whether the ends are
    known to agree on their blocks (else a :class:`PoolSync` comes first). One exchange at
    a time."""

    def __init__(self, km_link: str, next_block: int, synced: bool = False) -> None:
        self.km_link = km_link
        self.next_block = next_block
        self._open: _Exchange | None = None
        #: Bits of key dropped: kept blocks of abandoned exchanges, and blocks the
        #: responder did not hold (whichever way they were to go: only this end received
        #: them).
        self.lost_bits = 0
        #: Whether the two ends agree on the blocks they hold (False at start and after an
        #: abandoned exchange: no exchange starts before :meth:`synced_with`).
        self.synced = synced
        self._sync_sent: float | None = None

    @property
    def busy(self) -> bool:
        """Whether an exchange waits for its acknowledgement."""
        return self._open is not None

    def sync_due(self, now: float, timeout_s: float) -> bool:
        """Whether to send a :class:`PoolSync` now: not synced, and none sent in the last
        ``timeout_s`` (s) (a lost one is sent again)."""
        return not self.synced and (self._sync_sent is None
                                    or now - self._sync_sent > timeout_s)

    def sync_request(self, live: Sequence[int], now: float) -> PoolSync:
        """The :class:`PoolSync` to send, given the blocks held here (``live``)."""
        self._sync_sent = now
        return PoolSync(self.km_link, tuple(live), self.next_block)

    def synced_with(self, reply: PoolSync, live: Sequence[int]) -> list[int]:
        """The responder's answer came: the blocks of ``live`` (held here) to discard, and
        numbering goes on past both ends' highest block. A reply when synced (a late
        duplicate) changes nothing."""
        if self.synced or reply.km_link != self.km_link or not reply.reply:
            return []
        self.synced, self._sync_sent = True, None
        self.next_block = max(self.next_block, reply.next_block)
        return unmatched(live, reply)

    def started(self) -> float | None:
        """When (s) the open exchange started; None if none is open."""
        return None if self._open is None else self._open.started

    def plan(self, keys: Sequence[tuple[str, bytes]], pools: Pools, now: float
             ) -> tuple[list[Deposit], KeySupply]:
        """Number the device's ``keys`` (key_ID, material) as the next blocks and choose
        their directions, given this end's ``pools`` on the KM-link; what to store here now
        (the blocks this end receives with) and the message for the responder. Keys for
        which neither direction has room are left out (give no more than fit)."""
        if self._open is not None or not self.synced:
            raise RuntimeError(f"KM-link {self.km_link}: an exchange is open, or the ends "
                               "have not synchronised")
        # the responder's outbound pool holds the blocks this end's inbound pool holds
        here, there = pools.out_bytes, pools.in_bytes
        out_room, in_room = pools.out_room, pools.in_room
        now_deposits: list[Deposit] = []
        kept: dict[int, bytes] = {}
        blocks = []
        for key_id, material in keys:
            size = len(material)
            sends = outbound_at_a(self.next_block, here, there)
            if (out_room if sends else in_room) < size:
                sends = not sends  # that direction is full: the other one takes it
            if (out_room if sends else in_room) < size:
                break
            number, self.next_block = self.next_block, self.next_block + 1
            if sends:
                here, out_room = here + size, out_room - size
                kept[number] = material
            else:
                there, in_room = there + size, in_room - size
                now_deposits.append(Deposit(self.km_link, number, material, False))
            blocks.append(SuppliedBlock(number, key_id, sends))
        supply = KeySupply(self.km_link, tuple(blocks))
        self._open = _Exchange(supply, now, kept,
                               {d.block: len(d.material) for d in now_deposits})
        return now_deposits, supply

    def acked(self, ack: KeySupplyAck) -> tuple[list[Deposit], list[int]]:
        """The acknowledgement of the open exchange came: the kept blocks it names, to
        store now (outbound here), and the blocks stored here that it does not name, to
        discard (the responder never held them). An acknowledgement of no open exchange
        (a late duplicate) changes nothing."""
        exchange = self._open
        if exchange is None or ack.km_link != self.km_link:
            return [], []
        self._open = None
        held = set(ack.blocks)
        store = [Deposit(self.km_link, n, m, True) for n, m in exchange.kept.items()
                 if n in held]
        discard = [b.block for b in exchange.supply.blocks
                   if not b.initiator_sends and b.block not in held]
        self.lost_bits += 8 * (sum(len(m) for n, m in exchange.kept.items() if n not in held)
                               + sum(exchange.received.get(n, 0) for n in discard))
        return store, discard

    def abandon(self) -> None:
        """Give up the open exchange (no acknowledgement came): its kept blocks are dropped
        and counted in :attr:`lost_bits`. The blocks stored here stay: the responder sends
        with them only if it holds them."""
        exchange, self._open = self._open, None
        if exchange is not None:
            self.lost_bits += 8 * sum(len(m) for m in exchange.kept.values())
            self.synced = False  # which blocks the responder kept is unknown


def responder_deposits(supply: KeySupply, material: Mapping[str, bytes], pools: Pools
                       ) -> list[Deposit]:
    """What the responding end stores for ``supply``: each block whose key_ID its device
    gave (``material`` by key_ID) and that fits its ``pools``, outbound here when the
    initiator receives with it."""
    room = {True: pools.out_room, False: pools.in_room}
    out = []
    for b in supply.blocks:
        data = material.get(b.key_id)
        outbound = not b.initiator_sends
        if data is None or room[outbound] < len(data):
            continue
        room[outbound] -= len(data)
        out.append(Deposit(supply.km_link, b.block, data, outbound))
    return out
