"""Services in a running `qkdnet serve`: an SAE pair whose working route loses a node and
whose backup loses a link gets 503 "no route", and /api/services shows it unserved with the
stopped node and the cut link as its root causes, its service-unserved alarm filed under
the node; repaired and started, it is served again, with its restoration time, and
/metrics carries its Y.3807 families; the console's Services panel is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from om_login import logged_in
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.apps.sae_client import KmeError, KmeUnavailable, SaeClient
from qkdnet.live.launch import start_serve

# a diamond: a--b--d and a--c--d, SAEs at a and d
DIAMOND = """\
qkdnet_scenario: 1
name: om-diamond
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_relay, lat: 39.7, lon: 116.3}
  - {id: d, kind: backbone_access, lat: 40.0, lon: 116.6}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: d, length_km: 50, device_type: I}
  - {a: a, b: c, length_km: 60, device_type: I}
  - {a: c, b: d, length_km: 60, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""

SERVICE = "sae-a->sae-d"


def _service(om: httpx.Client, url: str) -> dict[str, Any]:
    """The service of sae-a and sae-d in /api/services; empty before its first report."""
    answer = om.get(f"{url}/api/services", timeout=5)
    assert answer.status_code == 200
    return next((s for s in answer.json()["services"] if s["id"] == SERVICE), {})


def test_a_service_without_a_route_is_unserved_with_its_root_faults_then_served(
        tmp_path: Path) -> None:
    """Node b (on the working route) stopped and link c--d (on the backup) cut: 503 no
    route, the service unserved naming both, its alarm under the node; then served."""
    (tmp_path / "diamond.yaml").write_text(DIAMOND)
    served = start_serve(tmp_path / "live", str(tmp_path / "diamond.yaml"),
                         ["--prefill-bits", "65536"])
    try:
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)
        with SaeClient.from_manifest(served.manifest, "sae-a", timeout_s=10) as kme:

            def key_status() -> int:
                try:
                    kme.enc_keys("sae-d", method="GET")
                except KmeError as exc:
                    return exc.status
                return 200

            assert wait_for(lambda: key_status() == 200)
            assert wait_for(lambda: _service(om, url).get("state") == "served")
            service = _service(om, url)
            assert service["route"][0] == "a" and service["route"][-1] == "d"
            assert service["key_delivered_bits"] >= 256 and service["causes"] == []
            assert om.post(f"{url}/api/nodes/b/stop", timeout=5).status_code == 200
            assert om.post(f"{url}/api/links/c--d/cut", timeout=5).status_code == 200
            with pytest.raises(KmeUnavailable, match="no route"):
                kme.enc_keys("sae-d", method="GET")
            assert wait_for(lambda: _service(om, url).get("state") == "unserved")
            service = _service(om, url)
            assert service["route"] is None and service["requests_refused"] >= 1
            assert {(c["rule"], c["subject"]) for c in service["causes"]} == {
                ("node-down", "b"), ("qkd-link-down", "c--d")}
            active = om.get(f"{url}/api/alarms", timeout=5).json()["active"]
            alarm = next(a for a in active if a["rule"] == "service-unserved")
            assert alarm["subject"] == SERVICE
            root = next(a for a in active if a["id"] == alarm["cause"])
            assert (root["rule"], root["subject"]) == ("node-down", "b")
            assert service["qos"]["kkdlr"] > 0

            assert om.post(f"{url}/api/links/c--d/repair", timeout=5).status_code == 200
            assert om.post(f"{url}/api/nodes/b/start", timeout=5).status_code == 200
            assert wait_for(lambda: key_status() == 200)
            assert wait_for(lambda: _service(om, url).get("state") == "served")
            service = _service(om, url)
            assert service["qos"]["outages"] == 1 and service["qos"]["restoration_s"] > 0
            assert service["qos"]["availability"] < 1
            active = om.get(f"{url}/api/alarms", timeout=5).json()["active"]
            assert not any(a["rule"] == "service-unserved" for a in active)
            text = om.get(f"{url}/metrics", timeout=5).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            loss = families["qkdnet_service_key_delivery_loss_ratio"]
            assert "Y.3807" in loss.documentation and "KKDLR" in loss.documentation
            (sample,) = loss.samples
            assert sample.labels["service"] == SERVICE and 0 < sample.value < 1
            assert "qkdnet_link_skr_bits_per_second" in families  # the NMS's still there
        # the console's Services panel: its files are open, like the page that includes it
        page = httpx.get(f"{url}/", timeout=5).text
        assert '<script src="/services.js"></script>' in page
        for name, kind in (("services.js", "text/javascript"), ("services.css", "text/css")):
            answer = httpx.get(f"{url}/{name}", timeout=5)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert "/api/services" in httpx.get(f"{url}/services.js", timeout=5).text
    finally:
        served.stop()
