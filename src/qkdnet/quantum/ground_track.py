"""Where a satellite is over the Earth at a moment, for a map: its sub-satellite point, its
ground track over one orbit either side, its footprint and the passes in progress.

- The sub-satellite point is the geodetic point (WGS-84) under the satellite, from its
  Earth-fixed position (:mod:`qkdnet.quantum.orbit`: SGP4, TEME turned by GMST); its height
  above the ellipsoid in km.
- The ground track: sub-satellite points every ``step_s`` over one orbital period (1 /
  mean motion) before and after the moment, cut into segments where it crosses the
  antimeridian, so that a map drawing each segment as a line never draws across the world.
- The footprint: the ground points that see the satellite at or above the minimum
  elevation. On a spherical Earth of radius R and a satellite at height h, they lie within
  the Earth-central angle ``lambda = arccos(R cos(e) / (R + h)) - e`` of the sub-satellite
  point (e the minimum elevation); the polygon is that small circle, its longitudes kept
  continuous around the sub-satellite point (they may pass +-180 deg); one that holds a
  pole is closed along that pole's latitude, so it fills the right side on a lon/lat map.
- A pass in progress: a station that sees the satellite at or above the minimum elevation
  now, with its elevation (deg), range (km), whether it is night there (key is made only
  then, :mod:`qkdnet.quantum.passes`) and the time (s) to the set, found by sampling ahead.

:func:`scenario_time_s` is the one rule that maps wall-clock time to the scenario's clock
of the live network (s after the epoch): ``(now - start) x speedup``.

Sans-I/O: numbers in, JSON-ready values out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from qkdnet.errors import ParameterError
from qkdnet.quantum.orbit import (
    SECONDS_PER_DAY,
    WGS84_A_KM,
    WGS84_F,
    GroundStation,
    Orbit,
    look_angles,
    sun_elevation_deg,
    teme_to_ecef,
)

FloatArray = NDArray[np.float64]

#: Mean Earth radius (km, IUGG) of the spherical-Earth footprint.
EARTH_RADIUS_KM = 6371.0
#: Seconds between two points of the ground track.
TRACK_STEP_S = 60.0
#: Points on the footprint's circle.
FOOTPRINT_POINTS = 72
#: How far ahead (s) a pass's set is looked for: longer than any pass of a low orbit.
SET_HORIZON_S = 1800.0
#: Step (s) of that search; the set time is interpolated between samples.
SET_STEP_S = 5.0


def scenario_time_s(start_s: float, now_s: float, speedup: float) -> float:
    """The live network's scenario time (s after the epoch) at wall-clock ``now_s``, for a
    network started at wall-clock ``start_s`` (both s, any one clock) whose time runs
    ``speedup`` times faster than the wall's."""
    if not speedup > 0 or not math.isfinite(speedup):
        raise ParameterError("speedup", speedup, "must be > 0 and finite")
    return (now_s - start_s) * speedup


def geodetic(ecef_km: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Geodetic latitude (deg), longitude (deg, -180 to 180) and height (km) on WGS-84 of
    Earth-fixed positions (..., 3) in km (Bowring's iteration, a few mm for low orbits)."""
    x, y, z = ecef_km[..., 0], ecef_km[..., 1], ecef_km[..., 2]
    e2 = WGS84_F * (2.0 - WGS84_F)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1.0 - e2))
    for _ in range(5):
        n = WGS84_A_KM / np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
        lat = np.arctan2(z + e2 * n * np.sin(lat), p)
    n = WGS84_A_KM / np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
    cos_lat = np.cos(lat)
    # near the poles p / cos(lat) loses precision; there the height comes from z
    height = np.where(np.abs(cos_lat) > 1e-3, p / np.where(cos_lat == 0, 1, cos_lat) - n,
                      np.abs(z) / np.maximum(np.abs(np.sin(lat)), 1e-12) - n * (1.0 - e2))
    return np.degrees(lat), np.degrees(np.arctan2(y, x)), height


