"""benchmarks/kme_load.py --against: the one load generator measures qkdnet and another ETSI
GS QKD 014 KME (here a second ``qkdnet serve``) in one run and prints both side by side."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench_pair import KME_LOAD, SCENARIO

from qkdnet.live.launch import start_serve

MODES = ("Get key, sae-a -> sae-a2", "Get key with key IDs at the slave",
         "Get key, new TLS connection per call", "Get key, both SAEs master at once")
NUMBER = r"\d+(?:\.\d+)?"
FIGURE = rf"{NUMBER} \({NUMBER} / {NUMBER}\)"  # calls/s (p50 / p99 ms)


def test_against_a_second_qkdnet_prints_both_figures_and_their_ratio(tmp_path: Path) -> None:
    """Each mode's side-by-side row holds qkdnet's figure, the peer's, ratios; no call fails."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    peer = start_serve(tmp_path / "peer", str(scenario), ["--prefill-bits", "65536"])
    try:
        (cert, key), ca = peer.tls("sae-a")
        (slave_cert, slave_key), _ = peer.tls("sae-a2")
        done = subprocess.run(
            [sys.executable, str(KME_LOAD), "--scenario", str(scenario), "--master", "sae-a",
             "--slave", "sae-a2", "--prefill-bits", "65536", "--calls", "6", "--workers", "2",
             "--dec-keys", "6", "--idle-seconds", "0.5",
             "--against", peer.kme_url("sae-a"), "--against-ca", ca, "--against-cert", cert,
             "--against-key", key, "--against-master", "sae-a", "--against-slave", "sae-a2",
             "--against-slave-cert", slave_cert, "--against-slave-key", slave_key,
             "--server-pid", str(peer.process.pid)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        peer.stop()
    report = done.stdout
    assert done.returncode == 0, report + done.stderr
    assert re.search(r"client: httpx \d", report)
    assert "load average" in report
    side = report.split("Side by side")[1]
    for label in MODES:
        row = re.search(rf"^{re.escape(label)}\s+({FIGURE})\s+({FIGURE})\s+({NUMBER})\s+"
                        rf"({NUMBER})\s+({NUMBER})\s+(\S+)$", side, re.MULTILINE)
        assert row is not None, f"no side-by-side row for {label!r}:\n{report}"
    rows = [line for line in report.splitlines() if line.startswith(MODES)
            and " peer " in line]
    assert len(rows) == len(MODES)
    for line in rows:
        calls, errors = map(int, line.split(" peer ")[1].split()[:2])
        assert (calls, errors) == (6, 0), line


def test_kme_load_with_the_lean_client_names_it_and_every_call_delivers(
        tmp_path: Path) -> None:
    """kme_load.py --client lean: the client line names it, and each mode's calls all
    deliver."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    done = subprocess.run(
        [sys.executable, str(KME_LOAD), "--scenario", str(scenario), "--master", "sae-a",
         "--slave", "sae-a2", "--prefill-bits", "65536", "--calls", "6", "--workers", "2",
         "--dec-keys", "6", "--idle-seconds", "0", "--client", "lean",
         "--modes", "same,dec,cold,bidi"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = done.stdout
    assert done.returncode == 0, report + done.stderr
    assert re.search(r"^client: the lean client on \w+", report, re.MULTILINE)
    rows = [line for line in report.splitlines() if re.match(r"^Get key.* qkdnet ", line)]
    assert len(rows) == 4, report
    for line in rows:
        calls, errors = map(int, line.split(" qkdnet ")[1].split()[:2])
        assert (calls, errors) == (6, 0), line
