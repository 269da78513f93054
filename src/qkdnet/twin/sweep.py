"""Many twin runs: one per seed and what-if variant, on Dask or in this process.

A sweep answers what one run cannot (one run is one draw of faults and drifts): the
distribution of hours unserved and SKR over many seeds. :func:`run_sweep` runs the twin
once per (variant, seed) and returns one long DataFrame, a row per (variant, seed,
segment or service):

==================  =====================================================================
column              meaning
==================  =====================================================================
``variant``         the what-if variant's name (``base`` without variants)
``seed``            the twin seed of the run (faults and drifts)
``network``         the scenario network's name (``cn-qcn``)
``duration_h``      the run's simulated length (hours)
``kind``            ``segment`` (of the watched path), ``service`` (a demand) or
                    ``failed`` (the run raised after its retries: one row, ``error`` set)
``position``        the row's order within its run (the path's order for segments)
``name``            the segment (``Harbin–Beijing``) or the demand id
``source/target``   its ends (node ids)
``mean_skr_kbps``   segment: the run's mean end-to-end SKR (kbit/s); NaN for services
``hours_unserved``  hours its service had no usable route
``served_fraction`` served / requested key (0 to 1)
``availability``    1 − hours_unserved / duration_h
``error``           ``Type: message`` of a failed run, else empty
==================  =====================================================================

A run is :func:`~qkdnet.twin.engine.run_twin` with ``alarms=False``: no column reads the
NMS's alarms, and without it a cn-qcn run costs about a third less CPU (4.8 s against
7.0 s), every figure the same.

Rows are ordered by variant (as given), then seed (ascending), then ``kind`` and
``position`` within a run, whatever order the runs finished in: a run is a pure function of
its scenario and seed, so the same seeds give the same DataFrame (and byte-identical Parquet)
on any number of workers, or with ``workers=0`` (in process, no Dask).

On Dask (``dask.distributed``): a LocalCluster of ``workers`` processes (one thread each;
default: one per core) or the scheduler at ``scheduler`` (``tcp://host:8786``). The
scenario (and each variant given as a scenario) goes to every worker once
(``Client.scatter(broadcast=True)``); each task carries only a seed and, for a variant
given as a function, that function. Local workers run without two of Dask's worker
defaults that cost a twin run CPU (:func:`local_cluster`). A task that raises is retried
(``retries``) and, if it still fails, reported as a ``failed`` row, never dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qkdnet.errors import ParameterError
from qkdnet.twin.engine import run_twin
from qkdnet.twin.scenario import TwinScenario
from qkdnet.twin.tables import links as link_rows
from qkdnet.twin.tables import rounded, segments, services
from qkdnet.units import HOUR_S

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "SweepProgress", "Variant", "local_cluster", "parse_seeds", "run_one",
           "run_sweep"]

#: A what-if variant: a whole scenario, a function of the base scenario giving one (run on
#: the worker, so it must pickle: a module-level function or a functools.partial), or None
#: for the base scenario unchanged. Its seed is replaced by each sweep seed.
Variant = TwinScenario | Callable[[TwinScenario], TwinScenario] | None
#: ``progress(done, total)``: called as each run finishes (runs, not seconds).
SweepProgress = Callable[[int, int], None]

COLUMNS = ("variant", "seed", "network", "duration_h", "kind", "position", "name", "source",
           "target", "mean_skr_kbps", "hours_unserved", "served_fraction", "availability",
           "error")
_KIND_ORDER = {"network": 0, "segment": 1, "service": 2, "failed": 3}
Rows = list[dict[str, Any]]


def run_one(scenario: TwinScenario, variant: Variant, name: str, seed: int) -> Rows:
    """One run: ``variant`` of ``scenario`` with ``seed``; its network, segment and service
    rows (columns :data:`COLUMNS`, ``error`` empty)."""
    sc = (variant if isinstance(variant, TwinScenario)
          else scenario if variant is None else variant(scenario))
    sc = dataclasses.replace(sc, seed=seed)
    result = run_twin(sc, alarms=False)  # no column reads them
    duration_h = sc.duration_s / HOUR_S
    head = {"variant": name, "seed": seed, "network": sc.network.name,
            "duration_h": duration_h, "error": ""}
    # the whole network, so that every run counts even where nothing is watched (a
    # generated network has no segments or demands): its QKD-links' mean SKR, mean hours
    # down and mean availability
    links = link_rows(result)
    count = max(len(links), 1)
    rows: Rows = [{**head, "kind": "network", "position": 0, "name": "QKD-links (mean)",
                   "source": "", "target": "",
                   "mean_skr_kbps": rounded(sum(r["average_skr_kbps"] for r in links) / count),
                   "hours_unserved": rounded(sum(r["hours_down"] for r in links) / count),
                   "served_fraction": float("nan"),
                   "availability": rounded(sum(r["availability"] for r in links) / count)}]
    for k, seg in enumerate(segments(result)):
        rows.append({**head, "kind": "segment", "position": k, "name": seg["segment"],
                     "source": seg["source"], "target": seg["target"],
                     "mean_skr_kbps": seg["mean_skr_kbps"],
                     "hours_unserved": seg["hours_unserved"],
                     "served_fraction": _served(result, seg["source"], seg["target"]),
                     "availability": rounded(1.0 - seg["hours_unserved"] / duration_h)})
    for k, svc in enumerate(services(result)):
        rows.append({**head, "kind": "service", "position": k, "name": svc["demand"],
                     "source": svc["source"], "target": svc["target"],
                     "mean_skr_kbps": float("nan"), "hours_unserved": svc["hours_unserved"],
                     "served_fraction": svc["served_fraction"],
                     "availability": svc["availability"]})
    return rows


def _served(result: Any, source: str, target: str) -> float:
    seg = next(s for s in result.segments if (s.source, s.target) == (source, target))
    return rounded(seg.service.served_fraction)


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """Seeds from ``1:1000`` (1 to 1000, both included), ``7`` or ``1,5,9`` (or a mix:
    ``1:10,20``), each >= 0 and once; a ParameterError names ``option`` otherwise."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition(":")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise ParameterError(option, text, "seeds as FIRST:LAST (both included) or "
                             "a comma list, e.g. 1:1000 or 1,5,9") from None
    if not seeds:
        raise ParameterError(option, text, "at least one seed (FIRST <= LAST)")
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ParameterError(option, text, "each seed >= 0 and once")
    return seeds


