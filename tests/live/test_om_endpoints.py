"""The O&M endpoints of a running `qkdnet serve`: a Prometheus scrape of /metrics parses
with prometheus-client's own parser and carries one SKR series per QKD-link, and the KM-link
pools the KMs report."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.keys.emulator import link_rate_bps
from qkdnet.live.launch import start_serve
from qkdnet.topology.scenarios import open_network

SCENARIO = """\
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


def _samples(text: str, name: str) -> dict[str, float]:
    return {s.labels.get("link") or s.labels["km_link"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


def test_metrics_carry_one_skr_series_per_qkd_link_and_the_pools(tmp_path: Path) -> None:
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(SCENARIO)
    network = open_network(str(scenario))
    served = start_serve(tmp_path / "live", str(scenario), ["--prefill-bits", "65536"])
    try:
        url = served.manifest["om_url"]
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{url}/metrics", timeout=5).text
            if _samples(text, "qkdnet_kmlink_key_bits"):  # the KMs' first report is in
                break
            time.sleep(0.2)
        skr = _samples(text, "qkdnet_link_skr_bits_per_second")
        assert set(skr) == {lk.id for lk in network.qkd_links}
        for lk in network.qkd_links:
            assert math.isclose(skr[lk.id], link_rate_bps(lk), rel_tol=1e-9)
        assert set(_samples(text, "qkdnet_link_up").values()) == {1.0}
        pools = _samples(text, "qkdnet_kmlink_key_bits")
        assert set(pools) == {km.id for km in network.km_links if km.kind.value == "direct"}
        assert all(v >= 65536 / 2 for v in pools.values())  # each direction holds half
        state = httpx.get(f"{url}/api/state", timeout=5).json()
        assert "a--b" in str(state)
    finally:
        served.stop()
