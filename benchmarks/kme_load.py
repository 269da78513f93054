"""Load on the live KMEs of ``qkdnet serve`` (ETSI GS QKD 014 over mutual TLS, loopback).

Serves CN-QCN, with two benchmark SAEs added, in a subprocess and measures with keep-alive
SAE clients (:class:`qkdnet.apps.sae_client.SaeClient`, one per client thread):

(a) Get key at one KME, one 256-bit key per call: calls/s and p50/p99 latency, for a slave
    at the same node (no relay) and one KM-link hop away;
(b) the 64-hop Harbin-Shenzhen relay: the HTTP Get key call, and the relay alone in this
    process (:class:`qkdnet.live.keynet.KeyNetwork`, no HTTP).

Targets: at least 1,000 calls/s with p99 < 50 ms at one KME process; 64-hop relay < 100 ms.

    .venv/bin/python benchmarks/kme_load.py [--seconds S | --calls N] [--threads T]
        [--relay-calls N] [--profile] [--server-profile FILE]

The server is measured once it has settled: ``qkdnet serve`` deposits the prefill and then
whatever the emulators make until the pools are full, in the event loop, and answers
slowly meanwhile (the time this takes is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import math
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkdnet.apps.sae_client import KmeError, KmeUnreachable, SaeClient
from qkdnet.files.networks import load_network, open_network, save_network
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.relay_cost import pad_units
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.live.launch import ServeProcess, start_serve
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.model import SAE, KMLinkKind, Network

EXPORT = [sys.executable, "-m", "qkdnet", "topology", "export", "-f", "yaml", "-o"]
KEY_BITS = 256
MASTER = "sae-beijing"
SAME_NODE_SAE = "bench-beijing-2"
RELAY_MASTER, RELAY_SLAVE = "sae-harbin", "sae-shenzhen"
TARGET_RATE = 1000.0  # calls/s at one KME
TARGET_P99_S = 0.050
TARGET_RELAY_S = 0.100
CALL_TIMEOUT_S = 30.0
START_TIMEOUT_S = 600.0
WARM_UP_CALLS = 5



@dataclass(frozen=True)
class Row:
    """One measurement: latencies (s) of the calls that succeeded, over ``wall_s``."""

    label: str
    hops: int
    latencies: list[float]
    errors: int
    wall_s: float
    server_cpu_s: float = math.nan  # utime+stime of the serving process over the run (s)

    @property
    def cpu_per_call_s(self) -> float:
        """Server CPU time per successful call (s), NaN when not measured."""
        return self.server_cpu_s / len(self.latencies) if self.latencies else math.nan

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return len(self.latencies) / self.wall_s if self.wall_s > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the latencies (nearest rank), NaN if there are none."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Server:
    """A running ``qkdnet serve``, and how long it took to start and to settle."""

    served: ServeProcess
    started_s: float = 0.0
    settled_s: float = 0.0

    @property
    def manifest(self) -> dict[str, Any]:
        return self.served.manifest

    def client(self, sae: str) -> SaeClient:
        """A keep-alive SAE client that authenticates as ``sae``."""
        return SaeClient.from_manifest(self.manifest, sae, timeout_s=CALL_TIMEOUT_S)


# --- the scenario ------------------------------------------------------------------------

def one_hop_neighbour(network: Network, node: str) -> str:
    """The served node one direct KM-link from ``node`` whose QKD-link makes key fastest
    (its pool refills quickest under load)."""
    served = set(served_nodes(network))
    links = [(link_skr_bps(network.link[k.path[0]]), k.b if k.a == node else k.a)
             for k in network.km_links
             if k.kind is KMLinkKind.DIRECT and node in (k.a, k.b)
             and {k.a, k.b} <= served]
    return max(links)[1]


def bench_scenario(folder: Path) -> tuple[Path, str]:
    """CN-QCN exported by ``qkdnet topology export`` with two SAEs added: one at Beijing and
    one at Beijing's fastest direct neighbour. Returns the file and that SAE's ID."""
    exported = folder / "cn-qcn.yaml"
    subprocess.run([*EXPORT, str(exported)], check=True, capture_output=True)
    network = load_network(exported)
    beijing = network.sae[MASTER].node
    neighbour = one_hop_neighbour(network, beijing)
    hop_sae = f"bench-{neighbour}"
    extra = (SAE(SAME_NODE_SAE, beijing, "Benchmark slave at Beijing"),
             SAE(hop_sae, neighbour, "Benchmark slave one hop from Beijing"))
    bench = dataclasses.replace(network, name="cn-qcn-bench", saes=network.saes + extra)
    return save_network(bench, folder / "cn-qcn-bench.yaml"), hop_sae


# --- the server --------------------------------------------------------------------------

def start_server(folder: Path, scenario: Path, prefill_bits: int, capacity_bits: int,
                 profile: Path | None) -> Server:
    """Start ``qkdnet serve`` and wait for its manifest."""
    python = [sys.executable] if profile is None else \
        [sys.executable, "-m", "cProfile", "-o", str(profile)]
    start = time.monotonic()
    served = start_serve(folder / "live", str(scenario),
                         ["--prefill-bits", str(prefill_bits),
                          "--pool-capacity-bits", str(capacity_bits)],
                         logs=folder / "serve", timeout_s=START_TIMEOUT_S, python=python)
    return Server(served, started_s=time.monotonic() - start)


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 30 s."""
    server.served.stop(30)


