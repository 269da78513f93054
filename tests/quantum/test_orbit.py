"""The satellite's orbit from a TLE: parsing, checks and propagation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from qkdnet.errors import ScenarioError
from qkdnet.quantum.orbit import JINAN1_TLE, Orbit

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def test_built_in_tle_is_a_500_km_sun_synchronous_orbit() -> None:
    """The assumed Jinan-1-like set: ~500 km altitude, inclination ~97.4 deg."""
    orbit = Orbit.from_tle(JINAN1_TLE)
    r = np.linalg.norm(orbit.teme_km(EPOCH, np.arange(0.0, 6000.0, 60.0)), axis=-1)
    assert r.min() > 6378.0 + 470.0 and r.max() < 6378.0 + 530.0  # geocentric radius, km
    assert 97.0 < float(orbit.line2[8:16]) < 98.0


def _lines() -> list[str]:
    return JINAN1_TLE.splitlines()


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda ls: [ls[0], ls[1][:-1] + "0", ls[2]], "tle line 1: checksum"),
    (lambda ls: [ls[0], ls[1], ls[2][:8] + " 97.4x00" + ls[2][16:]], "tle line 2: inclination"),
    (lambda ls: [ls[0], ls[1][:60]], "tle"),
    (lambda ls: [ls[0], ls[1], ls[2][:-3]], "tle line 2: 66 characters"),
    (lambda ls: [ls[0], ls[2], ls[1]], "tle line 1: must start with '1 '"),
])
def test_bad_tle_names_line_and_field(mutate: object, named: str) -> None:
    """A broken TLE raises ScenarioError naming the file, the line and the field."""
    text = "\n".join(mutate(_lines()))  # type: ignore[operator]
    with pytest.raises(ScenarioError) as err:
        Orbit.from_tle(text, "sat.tle")
    assert str(err.value).startswith("sat.tle")
    assert named in str(err.value)


def test_satellite_numbers_must_agree() -> None:
    """Lines 1 and 2 of one TLE must carry the same satellite number."""
    _name, l1, l2 = _lines()
    l2 = l2[:2] + "53113" + l2[7:68]
    l2 += str(sum(int(c) if c.isdigit() else c == "-" for c in l2) % 10)
    with pytest.raises(ScenarioError, match="satellite number"):
        Orbit.from_tle(f"{l1}\n{l2}")
