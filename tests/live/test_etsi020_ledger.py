"""The ETSI GS QKD 020 ledger in its SQLite file: pragmas, round trip, reopening, and
tombstones left out of ``between``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qkdnet.keys.etsi020 import Association
from qkdnet.live.etsi020_ledger import SQLiteLedger

K1 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
K2 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


def test_entries_survive_reopening_and_tombstones_stay_out_of_between(tmp_path: Path) -> None:
    """What is put is read back after a reopen; a voided entry is not 'between' the SAEs."""
    path = tmp_path / "etsi020.db"
    ledger = SQLiteLedger(path)
    ledger.put([Association(K1, True, "kms-a", "sae-a", ("sae-b",), "relayed", 1.5),
                Association(K2, False, "kms-a", "sae-a", ("sae-b", "sae-c"), "sent", 2.0,
                            ("sae-c",))])
    ledger.put([Association(K1, True, "kms-a", "sae-a", ("sae-b",), "voided", 3.0)])
    ledger.close()
    again = SQLiteLedger(path)
    got = again.get([K1, K2, K1])
    assert got[K1].state == "voided" and got[K1].at == 3.0
    assert got[K2] == Association(K2, False, "kms-a", "sae-a", ("sae-b", "sae-c"), "sent",
                                  2.0, ("sae-c",))
    assert [e.key_id for e in again.between("kms-a", "sae-a", ["sae-c", "sae-b"])] == [K2]
    assert again.between("kms-a", "sae-a", ["sae-b"]) == []
    again.close()


def test_the_file_is_wal_with_secure_delete(tmp_path: Path) -> None:
    """The file is in WAL mode, and the ledger's connection overwrites deleted bytes."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    assert ledger._db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    ledger.close()
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_many_key_ids_are_read_in_chunks(tmp_path: Path) -> None:
    """More key_ids than SQLite's parameter limit per statement are all found."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1, 1200)]
    ledger.put([Association(k, True, "p", "i", ("t",), "relayed", 0.0) for k in ids])
    assert len(ledger.get(ids)) == len(ids)
    ledger.close()