def _ecef(orbit: Orbit, epoch: datetime, t_s: FloatArray) -> FloatArray:
    return teme_to_ecef(orbit.teme_km(epoch, t_s), epoch, t_s)


def period_s(orbit: Orbit) -> float:
    """The orbital period (s): one day over the TLE's mean motion (rev/day)."""
    return SECONDS_PER_DAY / float(orbit.line2[52:63])


def split_at_antimeridian(lat: Sequence[float], lon: Sequence[float]
                          ) -> list[list[list[float]]]:
    """Points (lat, lon in deg, lon in -180 to 180) as segments of [lat, lon] pairs, cut
    where a step jumps more than 180 deg in longitude (the track crossed +-180 deg); the
    crossing point is interpolated and ends one segment and starts the next."""
    segments: list[list[list[float]]] = [[]]
    for i, (la, lo) in enumerate(zip(lat, lon, strict=True)):
        if i and abs(lo - lon[i - 1]) > 180.0:
            prev_la, prev_lo = lat[i - 1], lon[i - 1]
            edge = 180.0 if prev_lo > 0 else -180.0
            unwrapped = lo + (360.0 if prev_lo > 0 else -360.0)
            f = (edge - prev_lo) / (unwrapped - prev_lo)
            cross = prev_la + f * (la - prev_la)
            segments[-1].append([cross, edge])
            segments.append([[cross, -edge]])
        segments[-1].append([float(la), float(lo)])
    return [s for s in segments if len(s) > 1]


def footprint_angle_deg(height_km: float, min_elevation_deg: float) -> float:
    """The Earth-central angle (deg) from the sub-satellite point to the edge of the
    footprint, on a spherical Earth (:data:`EARTH_RADIUS_KM`), for a satellite ``height_km``
    up seen at ``min_elevation_deg``."""
    e = math.radians(min_elevation_deg)
    r = EARTH_RADIUS_KM
    return math.degrees(math.acos(r * math.cos(e) / (r + height_km)) - e)


def footprint(lat_deg: float, lon_deg: float, angle_deg: float,
              points: int = FOOTPRINT_POINTS) -> list[list[float]]:
    """The small circle ``angle_deg`` (Earth-central) around (``lat_deg``, ``lon_deg``) as a
    closed polygon of [lat, lon] pairs (deg): longitudes continuous around ``lon_deg`` (they
    may pass +-180); a circle holding a pole goes on along that pole's latitude."""
    lat0, d = math.radians(lat_deg), math.radians(angle_deg)
    bearing = np.linspace(0.0, 2.0 * math.pi, points, endpoint=False)
    lat = np.arcsin(math.sin(lat0) * math.cos(d) + math.cos(lat0) * math.sin(d)
                    * np.cos(bearing))
    dlon = np.arctan2(np.sin(bearing) * math.sin(d) * math.cos(lat0),
                      math.cos(d) - math.sin(lat0) * np.sin(lat))
    lats, dlons = np.degrees(lat), np.degrees(dlon)
    pole = 90.0 if lat_deg + angle_deg > 90.0 else -90.0 if lat_deg - angle_deg < -90.0 else 0
    if pole:
        # around a pole the longitude runs once round the world: order the points by it
        # and close the ring along the pole's latitude
        order = np.argsort(dlons)
        ring = [[float(lats[i]), lon_deg + float(dlons[i])] for i in order]
        return [[pole, lon_deg - 180.0], *ring, [pole, lon_deg + 180.0],
                [pole, lon_deg - 180.0]]
    ring = [[float(la), lon_deg + float(dl)] for la, dl in zip(lats, dlons, strict=True)]
    return [*ring, ring[0]]


@dataclass(frozen=True, slots=True)
class PassNow:
    """A pass in progress over ``station``: elevation (deg) and range (km) now, night at the
    station (key is made only then), and ``set_in_s`` (s of scenario time) to the set (None
    when it does not set within :data:`SET_HORIZON_S`)."""

    station: str
    elevation_deg: float
    range_km: float
    night: bool
    set_in_s: float | None


