"""Quantities as people read them: ``human(1.17503e15, "bit")`` is ``"1.18 Pbit"``, not
``"1175030.0 Gbit"``. The twin's report and ``qkdnet twin`` print every amount of key and
every key rate through :func:`human`; files keep the raw numbers (bits, bit/s, hours)."""

from __future__ import annotations

import math

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def human(value: float, unit: str, digits: int = 3) -> str:
    """``value`` (in ``unit``: bits, bit/s, ...) with the SI prefix that leaves one to three
    digits before the point, to ``digits`` significant digits: ``human(9750, "bit/s")`` is
    ``"9.75 kbit/s"``, ``human(0, "bit")`` is ``"0 bit"``."""
    if not math.isfinite(value):
        return f"{value} {unit}"
    size = abs(value)
    scale, prefix = next(((s, p) for s, p in _PREFIXES if size >= s * (1 - 5e-4)),
                         (1.0, ""))
    scaled = value / scale
    # round to the significant digits, then drop a trailing ".0" (12.0 kbit -> 12 kbit)
    text = f"{scaled:.{digits}g}" if scaled else "0"
    if "e" in text:  # 1000 to the rounding: e.g. 999.96 -> "1e+03"
        text = f"{scaled:.0f}"
    return f"{text} {prefix}{unit}"


def hours(value_h: float) -> str:
    """A duration in hours, to 0.01 h: ``"2.88 h"``."""
    return f"{value_h:.2f} h"
