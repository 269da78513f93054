"""A small network with two satellite ground stations (Beijing and Haikou, each on a fibre
tail to an access node) that the satellite tests of the O&M app and console serve, and the
scenario time of Jinan-1's highest pass over Beijing in its first two days."""

from __future__ import annotations

from qkdnet.quantum.orbit import GroundStation
from qkdnet.quantum.passes import find_passes
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.twin.satellite_passes import JINAN_1, TWIN_EPOCH, TwinSatellite, orbit_of

GROUND_SCENARIO = """\
qkdnet_scenario: 1
name: om-ground
nodes:
  - {id: beijing, kind: backbone_access, lat: 39.9, lon: 116.4}
  - {id: beijing-gs, kind: ground_station, lat: 40.0, lon: 116.3}
  - {id: haikou, kind: backbone_access, lat: 20.0, lon: 110.3}
  - {id: hainan-gs, kind: ground_station, lat: 19.9, lon: 110.2}
qkd_links:
  - {a: beijing, b: beijing-gs, length_km: 20, device_type: I}
  - {a: haikou, b: hainan-gs, length_km: 20, device_type: I}
saes:
  - {id: sae-b, node: beijing}
  - {id: sae-h, node: haikou}
"""


def best_beijing_pass() -> SatellitePass:
    """Jinan-1's highest pass over beijing-gs in the two days after TWIN_EPOCH."""
    passes = find_passes(orbit_of(TwinSatellite(JINAN_1)),
                         [GroundStation("beijing-gs", 40.0, 116.3)], TWIN_EPOCH, 2 * 86400.0)
    return max(passes, key=lambda p: p.max_elevation_deg)
