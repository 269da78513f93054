"""The satellites of a twin scenario and their passes over its ground stations.

:func:`scenario_passes` is the one place where the twin asks for passes: the satellite
model of the quantum layer (:mod:`qkdnet.quantum.passes`: orbit from a TLE propagated with
SGP4, the night and minimum-elevation rules, the free-space link and the finite key of
each pass) over the scenario's ground stations. The twin's clock starts at
:data:`TWIN_EPOCH` (midnight UTC), near the built-in Jinan-1-like TLE's epoch; a satellite
with no TLE of its own flies that built-in orbit (:data:`qkdnet.quantum.orbit.JINAN1_TLE`),
several such satellites spaced along it by :data:`SPACING_S` each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from qkdnet.errors import ScenarioError
from qkdnet.quantum.orbit import JINAN1_TLE, GroundStation, Orbit
from qkdnet.quantum.passes import PassRules, find_passes
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import Node

#: The twin's time 0 for orbits: midnight UTC of the built-in TLE's epoch day.
TWIN_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
#: The twin's pass rules: the default elevation and night limits, sampled every 30 s to
#: find passes and every 2 s along them (against 10 s and 1 s: over ten weeks of cn-qcn
#: the same passes but 1 of 1,226, the same key to 0.01 %, in half the time).
TWIN_RULES = PassRules(coarse_step_s=30.0, fine_step_s=2.0)
#: How far apart along the built-in orbit satellites without a TLE of their own fly (s):
#: 20 minutes, so several make passes of their own over a station in one night.
SPACING_S = 1200.0

#: The satellite a network with satellite KM-links has when its scenario names none.
JINAN_1 = "jinan-1"


@dataclass(frozen=True, slots=True)
class TwinSatellite:
    """A satellite of the scenario: its id and, for the orbit model, its two-line element
    set (None: the model's built-in Jinan-1-like elements)."""

    id: str
    tle: tuple[str, str] | None = None


def orbit_of(satellite: TwinSatellite, where: str = "tle") -> Orbit:
    """The orbit of ``satellite``: its own TLE, else the built-in Jinan-1-like one.
    ScenarioError naming ``where`` (its place in the scenario) for a bad TLE."""
    if satellite.tle is None:
        return replace(Orbit.from_tle(JINAN1_TLE), name=satellite.id)
    try:
        return replace(Orbit.from_tle("\n".join(satellite.tle)), name=satellite.id)
    except ScenarioError as exc:
        raise ScenarioError(where, f"{exc.path}: {exc.problem}") from None


def scenario_passes(satellites: Sequence[TwinSatellite], stations: Sequence[Node],
                    duration_s: float) -> list[SatellitePass]:
    """The passes of ``satellites`` over ``stations`` (ground-station nodes) during the
    run (0 to ``duration_s``, s on the twin's clock from :data:`TWIN_EPOCH`), with their
    key, ordered by their end. The k-th satellite without a TLE flies the built-in orbit
    k x :data:`SPACING_S` behind the first."""
    if not satellites or not stations or duration_s <= 0:
        return []
    grounds = [GroundStation(n.id, n.lat, n.lon) for n in stations]
    passes: list[SatellitePass] = []
    shared = 0
    for sat in satellites:
        orbit = orbit_of(sat)
        if sat.tle is None:
            orbit, shared = orbit.trailing(shared * SPACING_S, sat.id), shared + 1
        passes += find_passes(orbit, grounds, TWIN_EPOCH, duration_s, TWIN_RULES)
    return sorted(passes, key=lambda p: (p.set_s, p.satellite, p.station))