@dataclass(frozen=True, slots=True)
class SatelliteNow:
    """A satellite at one moment: sub-satellite point (deg) and height (km), the ground
    track (segments of [lat, lon]), the footprint polygon ([lat, lon]), its Earth-central
    radius (deg) and the passes in progress."""

    satellite: str
    lat_deg: float
    lon_deg: float
    height_km: float
    track: list[list[list[float]]]
    footprint: list[list[float]]
    footprint_angle_deg: float
    passes: list[PassNow]

    def as_json(self) -> dict[str, object]:
        """JSON-ready (the O&M API's ``satellites`` items)."""
        return {"id": self.satellite, "lat": self.lat_deg, "lon": self.lon_deg,
                "height_km": self.height_km, "track": self.track,
                "footprint": self.footprint,
                "footprint_radius_km": math.radians(self.footprint_angle_deg)
                * EARTH_RADIUS_KM,
                "passes": [{"station": p.station, "elevation_deg": p.elevation_deg,
                            "range_km": p.range_km, "night": p.night,
                            "set_in_s": p.set_in_s} for p in self.passes]}


def _set_in_s(orbit: Orbit, station: GroundStation, epoch: datetime, t_s: float,
              min_elevation_deg: float) -> float | None:
    ahead = np.arange(0.0, SET_HORIZON_S + SET_STEP_S, SET_STEP_S)
    el, _rng = look_angles(_ecef(orbit, epoch, t_s + ahead), station)
    below = np.flatnonzero(el < min_elevation_deg)
    if not below.size:
        return None
    i = int(below[0])
    if i == 0:
        return 0.0
    return float(ahead[i - 1] + (min_elevation_deg - el[i - 1]) / (el[i] - el[i - 1])
                 * SET_STEP_S)


def satellite_now(orbit: Orbit, stations: Sequence[GroundStation], epoch: datetime,
                  t_s: float, min_elevation_deg: float = 10.0,
                  max_sun_elevation_deg: float = 0.0,
                  step_s: float = TRACK_STEP_S) -> SatelliteNow:
    """Where ``orbit``'s satellite is at ``t_s`` (s after ``epoch``): sub-satellite point,
    ground track over one period either side (a point every ``step_s``), footprint at
    ``min_elevation_deg`` and the passes in progress over ``stations`` (night: the sun at
    or below ``max_sun_elevation_deg`` there)."""
    if not 0.0 <= min_elevation_deg < 90.0:
        raise ParameterError("min_elevation_deg", min_elevation_deg, "must be in [0, 90) deg")
    if not step_s > 0:
        raise ParameterError("step_s", step_s, "must be > 0 s")
    span = period_s(orbit)
    offsets = np.arange(-span, span + step_s / 2, step_s)
    t = np.concatenate([[t_s], t_s + offsets])
    ecef = _ecef(orbit, epoch, t)
    lat, lon, height = geodetic(ecef)
    angle = footprint_angle_deg(float(height[0]), min_elevation_deg)
    passes: list[PassNow] = []
    for station in stations:
        el, rng = look_angles(ecef[0], station)
        if float(el) < min_elevation_deg:
            continue
        sun = float(sun_elevation_deg(epoch, t_s, station))
        passes.append(PassNow(station.id, float(el), float(rng),
                              sun <= max_sun_elevation_deg,
                              _set_in_s(orbit, station, epoch, t_s, min_elevation_deg)))
    passes.sort(key=lambda p: -p.elevation_deg)
    return SatelliteNow(orbit.name, float(lat[0]), float(lon[0]), float(height[0]),
                        split_at_antimeridian(lat[1:].tolist(), lon[1:].tolist()),
                        footprint(float(lat[0]), float(lon[0]), angle), angle, passes)
