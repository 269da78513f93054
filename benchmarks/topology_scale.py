"""How long a synthetic network of each size takes to generate, validate and graph.

Generation includes one validation (``generate_network`` returns a validated network);
"validate" times a second, separate call of ``validated`` on the result. Peak memory is
tracemalloc's peak over the three steps (Python allocations), taken in a second, traced
run because tracing slows allocation several-fold, and the process's maximum resident set
size so far (it only grows, so a row also covers the sizes before it). Target
(issue 3): 100,000 nodes generate and validate in under 10 s on one core.

    python benchmarks/topology_scale.py [--sizes 1000,10000,100000] [--seed S]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from qkdnet.topology.generator import generate_network
from qkdnet.topology.validation import validated

T = TypeVar("T")
TARGET_NODES = 100_000
TARGET_S = 10.0


def _timed(job: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = job()
    return result, time.perf_counter() - start


def _max_rss_mib() -> float:
    # ru_maxrss is KiB on Linux but bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _times(size: int, seed: int) -> tuple[float, float, float]:
    """Seconds to generate, validate and build the graph."""
    network, generate_s = _timed(lambda: generate_network(size, seed))
    _, validate_s = _timed(lambda: validated(network))
    _, graph_s = _timed(network.graph)
    return generate_s, validate_s, graph_s


def _peak_mib(size: int, seed: int) -> float:
    """tracemalloc's peak over generating, validating and graphing, in MiB."""
    tracemalloc.start()
    try:
        validated(generate_network(size, seed)).graph()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("1000,10000,100000"),
                        help="comma-separated node counts")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    print(f"{'nodes':>8s} {'generate s':>11s} {'validate s':>11s} {'graph s':>8s} "
          f"{'peak MiB':>9s} {'max RSS MiB':>12s}")
    verdict = None
    for size in args.sizes:
        generate_s, validate_s, graph_s = _times(size, args.seed)
        peak = _peak_mib(size, args.seed)
        print(f"{size:8d} {generate_s:11.2f} {validate_s:11.2f} {graph_s:8.2f} "
              f"{peak:9.1f} {_max_rss_mib():12.1f}")
        if size == TARGET_NODES:
            verdict = generate_s + validate_s
    if verdict is None:
        print(f"{TARGET_NODES:,} nodes not measured (add it to --sizes)")
    else:
        ok = "yes" if verdict < TARGET_S else "NO"
        print(f"{TARGET_NODES:,} nodes generate+validate in under {TARGET_S:g} s: {ok} "
              f"({verdict:.2f} s)")


if __name__ == "__main__":
    main()
