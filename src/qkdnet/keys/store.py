"""The durable key store: :class:`SQLiteKeyStore` keeps one node's key pools and held keys
in a SQLite file, by the rules every key store shares (:mod:`qkdnet.keys.pool`).

Why SQLite: every public method is one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a crash
(even SIGKILL) at any point leaves a deposit whole or absent, a take deleting exactly what
it returned, and a release done once. :meth:`SQLiteKeyStore.batch` runs several methods in
one transaction (each method inside it still whole or absent: it refuses before it writes,
or has a savepoint of its own): a relay hop's inbound take and outbound take commit once.
The file is in WAL mode; ``synchronous=NORMAL`` keeps every committed transaction across a
process crash, ``FULL`` also across a power loss (one fsync per commit, slower). A store
given a :class:`~qkdnet.keys.commit_group.CommitGroup` (``store.group``) lets the group's
members share one transaction per store that commits once per round (group commit: the
live KMEs' calls of one loop turn); each call is answered only once its round has
committed, so the crash rules above hold for what any caller was told.

The store holds its file with ``locking_mode=EXCLUSIVE``: one process owns a node's store
while it runs (a second opener gets "database is locked"), and the WAL index is kept in the
owner's heap instead of a ``-shm`` file mapped into memory, so a file that turns read-only
or immutable underneath fails a write with an error (a store fault) instead of a SIGBUS that
would end the process. Read a store's file only when its server has stopped.

Layout (schema 3): one ``pads`` row per deposited block that still has unused units, holding
the block's bytes and a map of its used units (one byte per unit). Outbound units always
leave from the front of a block, but inbound units are released by whatever ranges the
sending end names, in the order its relays arrive (a relay lost on the way leaves a gap for
good), so a single consumed offset cannot describe an inbound block: the map can. Taking a
pad reads and rewrites the few rows it touches in one short transaction, instead of a row
per 256-bit unit (schema 2). The unused units per KM-link and direction are counted in
memory (the file has one writer), so :meth:`~SQLiteKeyStore.room` never counts rows or
queries; they are counted from the pads when the file is opened, so they are exact after a
crash, and ``pools.units`` in the file is only written at a checkpoint and at closing (a
take writes its pads and nothing else: one statement fewer per take). For the same reason
the pad a pool direction spends now (the first outbound pad of a link, the inbound pad
the last relay named) is kept in memory as its row stands, so most takes read nothing and
write one row; it is dropped with any rollback and by a discard. ``blocks`` remembers
every block ever deposited, so a replayed block never refills used units.

Erasure of used key: overwritten in place, not per-block encryption keys that are destroyed.
A block's units are used a few at a time over minutes, so a per-block key could only be
destroyed once the whole block is used, and until then every used unit of it would stay
readable to whoever reads the file and the key; the used units' bytes would still need
overwriting (and every take would pay a decryption). So a take writes zeros over the slice
it used in the same transaction (the row rewritten with the slice zeroed), a block used up
is deleted, and ``PRAGMA secure_delete=ON`` zeroes the freed cell space and pages. Until the
next checkpoint an older copy of a page can still lie in the ``-wal`` file; the WAL is
checkpointed automatically every 1000 pages and truncated when it restarts
(``journal_size_limit=0``), and :meth:`SQLiteKeyStore.checkpoint` (run by
:meth:`~SQLiteKeyStore.close`) wipes it at once. Copies the file system or the disk keeps
underneath are out of reach of any user-space store.

``held_keys`` holds the keys kept for slave SAEs (with ``held_at``, the driver's clock when
held, so keys nobody fetches expire: :meth:`~SQLiteKeyStore.expire_held`).

Older files are migrated when opened. Schema 2 kept a ``units`` row per unused unit: its
units become ``pads`` rows (every unused unit kept, used ones zero) and the table is dropped
(secure_delete zeroes its pages). Schema 1 had no ``held_keys.held_at``: its held keys get
the oldest possible stamp (their age is unknown), so the first expiry erases them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

from qkdnet.errors import (
    KeyStoreError,
    NotEnoughKey,
    PadMismatch,
    ParameterError,
    StoreFault,
)
from qkdnet.keys.commit_group import CommitGroup
from qkdnet.keys.pool import (
    UNIT_BYTES,
    Deposit,
    HeldKey,
    UnitRange,
    check_block,
    check_ranges,
    check_release,
    check_room,
    direction_capacity,
)

#: Accepted values of ``synchronous``: NORMAL survives a process crash, FULL a power loss.
SYNCHRONOUS = ("NORMAL", "FULL")
SCHEMA_VERSION = "4"
#: ``held_at`` of keys migrated from schema 1: older than any clock reading.
UNKNOWN_HELD_AT = -1e300
#: Seconds a transaction waits for another process holding the file's write lock.
BUSY_TIMEOUT_S = 5.0
#: SQLite's primary result codes that mean the file, not the call, is at fault: the disk is
#: full, the file or folder is read-only or gone, an I/O error, a damaged file.
_FAULT_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                          sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
                          sqlite3.SQLITE_PERM})
#: A unit's mark in a pad's map of used units.
_UNUSED, _USED = 0, 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS pools (
        km_link TEXT NOT NULL, outbound INTEGER NOT NULL, units INTEGER NOT NULL,
        PRIMARY KEY (km_link, outbound)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS blocks (
        km_link TEXT NOT NULL, block INTEGER NOT NULL, outbound INTEGER NOT NULL,
        units INTEGER NOT NULL, PRIMARY KEY (km_link, block),
        FOREIGN KEY (km_link, outbound) REFERENCES pools (km_link, outbound)) WITHOUT ROWID""",
    # a rowid table: its rows (a block's bytes) are too large for a WITHOUT ROWID b-tree
    """CREATE TABLE IF NOT EXISTS pads (
        km_link TEXT NOT NULL, block INTEGER NOT NULL, outbound INTEGER NOT NULL,
        unused INTEGER NOT NULL, used BLOB NOT NULL, material BLOB NOT NULL,
        FOREIGN KEY (km_link, block) REFERENCES blocks (km_link, block))""",
    # the sender's take: the first outbound pads of a link in block order; the receiver's:
    # one block of a link
    "CREATE UNIQUE INDEX IF NOT EXISTS pads_order ON pads (km_link, outbound, block)",
    """CREATE TABLE IF NOT EXISTS held_keys (
        key_id TEXT PRIMARY KEY, master_sae TEXT NOT NULL, slave_sae TEXT NOT NULL,
        material BLOB NOT NULL, held_at REAL NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS held_keys_pair ON held_keys (master_sae, slave_sae)",
    # KM-to-KM exactly once across crashes (schema 4): the ids of the messages from other
    # processes done here, and the messages for them not yet acknowledged, each written in
    # the transaction of what made it
    """CREATE TABLE IF NOT EXISTS km_received (
        sender TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (sender, id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS km_received_at ON km_received (at)",
    """CREATE TABLE IF NOT EXISTS km_outbox (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, to_node TEXT NOT NULL,
        body BLOB NOT NULL, at REAL NOT NULL)""",
)
#: Schema 1 to 2: when each key was held.
_MIGRATE_1 = (
    f"ALTER TABLE held_keys ADD COLUMN held_at REAL NOT NULL DEFAULT {UNKNOWN_HELD_AT}",
    "UPDATE meta SET value = '2' WHERE name = 'schema'",
)

_SEEN = "SELECT 1 FROM blocks WHERE km_link = ? AND block = ?"
_RECEIVED = "INSERT OR IGNORE INTO km_received (sender, id, at) VALUES (?, ?, ?)"
_NEW_POOL = "INSERT OR IGNORE INTO pools (km_link, outbound, units) VALUES (?, ?, 0)"
_ADD_BLOCK = "INSERT INTO blocks (km_link, block, outbound, units) VALUES (?, ?, ?, ?)"
_ADD_PAD = """INSERT INTO pads (km_link, block, outbound, unused, used, material)
    VALUES (?, ?, ?, ?, ?, ?)"""
_SET_POOL = "UPDATE pools SET units = ? WHERE km_link = ? AND outbound = ?"
#: Unused units per pool direction, counted from the pads (the counters' truth).
_RECOUNT = """SELECT km_link, outbound, SUM(unused) FROM pads GROUP BY km_link, outbound"""
_FIRST_OUT = """SELECT rowid, block, unused, used, material FROM pads INDEXED BY pads_order
    WHERE km_link = ? AND outbound = 1 ORDER BY block LIMIT ?"""
_PAD_IN = """SELECT rowid, unused, used, material FROM pads INDEXED BY pads_order
    WHERE km_link = ? AND outbound = 0 AND block = ?"""
_PAD_ANY = """SELECT rowid, outbound, unused FROM pads INDEXED BY pads_order
    WHERE km_link = ? AND outbound IN (0, 1) AND block = ?"""
_PADS_FROM = """SELECT rowid, outbound, unused FROM pads INDEXED BY pads_order
    WHERE km_link = ? AND outbound IN (0, 1) AND block >= ?"""
_SPEND = "UPDATE pads SET unused = ?, used = ?, material = ? WHERE rowid = ?"
_USED_UP = "DELETE FROM pads WHERE rowid = ?"
_HOLD = """INSERT INTO held_keys (key_id, master_sae, slave_sae, material, held_at)
    VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"""
_EXPIRE = "DELETE FROM held_keys WHERE held_at < ? OR held_at > ?"
_HELD = "SELECT key_id, master_sae, slave_sae, material FROM held_keys WHERE key_id = ?"
_FORGET = "DELETE FROM held_keys WHERE key_id = ?"
_COUNT = "SELECT COUNT(*) FROM held_keys WHERE master_sae = ? AND slave_sae = ?"
_PAIR_OF = "SELECT master_sae, slave_sae FROM held_keys WHERE key_id = ?"
_LINKS = "SELECT DISTINCT km_link FROM pools ORDER BY km_link"
_NEXT_BLOCK = "SELECT COALESCE(MAX(block) + 1, 0) FROM blocks WHERE km_link = ?"


@dataclass(slots=True)
class _Pad:
    """One ``pads`` row being spent inside a transaction: its map and bytes, changed in
    place, written back once."""

    rowid: int
    unused: int
    used: bytearray
    material: bytearray

    def spend(self, start: int, count: int) -> bytes:
        """The bytes of units ``start`` … ``start + count - 1`` (known unused), zeroed here
        and marked used."""
        lo, hi = start * UNIT_BYTES, (start + count) * UNIT_BYTES
        taken = bytes(self.material[lo:hi])
        self.material[lo:hi] = bytes(hi - lo)
        self.used[start:start + count] = b"\x01" * count
        self.unused -= count
        return taken

    def holds(self, start: int, count: int) -> bool:
        """Whether units ``start`` … ``start + count - 1`` all exist and are unused."""
        end = start + count
        return end <= len(self.used) and self.used.find(_USED, start, end) < 0

    def write(self, db: sqlite3.Connection) -> None:
        """Store the spent row: rewritten with its used bytes zeroed, or deleted (zeroed by
        secure_delete) once no unit is left."""
        if self.unused:
            # bytearrays bind as BLOBs as they are: no copy of the block's bytes
            db.execute(_SPEND, (self.unused, self.used, self.material, self.rowid))
        else:
            db.execute(_USED_UP, (self.rowid,))


class SQLiteKeyStore:
    """The key store of ``node`` in the SQLite file ``path`` (created if missing).

    Each KM-link's pool holds at most ``capacity_bytes_per_link`` bytes, each direction
    (inbound, outbound) at most half of it (PoolFull beyond: back-pressure), so key that
    one direction never uses cannot stop the other from filling. ``synchronous`` is ``"NORMAL"``
    (committed work survives a process crash) or ``"FULL"`` (it also survives a power
    loss). A file belongs to one node: opening it for another raises KeyStoreError. Use
    from one thread; one process at a time holds the file (another waits up to
    :data:`BUSY_TIMEOUT_S` to open it, then gets a KeyStoreError).
    """

    def __init__(self, path: Path, node: str, capacity_bytes_per_link: int = 64 * 2**20,
                 synchronous: str = "NORMAL", auto_checkpoint: bool = True) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ParameterError("synchronous", synchronous, "NORMAL or FULL")
        if capacity_bytes_per_link < UNIT_BYTES:
            raise ParameterError("capacity_bytes_per_link", capacity_bytes_per_link,
                                 f"at least {UNIT_BYTES} bytes")
        self.node = node
        self.path = Path(path)
        self.capacity = capacity_bytes_per_link
        #: SQLite's words for the last write fault (disk full, read-only, I/O error), None
        #: while the store is known to write; only :meth:`probe` clears it.
        self.write_fault: str | None = None
        #: The connection's row changes at the last checkpoint: :attr:`written` compares.
        self._checkpointed_changes = -1
        self._batched = 0  # depth of batch() blocks: their methods share its transaction
        self._broken = False  # a SQLite error inside the batch: it is rolled back whole
        #: The group whose rounds this store's writes may join (group commit, see
        #: :mod:`qkdnet.keys.commit_group`); None: every write commits on its own.
        self.group: CommitGroup | None = None
        self._grouped = False  # the open transaction is the group's round
        # unused units per (KM-link, outbound), as committed, and the open transaction's
        # changes to them: the file has one writer (locking_mode=EXCLUSIVE), so the counters
        # are read from memory, never from the file (room and pool_bytes cost no query)
        self._pools: dict[tuple[str, bool], int] = {}
        self._pending: dict[tuple[str, bool], int] = {}
        # pool directions whose ``pools.units`` in the file lags the counter (written at
        # checkpoint and close, not by every take: the pads are the truth, recounted at
        # opening, so a crash in between loses nothing)
        self._unflushed: set[tuple[str, bool]] = set()
        # the pad each pool direction spends now, as the open transaction sees it: the
        # first outbound pad of a link, and the inbound pad a relay last named (the next
        # relays mostly name the same block), so a take needs no SELECT; dropped with any
        # rollback and by a discard, so they never differ from the file (one writer)
        self._front: dict[str, tuple[int, _Pad]] = {}
        self._inbound: dict[str, tuple[int, _Pad]] = {}
        self._conn: sqlite3.Connection | None = _connect(self.path, synchronous)
        if not auto_checkpoint:
            # the owner calls checkpoint() at quiet moments instead of some write paying
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            self._create_schema()
            self._pools = self._recount()
        except BaseException:
            self.close()
            raise

    # --- pools ---------------------------------------------------------------------------

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Store block ``block`` of ``km_link`` (a positive multiple of UNIT_BYTES). A block
        deposited before is a no-op, even once its units are used; PoolFull when the link's
        pool would exceed its capacity."""
        self.deposit_many([Deposit(km_link, block, material, outbound)])

    def deposit_many(self, deposits: Iterable[Deposit]) -> int:
        """Store every block of ``deposits`` as :meth:`deposit` would, in order, in one
        transaction: all or none (a malformed block or PoolFull for one stores none of
        them). Returns how many were new (a block deposited before, or earlier in
        ``deposits``, is a no-op)."""
        todo = [(d, check_block(d.km_link, d.block, d.material)) for d in deposits]
        with self._tx() as db:
            stored: dict[tuple[str, bool], int] = {}  # (link, outbound) -> bytes, as it grows
            seen: set[tuple[str, int]] = set()
            blocks: list[tuple[str, int, int, int]] = []
            pads: list[tuple[str, int, int, int, bytes, bytes]] = []
            for d, units in todo:
                if (d.km_link, d.block) in seen or db.execute(
                        _SEEN, (d.km_link, d.block)).fetchone() is not None:
                    continue
                pool = (d.km_link, d.outbound)
                if pool not in stored:
                    stored[pool] = self._units(pool) * UNIT_BYTES
                check_room(d.km_link, d.block, len(d.material), stored[pool], self.capacity)
                stored[pool] += len(d.material)
                seen.add((d.km_link, d.block))
                direction = int(d.outbound)
                blocks.append((d.km_link, d.block, direction, units))
                pads.append((d.km_link, d.block, direction, units, bytes(units), d.material))
            if not blocks:
                return 0
            links = {link for link, _ in stored}
            db.executemany(_NEW_POOL, ((link, out) for link in sorted(links) for out in (0, 1)))
            db.executemany(_ADD_BLOCK, blocks)
            db.executemany(_ADD_PAD, pads)
            added: dict[tuple[str, int], int] = {}
            for link, block, direction, units in blocks:
                added[(link, direction)] = added.get((link, direction), 0) + units
                front = self._front.get(link)
                if direction and front is not None and block < front[0]:
                    del self._front[link]  # a block before the front: it is the first now
            for (link, direction), units in added.items():
                self._change_pool(link, bool(direction), units)
        return len(blocks)

    def room(self, km_link: str, outbound: bool) -> int:
        """How many more bytes the link's outbound (or inbound) pool accepts before
        PoolFull."""
        return max(0, direction_capacity(self.capacity) - self.pool_bytes(km_link, outbound))

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        """Unused bytes of the link's outbound (or inbound) pool."""
        self._db()
        return self._units((km_link, outbound)) * UNIT_BYTES

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take and delete the first ``units`` outbound units in (block, unit) order:
        their ranges (consecutive units of a block as one range) and their bytes.
        NotEnoughKey, taking nothing, if the pool holds fewer."""
        if units < 0:
            raise KeyStoreError(f"units={units} is not allowed: at least 0")
        with self._tx() as db:
            have = self._units((km_link, True))
            if have < units:
                raise NotEnoughKey(f"KM-link {km_link!r} holds {have} outbound units; "
                                   f"{units} asked for")
            if units == 0:
                return (), b""
            ranges: list[UnitRange] = []
            parts: list[bytes] = []
            spent: list[tuple[int, _Pad]] = []
            front = self._front.get(km_link)
            if front is not None and front[1].unused >= units:
                spent.append(front)
            else:
                need = units
                rows = db.execute(_FIRST_OUT, (km_link, units))
                for rowid, block, unused, used, material in rows:
                    spent.append((block, _Pad(rowid, unused, bytearray(used),
                                              bytearray(material))))
                    need -= unused
                    if need <= 0:
                        break
                rows.close()
                if need > 0:  # the pool's counter and its pads disagree: a damaged file
                    raise KeyStoreError(f"key store {str(self.path)!r}: KM-link "
                                        f"{km_link!r} counts {have} outbound units but "
                                        "holds fewer")
            need = units
            for block, pad in spent:
                for start, count in _runs(pad.used, need):
                    ranges.append(UnitRange(block, start, count))
                    parts.append(pad.spend(start, count))
                    need -= count
            self._front.pop(km_link, None)  # until the writes are done
            for _, pad in spent:
                pad.write(db)
            if spent[-1][1].unused:
                self._front[km_link] = spent[-1]
            self._change_pool(km_link, True, -units)
        return tuple(ranges), b"".join(parts)

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take and delete exactly the named inbound units, in range order. PadMismatch,
        taking nothing, if any is malformed, named twice, outbound, used or never held."""
        check_ranges(km_link, ranges)
        if not ranges:
            self._db()
            return b""
        with self._tx() as db:
            pads: dict[int, _Pad] = {}
            last = self._inbound.get(km_link)
            for r in ranges:
                if r.block not in pads:
                    if last is not None and last[0] == r.block:
                        pads[r.block] = last[1]
                    elif (row := db.execute(_PAD_IN, (km_link, r.block)).fetchone()):
                        pads[r.block] = _Pad(row[0], row[1], bytearray(row[2]),
                                             bytearray(row[3]))
                pad = pads.get(r.block)
                if pad is None or not pad.holds(r.start, r.count):
                    raise PadMismatch(f"KM-link {km_link!r}: units {r.start}.."
                                      f"{r.start + r.count - 1} of block {r.block} are not "
                                      "all held inbound")
            # ranges never overlap (check_ranges), so each is still unused when spent
            parts = [pads[r.block].spend(r.start, r.count) for r in ranges]
            self._inbound.pop(km_link, None)  # until the writes are done
            for pad in pads.values():
                pad.write(db)
            block = ranges[-1].block
            if pads[block].unused:
                self._inbound[km_link] = (block, pads[block])
            self._change_pool(km_link, False, -sum(r.count for r in ranges))
        return b"".join(parts)

    def links(self) -> list[str]:
        """The KM-links that ever had a block deposited, sorted."""
        return [row[0] for row in self._db().execute(_LINKS)]

    def next_block(self, km_link: str) -> int:
        """One past the highest block number ever deposited on ``km_link`` (0 if none):
        where a key supply resumes after a restart."""
        return int(self._db().execute(_NEXT_BLOCK, (km_link,)).fetchone()[0])

    def known_blocks(self, km_link: str, blocks: Iterable[int]) -> set[int]:
        """Which of ``blocks`` of ``km_link`` were ever deposited here (used up or discarded
        since, or not)."""
        db = self._db()
        return {b for b in blocks if db.execute(_SEEN, (km_link, b)).fetchone() is not None}

    def live_blocks(self, km_link: str) -> list[int]:
        """The blocks of ``km_link`` with unused units left, in order."""
        return [int(row[0]) for row in self._db().execute(
            "SELECT block FROM pads WHERE km_link = ? ORDER BY block", (km_link,))]

    def discard_block(self, km_link: str, block: int) -> int:
        """Delete what is left of ``block`` (its number stays known, so it is never taken
        again): for a block that only this end received before a crash. How many unused
        units it had."""
        self._forget_pads(km_link)
        with self._tx() as db:
            row = db.execute(_PAD_ANY, (km_link, block)).fetchone()
            if row is None:
                return 0
            db.execute(_USED_UP, (row[0],))
            self._change_pool(km_link, bool(row[1]), -int(row[2]))
            return int(row[2])

    def discard_from(self, km_link: str, first: int) -> int:
        """Delete what is left of every block of ``km_link`` numbered ``first`` or more
        (their numbers stay known), in one transaction: for the blocks only this end
        received before a crash. How many blocks had units left."""
        self._forget_pads(km_link)
        with self._tx() as db:
            rows = db.execute(_PADS_FROM, (km_link, first)).fetchall()
            db.executemany(_USED_UP, ((rowid,) for rowid, _, _ in rows))
            for direction in (0, 1):
                units = sum(unused for _, out, unused in rows if out == direction)
                if units:
                    self._change_pool(km_link, bool(direction), -units)
        return len(rows)

    def batch(self) -> _Batch:
        """Run the methods called inside in one transaction, committed at the end (also
        when the block raises: what the methods did, they did). Each method is still whole
        or absent: a refusal inside changes nothing and the others stand. Used for a relay
        hop's take of its inbound pad and its outbound one: one commit instead of two. A
        crash before the end, or a SQLite error inside, loses them all (the error raised
        again at the end if the block swallowed it)."""
        return _Batch(self)

    # --- KM-to-KM messages, exactly once ----------------------------------------------------

    def receive_once(self, sender: str, ident: str, now: float) -> bool:
        """Record that message ``ident`` from node ``sender`` is done here (at ``now``, wall
        clock s), in the transaction of what it does; whether it is new (False: it was done
        before, maybe before a crash, and must not be done again)."""
        with self._tx() as db:
            return bool(db.execute(_RECEIVED, (sender, ident, now)).rowcount == 1)

    def forget_received(self, before: float) -> int:
        """Forget the ids of messages done before ``before`` (wall clock s): no sender
        sends a message again that long after; how many."""
        with self._tx() as db:
            return int(db.execute("DELETE FROM km_received WHERE at < ?", (before,)).rowcount)

    def remembers_received(self) -> bool:
        """Whether any message id is recorded as done here."""
        return self._db().execute("SELECT 1 FROM km_received LIMIT 1").fetchone() is not None

    def queue_outgoing(self, ident: str, to: str, body: bytes, now: float) -> None:
        """Keep message ``ident`` for node ``to`` of another process (its wire form
        ``body``, one-time-pad protected) until it is acknowledged, in the transaction of
        what made it: a crash before it leaves cannot lose it."""
        with self._tx() as db:
            db.execute("INSERT INTO km_outbox (id, to_node, body, at) VALUES (?, ?, ?, ?)",
                       (ident, to, body, now))

    def forget_outgoing(self, idents: Iterable[str]) -> None:
        """Drop the kept messages ``idents`` (acknowledged, or given up)."""
        with self._tx() as db:
            db.executemany("DELETE FROM km_outbox WHERE id = ?", ((i,) for i in idents))

    def outgoing(self) -> list[tuple[str, str, bytes, float]]:
        """The kept messages, oldest first: (id, receiving node, wire form, when kept)."""
        return [(str(i), str(t), bytes(b), float(a)) for i, t, b, a in self._db().execute(
            "SELECT id, to_node, body, at FROM km_outbox ORDER BY seq")]

    # --- held keys -----------------------------------------------------------------------

    def hold_keys(self, keys: Sequence[HeldKey], now: float) -> None:
        """Keep ``keys`` for their slave SAE as held at ``now`` (the driver's clock, s), all
        or none; KeyStoreError if a key_ID is already held (or given twice)."""
        # one key refuses before it writes (ON CONFLICT DO NOTHING): no savepoint needed
        with self._tx(savepoint=len(keys) > 1) as db:
            for key in keys:
                done = db.execute(_HOLD, (key.key_id, key.master_sae, key.slave_sae,
                                          key.material, now))
                if done.rowcount != 1:
                    raise KeyStoreError(f"key_ID {key.key_id!r} is already held")

    def release_keys(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        """Hand the keys to ``caller`` in the order asked and delete them, all or none:
        KeyNotFound if any is not held for ``master_sae``, NotAuthorized if ``caller`` is
        not the slave SAE of one, KeyStoreError if a key_ID is asked for twice."""
        with self._tx() as db:
            found = [_held(db.execute(_HELD, (key_id,)).fetchone()) for key_id in key_ids]
            keys = check_release(key_ids, found, master_sae, caller)
            db.executemany(_FORGET, ((key_id,) for key_id in key_ids))
        return keys

    def held_count(self, master_sae: str, slave_sae: str) -> int:
        """How many keys are held for the pair."""
        return int(self._db().execute(_COUNT, (master_sae, slave_sae)).fetchone()[0])

    def held_key_ids(self) -> list[str]:
        """Every key_ID held here (for an index by key_ID, built once at start)."""
        return [str(row[0]) for row in self._db().execute("SELECT key_id FROM held_keys")]

    def held_for(self, key_id: str) -> tuple[str, str] | None:
        """The (master, slave) SAE pair a key_ID is held for, None if it is not held."""
        row = self._db().execute(_PAIR_OF, (key_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def expire_held(self, now: float, ttl_s: float) -> int:
        """Erase (secure_delete zeroes them) every held key held more than ``ttl_s`` s
        before ``now``, and any stamped after ``now`` (a clock that has restarted since:
        :func:`~qkdnet.keys.pool.is_expired`); how many."""
        with self._tx() as db:
            return int(db.execute(_EXPIRE, (now - ttl_s, now)).rowcount)

    # --- the file ------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write the pools' counters to the file, copy the WAL into the database file and
        truncate the WAL to zero bytes, so no older copy of a used unit is left in it. A
        store opened with ``auto_checkpoint=False`` relies on its owner calling this. A
        group round the store is in is committed first."""
        self._commit_round()
        self._flush_pools()
        db = self._db()
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc
        self._checkpointed_changes = db.total_changes

    @property
    def written(self) -> bool:
        """Whether the store has written anything since its last :meth:`checkpoint` (so its
        WAL may hold copies of used key, or counters wait to be flushed)."""
        return self._conn is not None and (
            self._conn.total_changes != self._checkpointed_changes or bool(self._unflushed))

    def probe(self) -> None:
        """Write one small row and commit it, to learn whether the file takes writes again
        (after a :class:`~qkdnet.errors.StoreFault`): clears :attr:`write_fault` when it
        does, raises StoreFault when it does not."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('probe', ?)",
                       (str(self.path),))
        self.write_fault = None

    def close(self) -> None:
        """Checkpoint and close the file; further calls raise KeyStoreError."""
        if self._conn is None:
            return
        self._commit_round()
        with contextlib.suppress(KeyStoreError):  # a file that cannot be written: recounted
            self._flush_pools()
        conn, self._conn = self._conn, None
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass  # a file that cannot be written: its WAL stays until it can
        finally:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteKeyStore({str(self.path)!r}, node={self.node!r})"

    # --- group commit (keys/commit_group.py) ---------------------------------------------

    def begin_round(self) -> None:
        """Open this store's transaction for its group's round: the writes of the round's
        members share it, as a batch's methods do."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc
        self._batched, self._broken, self._grouped = 1, False, True

    def end_round(self, commit: bool) -> KeyStoreError | None:
        """Commit the round's transaction (or roll it back: not ``commit``); the error
        when the commit failed (it is then rolled back, and a fault of the file is in
        :attr:`write_fault`)."""
        db = self._db()
        self._batched, self._grouped = 0, False
        if not commit:
            self._broken = False
            self._pending.clear()
            self._forget_pads()
            _rollback(db)
            return None
        try:
            self._end(db)
        except KeyStoreError as exc:
            return exc
        return None

    def _commit_round(self) -> None:
        if self._grouped and self.group is not None:
            self.group.commit()

    # --- inside --------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise KeyStoreError(f"key store {str(self.path)!r} is closed")
        return self._conn

    def _tx(self, savepoint: bool = False) -> _Transaction:
        """One write transaction: committed whole, or rolled back on any exception (a
        SQLite error becomes a KeyStoreError). Inside :meth:`batch` the batch's transaction:
        a method that may refuse after writing asks for a ``savepoint`` of its own; the
        others refuse before they write, and a SQLite error breaks the whole batch."""
        return _Transaction(self, savepoint)

    def _end(self, db: sqlite3.Connection) -> None:
        """Commit the open transaction (roll it back if a SQLite error broke it) and take
        its counter changes (or drop them)."""
        try:
            if self._broken:
                self._broken = False
                raise sqlite3.OperationalError("a write of this transaction failed")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._pending.clear()
            self._forget_pads()
            _rollback(db)
            raise self._fault(exc) from exc
        for key, change in self._pending.items():
            self._pools[key] = self._pools.get(key, 0) + change
        self._unflushed.update(self._pending)
        self._pending.clear()

    def _forget_pads(self, km_link: str | None = None) -> None:
        """Drop the pads kept for the next take (of ``km_link``, or all): the file may
        no longer hold them as they are (a rollback, a discard)."""
        if km_link is None:
            self._front.clear()
            self._inbound.clear()
        else:
            self._front.pop(km_link, None)
            self._inbound.pop(km_link, None)

    def _recount(self) -> dict[tuple[str, bool], int]:
        """Unused units per pool direction as the pads hold them (every direction of a link
        ever deposited, 0 when none is left)."""
        db = self._db()
        counts = {(str(link), bool(out)): 0 for link, out in
                  db.execute("SELECT km_link, outbound FROM pools")}
        counts.update({(str(link), bool(out)): int(units) for link, out, units in
                       db.execute(_RECOUNT)})
        return counts

    def _flush_pools(self) -> None:
        """Write the counters changed since the last flush to ``pools.units`` (one short
        transaction; nothing when none changed)."""
        if not self._unflushed or self._batched:
            return
        with self._tx() as db:
            db.executemany(_SET_POOL, ((self._pools.get(key, 0), key[0], int(key[1]))
                                       for key in sorted(self._unflushed)))
        self._unflushed.clear()

    def _units(self, pool: tuple[str, bool]) -> int:
        """Unused units of a pool direction, with the open transaction's changes."""
        return self._pools.get(pool, 0) + self._pending.get(pool, 0)

    def _change_pool(self, km_link: str, outbound: bool, units: int) -> None:
        """Add ``units`` (< 0: take) to a pool direction's counter in memory, at commit (the
        file's ``pools.units`` follows at the next checkpoint)."""
        key = (km_link, outbound)
        self._pending[key] = self._pending.get(key, 0) + units

    def _fault(self, exc: sqlite3.Error) -> KeyStoreError:
        """The error to raise for SQLite's ``exc``: a StoreFault (remembered in
        :attr:`write_fault`) when the file is at fault, else a KeyStoreError."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _FAULT_CODES:
            return KeyStoreError(f"key store {str(self.path)!r}: {exc}")
        self.write_fault = str(exc)
        return StoreFault(self.node, str(exc), f"key store {str(self.path)!r} of node "
                                               f"{self.node!r} cannot be written: {exc}")

    def _create_schema(self) -> None:
        with self._tx() as db:
            old = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            schema = None if old is None else db.execute(
                "SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if schema == ("1",):
                for statement in _MIGRATE_1:
                    db.execute(statement)
                schema = ("2",)
            for statement in _SCHEMA:
                db.execute(statement)
            if schema == ("2",):
                _migrate_2(db)
            elif schema == ("3",):  # schema 4 only adds tables
                db.execute("UPDATE meta SET value = ? WHERE name = 'schema'",
                           (SCHEMA_VERSION,))
            db.executemany("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                           (("schema", SCHEMA_VERSION), ("node", self.node)))
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        if meta["schema"] != SCHEMA_VERSION:
            raise KeyStoreError(f"{str(self.path)!r} has schema {meta['schema']}; "
                                f"this qkdnet reads schema {SCHEMA_VERSION}")
        if meta["node"] != self.node:
            raise KeyStoreError(f"{str(self.path)!r} is the key store of node "
                                f"{meta['node']!r}, not of {self.node!r}")


class _Transaction:
    """:meth:`SQLiteKeyStore._tx`: a class, not a generator context manager, since a relay
    hop enters three (its batch and two takes) and a generator's costs several times as
    much."""

    __slots__ = ("_db", "_savepoint", "_store")

    def __init__(self, store: SQLiteKeyStore, savepoint: bool) -> None:
        self._store = store
        self._savepoint = savepoint
        self._db = store._db()

    def __enter__(self) -> sqlite3.Connection:
        store, db = self._store, self._db
        if store.group is not None:
            store.group.writing(store, store._grouped)
        try:
            if not store._batched:
                db.execute("BEGIN IMMEDIATE")
            elif self._savepoint:
                db.execute("SAVEPOINT verb")
        except sqlite3.Error as exc:
            self._failed(exc)
        return db

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        store, db = self._store, self._db
        if exc is None:
            if not store._batched:
                store._end(db)
            elif self._savepoint:
                try:
                    db.execute("RELEASE verb")
                except sqlite3.Error as error:
                    self._failed(error)
            return
        if isinstance(exc, sqlite3.Error):
            self._failed(exc)
        if not store._batched:
            store._pending.clear()
            store._forget_pads()
            _rollback(db)
        elif self._savepoint:
            store._forget_pads()
            _undo(db)

    def _failed(self, exc: sqlite3.Error) -> NoReturn:
        """A SQLite error: outside a batch the transaction is rolled back; inside one,
        the whole batch is broken (counters change only after every check has passed, so
        a refusal leaves the batch's pending changes as they were; an error drops them
        all)."""
        store = self._store
        if store._batched:
            store._broken = True
        else:
            store._pending.clear()
            store._forget_pads()
            _rollback(self._db)
        raise store._fault(exc) from exc


class _Batch:
    """:meth:`SQLiteKeyStore.batch` (a class for the same reason as :class:`_Transaction`);
    nested batches share the outermost one's transaction."""

    __slots__ = ("_db", "_store")

    def __init__(self, store: SQLiteKeyStore) -> None:
        self._store = store
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> None:
        store = self._store
        if store.group is not None:
            store.group.writing(store, store._grouped)
        if store._batched:
            store._batched += 1
            return
        db = store._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise store._fault(exc) from exc
        store._batched, store._broken = 1, False
        self._db = db

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        store, db = self._store, self._db
        if db is None:
            store._batched -= 1
            return
        store._batched = 0
        store._end(db)


def _runs(used: bytearray, most: int) -> Iterator[tuple[int, int]]:
    """(start, count) of the first runs of unused units in a pad's map, in order, ``most``
    units in all (or all it has)."""
    start = used.find(_UNUSED)
    while most > 0 and start >= 0:
        end = used.find(_USED, start)
        count = min((len(used) if end < 0 else end) - start, most)
        yield start, count
        most -= count
        start = used.find(_UNUSED, start + count)


def _migrate_2(db: sqlite3.Connection) -> None:
    """Schema 2 to 3, inside the opening transaction: each block's unused units (rows of
    ``units``) become one ``pads`` row, units used before as zeros; ``units`` is dropped
    (secure_delete zeroes its pages). The pools' counters stay as they are."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'units'").fetchone() is not None:
        sizes = {(link, block): (direction, units) for link, block, direction, units
                 in db.execute("SELECT km_link, block, outbound, units FROM blocks")}
        current: tuple[str, int] | None = None
        pad = bytearray()
        used = bytearray()
        rows = db.execute("SELECT km_link, block, unit, material FROM units "
                          "ORDER BY km_link, block, unit").fetchall()
        pads: list[tuple[str, int, int, int, bytes, bytes]] = []

        def finish() -> None:
            if current is not None:
                direction = sizes[current][0]
                pads.append((*current, direction, used.count(_UNUSED), bytes(used),
                             bytes(pad)))

        for link, block, index, material in rows:
            if (link, block) != current:
                finish()
                current = (link, block)
                units = sizes[current][1]
                pad, used = bytearray(units * UNIT_BYTES), bytearray(b"\x01" * units)
            pad[index * UNIT_BYTES:(index + 1) * UNIT_BYTES] = material
            used[index] = _UNUSED
        finish()
        db.executemany(_ADD_PAD, pads)
        db.execute("DROP TABLE units")
    db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (transactions are explicit) with the store's
    pragmas, checking that WAL and secure_delete took effect."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise KeyStoreError(f"cannot open key store {str(path)!r}: {exc}") from exc
    try:
        _configure(conn, path, synchronous)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path, synchronous: str) -> None:
    try:
        # Before WAL is first used: the WAL index then lives in this process's heap, not in
        # a shared-memory (-shm) mapping, whose page faults kill the process with SIGBUS
        # when the files turn immutable (chattr +i) or their disk fails underneath.
        locking = conn.execute("PRAGMA locking_mode = EXCLUSIVE").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        secure = conn.execute("PRAGMA secure_delete = ON").fetchone()[0]
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA journal_size_limit = 0")
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            raise KeyStoreError(f"cannot open key store {str(path)!r}: it is open in another "
                                f"process (stop that process first)") from exc
        raise KeyStoreError(f"cannot open key store {str(path)!r}: {exc}") from exc
    if str(mode).lower() != "wal" or secure != 1 or str(locking).lower() != "exclusive":
        raise KeyStoreError(f"key store {str(path)!r}: needs journal_mode=wal, "
                            f"secure_delete=1 and locking_mode=exclusive, got {mode}, "
                            f"{secure} and {locking}")


def _undo(db: sqlite3.Connection) -> None:
    """Roll back a method's savepoint inside a batch (the batch goes on)."""
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK TO verb")
        db.execute("RELEASE verb")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        # a disk that failed the write may fail this too; SQLite has then rolled back itself
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _held(row: tuple[str, str, str, bytes] | None) -> HeldKey | None:
    return None if row is None else HeldKey(row[0], row[1], row[2], bytes(row[3]))

