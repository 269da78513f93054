"""Rendering of result rows for the command line: a table for people, CSV and JSON for
programs. Every command that prints records goes through :func:`render`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from qkdnet.errors import ParameterError

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")
Row = Mapping[str, Any]


def output_format(value: str) -> Format:
    """``value`` checked against the formats every command accepts."""
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise ParameterError("--format", value, "must be one of " + ", ".join(FORMATS))


def render(
    rows: Sequence[Row], fmt: Format, console: Console,
    cell: Callable[[str, Any], str] | None = None, title: str | None = None,
) -> None:
    """Print ``rows`` (dicts with the same keys) as a table, CSV or JSON.

    ``cell`` formats a table cell from its column and value (for units); CSV and JSON
    carry the raw values.
    """
    columns = list(rows[0]) if rows else []
    if fmt == "json":
        # JSON has no infinity (PLOB at 0 dB): such values become null.
        clean = [{k: _finite_or_none(v) for k, v in r.items()} for r in rows]
        console.file.write(json.dumps(clean, indent=2) + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        console.file.write(buffer.getvalue())
    else:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="right" if _numeric(rows, column) else "left")
        show = cell or (lambda _c, v: str(v))
        for row in rows:
            table.add_row(*(show(c, row[c]) for c in columns))
        console.print(table)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _numeric(rows: Sequence[Row], column: str) -> bool:
    return all(isinstance(r[column], (int, float)) for r in rows)


def with_si_prefix(value: float, unit: str) -> str:
    """A quantity with an SI prefix, for people: 73.9 kbit/s, 625 MHz."""
    if not math.isfinite(value):
        return str(value)
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
