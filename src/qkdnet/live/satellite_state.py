"""The satellite segment's state kept across restarts, in an SQLite file of the data folder
(``satellite.sqlite``): where the satellite clock had got to, and each (satellite, ground
station) pool's key and counters (bits: pooled, made, used, discarded), with the key each
satellite KM-link relayed.

The satellite clock stops while the process is down and resumes where it stopped: a pass
under way then goes on from the instant it had reached, and key made by a pass is neither
counted twice nor lost to a restart. Whoever spends key of the pools saves them before the
pads leave (:meth:`SatelliteState.save`), so a crash in between loses that key (as a pad
only one end received is lost) rather than relaying it twice.

The file belongs to one satellite clock: opened with another ``start`` than it was made
with, :class:`SatelliteState` refuses it (ParameterError naming the file and both starts).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qkdnet.errors import ParameterError
from qkdnet.keys.satellite_pools import SatellitePools

#: The file's name in a data folder.
STATE_FILE = "satellite.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clock (only INTEGER PRIMARY KEY CHECK (only = 0),
                                  start_utc TEXT NOT NULL, clock_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pool (satellite TEXT NOT NULL, station TEXT NOT NULL,
                                 pooled REAL NOT NULL, made REAL NOT NULL, used REAL NOT NULL,
                                 discarded REAL NOT NULL, PRIMARY KEY (satellite, station));
CREATE TABLE IF NOT EXISTS relayed (km_link TEXT PRIMARY KEY, bits REAL NOT NULL);
"""


class SatelliteState:
    """The state file at ``path`` of the satellite clock that starts at ``start_utc`` (ISO
    8601); made when missing."""

    def __init__(self, path: Path, start_utc: str) -> None:
        self.path = path
        self.start_utc = start_utc
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a pool spent is on disk before pads go
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT start_utc FROM clock").fetchone()
        if row is not None and row[0] != start_utc:
            self._db.close()
            raise ParameterError("--satellite-start", start_utc,
                                 f"{path} holds the satellite segment of a clock started at "
                                 f"{row[0]}: start it at that time, or remove the file to "
                                 "start afresh")

    def resume(self, pools: SatellitePools) -> float | None:
        """Put the kept counters into ``pools``; the satellite clock to resume from (s
        after its start), None when the file is new (nothing kept). A pool or KM-link
        kept that ``pools`` does not have (the network changed) is left out."""
        row = self._db.execute("SELECT clock_s FROM clock").fetchone()
        if row is None:
            return None
        sats = {s: i for i, s in enumerate(pools.satellites)}
        stations = {x: j for j, x in enumerate(pools.stations)}
        for sat, station, pooled, made, used, discarded in self._db.execute(
                "SELECT satellite, station, pooled, made, used, discarded FROM pool"):
            if sat in sats and station in stations:
                cell = sats[sat], stations[station]
                pools.pooled[cell] = min(pooled, pools.capacity_bits)
                pools.made[cell], pools.used[cell] = made, used
                pools.discarded[cell] = discarded + max(pooled - pools.capacity_bits, 0.0)
        rows = {k: i for i, k in enumerate(pools.km_links)}
        for km_link, bits in self._db.execute("SELECT km_link, bits FROM relayed"):
            if km_link in rows:
                pools.relayed[rows[km_link]] = bits
        return float(row[0])

    def save(self, clock_s: float, pools: SatellitePools) -> None:
        """Keep the clock ``clock_s`` (s) and every pool's counters, in one transaction."""
        cells = [(sat, x, float(pools.pooled[i, j]), float(pools.made[i, j]),
                  float(pools.used[i, j]), float(pools.discarded[i, j]))
                 for i, sat in enumerate(pools.satellites)
                 for j, x in enumerate(pools.stations)]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO clock VALUES (0, ?, ?)",
                       (self.start_utc, clock_s))
            db.executemany("INSERT OR REPLACE INTO pool VALUES (?, ?, ?, ?, ?, ?)", cells)
            db.executemany("INSERT OR REPLACE INTO relayed VALUES (?, ?)",
                           [(k, float(b)) for k, b in zip(pools.km_links, pools.relayed,
                                                          strict=True)])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
