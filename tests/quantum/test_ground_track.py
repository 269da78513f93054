"""The satellite's place over the Earth for the console: sub-satellite point against
skyfield's, the footprint against spherical-Earth geometry and the station's own look
angles, the passes in progress against the pass finder, the track cut at +-180 deg."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.ground_track import (
    EARTH_RADIUS_KM,
    footprint,
    footprint_angle_deg,
    period_s,
    satellite_now,
    scenario_time_s,
    split_at_antimeridian,
)
from qkdnet.quantum.orbit import JINAN1_TLE, GroundStation, Orbit, look_angles, teme_to_ecef
from qkdnet.quantum.passes import find_passes
from qkdnet.twin.satellite_passes import TWIN_EPOCH

ORBIT = Orbit.from_tle(JINAN1_TLE)
BEIJING = GroundStation("beijing-gs", 39.9, 116.4)
HAINAN = GroundStation("hainan-gs", 19.2, 109.7)


def _central_angle_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


@pytest.mark.parametrize("t_s", [0.0, 3600.0, 86400.0 * 3 + 1234.0, 86400.0 * 6.5])
def test_the_sub_satellite_point_is_skyfields(t_s: float) -> None:
    """Latitude and longitude within 0.05 deg, height within 1 km of skyfield's subpoint."""
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)
    line1, line2 = JINAN1_TLE.splitlines()[1:]
    sat = EarthSatellite(line1, line2, "jinan-1", ts)
    when = ts.from_datetime(TWIN_EPOCH).tt + t_s / 86400.0
    theirs = wgs84.geographic_position_of(sat.at(ts.tt_jd(when)))
    ours = satellite_now(ORBIT, [], TWIN_EPOCH, t_s)
    assert abs(ours.lat_deg - theirs.latitude.degrees) < 0.05
    dlon = (ours.lon_deg - theirs.longitude.degrees + 180.0) % 360.0 - 180.0
    assert abs(dlon) < 0.05
    assert abs(ours.height_km - theirs.elevation.km) < 1.0


def test_the_footprint_edge_sees_the_satellite_at_the_minimum_elevation() -> None:
    """Every footprint point lies the central angle away, and from it a spherical Earth
    sees the satellite at 10 deg (vector geometry), the station's look angles within 0.5."""
    now = satellite_now(ORBIT, [], TWIN_EPOCH, 5000.0, min_elevation_deg=10.0)
    r, h = EARTH_RADIUS_KM, now.height_km
    lat0, lon0 = math.radians(now.lat_deg), math.radians(now.lon_deg)
    sat = (r + h) * np.array([math.cos(lat0) * math.cos(lon0),
                              math.cos(lat0) * math.sin(lon0), math.sin(lat0)])
    ecef = teme_to_ecef(ORBIT.teme_km(TWIN_EPOCH, np.array([5000.0])), TWIN_EPOCH,
                        np.array([5000.0]))[0]
    for lat, lon in now.footprint[:-1]:
        assert _central_angle_deg(now.lat_deg, now.lon_deg, lat, lon) == pytest.approx(
            now.footprint_angle_deg, abs=1e-6)
        la, lo = math.radians(lat), math.radians(lon)
        up = np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
        d = sat - r * up
        assert math.degrees(math.asin(d @ up / np.linalg.norm(d))) == pytest.approx(10.0,
                                                                                  abs=1e-6)
        el, _rng = look_angles(ecef, GroundStation("edge", lat, (lon + 180) % 360 - 180))
        assert abs(float(el) - 10.0) < 0.5
    # ~500 km up at 10 deg: a footprint about 1,570 km in radius
    assert 1400 < math.radians(now.footprint_angle_deg) * r < 1700


def test_a_footprint_over_a_pole_is_closed_along_the_pole() -> None:
    """A circle holding the north pole spans 360 deg of longitude and runs along lat 90."""
    ring = footprint(85.0, 30.0, footprint_angle_deg(500.0, 10.0))
    lons = [p[1] for p in ring]
    assert max(lons) - min(lons) == pytest.approx(360.0)
    assert [p[0] for p in ring].count(90.0) >= 3
    assert ring[0] == ring[-1]


def test_the_pass_in_progress_matches_the_pass_finder() -> None:
    """At a pass's culmination the station is listed at its highest elevation, setting at
    the found set time (within 2 s); at its rise minus a minute no pass is listed."""
    best = max(find_passes(ORBIT, [BEIJING], TWIN_EPOCH, 86400.0 * 2),
               key=lambda p: p.max_elevation_deg)
    now = satellite_now(ORBIT, [BEIJING, HAINAN], TWIN_EPOCH, best.culmination_s)
    listed = now.passes[0]
    assert listed.station == "beijing-gs"
    assert listed.elevation_deg == pytest.approx(best.max_elevation_deg, abs=0.1)
    assert listed.set_in_s == pytest.approx(best.set_s - best.culmination_s, abs=2.0)
    assert now.as_json()["passes"][0]["station"] == "beijing-gs"  # type: ignore[index]
    before = satellite_now(ORBIT, [BEIJING], TWIN_EPOCH, best.rise_s - 60.0)
    assert before.passes == []


def test_the_track_covers_an_orbit_either_side_cut_at_the_antimeridian() -> None:
    """Segments never jump across the map; they cover two periods of 60 s steps; the cut
    points lie on +-180 deg."""
    now = satellite_now(ORBIT, [], TWIN_EPOCH, 20000.0)
    points = sum(len(s) for s in now.track)
    cuts = len(now.track) - 1
    assert points - 2 * cuts == len(np.arange(-period_s(ORBIT), period_s(ORBIT) + 30, 60))
    for segment in now.track:
        lons = [p[1] for p in segment]
        assert max(abs(b - a) for a, b in itertools.pairwise(lons)) < 30
    assert cuts >= 1
    assert abs(now.track[0][-1][1]) == 180.0 and abs(now.track[1][0][1]) == 180.0


def test_split_interpolates_the_crossing() -> None:
    """170 -> -170 deg crosses at 180, half way in latitude."""
    segments = split_at_antimeridian([0.0, 10.0], [170.0, -170.0])
    assert segments == [[[0.0, 170.0], [5.0, 180.0]], [[5.0, -180.0], [10.0, -170.0]]]


def test_scenario_time_runs_speedup_times_the_wall() -> None:
    """(now - start) x speedup; a speedup of 0 is refused by name."""
    assert scenario_time_s(1000.0, 1010.0, 60.0) == 600.0
    with pytest.raises(ParameterError, match="speedup"):
        scenario_time_s(0.0, 1.0, 0.0)