def run_sweep(scenario: TwinScenario, seeds: Iterable[int], *, workers: int | None = None,
              scheduler: str | None = None, variants: Mapping[str, Variant] | None = None,
              progress: SweepProgress | None = None, retries: int = 2) -> pd.DataFrame:
    """Run ``scenario`` once per seed and variant (see the module docstring); ``workers``:
    LocalCluster processes (None: one per core; 0: in this process, no Dask);
    ``scheduler``: an existing Dask scheduler's address instead. ``variants`` by name
    (None: ``{"base": None}``, the scenario itself). A run that raises is tried
    ``retries`` more times, then reported as a ``failed`` row."""
    given = [int(s) for s in seeds]
    order = sorted(set(given))
    if len(order) != len(given):
        raise ParameterError("seeds", given, "each seed once")
    if not order:
        raise ParameterError("seeds", [], "at least one seed")
    if workers is not None and workers < 0:
        raise ParameterError("workers", workers, "must be >= 0 (0: in process)")
    if workers is not None and scheduler is not None:
        raise ParameterError("workers", workers, "not with a scheduler address (the "
                             "cluster behind the scheduler has its own workers)")
    if retries < 0:
        raise ParameterError("retries", retries, "must be >= 0")
    named: dict[str, Variant] = dict(variants) if variants is not None else {"base": None}
    if not named:
        raise ParameterError("variants", {}, "at least one variant (or None for the base)")
    jobs = [(v, s) for v in named for s in order]
    if workers == 0:
        done = _in_process(scenario, named, jobs, retries, progress)
    else:
        done = _on_dask(scenario, named, jobs, retries, progress, workers, scheduler)
    rows = [row for job in jobs for row in done[job]]
    return _frame(rows, list(named))


