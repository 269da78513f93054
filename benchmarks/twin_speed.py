"""How fast the digital twin runs: simulated seconds per wall second, and peak memory.

(a) the built-in job: cn-qcn for 10 weeks with its default demands and segments
    (``built_in_scenario(10, seed)``);
(b) one week of a synthetic network of 10,000 nodes (``generate_network``) with 8 demands
    of a few kbit/s between metro access nodes far apart (AES key refresh and one-time-pad
    lines), watching a backbone path of 2 segments.

Building the scenario (network, demands, checks) is timed apart from the run. "cpu s" is
the process's CPU time during the run: close to the wall time when the run used one core.
Peak memory is tracemalloc's peak over build and run (Python and numpy allocations), taken
in a second, traced run because tracing slows allocation, and the process's maximum
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the untraced run;
it only grows, so a row's figure also covers the rows before it. Targets: cn-qcn 10 weeks
in under 10 s on one core and under 1 GiB; 10,000 nodes 1 week in under 60 s.

    .venv/bin/python benchmarks/twin_speed.py [--seed S] [--nodes N] [--weeks W]
        [--anywhere] [--no-trace] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from qkdnet.quantum.rate_table import RateTable
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import NodeKind
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.scenario import TwinDemand, TwinScenario, built_in_scenario
from qkdnet.units import WEEK_S

CN_QCN_WEEKS = 10.0
CN_QCN_TARGET_S = 10.0
CN_QCN_TARGET_MIB = 1024.0
SYNTHETIC_TARGET_S = 60.0
DEMANDS = 8
#: Static key rate (bit/s) of the links the demands' ends are chosen to be joined by.
FAST_BPS = 8192.0


@dataclass(frozen=True)
class Case:
    """A scenario to time: ``build`` makes it, ``target_s`` bounds the run's wall time."""

    label: str
    build: Callable[[], TwinScenario]
    target_s: float
    target_mib: float | None = None


@dataclass
class Row:
    """What one case measured."""

    case: Case
    build_s: float
    run_s: float
    cpu_s: float
    simulated_s: float
    rss_mib: float
    result: TwinResult
    peak_mib: float | None = None

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second of the run."""
        return self.simulated_s / self.run_s


def synthetic_scenario(nodes: int, seed: int, weeks: float, anywhere: bool) -> TwinScenario:
    """``weeks`` of a generated network: DEMANDS demands between metro access nodes at
    opposite ends of the map (the i-th most south-westerly with the i-th most
    north-easterly), a few kbit/s each, and a watched path from the first backbone access
    node through a middle one to the last. Random faults and dynamics on.

    Ends and waypoints are picked among the nodes that QKD-links of at least FAST_BPS
    (static rate) join to one another, so every demand can be served from the start of the
    run; with ``anywhere`` among all nodes (some pairs are then joined only across a link
    that makes no key, and such demands are never routed)."""
    network = generate_network(nodes, seed)
    g = network.graph()
    core = set(network.node)
    if not anywhere:
        rates = RateTable(network.qkd_links).static
        fast = nx.Graph(lk.ends for lk, r in zip(network.qkd_links, rates, strict=True)
                        if r >= FAST_BPS)
        core = max(nx.connected_components(fast), key=len)
    metro = sorted((n for n in network.nodes_of(NodeKind.METRO_ACCESS) if n.id in core),
                   key=lambda n: n.lat + n.lon)
    demands = []
    for i in range(DEMANDS):
        a, b = metro[i].id, metro[-1 - i].id
        if not nx.has_path(g, a, b):
            raise SystemExit(f"{a} and {b} are not connected in the generated network")
        otp = i % 4 == 3  # one in four a one-time-pad line
        demands.append(TwinDemand(f"{'otp' if otp else 'aes'}-{a}-{b}", a, b,
                                  1_000.0 + 500.0 * (i % 4), 4096 if otp else 256))
    access = [n.id for n in network.nodes_of(NodeKind.BACKBONE_ACCESS) if n.id in core]
    return TwinScenario(network, weeks * WEEK_S, seed, tuple(demands),
                        segments=(access[0], access[len(access) // 2], access[-1]))


def _max_rss_mib() -> float:
    # ru_maxrss is KiB on Linux but bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def measure(case: Case, profile: bool) -> Row:
    """Build and run ``case`` once, untraced (under cProfile if ``profile``)."""
    start = time.perf_counter()
    scenario = case.build()
    build_s = time.perf_counter() - start
    profiler = cProfile.Profile() if profile else None
    cpu, start = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = run_twin(scenario)
    if profiler is not None:
        profiler.disable()
    run_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    if profiler is not None:
        print(f"\nWhere the run of {case.label} spends its time (cProfile, by own time):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        print("... and by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return Row(case, build_s, run_s, cpu_s, scenario.duration_s, _max_rss_mib(), result)


def traced_peak_mib(case: Case) -> float:
    """tracemalloc's peak over building and running ``case``, in MiB."""
    tracemalloc.start()
    try:
        run_twin(case.build())
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def print_table(rows: list[Row]) -> None:
    print(f"\n{'scenario':34s} {'links':>6s} {'build s':>8s} {'run s':>7s} {'cpu s':>7s} "
          f"{'sim s/wall s':>13s} {'traced peak MiB':>16s} {'max RSS MiB':>12s}")
    for r in rows:
        peak = "-" if r.peak_mib is None else f"{r.peak_mib:.1f}"
        print(f"{r.case.label:34s} {len(r.result.link_ids):6d} {r.build_s:8.2f} "
              f"{r.run_s:7.2f} {r.cpu_s:7.2f} {r.speed:13,.0f} {peak:>16s} "
              f"{r.rss_mib:12.1f}")


