"""Twin sweeps (``qkdnet.twin.sweep``): on a real Dask LocalCluster the runs are the same
as run one by one in this process, a failing run is retried and then reported, never
dropped, and bad seeds are named."""

from __future__ import annotations

import dataclasses
import io
import os
import sys
from functools import partial
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from qkdnet import twin
from qkdnet.errors import ParameterError
from qkdnet.files.networks import save_network
from qkdnet.topology.generator import generate_network
from qkdnet.twin.scenario import TwinScenario
from qkdnet.twin.sweep import local_cluster, parse_seeds, run_sweep
from qkdnet.units import WEEK_S

# The variants below run on Dask's worker processes, which cannot import this test module
# (pytest puts tests/ on sys.path only here): ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def cn_qcn() -> TwinScenario:
    return twin.scenario(None, weeks=0.5)


def test_twenty_seeds_on_two_workers_equal_the_runs_one_by_one(cn_qcn: TwinScenario) -> None:
    """20 seeds of cn-qcn (half a week) on a LocalCluster of 2 workers: the same DataFrame,
    and byte-identical Parquet, as the 20 runs one by one in process."""
    seeds = range(1, 21)
    done: list[int] = []
    on_dask = run_sweep(cn_qcn, seeds, workers=2, progress=lambda k, n: done.append(k))
    in_process = run_sweep(cn_qcn, seeds, workers=0)
    assert done == list(range(1, 21))
    assert on_dask.equals(in_process)
    assert _parquet(on_dask) == _parquet(in_process)
    assert (on_dask["error"] == "").all()
    assert list(on_dask.drop_duplicates("seed")["seed"]) == list(seeds)
    seg = on_dask[on_dask["kind"] == "segment"]
    assert list(seg["name"][:4]) == ["Harbin–Beijing", "Beijing–Wuhan", "Wuhan–Guangzhou",
                                     "Guangzhou–Shenzhen"]
    # different seeds are different draws: a sweep that ran one seed 20 times would fail
    assert seg[seg["name"] == "Harbin–Beijing"]["mean_skr_kbps"].nunique() > 10


def _flaky(tries: Path, fail_first: int, scenario: TwinScenario) -> TwinScenario:
    """Fail the first ``fail_first`` attempts (counted in the file ``tries``, shared by the
    worker processes), then shorten the run to a tenth of a week."""
    with tries.open("a") as f:
        f.write("x")
    if len(tries.read_text()) <= fail_first:
        raise RuntimeError(f"injected failure {len(tries.read_text())}")
    return dataclasses.replace(scenario, duration_s=0.1 * WEEK_S)


@pytest.mark.parametrize("workers", [2, 0])
def test_a_failing_run_is_retried_then_reported(cn_qcn: TwinScenario, tmp_path: Path,
                                                workers: int) -> None:
    """A variant failing once succeeds on its retry; one failing every time is tried
    1 + retries times and comes back as a ``failed`` row with its error, beside the rest."""
    once, always = tmp_path / "once", tmp_path / "always"
    runs = run_sweep(cn_qcn, [5], workers=workers, retries=2, variants={
        "flaky": partial(_flaky, once, 1), "broken": partial(_flaky, always, 99)})
    assert len(once.read_text()) == 2
    assert len(always.read_text()) == 3
    assert list(runs.drop_duplicates("variant")["variant"]) == ["flaky", "broken"]
    flaky = runs[runs["variant"] == "flaky"]
    assert set(flaky["kind"]) == {"network", "segment", "service"} \
        and (flaky["error"] == "").all()
    assert flaky["duration_h"].iloc[0] == pytest.approx(16.8)
    broken = runs[runs["variant"] == "broken"]
    assert broken[["seed", "kind", "error"]].to_dict("records") == [
        {"seed": 5, "kind": "failed", "error": "RuntimeError: injected failure 3"}]


def test_a_variant_given_as_a_scenario_runs_with_each_seed(cn_qcn: TwinScenario) -> None:
    """A variant that is a whole scenario (here without faults) runs with the sweep's seed."""
    calm = dataclasses.replace(cn_qcn, random_faults=False, duration_s=0.1 * WEEK_S)
    runs = run_sweep(cn_qcn, [3, 4], workers=0, variants={"calm": calm})
    assert list(runs.drop_duplicates("seed")["seed"]) == [3, 4]
    assert (runs["variant"] == "calm").all()
    assert (runs[runs["kind"] == "segment"]["hours_unserved"] == 0).all()


def test_seeds_parse_and_bad_ones_are_named() -> None:
    """1:3,7 is 1, 2, 3, 7; text or an empty range names --seeds; a repeated seed and
    workers with a scheduler are refused."""
    assert parse_seeds("1:3,7") == [1, 2, 3, 7]
    for bad in ("1-10", "5:1", "x"):
        with pytest.raises(ParameterError, match="--seeds"):
            parse_seeds(bad)
    sc = twin.scenario(None, weeks=0.1)
    with pytest.raises(ParameterError, match="each seed once"):
        run_sweep(sc, [1, 1], workers=0)
    with pytest.raises(ParameterError, match="scheduler"):
        run_sweep(sc, [1], workers=2, scheduler="tcp://127.0.0.1:8786")


def test_a_network_with_nothing_watched_still_counts_every_run(tmp_path: Path) -> None:
    """A generated network has no segments or demands: each run still gives its network
    row (the QKD-links' mean SKR, hours down and availability), so no run is lost."""
    path = save_network(generate_network(60, seed=3), tmp_path / "generated.yaml")
    runs = run_sweep(twin.scenario(path, weeks=0.2), [1, 2], workers=0)
    assert list(runs["kind"]) == ["network", "network"]
    assert list(runs["seed"]) == [1, 2]
    assert (runs["mean_skr_kbps"] > 0).all()
    assert ((runs["availability"] > 0) & (runs["availability"] <= 1)).all()


def _profiling() -> object:
    import dask

    return dask.config.get("distributed.worker.profile.enabled")


def test_the_local_workers_run_without_trim_threshold_or_profiler() -> None:
    """The sweep's LocalCluster unsets the MALLOC_TRIM_THRESHOLD_ Dask's nannies give
    their workers and turns their profiler off (each costs a twin run CPU), and keeps
    Dask's other worker settings; this process's configuration is left as it was."""
    import dask
    from distributed import Client

    with local_cluster(1) as cluster, Client(cluster) as client:
        trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(os.environ.get, "OMP_NUM_THREADS")
        profiling = client.run(_profiling)
    assert list(trim.values()) == [None]
    assert list(threads.values()) == ["1"]
    assert list(profiling.values()) == [False]
    assert dask.config.get("distributed.worker.profile.enabled") is True