def _failed(name: str, seed: int, scenario: TwinScenario, exc: BaseException) -> Rows:
    return [{"variant": name, "seed": seed, "network": scenario.network.name,
             "duration_h": scenario.duration_s / HOUR_S, "kind": "failed", "position": 0,
             "name": "", "source": "", "target": "", "mean_skr_kbps": float("nan"),
             "hours_unserved": float("nan"), "served_fraction": float("nan"),
             "availability": float("nan"), "error": f"{type(exc).__name__}: {exc}"}]


def _in_process(scenario: TwinScenario, named: Mapping[str, Variant],
                jobs: Sequence[tuple[str, int]], retries: int,
                progress: SweepProgress | None) -> dict[tuple[str, int], Rows]:
    done: dict[tuple[str, int], Rows] = {}
    for k, (name, seed) in enumerate(jobs, start=1):
        for attempt in range(retries + 1):
            try:
                done[name, seed] = run_one(scenario, named[name], name, seed)
                break
            except Exception as exc:  # a failed run is a result, as on Dask
                if attempt == retries:
                    done[name, seed] = _failed(name, seed, scenario, exc)
        if progress is not None:
            progress(k, len(jobs))
    return done


def _on_dask(scenario: TwinScenario, named: Mapping[str, Variant],
             jobs: Sequence[tuple[str, int]], retries: int, progress: SweepProgress | None,
             workers: int | None, scheduler: str | None) -> dict[tuple[str, int], Rows]:
    from distributed import Client, as_completed

    cluster = None
    if scheduler is None:
        cluster = local_cluster(workers or len(os.sched_getaffinity(0)))
    try:
        with Client(cluster if cluster is not None  # type: ignore[no-untyped-call]
                    else scheduler) as client:
            base = client.scatter(scenario, broadcast=True)
            shipped: dict[str, Any] = {
                name: client.scatter(v, broadcast=True) if isinstance(v, TwinScenario) else v
                for name, v in named.items()}
            futures = {client.submit(run_one, base, shipped[name], name, seed,
                                     retries=retries, pure=False): (name, seed)
                       for name, seed in jobs}
            done: dict[tuple[str, int], Rows] = {}
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                # dropped from the dict as it is read: the last reference to a finished
                # run, so the worker frees its result rather than holding every run's
                name, seed = futures.pop(future)
                exc = future.exception() if future.status == "error" else None
                done[name, seed] = (_failed(name, seed, scenario, exc) if exc is not None
                                    else future.result())
                if progress is not None:
                    progress(len(done), len(jobs))
            return done
    finally:
        if cluster is not None:
            cluster.close()


def local_cluster(workers: int) -> Any:
    """A Dask LocalCluster of ``workers`` processes, one thread each, for twin runs, with
    two of Dask's worker defaults off, each measured on cn-qcn on this project's 2-core VM:

    - ``MALLOC_TRIM_THRESHOLD_=65536``, which Dask's nannies give their workers
      (``distributed.nanny.pre-spawn-environ``) so that freed memory goes back at once:
      a twin run, which makes and frees millions of small objects, then costs about a
      fifth more CPU (8.5 s against 7.1 s a run).
    - The worker's statistical profiler (``distributed.worker.profile.enabled``), which
      samples the running task every 10 ms and keeps an hour of what it saw: ~10 % more
      CPU per run, and a worker's memory grew by ~0.7 MB per ten-week run with it.

    Workers started by ``dask worker`` on a cluster take both from that cluster's
    configuration (README, "Planning")."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR,
            # the scheduler's HTTP routes (health, metrics) on a free port, not 8787:
            # several sweeps on one machine must not collide
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def _frame(rows: Rows, variant_order: list[str]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    rank = {v: i for i, v in enumerate(variant_order)}
    df = df.sort_values(by=["variant", "seed", "kind", "position"],
                        key=lambda c: c.map(rank) if c.name == "variant"
                        else c.map(_KIND_ORDER) if c.name == "kind" else c,
                        kind="stable").reset_index(drop=True)
    return df.astype({"seed": "int64", "position": "int64", "duration_h": "float64",
                      "mean_skr_kbps": "float64", "hours_unserved": "float64",
                      "served_fraction": "float64", "availability": "float64"})
