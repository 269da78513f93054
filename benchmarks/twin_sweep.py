"""How fast a twin sweep runs on Dask: cn-qcn runs per minute with 1 and 2 local workers.

For each worker count a LocalCluster of that many processes (one thread each) is started
first (its start is timed apart), then :func:`qkdnet.twin.sweep.run_sweep` runs the same
seeds on it through its scheduler address. Per worker count it prints: the sweep's wall
time, runs per minute and per minute per core (a worker is one process on one core), the
speed-up over 1 worker, the CPU time per run (user + system of the worker processes, from
``/proc/<pid>/stat``, over the sweep), each worker's resident memory after the sweep and
its peak (``VmRSS`` and ``VmHWM`` of ``/proc/<pid>/status``), and the load average
(``/proc/loadavg``) before and after: on a shared machine the load says how many cores the
sweep really had.

    .venv/bin/python benchmarks/twin_sweep.py [--seeds 4] [--weeks 10] [--workers 1,2]

Targets (issue 18): >= 1.8x at 2 workers, >= 10 cn-qcn ten-week runs per minute per core.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qkdnet import twin
from qkdnet.twin.scenario import TwinScenario
from qkdnet.twin.sweep import local_cluster, run_sweep


@dataclass(frozen=True)
class SweepFigures:
    """One sweep's figures (times in s, memory in MiB)."""

    workers: int
    runs: int
    failed: int
    start_s: float
    wall_s: float
    cpu_s_per_run: float
    rss_mib: tuple[float, ...]
    peak_rss_mib: tuple[float, ...]
    load_before: float
    load_after: float

    @property
    def runs_per_min(self) -> float:
        """Runs per minute of wall time."""
        return self.runs / self.wall_s * 60.0

    @property
    def per_core(self) -> float:
        """Runs per minute per worker (one core each)."""
        return self.runs_per_min / self.workers


def process_stats() -> tuple[int, float, float, float]:
    """This process's pid, CPU time (user + system, s) from ``/proc/self/stat``, and
    resident and peak resident memory (MiB) from ``/proc/self/status``."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    status = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (os.getpid(), cpu, int(status["VmRSS"].split()[0]) / 1024,
            int(status["VmHWM"].split()[0]) / 1024)


def load_average() -> float:
    """The one-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(scenario: TwinScenario, seeds: list[int], workers: int) -> SweepFigures:
    """Run ``seeds`` of ``scenario`` on a fresh LocalCluster of ``workers`` processes."""
    from distributed import Client

    t0 = time.perf_counter()
    with local_cluster(workers) as cluster, \
            Client(cluster) as client:  # type: ignore[no-untyped-call]
        start_s = time.perf_counter() - t0
        before = client.run(process_stats)
        load_before = load_average()
        t1 = time.perf_counter()
        runs = run_sweep(scenario, seeds, scheduler=cluster.scheduler_address)
        wall_s = time.perf_counter() - t1
        after = client.run(process_stats)
        load_after = load_average()
    cpu = sum(after[w][1] - before[w][1] for w in after)
    return SweepFigures(
        workers, len(seeds), int((runs["kind"] == "failed").sum()), start_s, wall_s,
        cpu / len(seeds), tuple(after[w][2] for w in sorted(after)),
        tuple(after[w][3] for w in sorted(after)), load_before, load_after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 1..N per worker count")
    parser.add_argument("--weeks", type=float, default=10.0)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma separated")
    args = parser.parse_args()
    scenario = twin.scenario(None, weeks=args.weeks)
    seeds = list(range(1, args.seeds + 1))
    print(f"cn-qcn, {args.weeks:g} weeks a run, seeds 1-{args.seeds} per worker count; "
          f"{os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    base: SweepFigures | None = None
    for n in (int(x) for x in args.workers.split(",")):
        f = measure(scenario, seeds, n)
        base = base or f
        print(f"{n} worker(s): {f.runs} runs ({f.failed} failed) in {f.wall_s:.1f} s "
              f"(cluster start {f.start_s:.1f} s apart): {f.runs_per_min:.2f} runs/min, "
              f"{f.per_core:.2f} runs/min/core, speed-up {f.runs_per_min / base.runs_per_min:.2f}x;"
              f" CPU {f.cpu_s_per_run:.1f} s/run; RSS per worker "
              + ", ".join(f"{r:.0f}" for r in f.rss_mib) + " MiB (peak "
              + ", ".join(f"{r:.0f}" for r in f.peak_rss_mib) + " MiB); load average "
              f"{f.load_before:.2f} -> {f.load_after:.2f}", flush=True)


if __name__ == "__main__":
    main()
