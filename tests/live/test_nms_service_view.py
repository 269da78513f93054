"""Services at the NMS of a deployment (`qkdnet up` on loopback): a chain a-b-c whose
relay node b runs in a process (and region) of its own; a key request from sae-a (at a) to
sae-c (at c) makes a service the NMS's /api/services shows served on a-b-c, /metrics
carries what a's KME counted, and once b's process is killed (`qkdnet fault stop`) the
service is unserved, its root cause b's node-down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from node_deployment import free_ports, qkdnet
from om_login import session
from polling import wait_for

from qkdnet.apps.sae_client import KmeError, SaeClient

CHAIN3 = """\
qkdnet_scenario: 1
name: chain3
regions:
  - {id: ends}
  - {id: middle}
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110, region: ends}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3, region: middle}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.6, region: ends}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "chain3.yaml").write_text(CHAIN3)
    kme_e, km_e, kme_m, km_m, control, ems_e, ems_m, nms = free_ports(8)
    (tmp_path / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: chain3.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: ends, host: local, regions: [ends], kme_port: {kme_e}, km_port: {km_e}}}
  - {{id: middle, host: local, regions: [middle], kme_port: {kme_m}, km_port: {km_m}}}
controller: {{host: local, port: {control}}}
ems:
  - {{region: ends, host: local, port: {ems_e}}}
  - {{region: middle, host: local, port: {ems_m}}}
nms: {{host: local, port: {nms}}}
""")
    yield tmp_path / "deploy.yaml"
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _service(client: httpx.Client, om_url: str) -> dict[str, Any] | None:
    """The service sae-a->sae-c at the NMS, None while it has none."""
    services = client.get(f"{om_url}/api/services").json()["services"]
    return next((s for s in services if s["id"] == "sae-a->sae-c"), None)


def test_the_nms_shows_a_service_served_then_unserved_by_its_stopped_relay(
        deployment: Path) -> None:
    """Served on a-b-c with a's KME counts in /metrics; unserved with root cause node-down
    of b once b's process is killed."""
    folder = deployment.parent
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000",
                "--speedup", "5", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    om_url = json.loads((folder / "base" / "nms" / "manifest.json").read_text())["om_url"]
    manifest = json.loads((folder / "base" / "ends" / "manifest.json").read_text())
    master = SaeClient.from_manifest(manifest, "sae-a", timeout_s=10)
    slave = SaeClient.from_manifest(manifest, "sae-c", timeout_s=10)
    delivered: list[str] = []

    def key_crosses() -> bool:
        try:  # refused while the border KM-links fill and the route is asked for
            keys = master.enc_keys("sae-c", 1, 256)
        except KmeError:
            return False
        got = slave.dec_keys("sae-a", [k.key_id for k in keys])
        assert [k.material for k in got] == [k.material for k in keys]
        delivered.append(keys[0].key_id)
        return True

    assert wait_for(key_crosses, 60), "no key crossed a-b-c"
    with session(folder / "base" / "nms", om_url, "watch", "viewer") as client:
        service: dict[str, Any] | None = None

        def served() -> bool:
            nonlocal service
            service = _service(client, om_url)
            return service is not None and service["state"] == "served" \
                and service["key_delivered_bits"] >= 256

        assert wait_for(served, 30), service
        assert service is not None and service["route"] == ["a", "b", "c"]
        assert service["qos"]["kkrd_s"] is not None  # a's delays reached the NMS
        metrics = httpx.get(f"{om_url}/metrics", timeout=5).text
        kme = [line for line in metrics.splitlines()
               if line.startswith("qkdnet_kme_requests_total{") and 'node="a"' in line
               and 'endpoint="enc_keys"' in line and 'code="200"' in line]
        assert kme and float(kme[0].rsplit(" ", 1)[1]) >= 1, metrics
        assert any(line.startswith("qkdnet_service_requests_total{")
                   and 'service="sae-a->sae-c"' in line for line in metrics.splitlines())

        stop = qkdnet("fault", "stop", "b", "--deployment", "deploy.yaml", "--dir", "base",
                      cwd=folder)
        assert stop.returncode == 0, stop.stdout + stop.stderr

        def unserved_by_b() -> bool:
            nonlocal service
            service = _service(client, om_url)
            return service is not None and service["state"] == "unserved" and \
                {"rule": "node-down", "subject": "b"} in [
                    {"rule": c["rule"], "subject": c["subject"]} for c in service["causes"]]

        assert wait_for(unserved_by_b, 60), service
