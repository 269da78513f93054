"""The satellites of a twin scenario and their passes over its ground stations.

:func:`scenario_passes` is the one place where the twin asks for passes: the satellite
model of the quantum layer (orbit from a TLE, night and elevation constraints, free-space
link, finite key per pass) plugs in here. Until it does, it returns a PLACEHOLDER
schedule, stated as assumed: every satellite passes over every ground station once a
night, culminating at :data:`PLACEHOLDER_LOCAL_HOUR` local solar time (successive
satellites :data:`PLACEHOLDER_SPACING_S` apart), for :data:`PLACEHOLDER_PASS_S`, leaving
:data:`PLACEHOLDER_KEY_BITS` shared (Jinan-1 shares up to 0.59 Mbit in a pass: Li et al.,
Nature 640, 47-54 (2025); a good night pass of ~0.3 Mbit is assumed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import Node
from qkdnet.units import DAY_S, HOUR_S

#: Placeholder schedule (assumed, see the module docstring).
PLACEHOLDER_LOCAL_HOUR = 22.0
PLACEHOLDER_PASS_S = 360.0
PLACEHOLDER_KEY_BITS = 3.0e5
PLACEHOLDER_MAX_ELEVATION_DEG = 50.0
PLACEHOLDER_SPACING_S = 1800.0

#: The satellite a network with satellite KM-links has when its scenario names none.
JINAN_1 = "jinan-1"


@dataclass(frozen=True, slots=True)
class TwinSatellite:
    """A satellite of the scenario: its id and, for the orbit model, its two-line element
    set (None: the model's built-in Jinan-1-like elements)."""

    id: str
    tle: tuple[str, str] | None = None


def scenario_passes(satellites: Sequence[TwinSatellite], stations: Sequence[Node],
                    duration_s: float) -> list[SatellitePass]:
    """The passes of ``satellites`` over ``stations`` (ground-station nodes) during the
    run (0 to ``duration_s``, s on the scenario's clock, 0 at midnight UTC), ordered by
    their end. PLUG POINT for the quantum layer's pass model; the placeholder schedule
    until then (module docstring)."""
    passes = []
    nights = int(duration_s // DAY_S) + 1
    for k, sat in enumerate(satellites):
        for station in stations:
            # local solar time = UTC + longitude / 15 h
            first = (PLACEHOLDER_LOCAL_HOUR - station.lon / 15.0) * HOUR_S \
                + k * PLACEHOLDER_SPACING_S
            for night in range(-1, nights):
                top = first % DAY_S + night * DAY_S
                rise, end = top - PLACEHOLDER_PASS_S / 2, top + PLACEHOLDER_PASS_S / 2
                if rise >= 0 and end <= duration_s:
                    passes.append(SatellitePass(sat.id, station.id, rise, top, end,
                                                PLACEHOLDER_MAX_ELEVATION_DEG,
                                                PLACEHOLDER_KEY_BITS))
    return sorted(passes, key=lambda p: (p.set_s, p.satellite, p.station))
