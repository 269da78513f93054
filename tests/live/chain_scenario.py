"""The three-node chain a--b--c the O&M and console tests serve (two QKD-links that both
make key; SAEs at the ends)."""

CHAIN_SCENARIO = """\
qkdnet_scenario: 1
name: om-chain
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_access, lat: 40.6, lon: 116.6}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: c, length_km: 60, device_type: II}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""
