"""Shared fixtures: a small twin scenario for the what-if search (tests/twin/test_plan.py
and tests/test_cli_plan.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

# A chain a-b-c (the watched segment) with a spur c-d; d is ~111 km of fibre from a and
# ~80 km from b, f is far away. A new a-d closes a ring round both a-b and b-c; b-d only
# round b-c.
NETWORK = """\
qkdnet_scenario: 1
name: chain
regions:
  - {id: east, name: East}
nodes:
  - {id: a, name: A, kind: backbone_access, lat: 30.0, lon: 120.0, region: east}
  - {id: b, name: B, kind: backbone_access, lat: 30.5, lon: 120.0, region: east}
  - {id: c, name: C, kind: backbone_access, lat: 31.0, lon: 120.0, region: east}
  - {id: d, name: D, kind: backbone_access, lat: 30.5, lon: 120.6, region: east}
  - {id: f, name: F, kind: backbone_access, lat: 35.0, lon: 120.6, region: east}
qkd_links:
  - {a: a, b: b, length_km: 77, loss_db: 17, device_type: III}
  - {a: b, b: c, length_km: 77, loss_db: 17, device_type: III}
  - {a: c, b: d, length_km: 80, loss_db: 17.6, device_type: III}
  - {a: d, b: f, length_km: 70, loss_db: 15, device_type: III}
"""
TWIN = """\
qkdnet_twin: 1
network: chain.yaml
weeks: 2
seed: 1
random_faults: false
segments: [a, c]
faults:
  - {link: a--b, at_h: 50, duration_h: 3}
  - {link: b--c, at_h: 200, duration_h: 2}
"""


@pytest.fixture
def plan_chain(tmp_path: Path) -> Path:
    """The twin file of the chain, in a folder of its own with its network beside it."""
    folder = tmp_path / "chain"
    folder.mkdir()
    (folder / "chain.yaml").write_text(NETWORK)
    (folder / "twin.yaml").write_text(TWIN)
    return folder / "twin.yaml"