@contextlib.contextmanager
def serving(folder: Path, scenario: Path, args: argparse.Namespace) -> Iterator[Server]:
    """The server, stopped whatever happens."""
    server = start_server(folder, scenario, args.prefill_bits, args.pool_capacity_bits,
                          args.server_profile)
    try:
        yield server
    finally:
        stop_server(server)


def wait_settled(server: Server, slave: str, limit_s: float, quiet_s: float = 2.0,
                 slow_s: float = 0.25) -> None:
    """Wait until Get status has answered within ``slow_s`` for ``quiet_s`` on end (the
    initial deposits no longer hold up the event loop), at most ``limit_s``."""
    start = time.monotonic()
    quiet_since = start
    with server.client(MASTER) as kme:
        while time.monotonic() - start < limit_s:
            began = time.monotonic()
            # the event loop may be held up for longer than a call's timeout
            with contextlib.suppress(KmeUnreachable):
                kme.status(slave)
            now = time.monotonic()
            if now - began > slow_s:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                break
    server.settled_s = time.monotonic() - start


def process_cpu_s(pid: int) -> float:
    """utime+stime of process ``pid`` so far (s), from /proc (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- HTTP load ---------------------------------------------------------------------------

def http_load(server: Server, label: str, hops: int, master: str, slave: str,
              seconds: float, calls: int, threads: int) -> Row:
    """Get key (one KEY_BITS key per call) from ``threads`` keep-alive clients, for
    ``seconds`` or, if ``calls`` > 0, until ``calls`` calls in all."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    budget = iter(range(calls)) if calls > 0 else None
    start_line = threading.Barrier(threads + 1)
    deadline = [math.inf]

    def more() -> bool:
        if budget is None:
            return time.perf_counter() < deadline[0]
        with lock:
            return next(budget, None) is not None

    def call(kme: SaeClient) -> bool:
        try:
            kme.enc_keys(slave, 1, KEY_BITS)  # checks that one key of KEY_BITS came back
        except KmeError:
            return False
        return True

    def client() -> None:
        with server.client(master) as kme:
            for _ in range(WARM_UP_CALLS):
                call(kme)
            start_line.wait()
            mine, bad = [], 0
            while more():
                began = time.perf_counter()
                if call(kme):
                    mine.append(time.perf_counter() - began)
                else:
                    bad += 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start_line.wait()
    pid = server.served.process.pid
    cpu_before = process_cpu_s(pid)
    began = time.perf_counter()
    deadline[0] = began + seconds
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    return Row(label, hops, latencies, errors[0], wall, process_cpu_s(pid) - cpu_before)


# --- the relay without HTTP --------------------------------------------------------------

def inprocess_relay(folder: Path, calls: int, profile: bool) -> tuple[Row, float]:
    """Time ``KeyNetwork.enc_keys`` Harbin to Shenzhen in this process over CN-QCN (every
    served node, SQLite stores under ``folder``), and the route look-up alone."""
    network = open_network("cn-qcn")
    # each call takes pad_units from the outbound half of every hop's pool
    prefill = 2 * (calls + 2 * WARM_UP_CALLS) * pad_units(KEY_BITS) * UNIT_BYTES * 8 + 2**15

    async def run() -> tuple[Row, float]:
        keynet = KeyNetwork(network, folder, served_nodes(network))
        try:
            loop = asyncio.get_running_loop()
            keynet.supply.start(loop.time(), 1.0, prefill)
            keynet.supply.pump(loop.time())
            for _ in range(WARM_UP_CALLS):
                await keynet.enc_keys(RELAY_MASTER, RELAY_SLAVE, 1, KEY_BITS)
            hops = keynet.router.route("harbin", "shenzhen").hops
            profiler = cProfile.Profile() if profile else None
            latencies = []
            began = time.perf_counter()
            for _ in range(calls):
                start = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                await keynet.enc_keys(RELAY_MASTER, RELAY_SLAVE, 1, KEY_BITS)
                if profiler is not None:
                    profiler.disable()
                latencies.append(time.perf_counter() - start)
            wall = time.perf_counter() - began
            route_s = _best_of(20, lambda: keynet.router.route("harbin", "shenzhen"))
            if profiler is not None:
                print("\nWhere the in-process 64-hop relay spends its time (cProfile):")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            return Row("64-hop relay, in process (no HTTP)", hops, latencies, 0, wall), route_s
        finally:
            keynet.close()

    return asyncio.run(run())


