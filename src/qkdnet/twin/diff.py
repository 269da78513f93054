"""Two twin reports side by side: a what-if run (``b``) against its baseline (``a``).

Read from each report folder's ``summary.json`` (what :func:`~qkdnet.twin.report.summary`
wrote): per segment of the watched path its mean end-to-end SKR (kbit/s) and hours
unserved, per service (demand) its hours unserved and served fraction, and the run's
totals. A segment or service in one report only has None on the other side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qkdnet.errors import ParameterError

SUMMARY_FILE = "summary.json"

Rows = list[dict[str, Any]]


def read_summary(folder: Path, name: str = "REPORT_DIR") -> dict[str, Any]:
    """The ``summary.json`` of a twin report folder; a folder without a readable one is a
    ParameterError naming ``name`` and the file."""
    path = folder / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(name, str(folder), f"a twin report folder with {SUMMARY_FILE} "
                             f"(missing: {path}); run `qkdnet twin --out DIR` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParameterError(name, str(folder), f"a readable {SUMMARY_FILE} ({path}: "
                             f"{getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(data, dict) or "segments" not in data or "services" not in data:
        raise ParameterError(name, str(folder), f"a twin report's {SUMMARY_FILE} ({path} "
                             "has no segments and services)")
    return data


def diff(a: Path, b: Path) -> dict[str, Rows]:
    """The reports in folders ``a`` (baseline) and ``b`` (what-if) side by side:
    ``segments``, ``services`` and ``totals`` rows, each with the ``a`` and ``b`` values
    and their change (b - a)."""
    sa, sb = read_summary(a, "A"), read_summary(b, "B")
    return {"segments": _side_by_side(sa["segments"], sb["segments"], "name", "segment",
                                      (("mean_skr_kbps", 4), ("hours_unserved", 2))),
            "services": _side_by_side(sa["services"], sb["services"], "id", "service",
                                      (("hours_unserved", 2), ("served_fraction", 4))),
            "totals": [_change({"figure": k}, k, sa.get(k), sb.get(k), 6)
                       for k in ("key_made_bits", "key_used_bits", "key_discarded_bits",
                                 "faults", "alarms")]}


def _side_by_side(rows_a: Rows, rows_b: Rows, key: str, label: str,
                  figures: tuple[tuple[str, int], ...]) -> Rows:
    by_a, by_b = {r[key]: r for r in rows_a}, {r[key]: r for r in rows_b}
    out: Rows = []
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        row: dict[str, Any] = {label: name}
        for figure, digits in figures:
            row = _change(row, figure, by_a.get(name, {}).get(figure),
                          by_b.get(name, {}).get(figure), digits)
        out.append(row)
    return out


def _change(row: dict[str, Any], figure: str, a: float | None, b: float | None,
            digits: int) -> dict[str, Any]:
    change = None if a is None or b is None else round(b - a, digits)
    return {**row, f"{figure}_a": a, f"{figure}_b": b, f"{figure}_change": change}
