"""The emulated QKD devices as a service of their own (`qkdnet qkd-devices`): `qkdnet up` of the
chain a-b | c-d with a devices entry starts it, the border KM-link b-c takes its key from
it (each end's KM an ETSI 014 client of its device end over mutual TLS) and keys cross;
with the service SIGKILLed the supply stops and relaying goes on from the pools; started
again, the supply resumes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_deployment import chain_deployment, chain_key_crosses, qkdnet
from polling import wait_for

from qkdnet.live.border_supply import read_figures

LINK = "km:b~c"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    yield chain_deployment(tmp_path, devices=True)
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _stored(folder: Path) -> int:
    """Blocks of the border KM-link the left process (its end a) stored, as it last said."""
    figures = read_figures(folder / "base" / "left" / "supply.json").get(LINK)
    return 0 if figures is None else figures.stored_blocks


def _figures_written(folder: Path) -> int:
    """When the left process last wrote its border supply figures (ns)."""
    return (folder / "base" / "left" / "supply.json").stat().st_mtime_ns


def _log(folder: Path) -> str:
    return (folder / "base" / "left" / "node.log").read_text(errors="replace")


def test_the_device_service_feeds_the_border_and_its_loss_only_stops_the_supply(
        deployment: Path) -> None:
    """Up with the devices service: keys cross b-c, identical at both SAEs; devices killed:
    the left node's border supply fails, stores no more, keys still cross from the pools;
    devices started again: the supply works again and stores more."""
    folder = deployment.parent
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000",
                "--speedup", "5", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started 5 processes on local: controller, devices, nms, left, right" in up.stdout
    devices = json.loads((folder / "base" / "devices" / "manifest.json").read_text())
    assert devices["km_links"] == [LINK]
    pid = int((folder / "base" / "devices" / "qkd-devices.pid").read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert float(command[command.index(b"--speedup") + 1]) == 5.0  # as fast as the nodes
    assert wait_for(lambda: _stored(folder) >= 16, 60.0), _log(folder)[-2000:]
    assert chain_key_crosses(folder)
    status = qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder)
    assert status.returncode == 0, status.stdout
    assert "devices" in status.stdout and LINK in status.stdout

    os.kill(pid, signal.SIGKILL)
    before = _stored(folder)
    # from what the pools hold; the key spent makes room the supply would fill
    assert chain_key_crosses(folder, 8, 8192)
    assert wait_for(lambda: "border key supply failed" in _log(folder), 30.0), \
        _log(folder)[-2000:]
    before = max(before, _stored(folder))
    assert chain_key_crosses(folder)
    for _ in range(2):  # the figures written twice more (each second) with no device
        written = _figures_written(folder)
        assert wait_for(lambda w=written: _figures_written(folder) != w, 10.0)
    assert _stored(folder) <= before  # nothing stored without the device
    status = qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder)
    assert status.returncode == 1

    again = qkdnet("up", "deploy.yaml", "--dir", "base", "--speedup", "5", cwd=folder)
    assert "started 1 processes on local: devices" in again.stdout, \
        again.stdout + again.stderr
    assert wait_for(lambda: "border key supply works again" in _log(folder), 30.0), \
        _log(folder)[-2000:]
    assert wait_for(lambda: _stored(folder) > before, 30.0)
    assert chain_key_crosses(folder)

    down = qkdnet("down", "deploy.yaml", "--dir", "base", cwd=folder)
    assert "stopped 5 processes" in down.stdout


def test_a_deployment_without_a_devices_entry_is_refused_by_the_service(tmp_path: Path
                                                                        ) -> None:
    """`qkdnet qkd-devices` names what is missing when the deployment places no service."""
    chain_deployment(tmp_path)
    done = qkdnet("qkd-devices", "--deployment", "deploy.yaml", "--pki", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert "places no devices service" in done.stderr
