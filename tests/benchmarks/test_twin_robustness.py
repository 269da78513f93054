"""benchmarks/twin_robustness.py: a run on a topology seed is the built-in job on that
network, the worker pool gives the runs in seed order, and the table marks each target."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from qkdnet.topology.cn_qcn import DEFAULT_SEED
from qkdnet.twin.engine import run_twin
from qkdnet.twin.scenario import built_in_scenario

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The script as a module (on sys.path, so the pool's spawned worker imports it too)."""
    sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("twin_robustness")


def test_a_run_on_the_default_topology_seed_is_the_built_in_job(bench: ModuleType) -> None:
    """Half a week on the default topology seed gives the built-in run's segment figures."""
    run = bench.run_once(DEFAULT_SEED, 3, weeks=0.5)
    result = run_twin(built_in_scenario(0.5, seed=3))
    assert run.segment_kbps == tuple(s.mean_skr_bps / 1e3 for s in result.segments)
    assert len(run.segment_kbps) == len(run.hours_unserved) == 4
    assert 0 < run.link_min_kbps < run.link_max_kbps


def test_the_pool_runs_every_pair_in_seed_order(bench: ModuleType) -> None:
    """Two topology seeds x one twin seed on one worker: two runs, topology seeds in order,
    different networks giving different figures."""
    runs = bench.robustness_runs([2, 1], [4], weeks=0.2, workers=1)
    assert [(r.topology_seed, r.twin_seed) for r in runs] == [(2, 4), (1, 4)]
    assert runs[0].segment_kbps != runs[1].segment_kbps
    assert runs[1] == bench.run_once(1, 4, weeks=0.2)


def test_the_table_marks_each_target(bench: ModuleType) -> None:
    """Percentiles over the runs; a segment is met only with the paper inside p10-p90 and
    the median within 25%; Beijing-Wuhan's hours only when 0 in every run."""
    runs = [bench.RunFigures(1, k, (9.0 + k, 20.0 + k, 16.0 + k, 21.0),
                             (5.0, 0.1 if k == 3 else 0.0, 2.0 + k, 0.0), 9.0, 100.0 + k)
            for k in range(5)]
    rows = {r["figure"]: r for r in bench.robustness_table(runs)}
    hb = rows["Harbin-Beijing mean SKR (kbit/s)"]
    assert (hb["p50"], hb["met"]) == (11.0, True)
    assert rows["Beijing-Wuhan mean SKR (kbit/s)"]["met"] is False  # 16.41 below p10 20.4
    assert rows["Guangzhou-Shenzhen mean SKR (kbit/s)"]["met"] is False  # p10 = p90 = 21
    assert rows["Beijing-Wuhan hours unserved"]["met"] is False
    assert rows["fastest watched link (kbit/s)"]["met"] is False
    assert "| Harbin-Beijing mean SKR (kbit/s) | 9.40 | 11.00 |" in bench.markdown(
        list(rows.values()))
