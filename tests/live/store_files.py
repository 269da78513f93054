"""What live tests read straight from the key store files of a served data folder, once its
server has stopped (a running server holds its stores exclusively)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

#: A pad unit of a KM-link in a store: (KM-link, block, unit).
Unit = tuple[str, int, int]


def unused_units(stores: Path) -> dict[tuple[str, str, int], int]:
    """Unused pad units of every KM-link direction in every store of the folder ``stores``:
    (node, KM-link, outbound) -> units."""
    units: dict[tuple[str, str, int], int] = {}
    for path in sorted(stores.glob("*.sqlite")):
        # closed at once: an open reader would keep the next server out of the file
        with closing(sqlite3.connect(path)) as db:
            for link, outbound, count in db.execute(
                    "SELECT km_link, outbound, units FROM pools"):
                units[(path.stem, link, int(outbound))] = int(count)
    return units


def units_held(store: Path, km_links: tuple[str, ...]) -> set[Unit]:
    """The units of ``km_links`` that the store file ``store`` holds, unused."""
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        marks = ",".join("?" * len(km_links))
        rows = db.execute(f"SELECT km_link, block, used FROM pads WHERE km_link IN ({marks})",
                          km_links).fetchall()
    # a pads row is a block with a byte per unit: 0 while the unit is unused
    return {(k, b, u) for k, b, used in rows for u, mark in enumerate(used) if mark == 0}
