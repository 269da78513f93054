"""The satellite segment in a distributed deployment (`qkdnet up`): the Beijing and Haikou
ground stations in two node processes, the devices service flying Jinan-1. A key between
SAEs behind Haikou and Beijing, fetched with the third-party `etsi-qkd-014-client`, is the
same at both ends; the NMS reports the pools the devices service spent, and its console
shows the satellite on the devices service's satellite clock; and the pools
survive a SIGKILL of the devices service (resumed from its state file, not from the
prefill)."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from etsi_qkd_014_client import QKD014Client
from ground_scenario import GROUND_SCENARIO
from node_deployment import free_ports, qkdnet
from om_login import session
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.live.satellite_state import STATE_FILE

PREFILL = 1_000_000.0
LINK = "sat:beijing-gs~hainan-gs"
#: The satellite clock starts 41 min before the first night pass: none in these tests.
UP_OPTIONS = ("--prefill-bits", "100000", "--speedup", "5", "--satellite-prefill-bits",
              str(PREFILL))
#: The console tests' two ground stations, with the satellite KM-link between them.
SCENARIO = GROUND_SCENARIO + f"""\
km_links:
  - {{id: "km:beijing~beijing-gs", a: beijing, b: beijing-gs, kind: direct,
     path: [beijing--beijing-gs]}}
  - {{id: "km:haikou~hainan-gs", a: haikou, b: hainan-gs, kind: direct,
     path: [haikou--hainan-gs]}}
  - {{id: "{LINK}", a: beijing-gs, b: hainan-gs, kind: satellite}}
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Up: north (beijing, beijing-gs) and south (haikou, hainan-gs), controller, NMS and
    devices on loopback; satellite pools prefilled."""
    folder = tmp_path_factory.mktemp("satdeploy")
    (folder / "ground.yaml").write_text(SCENARIO)
    kme_n, km_n, kme_s, km_s, control, nms, devices = free_ports(7)
    (folder / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: ground.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: north, host: local, nodes: [beijing, beijing-gs], kme_port: {kme_n}, km_port: {km_n}}}
  - {{id: south, host: local, nodes: [haikou, hainan-gs], kme_port: {kme_s}, km_port: {km_s}}}
controller: {{host: local, port: {control}}}
nms: {{host: local, port: {nms}}}
devices: {{host: local, port: {devices}}}
""")
    up = qkdnet("up", "deploy.yaml", "--dir", "base", *UP_OPTIONS, cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield folder
    finally:
        qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=folder)


def _manifest(folder: Path, process: str) -> dict[str, object]:
    return json.loads((folder / "base" / process / "manifest.json").read_text())


def etsi_client(folder: Path, process: str, sae: str) -> QKD014Client:
    """etsi-qkd-014-client for ``sae`` of node process ``process``."""
    manifest = _manifest(folder, process)
    entry = manifest["saes"][sae]  # type: ignore[index]
    return QKD014Client(entry["kme_url"].removeprefix("https://"), entry["cert"],
                        entry["key"], manifest["ca"])


def pools(folder: Path) -> dict[str, float]:
    """The NMS's qkdnet_satellite_pool_key_bits of Jinan-1, by station."""
    om_url = _manifest(folder, "nms")["om_url"]
    text = httpx.get(f"{om_url}/metrics", timeout=10).text
    return {s.labels["station"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "qkdnet_satellite_pool_key_bits"}


def test_a_key_between_haikou_and_beijing_processes_is_the_same_at_both_ends(
        deployed: Path) -> None:
    """sae-h (south process) gets two keys for sae-b (north process): Haikou's only way to
    Beijing is the satellite KM-link, its key from the devices service; sae-b fetches the
    same bytes by their key_IDs."""
    haikou = etsi_client(deployed, "south", "sae-h")
    beijing = etsi_client(deployed, "north", "sae-b")
    got: list[object] = []

    def fetched() -> bool:
        code, container = haikou.get_key("sae-b", number=2, size=256)
        if code == 200:
            got.append(container)
        return code == 200

    assert wait_for(fetched, seconds=60), (deployed / "base" / "south" / "node.log"
                                           ).read_text()[-3000:]
    container = got[0]
    ids = [k.key_id for k in container.keys]  # type: ignore[attr-defined]
    code, same = beijing.get_key_with_key_IDs("sae-h", ids)
    assert code == 200
    assert [base64.b64decode(k.key) for k in same.keys] == \
        [base64.b64decode(k.key) for k in container.keys]  # type: ignore[attr-defined]


def test_the_nms_reports_the_pools_the_satellite_relays_spent(deployed: Path) -> None:
    """The devices service reports Jinan-1's pools to the NMS: the Beijing and Hainan
    pools paid the satellite KM-link's pads alike; the other stations' are untouched."""
    assert wait_for(lambda: pools(deployed).get("beijing-gs", PREFILL) < PREFILL, 60)
    levels = pools(deployed)
    assert levels["beijing-gs"] == levels["hainan-gs"]
    assert set(levels) == {"beijing-gs", "hainan-gs"}
    # the console shows the satellite on the clock the devices service flies it by: from
    # 12:00 UTC on TWIN_EPOCH's day (43,200 s), x5; not the NMS's own wall clock
    om_url = str(_manifest(deployed, "nms")["om_url"])
    with session(deployed / "base" / "nms", om_url) as om:
        shown = om.get(f"{om_url}/api/satellite").json()
    assert 43_200 <= shown["t"] < 43_200 + 3_600


def test_the_pools_survive_a_kill_of_the_devices_service(deployed: Path) -> None:
    """SIGKILLed and started again with the same options, the devices service resumes its
    pools from its state file: the NMS shows them where they were, not at the prefill."""
    assert wait_for(lambda: pools(deployed).get("beijing-gs", PREFILL) < PREFILL, 60)
    state = deployed / "base" / "devices" / STATE_FILE
    assert state.is_file()
    before = pools(deployed)["beijing-gs"]
    pid = int((deployed / "base" / "devices" / "qkd-devices.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    up = qkdnet("up", "deploy.yaml", "--dir", "base", *UP_OPTIONS, cwd=deployed)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "devices" in up.stdout
    after = int((deployed / "base" / "devices" / "qkd-devices.pid").read_text())
    assert after != pid
    assert wait_for(lambda: _serving(deployed, after), 30)
    # resumed, not prefilled again: no pass since, and the KM-link's pads were full
    assert _kept(state) == before < PREFILL
    assert wait_for(lambda: pools(deployed)["beijing-gs"] == before, 30)


def _serving(folder: Path, pid: int) -> bool:
    """Whether the devices process ``pid`` has written its manifest (it serves)."""
    manifest = folder / "base" / "devices" / "manifest.json"
    try:
        return json.loads(manifest.read_text()).get("pid") == pid
    except (OSError, ValueError):
        return False


def _kept(state: Path) -> float:
    """The Beijing pool as the state file holds it (bits)."""
    with sqlite3.connect(state) as db:
        (bits,) = db.execute("SELECT pooled FROM pool WHERE station = 'beijing-gs'"
                             ).fetchone()
    return float(bits)
