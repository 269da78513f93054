"""benchmarks/twin_sweep.py: one sweep on a real one-worker LocalCluster gives its figures
from the worker's /proc entries."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from qkdnet import twin

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_a_sweep_reports_runs_cpu_and_worker_memory() -> None:
    """Two short runs on one worker: both counted, none failed, the worker's CPU time and
    resident memory read (non-zero, peak at or above current)."""
    sys.path.insert(0, str(BENCHMARKS))
    bench = importlib.import_module("twin_sweep")
    f = bench.measure(twin.scenario(None, weeks=0.05), [1, 2], 1)
    assert (f.workers, f.runs, f.failed) == (1, 2, 0)
    assert f.cpu_s_per_run > 0 and f.runs_per_min > 0
    assert len(f.rss_mib) == 1 and 0 < f.rss_mib[0] <= f.peak_rss_mib[0]
