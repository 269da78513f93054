"""What live tests read straight from the key store files of a served data folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def unused_units(stores: Path) -> dict[tuple[str, str, int], int]:
    """Unused pad units of every KM-link direction in every store of the folder ``stores``:
    (node, KM-link, outbound) -> units."""
    units: dict[tuple[str, str, int], int] = {}
    for path in sorted(stores.glob("*.sqlite")):
        with sqlite3.connect(path) as db:
            for link, outbound, count in db.execute(
                    "SELECT km_link, outbound, units FROM pools"):
                units[(path.stem, link, int(outbound))] = int(count)
    return units