def _best_of(repeats: int, job: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        best = min(best, time.perf_counter() - start)
    return best


# --- report ------------------------------------------------------------------------------

def print_table(rows: list[Row], threads: int) -> None:
    print(f"\nGet key, {KEY_BITS}-bit key, 1 per call; {threads} keep-alive client "
          f"thread(s), HTTP/1.1 over mutual TLS on loopback")
    print(f"{'measurement':52s} {'hops':>4s} {'calls':>6s} {'errors':>6s} {'calls/s':>8s} "
          f"{'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'srv CPU ms/call':>15s}")
    for r in rows:
        print(f"{r.label:52s} {r.hops:4d} {len(r.latencies):6d} {r.errors:6d} {r.rate:8.1f} "
              f"{r.quantile(0.5) * 1e3:8.2f} {r.quantile(0.99) * 1e3:8.2f} "
              f"{r.quantile(1.0) * 1e3:8.2f} {r.cpu_per_call_s * 1e3:15.3f}")


def print_targets(kme_rows: list[Row], relay_rows: list[Row]) -> None:
    print("\nTargets")
    for r in kme_rows:
        met = r.errors == 0 and r.rate >= TARGET_RATE and r.quantile(0.99) < TARGET_P99_S
        print(f"  >= {TARGET_RATE:,.0f} calls/s with p99 < {TARGET_P99_S * 1e3:.0f} ms at one "
              f"KME ({r.label}): {r.rate:,.0f} calls/s, p99 {r.quantile(0.99) * 1e3:.1f} ms"
              f" -> {'met' if met else 'NOT met'}")
    for r in relay_rows:
        met = r.errors == 0 and r.quantile(0.99) < TARGET_RELAY_S
        print(f"  64-hop relay < {TARGET_RELAY_S * 1e3:.0f} ms ({r.label}): p99 "
              f"{r.quantile(0.99) * 1e3:.1f} ms -> {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of each Get key measurement at one KME (s)")
    parser.add_argument("--calls", type=int, default=0,
                        help="calls per measurement at one KME instead of --seconds")
    parser.add_argument("--threads", type=int, default=1, help="client threads")
    parser.add_argument("--relay-calls", type=int, default=300,
                        help="64-hop Get key calls, over HTTP and in process")
    parser.add_argument("--prefill-bits", type=int, default=1_000_000)
    parser.add_argument("--pool-capacity-bits", type=int, default=2**21)
    parser.add_argument("--settle-limit", type=float, default=600.0,
                        help="longest wait for the server to settle after start (s)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the in-process relay and print the top functions")
    parser.add_argument("--server-profile", type=Path, default=None,
                        help="run the server under cProfile, write its stats here and "
                             "print the top functions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kme-load-") as tmp:
        folder = Path(tmp)
        scenario, hop_sae = bench_scenario(folder)
        with serving(folder, scenario, args) as server:
            print(f"qkdnet serve: manifest after {server.started_s:.1f} s "
                  f"({len(server.manifest['kmes'])} KMEs)", flush=True)
            wait_settled(server, SAME_NODE_SAE, args.settle_limit)
            print(f"settled (Get status < 0.25 s for 2 s) after a further "
                  f"{server.settled_s:.1f} s", flush=True)
            measure = {"seconds": args.seconds, "calls": args.calls, "threads": args.threads}
            kme_rows = [
                http_load(server, f"Get key at one KME, same node ({SAME_NODE_SAE})", 0,
                          MASTER, SAME_NODE_SAE, **measure),
                http_load(server, f"Get key at one KME, 1 hop ({hop_sae})", 1,
                          MASTER, hop_sae, **measure),
            ]
            relay_http = http_load(server, "64-hop relay, Harbin-Shenzhen over HTTP", 64,
                                   RELAY_MASTER, RELAY_SLAVE, 0.0, args.relay_calls, 1)
        if args.server_profile is not None:
            print("\nWhere the server spent its time, start-up included (cProfile):")
            pstats.Stats(str(args.server_profile)).sort_stats("tottime").print_stats(20)
        relay_local, route_s = inprocess_relay(folder / "inprocess", args.relay_calls,
                                               args.profile)
    print_table([*kme_rows, relay_http, relay_local], args.threads)
    print(f"(route look-up Harbin-Shenzhen alone: {route_s * 1e3:.2f} ms)")
    print_targets(kme_rows, [relay_http, relay_local])


if __name__ == "__main__":
    main()
