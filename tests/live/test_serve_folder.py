"""One data folder, one server: real ``qkdnet serve`` subprocesses of the three-node chain.
A second server on a served folder is refused naming the first's PID and O&M URL; a busy
O&M port or a foreign address is refused before any certificate or store is made; SIGTERM
or Ctrl-C removes the manifest
and frees the folder; the start reports its progress and, when ready, the O&M URL and each
SAE's KME URL."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from chain_scenario import CHAIN_SCENARIO
from polling import wait_for

from qkdnet.live.launch import start_serve

REFUSAL_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def _scenario(tmp_path: Path) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(CHAIN_SCENARIO)
    return str(path)


def _serve(folder: Path, scenario: str, *options: str) -> subprocess.CompletedProcess[str]:
    """A ``qkdnet serve`` expected to give up at once (the timeout only guards old code)."""
    return subprocess.run([sys.executable, "-m", "qkdnet", "serve", "--dir", str(folder),
                           "--scenario", scenario, *options], capture_output=True, text=True,
                          timeout=REFUSAL_TIMEOUT_S, check=False)


def test_a_second_server_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    """The second ``qkdnet serve`` exits 2 with one line naming the folder, the first's PID
    and O&M URL, and leaves the first's manifest alone."""
    scenario, folder = _scenario(tmp_path), tmp_path / "live"
    first = start_serve(folder, scenario)
    try:
        manifest = (folder / "manifest.json").read_text()
        second = _serve(folder, scenario)
        assert second.returncode == 2, second.stderr
        expected = (f"{folder} already served by PID {first.process.pid}, "
                    f"O&M at {first.manifest['om_url']}")
        assert second.stderr.strip() == f"qkdnet: error: {expected}"
        assert (folder / "manifest.json").read_text() == manifest
        assert first.process.poll() is None
    finally:
        first.stop()


def _made(folder: Path) -> set[str]:
    """Stores, certificates and manifests under ``folder`` (the lock file aside)."""
    made = {p.relative_to(folder).as_posix() for p in folder.rglob("*")} \
        if folder.exists() else set()
    return {p for p in made if p.startswith(("stores", "pki", "manifest"))}


def test_a_busy_om_port_is_refused_before_any_store_is_made(tmp_path: Path) -> None:
    """``--om-port`` of a port something listens on: exit 2 naming the option, and the
    folder holds no key store, certificate or manifest."""
    folder = tmp_path / "live"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = _serve(folder, _scenario(tmp_path), "--om-port", str(port))
    assert result.returncode == 2, result.stderr
    assert f"--om-port={port}" in result.stderr and "Traceback" not in result.stderr
    assert not _made(folder)


def test_an_address_not_of_this_machine_is_refused_before_any_store_is_made(
        tmp_path: Path) -> None:
    """``--host`` of an address no interface has (TEST-NET-1): exit 2 naming ``--host``,
    nothing made."""
    folder = tmp_path / "live"
    result = _serve(folder, _scenario(tmp_path), "--host", "192.0.2.1")
    assert result.returncode == 2, result.stderr
    assert "--host=192.0.2.1" in result.stderr and "Traceback" not in result.stderr
    assert not _made(folder)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_clean_stop_removes_the_manifest_and_frees_the_folder(
        stop: signal.Signals, tmp_path: Path) -> None:
    """After SIGTERM or Ctrl-C (SIGINT) the server exits 0, its manifest is gone, and a new
    server may take the folder."""
    scenario, folder = _scenario(tmp_path), tmp_path / "live"
    first = start_serve(folder, scenario)
    first.process.send_signal(stop)
    assert first.process.wait(timeout=STOP_TIMEOUT_S) == 0, first.log()
    assert not (folder / "manifest.json").exists()
    again = start_serve(folder, scenario)
    try:
        assert again.manifest["pid"] == again.process.pid
    finally:
        again.stop()


def test_the_start_reports_progress_then_the_urls(tmp_path: Path) -> None:
    """stderr shows the stages of the start (stores, KMEs n/N); stdout, once ready, the O&M
    URL and every SAE with its node's KME URL, as in the manifest."""
    served = start_serve(tmp_path / "live", _scenario(tmp_path))
    try:
        m = served.manifest
        wanted = [f"O&M: {m['om_url']}",
                  *(f"SAE {sae} (node {e['node']}): KME {e['kme_url']}"
                    for sae, e in m["saes"].items())]
        assert wait_for(lambda: all(w in served.stdout.read_text() for w in wanted)), \
            served.log()
        progress = served.stderr.read_text()
        assert "building 3 key stores..." in progress
        assert "starting KMEs 3/3" in progress
    finally:
        served.stop()
