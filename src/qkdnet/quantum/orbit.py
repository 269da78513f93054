"""A satellite's orbit from a two-line element set (TLE), and where it stands in the sky of a
ground station: elevation (deg) and range (km) over time, with the sun's elevation there.

Propagation is the SGP4 model of the maintained ``sgp4`` package (Vallado et al., "Revisiting
Spacetrack Report #3", AIAA 2006-6753), not a home-made propagator. SGP4 gives positions in
the TEME frame; they are turned into Earth-fixed coordinates by the Greenwich mean sidereal
time (IAU-82, the angle TEME is defined with), ignoring polar motion (~10 m) and UT1 - UTC
(< 0.9 s, about 7 km along track: under 1 s of pass time). Stations sit on the WGS-84
ellipsoid at sea level.

The sun: the low-precision solar coordinates of the Astronomical Almanac (accuracy about
0.01 deg in 1950-2050), enough to tell night from day at a station.

Sans-I/O: TLE text comes in as a string; a file's name only labels its errors.

ASSUMED: :data:`JINAN1_TLE` is a Jinan-1-like element set made for this model, not a
published one: a ~500 km circular sun-synchronous orbit (inclination 97.4 deg, 15.22
revolutions a day), epoch 2025-01-01, as Li et al., Nature 640, 47 (2025) describe the
satellite (launched 27 July 2022). Any TLE can replace it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sgp4.api import SGP4_ERRORS, Satrec, jday

from qkdnet.errors import ScenarioError

FloatArray = NDArray[np.float64]

#: ASSUMED Jinan-1-like element set (see the module docstring): name line and two lines.
JINAN1_TLE = """\
JINAN-1
1 53112U 22088A   25001.00000000  .00008000  00000-0  35000-3 0  9999
2 53112  97.4000  60.0000 0005000  90.0000 270.1000 15.22000000134563"""

WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class GroundStation:
    """A ground station: its id (the node id), latitude and longitude (deg, WGS-84)."""

    id: str
    lat_deg: float
    lon_deg: float

    def ecef_km(self) -> FloatArray:
        """Earth-fixed position (km) at sea level on the WGS-84 ellipsoid."""
        lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
        e2 = WGS84_F * (2.0 - WGS84_F)
        n = WGS84_A_KM / math.sqrt(1.0 - e2 * math.sin(lat) ** 2)
        return np.array([n * math.cos(lat) * math.cos(lon), n * math.cos(lat) * math.sin(lon),
                         n * (1.0 - e2) * math.sin(lat)])

    def up(self) -> FloatArray:
        """Unit vector of the local vertical (geodetic normal)."""
        lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
        return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon),
                         math.sin(lat)])


def _checksum(line: str) -> int:
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


#: The fields each TLE line must hold as numbers: (name, first column, last column), 1-based.
_FIELDS = {
    1: (("satellite number", 3, 7), ("epoch year", 19, 20), ("epoch day", 21, 32)),
    2: (("satellite number", 3, 7), ("inclination", 9, 16), ("right ascension", 18, 25),
        ("eccentricity", 27, 33), ("argument of perigee", 35, 42), ("mean anomaly", 44, 51),
        ("mean motion", 53, 63)),
}


@dataclass(frozen=True)
class Orbit:
    """A satellite named ``name`` on the orbit of a TLE, propagated with SGP4."""

    name: str
    line1: str
    line2: str

    @classmethod
    def from_tle(cls, text: str, source: str | None = None) -> Orbit:
        """Parse and check a TLE: two lines, or three with a name line first.

        A bad TLE raises :class:`~qkdnet.errors.ScenarioError` naming ``source`` (a file
        name, when it came from one), the line and the field at fault.
        """
        lines = [(i + 1, ln.rstrip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
        if len(lines) not in (2, 3):
            raise ScenarioError("tle", f"expected 2 lines (or 3 with a name line), got "
                                f"{len(lines)}", source)
        name = lines[0][1].strip().removeprefix("0 ") if len(lines) == 3 else ""
        (n1, l1), (n2, l2) = lines[-2:]
        for number, (at, line) in enumerate(((n1, l1), (n2, l2)), start=1):
            where = f"tle line {number}"
            if len(line) != 69:
                raise ScenarioError(where, f"{len(line)} characters, a TLE line has 69",
                                    source, at)
            if line[0] != str(number) or line[1] != " ":
                raise ScenarioError(where, f"must start with '{number} '", source, at)
            for field, first, last in _FIELDS[number]:
                text_field = line[first - 1:last].strip()
                value = ("0." + text_field) if field == "eccentricity" else text_field
                try:
                    float(value)
                except ValueError:
                    raise ScenarioError(f"{where}: {field}", f"{text_field!r} is not a number "
                                        f"(columns {first}-{last})", source, at) from None
            if not line[68].isdigit() or int(line[68]) != _checksum(line):
                raise ScenarioError(f"{where}: checksum", f"is {line[68]!r}, the line sums to "
                                    f"{_checksum(line)}", source, at)
        if l1[2:7] != l2[2:7]:
            raise ScenarioError("tle line 2: satellite number", f"{l2[2:7].strip()} differs "
                                f"from line 1's {l1[2:7].strip()}", source, n2)
        inclination = float(l2[8:16])
        if not 0.0 <= inclination <= 180.0:
            raise ScenarioError("tle line 2: inclination", f"{inclination} deg is not in "
                                "[0, 180]", source, n2)
        if not float(l2[52:63]) > 0.0:
            raise ScenarioError("tle line 2: mean motion", "must be > 0 rev/day", source, n2)
        orbit = cls(name or f"sat-{l1[2:7].strip()}", l1, l2)
        try:
            orbit.satrec()
        except (ValueError, IndexError) as exc:
            raise ScenarioError("tle", f"SGP4 rejects it: {exc}", source, n1) from None
        return orbit

    def trailing(self, lag_s: float, name: str) -> Orbit:
        """Satellite ``name`` on the same orbit, ``lag_s`` s behind this one: its mean
        anomaly at the epoch earlier by ``lag_s`` x the mean motion (a constellation in
        one orbital plane)."""
        revs_per_day = float(self.line2[52:63])
        anomaly = (float(self.line2[43:51]) - 360.0 * revs_per_day * lag_s / SECONDS_PER_DAY
                   ) % 360.0
        body = f"{self.line2[:43]}{anomaly:8.4f}{self.line2[51:68]}"
        return Orbit(name, self.line1, body + str(_checksum(body)))

    def satrec(self) -> Satrec:
        """The sgp4 library's satellite record."""
        return Satrec.twoline2rv(self.line1, self.line2)

    def teme_km(self, epoch: datetime, t_s: ArrayLike) -> FloatArray:
        """Positions (km, TEME, shape (..., 3)) at ``t_s`` seconds after ``epoch`` (UTC)."""
        t = np.asarray(t_s, dtype=np.float64)
        jd, fr = _julian(epoch, t.ravel())
        err, r, _v = self.satrec().sgp4_array(jd, fr)
        if np.any(err):
            code = int(err[err != 0][0])
            raise ScenarioError("tle", f"SGP4 fails {self.name} at {epoch.isoformat()} + "
                                f"{float(t.ravel()[err != 0][0]):.0f} s: "
                                f"{SGP4_ERRORS.get(code, code)}")
        return np.asarray(r, dtype=np.float64).reshape(*t.shape, 3)


