"""The ETSI GS QKD 020 ledger (:class:`qkdnet.keys.etsi020.Ledger`) in a SQLite file of
its own: every key_id ever associated with a peer KMS, its SAEs, state and time, and the
tombstones of voided keys. Never a key value. WAL (each put commits whole) and
secure_delete (a replaced row's old bytes are overwritten)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from qkdnet.errors import KeyStoreError
from qkdnet.keys.etsi020 import VOIDED, Association

_SCHEMA = """
CREATE TABLE IF NOT EXISTS associations (
    key_id TEXT PRIMARY KEY,
    inbound INTEGER NOT NULL,
    peer TEXT NOT NULL,
    initiator TEXT NOT NULL,
    targets TEXT NOT NULL,   -- JSON array of SAE IDs
    state TEXT NOT NULL,
    at REAL NOT NULL,        -- s, the driver's clock
    acked TEXT NOT NULL      -- JSON array of SAE IDs that acknowledged 'relayed'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS associations_between ON associations (peer, initiator);
"""
_COLUMNS = "key_id, inbound, peer, initiator, targets, state, at, acked"


class SQLiteLedger:
    """The ledger in the SQLite file ``path`` (created if missing). Use from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            secure = self._db.execute("PRAGMA secure_delete = ON").fetchone()[0]
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise KeyStoreError(f"cannot open ETSI 020 ledger {str(path)!r}: {exc}") from exc
        if str(mode).lower() != "wal" or secure != 1:
            self._db.close()
            raise KeyStoreError(f"ETSI 020 ledger {str(path)!r}: needs journal_mode=wal and "
                                f"secure_delete=1, got {mode} and {secure}")

    def get(self, key_ids: Sequence[str]) -> dict[str, Association]:
        """The associations of those key_ids that have one."""
        found: dict[str, Association] = {}
        ids = list(dict.fromkeys(key_ids))
        for start in range(0, len(ids), 500):  # SQLite caps host parameters per statement
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                    f"SELECT {_COLUMNS} FROM associations WHERE key_id IN ({marks})", chunk):
                entry = _entry(row)
                found[entry.key_id] = entry
        return found

    def put(self, entries: Sequence[Association]) -> None:
        """Record each association (insert or replace), all or none, in one transaction."""
        if not entries:
            return
        rows = [(e.key_id, int(e.inbound), e.peer, e.initiator, json.dumps(list(e.targets)),
                 e.state, e.at, json.dumps(list(e.acked))) for e in entries]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO associations ({_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise KeyStoreError(f"ETSI 020 ledger {str(self.path)!r}: {exc}") from exc

    def between(self, peer: str, initiator: str, targets: Sequence[str]
                ) -> list[Association]:
        """Every association with ``peer`` for these SAEs that is not a tombstone."""
        want = set(targets)
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM associations WHERE peer = ? AND "
                                "initiator = ? AND state != ?", (peer, initiator, VOIDED))
        return [e for e in map(_entry, rows) if set(e.targets) == want]

    def in_state(self, state: str) -> list[Association]:
        """Every association in ``state``."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM associations WHERE state = ?",
                                (state,))
        return list(map(_entry, rows))

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def _entry(row: tuple[str, int, str, str, str, str, float, str]) -> Association:
    key_id, inbound, peer, initiator, targets, state, at, acked = row
    return Association(key_id, bool(inbound), peer, initiator, tuple(json.loads(targets)),
                       state, at, tuple(json.loads(acked)))
