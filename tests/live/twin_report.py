"""The short twin run the `qkdnet console` tests replay, and the console as a child process.

The run: CN-QCN for 0.2 weeks (hourly samples at 1 h … 33 h) with one scripted fault, a
4 h cut of ``CUT`` from hour 5, so its samples at 6 h … 9 h report it down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from qkdnet.live.launch import CA_BUNDLE_VARIABLES
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.report import write_report
from qkdnet.twin.scenario import load_twin_scenario

CUT = "zhumadian--zhumadian-xinyang-r1"
SCENARIO = f"""\
qkdnet_twin: 1
network: cn-qcn
weeks: 0.2
seed: 3
faults:
  - {{link: {CUT}, at_h: 5, duration_h: 4}}
"""


def build_report(folder: Path) -> tuple[TwinResult, Path]:
    """Run the twin and write its report to ``folder/report``; the result and that folder."""
    (folder / "short.yaml").write_text(SCENARIO)
    result = run_twin(load_twin_scenario(folder / "short.yaml"))
    write_report(result, folder / "report")
    return result, folder / "report"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_console(report: Path, *options: str, timeout_s: float = 60.0) -> Iterator[str]:
    """Run `qkdnet console REPORT --port P *options` until the block ends; its base URL,
    once /api/state answers (the replay's first sample is in by then)."""
    port = _free_port()
    # The console speaks plain HTTP; a CA bundle from the environment must not matter.
    env = {k: v for k, v in os.environ.items() if k not in CA_BUNDLE_VARIABLES}
    # A file, not a pipe: a child that writes more than a pipe holds would stall.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from qkdnet.cli import app; app()", "console", str(report),
             "--port", str(port), *options],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"qkdnet console exited ({proc.returncode}): "
                                       f"{log.read()}")
                try:
                    if httpx.get(f"{url}/api/state", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"qkdnet console did not answer within {timeout_s:g} s")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