def print_services(rows: list[Row]) -> None:
    """Enough of each result to see the run did real work."""
    for r in rows:
        services = r.result.services
        routed = sum(s.hops > 0 for s in services)
        served = sum(s.served_bits for s in services) / max(
            sum(s.requested_bits for s in services), 1e-9)
        hops = [s.hops for s in services if s.hops]
        print(f"  {r.case.label}: {len(r.result.faults)} faults, {len(services)} demands "
              f"({routed} routed at the end, hops {min(hops, default=0)}-"
              f"{max(hops, default=0)}), {served:.2%} of requested key served, "
              f"{len(r.result.segments)} watched segments")


def print_targets(rows: list[Row]) -> None:
    print("\nTargets")
    for r in rows:
        met = r.run_s < r.case.target_s
        text = f"  {r.case.label}: run < {r.case.target_s:g} s: {r.run_s:.2f} s"
        if r.case.target_mib is not None:
            rss_ok = r.rss_mib < r.case.target_mib
            peak = "" if r.peak_mib is None else f", traced peak {r.peak_mib:.0f} MiB"
            text += (f"; memory < {r.case.target_mib:,.0f} MiB: max RSS {r.rss_mib:.0f} MiB"
                     f"{peak}")
            met = met and rss_ok
        print(f"{text} -> {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the runs and of the generated network")
    parser.add_argument("--nodes", type=int, default=10_000,
                        help="size of the generated network")
    parser.add_argument("--weeks", type=float, default=1.0,
                        help="simulated weeks on the generated network")
    parser.add_argument("--anywhere", action="store_true",
                        help="pick the generated network's demand ends among all metro "
                             "access nodes, even those only a link making no key joins")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the traced runs (tracemalloc peak)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each run and print where the time goes")
    args = parser.parse_args()
    cases = [
        Case(f"cn-qcn, {CN_QCN_WEEKS:g} weeks (built-in job)",
             lambda: built_in_scenario(CN_QCN_WEEKS, args.seed), CN_QCN_TARGET_S,
             CN_QCN_TARGET_MIB),
        Case(f"{args.nodes:,} nodes, {args.weeks:g} week(s), {DEMANDS} demands",
             lambda: synthetic_scenario(args.nodes, args.seed, args.weeks,
                                        args.anywhere),
             SYNTHETIC_TARGET_S),
    ]
    rows = []
    for case in cases:
        print(f"running {case.label} ...", flush=True)
        rows.append(measure(case, args.profile))
    if not args.no_trace:
        for row in rows:
            print(f"tracing {row.case.label} ...", flush=True)
            row.peak_mib = traced_peak_mib(row.case)
    print_table(rows)
    print_services(rows)
    print_targets(rows)


if __name__ == "__main__":
    main()
