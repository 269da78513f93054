"""Run ``qkdnet serve`` as a child process and wait for its manifest: for tests, benchmarks
and scripts that need a scenario's KMEs running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Variables that make HTTP clients trust another CA bundle than the one they are given.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class ServeFailed(RuntimeError):
    """``qkdnet serve`` exited or wrote no manifest in time; the message holds its log."""


@dataclass
class ServeProcess:
    """A running ``qkdnet serve``: the process, its manifest and its log files."""

    process: subprocess.Popen[bytes]
    manifest: dict[str, Any]
    stdout: Path
    stderr: Path

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.stdout.read_text() + self.stderr.read_text()

    def kme_url(self, sae: str) -> str:
        """The base URL of the KME ``sae`` is attached to."""
        return str(self.manifest["saes"][sae]["kme_url"])

    def tls(self, sae: str) -> tuple[tuple[str, str], str]:
        """``sae``'s client certificate and key, and the CA to verify the KME with."""
        entry = self.manifest["saes"][sae]
        return (str(entry["cert"]), str(entry["key"])), str(self.manifest["ca"])

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL: the crash a KME must survive."""
        self.process.kill()
        self.process.wait()


def start_serve(folder: Path, scenario: str, options: Sequence[str] = (),
                logs: Path | None = None, timeout_s: float = 60.0,
                python: Sequence[str] = (sys.executable,)) -> ServeProcess:
    """Start ``qkdnet serve --dir folder --scenario scenario *options`` with stdout and
    stderr in ``<logs>.out`` and ``<logs>.err`` (default ``folder/serve``), and return once
    it has written its manifest (one naming its PID). The child runs without CA-bundle
    overrides, so the clients it starts trust exactly the network CA. ``python`` may add
    interpreter options (``[python, "-m", "cProfile", "-o", FILE]``)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # serve refuses an open folder
    manifest = folder / "manifest.json"
    base = logs or folder / "serve"
    out, err = base.with_name(base.name + ".out"), base.with_name(base.name + ".err")
    env = {k: v for k, v in os.environ.items() if k not in CA_BUNDLE_VARIABLES}
    command = [*python, "-m", "qkdnet", "serve", "--dir", str(folder), "--scenario", scenario,
               *options]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
    served = ServeProcess(process, {}, out, err)
    deadline = time.monotonic() + timeout_s
    # a manifest left by a killed server, or one of another server on the folder, is not
    # this child's: wait for the one naming its PID (written atomically)
    while (document := _manifest_of(manifest, process.pid)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            served.kill()
            raise ServeFailed(f"qkdnet serve did not start (exit {process.returncode}):\n"
                              + served.log())
        time.sleep(0.05)
    served.manifest = document
    return served


def _manifest_of(path: Path, pid: int) -> dict[str, Any] | None:
    """The manifest at ``path`` if the process ``pid`` wrote it, else None."""
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if document.get("pid") == pid else None
