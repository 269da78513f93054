"""How many secure-key-rate evaluations one core does per second.

One evaluation is one (loss, parameter set) pair: every element of the arrays carries its
own loss and its own field-parameter draw, as when the twin updates every link at once.
The models use only numpy's element-wise kernels, which run on one core, so the figures
are per core. Target (issue 2): at least 1,000,000 per second for the asymptotic models.

    python benchmarks/skr_throughput.py [--points N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from qkdnet.quantum import device_type, draw_field_params, skr
from qkdnet.quantum.params import ProtocolParams


def _best_time(repeats: int, job: Callable[..., object], *args: object) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        job(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.points
    rng = np.random.default_rng(2025)
    cases = [
        ("DV decoy BB84 (type I)", "I", rng.uniform(0, 35, n), None),
        ("CV GG02 heterodyne (type VI)", "VI", rng.uniform(0, 25, n), None),
        ("CV GG02 homodyne (type VII)", "VII", rng.uniform(0, 25, n), None),
        ("DV finite key, 1e8-bit blocks (type I)", "I", rng.uniform(0, 35, n // 10), 1e8),
        ("CV finite key, 1e9-symbol blocks (type VII)", "VII", rng.uniform(0, 25, n // 100),
         1e9),
    ]
    print(f"{'model':46s} {'points':>10s} {'best s':>8s} {'evaluations/s':>15s}")
    for label, name, losses, block in cases:
        device = device_type(name)
        params: ProtocolParams = draw_field_params(device, seed=1, size=losses.size)
        seconds = _best_time(args.repeats, skr, device, losses, params, block)
        print(f"{label:46s} {losses.size:10d} {seconds:8.3f} {losses.size / seconds:15,.0f}")


if __name__ == "__main__":
    main()
