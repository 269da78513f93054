"""``qkdnet fault list`` against a running ``qkdnet serve``, found in the default data folder
as the README's commands find it (no --dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chain_scenario import CHAIN_SCENARIO as CHAIN
from om_login import PASSWORD

from qkdnet.cli.options import DATA_FOLDER
from qkdnet.live.launch import start_serve
from qkdnet.live.operators import OperatorFile


def _qkdnet(cwd: Path, *args: str, role: str = "operator") -> subprocess.CompletedProcess[str]:
    """The installed CLI in ``cwd`` as operator ``ops`` (or the viewer ``eve``)."""
    env = {**os.environ, "QKDNET_OPERATOR": "ops" if role == "operator" else "eve",
           "QKDNET_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "qkdnet", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_fault_list_shows_what_is_injected_in_the_default_folder(tmp_path: Path) -> None:
    """Serve in ./qkdnet-live; `fault cut`, `blind`, `stop` without --dir act on it and
    `fault list` (a viewer may run it) shows each, then nothing once repaired and
    started."""
    (tmp_path / "chain.yaml").write_text(CHAIN)
    served = start_serve(tmp_path / DATA_FOLDER, str(tmp_path / "chain.yaml"))
    try:
        OperatorFile(tmp_path / DATA_FOLDER).add("ops", "operator", PASSWORD)
        OperatorFile(tmp_path / DATA_FOLDER).add("eve", "viewer", PASSWORD)
        listed = _qkdnet(tmp_path, "fault", "list", role="viewer")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == "no faults injected\n"
        for action, target in (("cut", "a--b"), ("blind", "b--c"), ("stop", "c")):
            done = _qkdnet(tmp_path, "fault", action, target)
            assert done.returncode == 0, done.stderr
        listed = _qkdnet(tmp_path, "fault", "list", role="viewer")
        assert listed.stdout.splitlines() == ["a--b\tcut", "b--c\tblinded", "c\tstopped"]
        refused = _qkdnet(tmp_path, "fault", "cut", "a--b", role="viewer")
        assert refused.returncode == 2 and "viewer" in refused.stderr
        for action, target in (("repair", "a--b"), ("repair", "b--c"), ("start", "c")):
            assert _qkdnet(tmp_path, "fault", action, target).returncode == 0
        assert _qkdnet(tmp_path, "fault", "list").stdout == "no faults injected\n"
    finally:
        served.stop()


def test_fault_list_without_a_running_serve_is_one_line(tmp_path: Path) -> None:
    """No manifest in ./qkdnet-live: one line naming --dir and the folder, exit 2."""
    done = _qkdnet(tmp_path, "fault", "list")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"--dir={DATA_FOLDER}" in done.stderr


def test_fault_needs_a_target_except_for_list(tmp_path: Path) -> None:
    """`fault cut` alone and `fault list X` are refused in one line."""
    alone = _qkdnet(tmp_path, "fault", "cut")
    assert alone.returncode == 2 and "needs a TARGET" in alone.stderr
    extra = _qkdnet(tmp_path, "fault", "list", "a--b")
    assert extra.returncode == 2 and "takes no TARGET" in extra.stderr
