"""A satellite pass over a ground station, as the quantum layer hands it to the layers
above: when it rises, culminates and sets, how high it climbs, and the secure key it
leaves shared between the satellite and the station (one finite-key block per pass).

The record both the satellite model (orbit, free-space link, finite key: it makes them)
and the key management, control and twin layers (they fill the satellite's key pools
with them) agree on. Times are seconds on the scenario's clock (0 at its epoch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SatellitePass:
    """One pass of satellite ``satellite`` over ground station ``station`` (a node id):
    rise, culmination and set (s on the scenario's clock), the highest elevation (deg)
    and the secure key the pass leaves shared (bits; 0 for a pass that makes none, e.g.
    in daylight or under the minimum elevation)."""

    satellite: str
    station: str
    rise_s: float
    culmination_s: float
    set_s: float
    max_elevation_deg: float
    key_bits: float

    def __post_init__(self) -> None:
        if not self.rise_s <= self.culmination_s <= self.set_s:
            raise ValueError(f"pass of {self.satellite} over {self.station}: rise, "
                             "culmination and set out of order")
        if self.key_bits < 0:
            raise ValueError(f"pass of {self.satellite} over {self.station}: key_bits "
                             f"{self.key_bits} < 0")

    @property
    def duration_s(self) -> float:
        """From rise to set (s)."""
        return self.set_s - self.rise_s
