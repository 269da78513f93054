"""Passes of the Jinan-1-like satellite over the cn-qcn ground stations."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.orbit import JINAN1_TLE, GroundStation, Orbit
from qkdnet.quantum.passes import PassRules, PassTrack, find_passes, pass_tracks

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
WEEK_S = 7 * 86400.0
BEIJING = GroundStation("beijing-gs", 40.1, 116.62)
STATIONS = [BEIJING, GroundStation("shanghai-gs", 31.08, 121.72),
            GroundStation("guangzhou-gs", 23.32, 113.47),
            GroundStation("chongqing-gs", 29.72, 106.4),
            GroundStation("hainan-gs", 19.54, 110.8),
            GroundStation("xinjiang-gs", 43.47, 87.18)]


@pytest.fixture(scope="module")
def week() -> list[PassTrack]:
    """A week of passes over the six stations."""
    return pass_tracks(Orbit.from_tle(JINAN1_TLE), STATIONS, EPOCH, WEEK_S)


def _skyfield_passes(min_elevation: float) -> list[tuple[float, float, float]]:
    """(rise, culmination, set) in s after EPOCH over Beijing, found by skyfield alone."""
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)
    _name, line1, line2 = JINAN1_TLE.splitlines()
    sat = EarthSatellite(line1, line2, "jinan-1", ts)
    t0 = ts.from_datetime(EPOCH)
    t1 = ts.tt_jd(t0.tt + 7.0)
    times, events = sat.find_events(wgs84.latlon(BEIJING.lat_deg, BEIJING.lon_deg), t0, t1,
                                     altitude_degrees=min_elevation)
    seconds = [(t - t0) * 86400.0 for t in times]
    out = []
    for i in range(len(events) - 2):
        if list(events[i:i + 3]) == [0, 1, 2]:
            out.append((seconds[i], seconds[i + 1], seconds[i + 2]))
    return out


def test_beijing_passes_match_skyfield_within_a_minute(week: list[PassTrack]) -> None:
    """Every pass skyfield finds over Beijing in a week is ours, rise and set within 60 s."""
    ours = [p.summary() for p in week if p.station == "beijing-gs"]
    theirs = _skyfield_passes(10.0)
    assert len(theirs) >= 20
    assert len(ours) == len(theirs)
    for (rise, culmination, set_), p in zip(theirs, ours, strict=True):
        assert abs(p.rise_s - rise) < 60.0
        assert abs(p.set_s - set_) < 60.0
        assert abs(p.culmination_s - culmination) < 60.0


def test_min_elevation_is_respected(week: list[PassTrack]) -> None:
    """No pass sample lies under the minimum elevation; a higher minimum gives fewer passes."""
    assert all(p.elevation_deg.min() >= 10.0 - 0.05 for p in week)
    assert all(p.summary().max_elevation_deg >= 10.0 for p in week)
    higher = pass_tracks(Orbit.from_tle(JINAN1_TLE), STATIONS, EPOCH, WEEK_S,
                         PassRules(min_elevation_deg=30.0))
    assert 0 < len(higher) < len(week)
    assert all(p.elevation_deg.min() >= 30.0 - 0.05 for p in higher)


def test_no_key_in_daylight(week: list[PassTrack]) -> None:
    """A pass with the sun above the horizon all along makes no key; night passes do."""
    day = [p for p in week if not p.night.any()]
    night = [p for p in week if p.night.all()]
    assert day and night
    assert all(p.key_bits == 0 for p in day)
    assert sum(p.key_bits > 0 for p in night) > len(night) // 2


def test_key_per_pass_spans_the_anchor_range(week: list[PassTrack]) -> None:
    """Night key per pass: tens of kbit low (15-25 deg) up to ~0.6 Mbit at the best."""
    night = [p.summary() for p in week if p.night.all()]
    best = max(p.key_bits for p in night)
    assert 0.4e6 <= best <= 0.9e6
    low = [p.key_bits for p in night if 15.0 <= p.max_elevation_deg <= 25.0]
    assert low
    assert all(10e3 <= k <= 150e3 for k in low)
    # higher passes leave more key: the key grows with the culmination, broadly
    high = [p.key_bits for p in night if p.max_elevation_deg >= 45.0]
    assert min(high) > max(low)


def test_find_passes_are_sorted_records() -> None:
    """find_passes gives SatellitePass records by rise time, in the span asked for."""
    passes = find_passes(Orbit.from_tle(JINAN1_TLE), STATIONS, EPOCH, 86400.0)
    rises = [p.rise_s for p in passes]
    assert rises == sorted(rises)
    assert all(0.0 <= p.rise_s <= p.set_s <= 86400.0 for p in passes)
    assert {p.station for p in passes} <= {s.id for s in STATIONS}


def test_bad_rules_are_named() -> None:
    """A minimum elevation out of range names the parameter."""
    with pytest.raises(ParameterError, match="min_elevation_deg"):
        PassRules(min_elevation_deg=95.0)
    with pytest.raises(ParameterError, match="duration_s"):
        pass_tracks(Orbit.from_tle(JINAN1_TLE), STATIONS, EPOCH, 0.0)


def test_sun_is_down_at_local_midnight_and_up_at_noon(week: list[PassTrack]) -> None:
    """The sun model: below the horizon at Beijing's local midnight, above at noon."""
    from qkdnet.quantum.orbit import sun_elevation_deg

    # Beijing's solar noon is ~04:13 UTC, midnight ~16:13 UTC
    noon, midnight = sun_elevation_deg(EPOCH, np.array([4.2 * 3600, 16.2 * 3600]), BEIJING)
    assert 20.0 < noon < 30.0  # 90 - 40.1 - 23.0 at the start of January
    assert midnight < -60.0
