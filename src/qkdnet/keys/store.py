"""The durable key store: :class:`SQLiteKeyStore` keeps one node's key pools and held keys
in a SQLite file, and the rules both key stores share (:func:`check_block`,
:func:`check_ranges`, :func:`coalesce`, :func:`check_release`).

Why SQLite: every public method is one ``BEGIN IMMEDIATE … COMMIT`` transaction, so a crash
(even SIGKILL) at any point leaves a deposit whole or absent, a take deleting exactly what
it returned, and a release done once. The file is in WAL mode; ``synchronous=NORMAL`` keeps
every committed transaction across a process crash, ``FULL`` also across a power loss (one
fsync per commit, slower).

The store holds its file with ``locking_mode=EXCLUSIVE``: one process owns a node's store
while it runs (a second opener gets "database is locked"), and the WAL index is kept in the
owner's heap instead of a ``-shm`` file mapped into memory, so a file that turns read-only
or immutable underneath fails a write with an error (a store fault) instead of a SIGBUS that
would end the process. Read a store's file only when its server has stopped.

Key material is overwritten when it is used: ``PRAGMA secure_delete=ON`` zeroes deleted
rows and freed pages. Until the next checkpoint an older copy of a page can still lie in the
``-wal`` file; the WAL is checkpointed automatically every 1000 pages and truncated when it
restarts (``journal_size_limit=0``), and :meth:`SQLiteKeyStore.checkpoint` (run by
:meth:`~SQLiteKeyStore.close`) wipes it at once. Copies the file system or the disk keeps
underneath are out of reach of any user-space store.

Tables: ``pools`` (unused units per KM-link and direction, kept with every change so
:meth:`~SQLiteKeyStore.room` never counts rows), ``blocks`` (every block ever deposited, so
a replayed block never refills used units), ``units`` (one row of UNIT_BYTES per unused
unit) and ``held_keys`` (with ``held_at``, the driver's clock when held, so keys nobody
fetches expire: :meth:`~SQLiteKeyStore.expire_held`).

Schema 2 added ``held_keys.held_at``. A schema-1 file is migrated when opened: its held keys
get the oldest possible stamp (their age is unknown), so the first expiry erases them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from qkdnet.errors import (
    KeyStoreError,
    NotEnoughKey,
    PadMismatch,
    ParameterError,
    StoreFault,
)
from qkdnet.keys.pool import (
    MAX_NUMBER,
    UNIT_BYTES,
    HeldKey,
    UnitRange,
    check_block,
    check_ranges,
    check_release,
    check_room,
    coalesce,
    direction_capacity,
)

#: Accepted values of ``synchronous``: NORMAL survives a process crash, FULL a power loss.
SYNCHRONOUS = ("NORMAL", "FULL")
SCHEMA_VERSION = "2"
#: ``held_at`` of keys migrated from schema 1: older than any clock reading.
UNKNOWN_HELD_AT = -1e300
#: Seconds a transaction waits for another process holding the file's write lock.
BUSY_TIMEOUT_S = 5.0
#: SQLite's primary result codes that mean the file, not the call, is at fault: the disk is
#: full, the file or folder is read-only or gone, an I/O error, a damaged file.
_FAULT_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                          sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
                          sqlite3.SQLITE_PERM})

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS pools (
        km_link TEXT NOT NULL, outbound INTEGER NOT NULL, units INTEGER NOT NULL,
        PRIMARY KEY (km_link, outbound)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS blocks (
        km_link TEXT NOT NULL, block INTEGER NOT NULL, outbound INTEGER NOT NULL,
        units INTEGER NOT NULL, PRIMARY KEY (km_link, block),
        FOREIGN KEY (km_link, outbound) REFERENCES pools (km_link, outbound)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS units (
        km_link TEXT NOT NULL, block INTEGER NOT NULL, unit INTEGER NOT NULL,
        outbound INTEGER NOT NULL, material BLOB NOT NULL,
        PRIMARY KEY (km_link, block, unit),
        FOREIGN KEY (km_link, block) REFERENCES blocks (km_link, block)) WITHOUT ROWID""",
    # the sender's take: the first outbound units of a link in (block, unit) order
    """CREATE INDEX IF NOT EXISTS units_outbound ON units (km_link, block, unit)
        WHERE outbound = 1""",
    """CREATE TABLE IF NOT EXISTS held_keys (
        key_id TEXT PRIMARY KEY, master_sae TEXT NOT NULL, slave_sae TEXT NOT NULL,
        material BLOB NOT NULL, held_at REAL NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS held_keys_pair ON held_keys (master_sae, slave_sae)",
)
#: Schema 1 to 2: when each key was held.
_MIGRATE_1 = (
    f"ALTER TABLE held_keys ADD COLUMN held_at REAL NOT NULL DEFAULT {UNKNOWN_HELD_AT}",
    "UPDATE meta SET value = '2' WHERE name = 'schema'",
)

_SEEN = "SELECT 1 FROM blocks WHERE km_link = ? AND block = ?"
_POOL = "SELECT units FROM pools WHERE km_link = ? AND outbound = ?"
_NEW_POOL = "INSERT OR IGNORE INTO pools (km_link, outbound, units) VALUES (?, ?, 0)"
_ADD_BLOCK = "INSERT INTO blocks (km_link, block, outbound, units) VALUES (?, ?, ?, ?)"
_ADD_UNIT = "INSERT INTO units (km_link, block, unit, outbound, material) VALUES (?, ?, ?, ?, ?)"
_CHANGE_POOL = "UPDATE pools SET units = units + ? WHERE km_link = ? AND outbound = ?"
_FIRST_OUT = """SELECT block, unit, material FROM units INDEXED BY units_outbound
    WHERE km_link = ? AND outbound = 1 ORDER BY block, unit LIMIT ?"""
_RANGE_IN = """SELECT material FROM units WHERE km_link = ? AND block = ? AND unit >= ?
    AND unit < ? AND outbound = 0 ORDER BY unit"""
_DROP_UNITS = "DELETE FROM units WHERE km_link = ? AND block = ? AND unit >= ? AND unit < ?"
_HOLD = """INSERT INTO held_keys (key_id, master_sae, slave_sae, material, held_at)
    VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"""
_EXPIRE = "DELETE FROM held_keys WHERE held_at < ? OR held_at > ?"
_HELD = "SELECT key_id, master_sae, slave_sae, material FROM held_keys WHERE key_id = ?"
_FORGET = "DELETE FROM held_keys WHERE key_id = ?"
_COUNT = "SELECT COUNT(*) FROM held_keys WHERE master_sae = ? AND slave_sae = ?"
_PAIR_OF = "SELECT master_sae, slave_sae FROM held_keys WHERE key_id = ?"
_LINKS = "SELECT DISTINCT km_link FROM pools ORDER BY km_link"
_NEXT_BLOCK = "SELECT COALESCE(MAX(block) + 1, 0) FROM blocks WHERE km_link = ?"
_BLOCK_UNITS = """SELECT unit FROM units WHERE km_link = ? AND block = ? AND outbound = ?
    ORDER BY unit"""


class SQLiteKeyStore:
    """The key store of ``node`` in the SQLite file ``path`` (created if missing).

    Each KM-link's pool holds at most ``capacity_bytes_per_link`` bytes, each direction
    (inbound, outbound) at most half of it (PoolFull beyond: back-pressure), so key that
    one direction never uses cannot stop the other from filling. ``synchronous`` is ``"NORMAL"``
    (committed work survives a process crash) or ``"FULL"`` (it also survives a power
    loss). A file belongs to one node: opening it for another raises KeyStoreError. Use
    from one thread; several processes may open the file one after another (or wait up to
    :data:`BUSY_TIMEOUT_S` for each other).
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
        self._conn: sqlite3.Connection | None = _connect(self.path, synchronous)
        if not auto_checkpoint:
            # the owner calls checkpoint() at quiet moments instead of some write paying
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    # --- pools ---------------------------------------------------------------------------

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Store block ``block`` of ``km_link`` (a positive multiple of UNIT_BYTES). A block
        deposited before is a no-op, even once its units are used; PoolFull when the link's
        pool would exceed its capacity."""
        units = check_block(km_link, block, material)
        direction = int(outbound)
        with self._tx() as db:
            if db.execute(_SEEN, (km_link, block)).fetchone() is not None:
                return
            self._check_room(db, km_link, block, len(material), outbound)
            db.executemany(_NEW_POOL, ((km_link, 0), (km_link, 1)))
            db.execute(_ADD_BLOCK, (km_link, block, direction, units))
            db.executemany(_ADD_UNIT, ((km_link, block, i, direction,
                                        material[i * UNIT_BYTES:(i + 1) * UNIT_BYTES])
                                       for i in range(units)))
            db.execute(_CHANGE_POOL, (units, km_link, direction))

    def room(self, km_link: str, outbound: bool) -> int:
        """How many more bytes the link's outbound (or inbound) pool accepts before
        PoolFull."""
        return max(0, direction_capacity(self.capacity) - self.pool_bytes(km_link, outbound))

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        """Unused bytes of the link's outbound (or inbound) pool."""
        try:
            row = self._db().execute(_POOL, (km_link, int(outbound))).fetchone()
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc
        return 0 if row is None else int(row[0]) * UNIT_BYTES

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take and delete the first ``units`` outbound units in (block, unit) order:
        their ranges (consecutive units of a block as one range) and their bytes.
        NotEnoughKey, taking nothing, if the pool holds fewer."""
        if units < 0:
            raise KeyStoreError(f"units={units} is not allowed: at least 0")
        with self._tx() as db:
            rows = db.execute(_FIRST_OUT, (km_link, min(units, MAX_NUMBER))).fetchall()
            if len(rows) < units:
                raise NotEnoughKey(f"KM-link {km_link!r} holds {len(rows)} outbound units; "
                                   f"{units} asked for")
            ranges = coalesce((block, unit) for block, unit, _ in rows)
            _drop(db, km_link, ranges, outbound=True)
        return ranges, b"".join(row[2] for row in rows)

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take and delete exactly the named inbound units, in range order. PadMismatch,
        taking nothing, if any is malformed, named twice, outbound, used or never held."""
        check_ranges(km_link, ranges)
        with self._tx() as db:
            parts = [_inbound(db, km_link, r) for r in ranges]
            _drop(db, km_link, ranges, outbound=False)
        return b"".join(parts)

    def links(self) -> list[str]:
        """The KM-links that ever had a block deposited, sorted."""
        return [row[0] for row in self._db().execute(_LINKS)]

    def next_block(self, km_link: str) -> int:
        """One past the highest block number ever deposited on ``km_link`` (0 if none):
        where a key supply resumes after a restart."""
        return int(self._db().execute(_NEXT_BLOCK, (km_link,)).fetchone()[0])

    def discard_block(self, km_link: str, block: int) -> None:
        """Delete what is left of ``block`` (its number stays known, so it is never taken
        again): for a block that only this end received before a crash."""
        with self._tx() as db:
            for direction in (0, 1):
                units = [row[0] for row in db.execute(_BLOCK_UNITS, (km_link, block,
                                                                     direction))]
                if units:
                    _drop(db, km_link, coalesce((block, u) for u in units),
                          outbound=bool(direction))

    # --- held keys -----------------------------------------------------------------------

    def hold_keys(self, keys: Sequence[HeldKey], now: float) -> None:
        """Keep ``keys`` for their slave SAE as held at ``now`` (the driver's clock, s), all
        or none; KeyStoreError if a key_ID is already held (or given twice)."""
        with self._tx() as db:
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
        """Copy the WAL into the database file and truncate the WAL to zero bytes, so no
        older copy of a used unit is left in it (unless another connection reads). A store
        opened with ``auto_checkpoint=False`` relies on its owner calling this."""
        try:
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc

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
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass  # another process reads the file: its WAL stays until it checkpoints
        finally:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteKeyStore({str(self.path)!r}, node={self.node!r})"

    # --- inside --------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise KeyStoreError(f"key store {str(self.path)!r} is closed")
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole, or rolled back on any exception (a
        SQLite error becomes a KeyStoreError)."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(db)
            raise self._fault(exc) from exc
        except BaseException:
            _rollback(db)
            raise

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
            if old is not None and db.execute(
                    "SELECT value FROM meta WHERE name = 'schema'").fetchone() == ("1",):
                for statement in _MIGRATE_1:
                    db.execute(statement)
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                           (("schema", SCHEMA_VERSION), ("node", self.node)))
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        if meta["schema"] != SCHEMA_VERSION:
            raise KeyStoreError(f"{str(self.path)!r} has schema {meta['schema']}; "
                                f"this qkdnet reads schema {SCHEMA_VERSION}")
        if meta["node"] != self.node:
            raise KeyStoreError(f"{str(self.path)!r} is the key store of node "
                                f"{meta['node']!r}, not of {self.node!r}")

    def _check_room(self, db: sqlite3.Connection, km_link: str, block: int, size: int,
                    outbound: bool) -> None:
        row = db.execute(_POOL, (km_link, int(outbound))).fetchone()
        stored = 0 if row is None else int(row[0]) * UNIT_BYTES
        check_room(km_link, block, size, stored, self.capacity)


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


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        # a disk that failed the write may fail this too; SQLite has then rolled back itself
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _inbound(db: sqlite3.Connection, km_link: str, r: UnitRange) -> bytes:
    """The bytes of inbound range ``r``; PadMismatch unless every unit is held."""
    rows = db.execute(_RANGE_IN, (km_link, r.block, r.start, r.start + r.count)).fetchall()
    if len(rows) != r.count:
        raise PadMismatch(f"KM-link {km_link!r}: units {r.start}..{r.start + r.count - 1} of "
                          f"block {r.block} are not all held inbound")
    return b"".join(row[0] for row in rows)


def _drop(db: sqlite3.Connection, km_link: str, ranges: Sequence[UnitRange],
          outbound: bool) -> None:
    """Delete the units of ``ranges`` (all known to be held) and shrink the pool."""
    db.executemany(_DROP_UNITS, ((km_link, r.block, r.start, r.start + r.count)
                                 for r in ranges))
    units = sum(r.count for r in ranges)
    db.execute(_CHANGE_POOL, (-units, km_link, int(outbound)))


def _held(row: tuple[str, str, str, bytes] | None) -> HeldKey | None:
    return None if row is None else HeldKey(row[0], row[1], row[2], bytes(row[3]))


# --- rules both key stores share -----------------------------------------------------------
