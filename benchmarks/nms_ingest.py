"""How many telemetry records per second the NMS ingests for the full CN-QCN network.

Each step is one batch of every QKD-link and one of every KM-link (2,177 records). Three
rows: "ingest" times ``Nms.ingest`` alone over batches built beforehand (the NMS's own
cost); "build + ingest" also builds and validates the batches (the producer's cost); "via
EMS" builds the batches, splits them through the seven regional EMSs and ingests every
region's share (the whole reporting path). About one step in fifty flips some links down or
up, so the outage timelines do work too. Target: at least 100,000 records/s.

    python benchmarks/nms_ingest.py [--batches 2000] [--history 1024] [--seed S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from qkdnet.management.nms import Nms, ems_for
from qkdnet.management.telemetry import Batch, KMLinkTelemetry, LinkTelemetry
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network

TARGET_RECORDS_PER_S = 100_000


def _maker(network: Network, seed: int) -> Callable[[int], tuple[Batch, Batch]]:
    """A function from step number to that step's (QKD-link, KM-link) batches."""
    rng = np.random.default_rng(seed)
    links, kms = tuple(network.link), tuple(network.km_link)
    skr = rng.uniform(1e3, 5e4, len(links))
    qber = rng.uniform(0.01, 0.04, len(links))
    key = rng.uniform(0, 1e8, len(kms))
    rate = rng.uniform(1e3, 5e4, len(kms))
    link_up = np.ones(len(links), dtype=bool)
    km_up = np.ones(len(kms), dtype=bool)
    alarm = np.zeros(len(links), dtype=bool)

    def make(step: int) -> tuple[Batch, Batch]:
        if step % 50 == 49:  # a few links change state now and then
            link_up[rng.integers(0, len(links), 8)] ^= True
            km_up[rng.integers(0, len(kms), 8)] ^= True
        t = float(step)
        return (LinkTelemetry(t, links, skr, qber, link_up, alarm),
                KMLinkTelemetry(t, kms, key, rate, km_up))

    return make


def _rate(network: Network, args: argparse.Namespace, mode: str) -> tuple[int, float]:
    """Records ingested and seconds taken in one mode."""
    make = _maker(network, args.seed)
    nms = Nms(network, history_points=args.history)
    if mode == "ingest":
        batches = [b for step in range(args.batches) for b in make(step)]
        start = time.perf_counter()
        for batch in batches:
            nms.ingest(batch)
    elif mode == "build + ingest":
        start = time.perf_counter()
        for step in range(args.batches):
            for batch in make(step):
                nms.ingest(batch)
    else:
        emss = list(ems_for(network).values())
        start = time.perf_counter()
        for step in range(args.batches):
            for batch in make(step):
                for ems in emss:
                    nms.ingest(ems.collect(batch))
    return nms.records, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000,
                        help="steps, each one QKD-link and one KM-link batch")
    parser.add_argument("--history", type=int, default=1024, help="ring-buffer points per link")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    network = build_cn_qcn()
    per_step = len(network.qkd_links) + len(network.km_links)
    print(f"cn-qcn: {len(network.qkd_links):,} QKD-links + {len(network.km_links):,} KM-links "
          f"= {per_step:,} records per step, {args.batches:,} steps")
    print(f"{'mode':>15s} {'records':>10s} {'seconds':>8s} {'records/s':>12s}")
    ingest_rate = 0.0
    for mode in ("ingest", "build + ingest", "via EMS"):
        records, seconds = _rate(network, args, mode)
        rate = records / seconds
        if mode == "ingest":
            ingest_rate = rate
        print(f"{mode:>15s} {records:10,d} {seconds:8.2f} {rate:12,.0f}")
    ok = "yes" if ingest_rate >= TARGET_RECORDS_PER_S else "NO"
    print(f"NMS ingests at least {TARGET_RECORDS_PER_S:,} records/s: {ok} "
          f"({ingest_rate:,.0f} records/s)")


if __name__ == "__main__":
    main()