def _utc(epoch: datetime) -> datetime:
    if epoch.tzinfo is None:
        raise ValueError("the scenario epoch must be a timezone-aware UTC datetime")
    return epoch.astimezone(UTC)


def _julian(epoch: datetime, t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Julian date as (whole, fraction) arrays, as sgp4 takes them, ``t_s`` after ``epoch``."""
    e = _utc(epoch)
    jd0, fr0 = jday(e.year, e.month, e.day, e.hour, e.minute, e.second + e.microsecond / 1e6)
    fr = fr0 + t_s / SECONDS_PER_DAY
    whole = np.floor(fr)
    return jd0 + whole, fr - whole


def gmst_rad(jd: ArrayLike) -> FloatArray:
    """Greenwich mean sidereal time (rad), IAU-82, at Julian date ``jd`` (UT1 ~ UTC)."""
    t = (np.asarray(jd, dtype=np.float64) - 2451545.0) / 36525.0
    seconds = (67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t
               + 0.093104 * t**2 - 6.2e-6 * t**3)
    return np.asarray(np.mod(np.radians(seconds / 240.0), 2.0 * np.pi), dtype=np.float64)


def teme_to_ecef(r_teme: FloatArray, epoch: datetime, t_s: ArrayLike) -> FloatArray:
    """Rotate TEME positions (..., 3) into the Earth-fixed frame by GMST."""
    jd, fr = _julian(epoch, np.asarray(t_s, dtype=np.float64))
    theta = gmst_rad(jd + fr)
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = r_teme[..., 0], r_teme[..., 1], r_teme[..., 2]
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=-1)


def look_angles(r_ecef: FloatArray, station: GroundStation) -> tuple[FloatArray, FloatArray]:
    """Elevation (deg) and range (km) of Earth-fixed positions seen from ``station``."""
    d = r_ecef - station.ecef_km()
    rng = np.linalg.norm(d, axis=-1)
    elevation = np.degrees(np.arcsin(np.clip((d @ station.up()) / rng, -1.0, 1.0)))
    return elevation, rng


def sun_elevation_deg(epoch: datetime, t_s: ArrayLike, station: GroundStation) -> FloatArray:
    """Elevation (deg) of the sun's centre at ``station``, ``t_s`` seconds after ``epoch``
    (Astronomical Almanac low-precision formulae, ~0.01 deg; no refraction)."""
    jd, fr = _julian(epoch, np.asarray(t_s, dtype=np.float64))
    n = (jd - 2451545.0) + fr
    mean_lon = np.radians(280.460 + 0.9856474 * n)
    anomaly = np.radians(357.528 + 0.9856003 * n)
    ecl_lon = mean_lon + np.radians(1.915) * np.sin(anomaly) + np.radians(0.020) * np.sin(
        2 * anomaly)
    obliquity = np.radians(23.439 - 4e-7 * n)
    ra = np.arctan2(np.cos(obliquity) * np.sin(ecl_lon), np.cos(ecl_lon))
    dec = np.arcsin(np.sin(obliquity) * np.sin(ecl_lon))
    hour_angle = gmst_rad(jd + fr) + math.radians(station.lon_deg) - ra
    lat = math.radians(station.lat_deg)
    sin_el = math.sin(lat) * np.sin(dec) + math.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.asarray(np.degrees(np.arcsin(sin_el)), dtype=np.float64)
