"""A satellite's passes over ground stations, and the key each leaves.

A pass is the time the satellite stays above the minimum elevation over a station: it
rises and sets where the elevation crosses that minimum (linear interpolation between
samples ``coarse_step_s`` apart, well under a second of error) and culminates at its
highest point. Key is made only at night: while the sun is below ``max_sun_elevation_deg``
at the station (0 deg: below the horizon). A daylight pass is listed with 0 key bits.
Times are seconds after the scenario's epoch (a UTC datetime).

Everything is numpy over the whole span: a week of six stations is one SGP4 call on a
coarse grid and one on the passes' fine tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from qkdnet.errors import ParameterError
from qkdnet.quantum.free_space import SATELLITE_BB84, FreeSpaceLink, pass_key_bits
from qkdnet.quantum.orbit import (
    GroundStation,
    Orbit,
    look_angles,
    sun_elevation_deg,
    teme_to_ecef,
)
from qkdnet.quantum.params import DecoyBB84Params
from qkdnet.quantum.satellite_pass import SatellitePass

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PassRules:
    """When a pass counts and when it makes key: minimum elevation (deg), the sun's highest
    elevation that still counts as night (deg), and the sampling steps (s)."""

    min_elevation_deg: float = 10.0
    max_sun_elevation_deg: float = 0.0
    coarse_step_s: float = 10.0
    fine_step_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_elevation_deg < 90.0:
            raise ParameterError("min_elevation_deg", self.min_elevation_deg,
                                 "must be in [0, 90) deg")
        if not -90.0 <= self.max_sun_elevation_deg <= 90.0:
            raise ParameterError("max_sun_elevation_deg", self.max_sun_elevation_deg,
                                 "must be in [-90, 90] deg")
        for name in ("coarse_step_s", "fine_step_s"):
            if not 0 < getattr(self, name) <= 60:
                raise ParameterError(name, getattr(self, name), "must be in (0, 60] s")


@dataclass(frozen=True)
class PassTrack:
    """One pass sampled every ``fine_step_s`` from rise to set: times (s after the epoch),
    the satellite's elevation (deg) and range (km), the sun's elevation (deg), the channel
    loss (dB), the secure key the pass leaves (bits) and the night limit it was made under."""

    satellite: str
    station: str
    t_s: FloatArray
    elevation_deg: FloatArray
    range_km: FloatArray
    sun_elevation_deg: FloatArray
    loss_db: FloatArray
    key_bits: float
    max_sun_elevation_deg: float = 0.0

    @property
    def night(self) -> NDArray[np.bool_]:
        """Samples where key may be made (sun at or below ``max_sun_elevation_deg``)."""
        return np.asarray(self.sun_elevation_deg <= self.max_sun_elevation_deg, dtype=np.bool_)

    def summary(self) -> SatellitePass:
        """The pass record the layers above take."""
        top = int(np.argmax(self.elevation_deg))
        return SatellitePass(self.satellite, self.station, float(self.t_s[0]),
                             float(self.t_s[top]), float(self.t_s[-1]),
                             float(self.elevation_deg[top]), self.key_bits)


#: The defaults: 10 deg minimum elevation, night when the sun is below the horizon.
DEFAULT_RULES = PassRules()
#: The calibrated Jinan-1-like downlink of :mod:`qkdnet.quantum.free_space`.
DEFAULT_LINK = FreeSpaceLink()


def _windows(t: FloatArray, el: FloatArray, floor: float) -> list[tuple[float, float]]:
    """(rise, set) times where ``el`` sampled at ``t`` stays at or above ``floor``."""
    above = el >= floor
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    starts = [float(t[0])] if above[0] else []
    ends: list[float] = []
    for i in edges:
        cross = float(t[i] + (floor - el[i]) / (el[i + 1] - el[i]) * (t[i + 1] - t[i]))
        (starts if not above[i] else ends).append(cross)
    if above[-1]:
        ends.append(float(t[-1]))
    return list(zip(starts, ends, strict=True))


def pass_tracks(
    orbit: Orbit, stations: Sequence[GroundStation], epoch: datetime, duration_s: float,
    rules: PassRules = DEFAULT_RULES, link: FreeSpaceLink = DEFAULT_LINK,
    params: DecoyBB84Params = SATELLITE_BB84,
) -> list[PassTrack]:
    """Every pass of ``orbit`` over ``stations`` in [0, ``duration_s``] s after ``epoch``,
    sampled, with its key; sorted by rise time."""
    if not duration_s > 0:
        raise ParameterError("duration_s", duration_s, "must be > 0 s")
    t = np.arange(0.0, duration_s + rules.coarse_step_s, rules.coarse_step_s)
    t[-1] = min(t[-1], duration_s)
    ecef = teme_to_ecef(orbit.teme_km(epoch, t), epoch, t)
    spans = [(s, w) for s in stations
             for w in _windows(t, look_angles(ecef, s)[0], rules.min_elevation_deg)]
    if not spans:
        return []
    fine = [np.append(np.arange(a, b, rules.fine_step_s), b) for _s, (a, b) in spans]
    t_all = np.concatenate(fine)
    ecef_all = teme_to_ecef(orbit.teme_km(epoch, t_all), epoch, t_all)
    tracks: list[PassTrack] = []
    start = 0
    for (station, _w), ts in zip(spans, fine, strict=True):
        el, rng = look_angles(ecef_all[start:start + len(ts)], station)
        start += len(ts)
        sun = sun_elevation_deg(epoch, ts, station)
        usable = (sun <= rules.max_sun_elevation_deg) & (el >= rules.min_elevation_deg - 1e-6)
        key = pass_key_bits(link, rng, el, usable.astype(np.float64), rules.fine_step_s,
                            rules.min_elevation_deg, params)
        tracks.append(PassTrack(orbit.name, station.id, ts, el, rng, sun,
                                link.loss_db(rng, el), key, rules.max_sun_elevation_deg))
    tracks.sort(key=lambda p: (p.t_s[0], p.station))
    return tracks


def find_passes(
    orbit: Orbit, stations: Sequence[GroundStation], epoch: datetime, duration_s: float,
    rules: PassRules = DEFAULT_RULES, link: FreeSpaceLink = DEFAULT_LINK,
    params: DecoyBB84Params = SATELLITE_BB84,
) -> list[SatellitePass]:
    """The passes of :func:`pass_tracks` as the records the key management, control and
    twin layers take; sorted by rise time."""
    return [p.summary() for p in pass_tracks(orbit, stations, epoch, duration_s, rules,
                                             link, params)]
