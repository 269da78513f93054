"""The EMSs and the NMS as processes of a deployment (`qkdnet up` on loopback): a square
of two regions, one node process each, the EMS of each region and the NMS; the NMS's
/metrics shows the KM-links of both node processes, and a SIGKILLed node process raises
its alarms at the NMS."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from node_deployment import SQUARE, free_ports, qkdnet
from om_login import session
from polling import wait_for


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "square.yaml").write_text(SQUARE)
    kme_w, km_w, kme_e, km_e, control, ems_w, ems_e, nms = free_ports(8)
    (tmp_path / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: square.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: west, host: local, regions: [west], kme_port: {kme_w}, km_port: {km_w}}}
  - {{id: east, host: local, regions: [east], kme_port: {kme_e}, km_port: {km_e}}}
controller: {{host: local, port: {control}}}
ems:
  - {{region: west, host: local, port: {ems_w}}}
  - {{region: east, host: local, port: {ems_e}}}
nms: {{host: local, port: {nms}}}
""")
    yield tmp_path / "deploy.yaml"
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _series(metrics: str, name: str, km_link: str) -> float | None:
    """The value of ``name`` for ``km_link`` in a Prometheus exposition, None if absent."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and f'km_link="{km_link}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_nms_shows_both_processes_and_raises_a_killed_ones_alarms(deployment: Path
                                                                       ) -> None:
    """/metrics at the NMS carries KM-links of the west and the east process; after the
    east process is SIGKILLed its nodes are down and its KM-links to the west are down,
    as active alarms at the NMS."""
    folder = deployment.parent
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000",
                 "--speedup", "5", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    assert ("started 6 processes on local: controller, nms, ems-west, ems-east, west, east"
            in up.stdout)
    assert qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder).returncode == 0
    assert "O&M console (NMS): http://127.0.0.1:" in up.stdout
    om_url = json.loads((folder / "base" / "nms" / "manifest.json").read_text())["om_url"]

    metrics = ""

    def both_processes_reported() -> bool:
        nonlocal metrics
        metrics = httpx.get(f"{om_url}/metrics", timeout=5).text
        return all(_series(metrics, "qkdnet_kmlink_up", k) == 1.0
                   for k in ("km:a~b", "km:c~d", "km:b~c"))

    assert wait_for(both_processes_reported, 30), metrics
    key_bits = _series(metrics, "qkdnet_kmlink_key_bits", "km:c~d")
    assert key_bits is not None and key_bits > 0

    east_pid = int((folder / "base" / "east" / "node.pid").read_text())
    os.kill(east_pid, signal.SIGKILL)
    with session(folder / "base" / "nms", om_url, "watch", "viewer") as client:
        active: set[tuple[str, str]] = set()

        def alarms_raised() -> bool:
            nonlocal active
            alarms = client.get(f"{om_url}/api/alarms").json()["active"]
            active = {(a["rule"], a["subject"]) for a in alarms}
            return {("node-down", "c"), ("node-down", "d"), ("km-link-down", "km:b~c"),
                    ("km-link-down", "km:d~a")} <= active

        assert wait_for(alarms_raised, 30), active
        assert ("node-down", "a") not in active and ("km-link-down", "km:a~b") not in active


def test_an_ems_for_a_region_without_one_is_refused_naming_the_option(deployment: Path
                                                                      ) -> None:
    """`qkdnet ems --region` of a region the deployment gives no EMS: an error naming
    --region and the regions it has, a non-zero exit, nothing served."""
    ran = qkdnet("ems", "--deployment", "deploy.yaml", "--region", "north", "--pki", "pki",
                 cwd=deployment.parent)
    assert ran.returncode != 0
    assert "--region" in ran.stderr and "west, east" in ran.stderr, ran.stderr
