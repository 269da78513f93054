"""What the benchmark tests share: the load generator's path and a two-node scenario (a
master and a slave SAE at node a, one more SAE at b)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KME_LOAD = ROOT / "benchmarks" / "kme_load.py"

SCENARIO = """\
qkdnet_scenario: 1
name: bench-pair
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_access, lat: 40.3, lon: 116.3}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-a2, node: a}
  - {id: sae-b, node: b}
"""
