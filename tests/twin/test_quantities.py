"""Human units: the one formatting function of the twin's report."""

from __future__ import annotations

import pytest

from qkdnet.twin.quantities import hours, human


@pytest.mark.parametrize(("value", "unit", "text"), [
    (1.17503e15, "bit", "1.18 Pbit"),  # not "1175030.0 Gbit"
    (9750.0, "bit/s", "9.75 kbit/s"),
    (359_890.0, "bit/s", "360 kbit/s"),
    (12_000.0, "bit", "12 kbit"),
    (999_960.0, "bit", "1 Mbit"),  # rounds up into the next prefix, not "1e+03 kbit"
    (-3.27e11, "bit", "-327 Gbit"),
    (0.0, "bit", "0 bit"),
    (512.0, "bit", "512 bit"),
    (0.5, "bit", "0.5 bit"),
])
def test_human_picks_the_prefix_and_three_significant_digits(value: float, unit: str,
                                                             text: str) -> None:
    """One to three digits before the point, three significant digits, SI prefix."""
    assert human(value, unit) == text


def test_hours_are_to_the_hundredth() -> None:
    """2.876 h reads 2.88 h, 0 reads 0.00 h."""
    assert hours(2.876) == "2.88 h" and hours(0) == "0.00 h"
