"""benchmarks/http_stack.py: the trivial app on qkdnet's server stack, loaded over mutual TLS
by the lean client, answers every call, and the server's CPU per call is measured."""

from __future__ import annotations

import re
import subprocess
import sys

from bench_pair import ROOT

HTTP_STACK = ROOT / "benchmarks" / "http_stack.py"


def test_qkdnet_stack_serves_every_call_and_reports_its_cpu() -> None:
    done = subprocess.run(
        [sys.executable, str(HTTP_STACK), "--stacks", "qkdnet", "--calls", "3000",
         "--workers", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    row = re.search(r"^qkdnet\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+[\d.]+$",
                    done.stdout, re.MULTILINE)
    assert row is not None, done.stdout
    assert (int(row[1]), int(row[2])) == (3000, 0)
    assert float(row[3]) > 0  # 3,000 calls take many 10 ms ticks of /proc CPU time


def test_an_unknown_stack_is_refused_by_name() -> None:
    done = subprocess.run([sys.executable, str(HTTP_STACK), "--stacks", "qkdnet,nginx"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown stack 'nginx'" in done.stderr
