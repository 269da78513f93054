"""Load on the live KMEs of ``qkdnet serve`` (ETSI GS QKD 014 over mutual TLS, loopback), and
the same load on another ETSI GS QKD 014 KME side by side (``--against URL``).

Serves CN-QCN, with two benchmark SAEs added, in a subprocess (or ``--scenario FILE`` with
``--master``/``--slave``) and calls it with the load generator of ``etsi014_load.py``: N
asyncio httpx workers (default 16) on keep-alive mutual TLS, one 256-bit key per call.
Measurements (``--modes``, default all that the scenario allows):

- ``same``: Get key, master and slave at one node;
- ``hop``: Get key, the slave one KM-link hop away (cn-qcn);
- ``relay``: Get key Harbin->Shenzhen over 64 hops (cn-qcn), ``--relay-calls`` calls;
- ``dec``: Get key with key IDs at the slave (the master fetches the keys first, uncounted);
- ``cold``: Get key with a new TLS connection per call;
- ``bidi``: both SAEs of the same-node pair act as master at once;
- ``refill``: the KM-link of ``hop`` drained by large Get key calls, then ``same``'s load
  while Get status is polled until the pair holds its keys again (``--refill-seconds``):
  the rate the link refills at under load, beside its modelled rate (cn-qcn);
- ``inprocess``: the 64-hop relay inside this process, no HTTP (cn-qcn), one call at a
  time and 8 at once (as a KME's concurrent calls share a group commit round).

Each reports calls/s, p50/p99 latency, errors, and the server's CPU time per call (utime +
stime of the serving process from /proc over the run, divided by the calls it answered):
on a shared 2-core machine the client's own CPU competes with the server's, so calls/s
measures the client as much as the server, and the server CPU per call is the figure
that counts. With ``--against`` the peer KME runs the same modes (those it has the
credentials for) right after qkdnet's, and a side-by-side table gives both and the ratio.

    .venv/bin/python benchmarks/kme_load.py [--seconds S | --calls N] [--workers W]
        [--modes same,dec,...] [--relay-calls N] [--profile] [--server-profile FILE]
        [--against URL --against-ca CA --against-cert CERT --against-key KEY
         --against-master ID --against-slave ID [--against-slave-url URL
         --against-slave-cert CERT --against-slave-key KEY] [--server-pid PID ...]]

See docs/benchmarks.md. The server is measured once it has settled: ``qkdnet serve``
deposits the prefill and then whatever the emulators make until the pools are full, in the
event loop, and answers slowly meanwhile (the time this takes is printed).
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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import distributed_load
from etsi014_load import (
    CLIENTS,
    Measurement,
    Pair,
    SaeEnd,
    client_name,
    enc_keys,
    get_status,
    idle_cpu_share,
    master_client,
    measure,
    probe,
)
from qkdnet.apps.sae_client import KmeError, KmeUnreachable, SaeClient
from qkdnet.errors import QkdnetError
from qkdnet.files.networks import load_network, open_network, save_network
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.relay_cost import pad_units
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.live.launch import ServeProcess, start_serve
from qkdnet.quantum.link_rate import link_skr_bps
from qkdnet.topology.model import SAE, KMLinkKind, Network

EXPORT = [sys.executable, "-m", "qkdnet", "topology", "export", "-f", "yaml", "-o"]
MASTER = "sae-beijing"
SAME_NODE_SAE = "bench-beijing-2"
RELAY_MASTER, RELAY_SLAVE = "sae-harbin", "sae-shenzhen"
RELAY_HOPS = 64
CN_QCN_MODES = ("same", "hop", "relay", "dec", "cold", "bidi", "refill", "inprocess")
#: Modes only asked for by name: cn-qcn as a deployment of node processes (issue 14).
OPT_IN_MODES = ("distributed",)
#: Issue 14's targets: p99 of Harbin->Shenzhen across the processes (s), and the aggregate
#: calls/s deployed over those of one process.
TARGET_DISTRIBUTED_P99_S = 0.150
TARGET_DISTRIBUTED_RATIO = 1.7
PAIR_MODES = ("same", "dec", "cold", "bidi")  # the modes any master/slave pair can run
GENERATOR_MODE = {"same": "enc", "hop": "enc", "relay": "enc", "dec": "dec", "cold": "cold",
                  "bidi": "bidi"}
# issue 13's acceptance, server CPU per call (s) and p99 (s); idle share of a core
TARGET_CPU_SAME_S = 0.22e-3
TARGET_P99_S = 0.020
TARGET_CPU_RELAY_S = 3e-3
TARGET_IDLE_SHARE = 0.02
REFILL_SHARE = 0.9  # of the link's modelled rate: "full again at its own rate"
REFILL_POLL_S = 0.02  # a 6.5 Mbit/s link refills a 1 Mbit pool direction in 0.15 s
CALL_TIMEOUT_S = 30.0
START_TIMEOUT_S = 600.0
WARM_UP_CALLS = 5
OURS, PEER = "qkdnet", "peer"


@dataclass
class Server:
    """A running ``qkdnet serve``, and how long it took to start and to settle."""

    served: ServeProcess
    started_s: float = 0.0
    settled_s: float = 0.0

    @property
    def manifest(self) -> dict[str, Any]:
        return self.served.manifest

    @property
    def pid(self) -> int:
        """The serving process (the manifest names it; under cProfile, the child itself)."""
        return int(self.manifest["pid"])

    def client(self, sae: str) -> SaeClient:
        """A keep-alive SAE client that authenticates as ``sae``."""
        return SaeClient.from_manifest(self.manifest, sae, timeout_s=CALL_TIMEOUT_S)

    def end(self, sae: str) -> SaeEnd:
        """``sae`` at its KME, for the load generator."""
        entry = self.manifest["saes"][sae]
        return SaeEnd(sae, entry["kme_url"], Path(entry["cert"]), Path(entry["key"]),
                      Path(self.manifest["ca"]))

    def pair(self, master: str, slave: str) -> Pair:
        return Pair(self.end(master), slave, self.end(slave))


# --- the scenario ------------------------------------------------------------------------

def one_hop_neighbour(network: Network, node: str) -> tuple[float, str]:
    """The served node one direct KM-link from ``node`` whose QKD-link makes key fastest
    (its pool refills quickest under load), and that rate (bit/s)."""
    served = set(served_nodes(network))
    links = [(link_skr_bps(network.link[k.path[0]]), k.b if k.a == node else k.a)
             for k in network.km_links
             if k.kind is KMLinkKind.DIRECT and node in (k.a, k.b)
             and {k.a, k.b} <= served]
    return max(links)


def bench_scenario(folder: Path) -> tuple[Path, str, float]:
    """CN-QCN exported by ``qkdnet topology export`` with two SAEs added: one at Beijing and
    one at Beijing's fastest direct neighbour. Returns the file, that SAE's ID and the
    modelled key rate of the QKD-link to it (bit/s)."""
    exported = folder / "cn-qcn.yaml"
    subprocess.run([*EXPORT, str(exported)], check=True, capture_output=True)
    network = load_network(exported)
    beijing = network.sae[MASTER].node
    rate_bps, neighbour = one_hop_neighbour(network, beijing)
    hop_sae = f"bench-{neighbour}"
    extra = (SAE(SAME_NODE_SAE, beijing, "Benchmark slave at Beijing"),
             SAE(hop_sae, neighbour, "Benchmark slave one hop from Beijing"))
    bench = dataclasses.replace(network, name="cn-qcn-bench", saes=network.saes + extra)
    return save_network(bench, folder / "cn-qcn-bench.yaml"), hop_sae, rate_bps


# --- the server --------------------------------------------------------------------------

def start_server(folder: Path, scenario: Path, prefill_bits: int, capacity_bits: int,
                 speedup: float, profile: Path | None) -> Server:
    """Start ``qkdnet serve`` and wait for its manifest."""
    python = [sys.executable] if profile is None else \
        [sys.executable, "-m", "cProfile", "-o", str(profile)]
    start = time.monotonic()
    served = start_serve(folder / "live", str(scenario),
                         ["--prefill-bits", str(prefill_bits),
                          "--pool-capacity-bits", str(capacity_bits),
                          "--speedup", repr(speedup)],
                         logs=folder / "serve", timeout_s=START_TIMEOUT_S, python=python)
    return Server(served, started_s=time.monotonic() - start)


@contextlib.contextmanager
def serving(folder: Path, scenario: Path, args: argparse.Namespace) -> Iterator[Server]:
    """The server, stopped whatever happens (SIGTERM, SIGKILL after 30 s)."""
    server = start_server(folder, scenario, args.prefill_bits, args.pool_capacity_bits,
                          args.speedup, args.server_profile)
    try:
        yield server
    finally:
        server.served.stop(30)


def wait_settled(server: Server, master: str, slave: str, limit_s: float,
                 quiet_s: float = 2.0, slow_s: float = 0.25) -> None:
    """Wait until Get status has answered within ``slow_s`` for ``quiet_s`` on end (the
    initial deposits no longer hold up the event loop), at most ``limit_s``."""
    start = time.monotonic()
    quiet_since = start
    with server.client(master) as kme:
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


# --- the peer ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """Another ETSI GS QKD 014 KME: the pair to call and its serving processes' PIDs."""

    pair: Pair
    pids: tuple[int, ...]

    def runs(self, mode: str) -> bool:
        """Whether the peer can run ``mode`` (``dec`` and ``bidi`` need the slave)."""
        return mode in PAIR_MODES and (self.pair.slave is not None
                                       or mode not in ("dec", "bidi"))


def peer_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Peer | None:
    """The peer the ``--against*`` options describe, None without ``--against``."""
    if args.against is None:
        if args.server_pid:
            parser.error("--server-pid is the peer's: give --against too")
        return None
    if not args.against.startswith("https://"):
        parser.error(f"--against {args.against}: give an https:// URL (ETSI GS QKD 014 "
                     "runs over mutual TLS)")
    needed = ("against_ca", "against_cert", "against_key", "against_master", "against_slave")
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        parser.error(f"--against needs {', '.join(missing)}")
    for name in ("against_ca", "against_cert", "against_key", "against_slave_cert",
                 "against_slave_key"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"--{name.replace('_', '-')}: no file {path}")
    for pid in args.server_pid:
        if not Path(f"/proc/{pid}/stat").exists():
            parser.error(f"--server-pid {pid}: no such process on this machine")
    check = not args.against_no_hostname_check
    master = SaeEnd(args.against_master, args.against, args.against_cert, args.against_key,
                    args.against_ca, check)
    slave = None
    if args.against_slave_cert is not None or args.against_slave_key is not None:
        if args.against_slave_cert is None or args.against_slave_key is None:
            parser.error("give both --against-slave-cert and --against-slave-key")
        slave = SaeEnd(args.against_slave, args.against_slave_url or args.against,
                       args.against_slave_cert, args.against_slave_key, args.against_ca,
                       check)
    return Peer(Pair(master, args.against_slave, slave), tuple(args.server_pid))


# --- the relay without HTTP --------------------------------------------------------------

def inprocess_relay(folder: Path, calls: int, profile: bool, at_once: int = 1
                    ) -> Measurement:
    """Time ``KeyNetwork.enc_keys`` Harbin to Shenzhen in this process over CN-QCN (every
    served node, SQLite stores under ``folder``), ``at_once`` calls at a time (so they
    share a group commit round, as a KME's concurrent calls do); the CPU is this
    process's."""
    network = open_network("cn-qcn")
    # each call takes pad_units from the outbound half of every hop's pool
    prefill = 2 * (calls + 2 * WARM_UP_CALLS) * pad_units(256) * UNIT_BYTES * 8 + 2**15

    async def run() -> Measurement:
        keynet = KeyNetwork(network, folder, served_nodes(network))
        try:
            loop = asyncio.get_running_loop()
            keynet.supply.start(loop.time(), 1.0, prefill)
            keynet.supply.pump(loop.time())
            for _ in range(WARM_UP_CALLS):
                await keynet.enc_keys(RELAY_MASTER, RELAY_SLAVE, 1, 256)
            profiler = cProfile.Profile() if profile else None
            label = "Get key Harbin->Shenzhen, 64 hops, in process (no HTTP)"
            row = Measurement(label if at_once == 1 else f"{label}, {at_once} at once",
                              OURS, "inprocess")
            began, cpu = time.perf_counter(), time.process_time()
            for done in range(0, calls, at_once):
                start, now = time.perf_counter(), min(at_once, calls - done)
                if profiler is not None:
                    profiler.enable()
                await asyncio.gather(*(keynet.enc_keys(RELAY_MASTER, RELAY_SLAVE, 1, 256)
                                       for _ in range(now)))
                if profiler is not None:
                    profiler.disable()
                row.latencies += [time.perf_counter() - start] * now  # all end together
            row.wall_s = time.perf_counter() - began
            row.server_cpu_s = row.client_cpu_s = time.process_time() - cpu
            route_s = _best_of(20, lambda: keynet.router.route("harbin", "shenzhen"))
            print(f"(route look-up Harbin-Shenzhen alone: {route_s * 1e3:.2f} ms)")
            if profiler is not None:
                print("\nWhere the in-process 64-hop relay spends its time (cProfile):")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            return row
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


# --- refill of a drained KM-link under load ----------------------------------------------

@dataclass
class Refill:
    """A drained KM-link's refill, watched through Get status: keys of ``key_bits`` stored
    for the pair at the start (``full``), after draining and at the end, over ``seconds``
    (s) of the load ``load``; ``link_bps`` is the QKD-link's modelled rate at start (bit/s),
    ``live_bps`` its rate as the server's /metrics gave it at the refill's start and end
    (mean, times the speedup; None if not read): the live dynamics (day-night drift, QBER
    bursts) move it, and a supply can refill only at that."""

    km_link: str
    link_bps: float
    key_bits: int
    full: int
    drained: int
    end: int
    seconds: float
    load: Measurement
    live_bps: float | None = None

    @property
    def target_bps(self) -> float:
        """The rate a supply that loses nothing refills at: the live one where known."""
        return self.live_bps if self.live_bps is not None else self.link_bps

    @property
    def rate_bps(self) -> float:
        """Key stored for the pair per second while refilling (bit/s)."""
        return (self.end - self.drained) * self.key_bits / self.seconds \
            if self.seconds > 0 else 0.0

    def line(self) -> str:
        state = "full again" if self.end >= self.full else f"{self.end} of {self.full} keys"
        return (f"refill of {self.km_link}: drained to {self.drained} of {self.full} keys of "
                f"{self.key_bits} bits, {state} after {self.seconds:.1f} s: "
                f"{self.rate_bps / 1e3:.1f} kbit/s, the link makes "
                f"{self.link_bps / 1e3:.1f} kbit/s modelled at start"
                + ("" if self.live_bps is None else
                   f", {self.live_bps / 1e3:.1f} live meanwhile") +
                f"; meanwhile at one node "
                f"{self.load.rate:.0f} calls/s, p99 {_ms(self.load.quantile(0.99))} ms")


async def held_keys(pair: Pair) -> int:
    """Keys the pair's master could get now (Get status)."""
    async with master_client(pair) as kme:
        return (await get_status(kme, pair.slave_id)).stored_key_count


async def refill_run(server: Server, hop: Pair, load_pair: Pair, full: int, link_bps: float,
                     limit_s: float, *, label: str, workers: int, number: int,
                     key_bits: int, client: str = "httpx") -> Refill:
    """Drain the KM-link between the ``hop`` pair's nodes with large Get key calls, then
    run the ``load_pair``'s load while polling Get status every :data:`REFILL_POLL_S` until
    the ``hop`` pair holds ``full`` keys again (what it held when the server had settled),
    at most ``limit_s``."""
    hop_sae = hop.slave_id
    async with master_client(hop) as kme:
        status = await get_status(kme, hop_sae)
        size = status.key_size
        batch = max(1, status.max_key_per_request)
        left, refused = status.stored_key_count, 0
        while left > full // 100 and refused < 20:
            try:
                await enc_keys(kme, hop_sae, min(batch, left), size)
            except KmeError:  # more than a relay may carry, or than is left: ask less
                batch, refused = max(1, batch // 2), refused + 1
            left = (await get_status(kme, hop_sae)).stored_key_count
        stop = asyncio.Event()
        load = asyncio.create_task(measure(
            load_pair, "enc", label=label, server=OURS,
            workers=workers, seconds=limit_s, number=number, key_bits=key_bits,
            server_pids=[server.pid], stop=stop, client=client))
        saes = server.manifest["saes"]
        ends = (saes[hop.master.sae_id]["node"], saes[hop_sae]["node"])
        live = [await live_link_bps(server, *ends)]
        began = time.perf_counter()
        now = left
        while now < full and time.perf_counter() - began < limit_s:
            await asyncio.sleep(REFILL_POLL_S)
            now = (await get_status(kme, hop_sae)).stored_key_count
        seconds = time.perf_counter() - began
        live.append(await live_link_bps(server, *ends))
        stop.set()
        row = await load
    read = [bps for bps in live if bps is not None]
    live_bps = sum(read) / len(read) if read else None
    return Refill("-".join(ends), link_bps, size, full, left, now, seconds, row, live_bps)


async def live_link_bps(server: Server, a: str, b: str) -> float | None:
    """The key rate of the QKD-link between nodes ``a`` and ``b`` (bit/s, times the
    server's speedup) as its O&M /metrics gives it now; None if it is not there."""
    url = server.manifest.get("om_url")
    if not url:
        return None
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("qkdnet_link_skr_bits_per_second{") and \
                (f'link="{a}--{b}"' in line or f'link="{b}--{a}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- report ------------------------------------------------------------------------------

def uptime() -> str:
    """``uptime``'s line (the load averages), or /proc/loadavg's figures."""
    try:
        return subprocess.run(["uptime"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.2f}"


def print_rows(rows: Sequence[Measurement]) -> None:
    print(f"\n{'measurement':58s} {'server':>6s} {'calls':>6s} {'errors':>6s} "
          f"{'calls/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'srv CPU ms/call':>15s} {'net of idle':>11s} {'cli CPU ms/call':>15s}")
    for r in rows:
        print(f"{r.label:58s} {r.server:>6s} {r.calls:6d} {r.error_count:6d} {r.rate:8.1f} "
              f"{_ms(r.quantile(0.5)):>8s} {_ms(r.quantile(0.99)):>8s} "
              f"{_ms(r.quantile(1.0)):>8s} {_ms(r.server_cpu_per_call):>15s} "
              f"{_ms(r.server_cpu_net_per_call):>11s} {_ms(r.client_cpu_per_call):>15s}")
    for r in rows:
        if r.errors:
            print(f"  errors, {r.server}, {r.label}: "
                  + ", ".join(f"{why} x{n}" for why, n in r.errors.most_common()))


def _figure(r: Measurement) -> str:
    return f"{r.rate:.1f} ({_ms(r.quantile(0.5))} / {_ms(r.quantile(0.99))})"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b) \
        else f"{a / b:.2f}"


def print_side_by_side(rows: Sequence[Measurement]) -> None:
    """qkdnet's figure, the peer's and the ratios, per measurement both ran."""
    peers = {r.label: r for r in rows if r.server == PEER}
    print("\nSide by side, qkdnet first, the peer second (calls/s (p50 / p99 ms); ratio: "
          "qkdnet's calls/s over the peer's; CPU ratio: the peer's server CPU per call "
          "over qkdnet's)")
    print(f"{'measurement':58s} {'qkdnet':>24s} {'peer':>24s} {'ratio':>6s} "
          f"{'qkdnet CPU ms/call':>18s} {'peer CPU ms/call':>16s} {'CPU ratio':>9s}")
    for r in rows:
        if r.server != OURS or r.label not in peers:
            continue
        p = peers[r.label]
        print(f"{r.label:58s} {_figure(r):>24s} {_figure(p):>24s} "
              f"{_ratio(r.rate, p.rate):>6s} {_ms(r.server_cpu_per_call):>18s} "
              f"{_ms(p.server_cpu_per_call):>16s} "
              f"{_ratio(p.server_cpu_per_call, r.server_cpu_per_call):>9s}")


def print_acceptance(rows: Sequence[Measurement], idle: float | None,
                     refill: Refill | None) -> None:
    """Issue 13's acceptance figures, met or not, for qkdnet's rows."""
    print("\nIssue 13 acceptance (qkdnet; server CPU per call from /proc)")
    for r in rows:
        if r.server != OURS or r.mode not in ("same", "dec", "relay"):
            continue
        cpu = r.server_cpu_per_call
        limit = TARGET_CPU_RELAY_S if r.mode == "relay" else TARGET_CPU_SAME_S
        met = r.error_count == 0 and cpu is not None and cpu <= limit and (
            r.mode == "relay" or r.quantile(0.99) < TARGET_P99_S)
        p99 = "" if r.mode == "relay" else f", p99 < {TARGET_P99_S * 1e3:.0f} ms"
        print(f"  {r.label}: <= {limit * 1e3:.2f} ms server CPU per call{p99}: "
              f"{_ms(cpu)} ms, p99 {_ms(r.quantile(0.99))} ms -> {'met' if met else 'NOT met'}")
    if refill is not None:
        met = refill.rate_bps >= REFILL_SHARE * refill.target_bps
        print(f"  a drained KM-link refills at its own rate (>= {REFILL_SHARE:.0%}) under load:"
              f" {refill.rate_bps / 1e3:.1f} of {refill.target_bps / 1e3:.1f} kbit/s"
              f"{' (live)' if refill.live_bps is not None else ''} -> "
              f"{'met' if met else 'NOT met'}")
    if idle is not None:
        print(f"  idle qkdnet serve < {TARGET_IDLE_SHARE:.0%} of a core: {idle:.1%} -> "
              f"{'met' if idle < TARGET_IDLE_SHARE else 'NOT met'}")


# --- the run -----------------------------------------------------------------------------

def parse_args() -> tuple[argparse.Namespace, Peer | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of each measurement but the relay's (s)")
    parser.add_argument("--calls", type=int, default=0,
                        help="calls per measurement instead of --seconds")
    parser.add_argument("--workers", type=int, default=16, help="asyncio client workers")
    parser.add_argument("--client", choices=CLIENTS, default=CLIENTS[0],
                        help="each worker's HTTP client: httpx, or the lean client "
                             "(qkdnet.live.http_client: a fraction of httpx's CPU per call, "
                             "so latency shows the server, not the client)")
    parser.add_argument("--number", type=int, default=1, help="keys per Get key call")
    parser.add_argument("--key-bits", type=int, default=256, help="size of each key (bits)")
    parser.add_argument("--modes", default=None,
                        help="comma-separated, of " + ", ".join(CN_QCN_MODES)
                             + " (default: all the scenario allows)")
    parser.add_argument("--relay-calls", type=int, default=300,
                        help="64-hop Get key calls, over HTTP and in process")
    parser.add_argument("--dec-keys", type=int, default=2000,
                        help="keys fetched first for a --seconds dec run (it stops early "
                             "when they are used up)")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="measure each server's idle CPU this long first (0: not)")
    parser.add_argument("--refill-seconds", type=float, default=10.0,
                        help="longest wait for the drained KM-link to refill (s)")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="serve this scenario instead of cn-qcn (then give --master "
                             "and --slave; same, dec, cold and bidi run)")
    parser.add_argument("--master", default=None, help="master SAE with --scenario")
    parser.add_argument("--slave", default=None, help="slave SAE with --scenario")
    parser.add_argument("--prefill-bits", type=int, default=1_000_000)
    parser.add_argument("--pool-capacity-bits", type=int, default=2**21)
    parser.add_argument("--speedup", type=float, default=1.0,
                        help="qkdnet serve's --speedup: the links make key this many times "
                             "faster (issue 13 quotes the Beijing ground-station link at 20)")
    parser.add_argument("--settle-limit", type=float, default=600.0,
                        help="longest wait for the server to settle after start (s)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the in-process relay and print the top functions")
    parser.add_argument("--server-profile", type=Path, default=None,
                        help="run the server under cProfile, write its stats here and "
                             "print the top functions")
    peer = parser.add_argument_group("the peer KME (another ETSI GS QKD 014 KME)")
    peer.add_argument("--against", metavar="URL", default=None,
                      help="base URL of the master SAE's KME (https://host:port)")
    peer.add_argument("--against-ca", type=Path, help="CA certificate the KME's chains to")
    peer.add_argument("--against-cert", type=Path, help="the master SAE's client certificate")
    peer.add_argument("--against-key", type=Path, help="the master SAE's private key")
    peer.add_argument("--against-master", metavar="ID", help="the master SAE's ID")
    peer.add_argument("--against-slave", metavar="ID", help="the slave SAE's ID")
    peer.add_argument("--against-slave-url", metavar="URL",
                      help="base URL of the slave SAE's KME (default: --against)")
    peer.add_argument("--against-slave-cert", type=Path,
                      help="the slave SAE's client certificate (for dec and bidi)")
    peer.add_argument("--against-slave-key", type=Path,
                      help="the slave SAE's private key (for dec and bidi)")
    peer.add_argument("--against-no-hostname-check", action="store_true",
                      help="verify the peer KME's certificate chain to the CA but not that "
                           "it names the URL's host")
    peer.add_argument("--server-pid", type=int, action="append", default=[],
                      help="PID of a process serving the peer KME, on this machine "
                           "(repeat for several); without it the peer's CPU is not measured")
    args = parser.parse_args()
    if (args.scenario is None) != (args.master is None) or \
            (args.scenario is None) != (args.slave is None):
        parser.error("--scenario, --master and --slave go together")
    if args.scenario is not None and not args.scenario.is_file():
        parser.error(f"--scenario: no file {args.scenario}")
    allowed = CN_QCN_MODES + OPT_IN_MODES if args.scenario is None else PAIR_MODES
    args.modes = (CN_QCN_MODES if args.scenario is None else PAIR_MODES) \
        if args.modes is None else tuple(args.modes.split(","))
    wrong = [m for m in args.modes if m not in allowed]
    if wrong:
        parser.error(f"mode(s) {', '.join(wrong)} not among {', '.join(allowed)}"
                     + (" (hop, relay and inprocess need cn-qcn)" if args.scenario else ""))
    return args, peer_from(args, parser)


def check_peer(peer: Peer) -> None:
    """Exit with the reason when the peer KME does not answer over TLS; warn when it
    answers Get status with anything but a Status object (some KMEs lack it)."""
    try:
        for end in (peer.pair.master, peer.pair.slave):
            if end is not None:
                end.tls()
        status = asyncio.run(probe(peer.pair))
    except KmeUnreachable as exc:
        sys.exit(f"kme_load: the peer KME does not answer: {exc}")
    except KmeError as exc:
        print(f"peer: Get status {peer.pair.master.sae_id} -> {peer.pair.slave_id} "
              f"failed ({exc}); measuring anyway", flush=True)
        return
    except QkdnetError as exc:  # a certificate or key that does not load
        sys.exit(f"kme_load: {exc}")
    print(f"peer: Get status answered: KME {status.source_kme_id} -> {status.target_kme_id}, "
          f"{status.stored_key_count} keys of {status.key_size} bits stored", flush=True)


def main() -> None:
    args, peer = parse_args()
    if peer is not None:
        check_peer(peer)  # before the long start of qkdnet serve
    print(f"client: {client_name(args.client)}; {args.workers} asyncio workers, HTTP/1.1 "
          f"over mutual TLS, {args.number} key(s) of {args.key_bits} bits per call; "
          f"{os.cpu_count()} CPUs", flush=True)
    if "distributed" in args.modes:
        run_distributed(args)
        args.modes = tuple(m for m in args.modes if m != "distributed")
        if not args.modes:
            return
    rows: list[Measurement] = []
    refill: Refill | None = None
    with tempfile.TemporaryDirectory(prefix="kme-load-") as tmp:
        folder = Path(tmp)
        if args.scenario is None:
            scenario, hop_sae, hop_rate_bps = bench_scenario(folder)
            master, slave = MASTER, SAME_NODE_SAE
        else:
            scenario, hop_sae, master, slave = args.scenario, "", args.master, args.slave
            hop_rate_bps = 0.0
        with serving(folder, scenario, args) as server:
            print(f"qkdnet serve ({server.manifest['scenario']}, pid {server.pid}): manifest "
                  f"after {server.started_s:.1f} s ({len(server.manifest['kmes'])} KMEs)",
                  flush=True)
            wait_settled(server, master, slave, args.settle_limit)
            print(f"settled (Get status < 0.25 s for 2 s) after a further "
                  f"{server.settled_s:.1f} s", flush=True)
            print(f"before the load: {uptime()}", flush=True)
            idle, peer_idle = idle_shares(server, peer, args.idle_seconds)
            # what the KM-link refill drains holds now, before hop drains it
            settled_keys = asyncio.run(held_keys(server.pair(MASTER, hop_sae))) \
                if "refill" in args.modes else 0
            pairs = {"same": server.pair(master, slave),
                     "hop": server.pair(MASTER, hop_sae) if hop_sae else None,
                     "relay": server.pair(RELAY_MASTER, RELAY_SLAVE) if hop_sae else None}
            labels = {
                "same": "Get key, master and slave at one node" if hop_sae
                else f"Get key, {master} -> {slave}",
                "hop": f"Get key, slave one hop away ({hop_sae})",
                "relay": f"Get key Harbin->Shenzhen, {RELAY_HOPS} hops",
                "dec": "Get key with key IDs at the slave",
                "cold": "Get key, new TLS connection per call",
                "bidi": "Get key, both SAEs master at once"}
            for mode in args.modes:
                if mode == "inprocess":
                    continue
                if mode == "refill":
                    refill = asyncio.run(refill_run(
                        server, server.pair(MASTER, hop_sae), server.pair(master, slave),
                        settled_keys, hop_rate_bps * args.speedup, args.refill_seconds,
                        label="Get key at one node while the drained KM-link refills",
                        workers=args.workers, number=args.number, key_bits=args.key_bits,
                        client=args.client))
                    rows.append(dataclasses.replace(refill.load, mode=mode,
                                                    server_idle_share=idle))
                    print(refill.line(), flush=True)
                    continue
                pair = pairs.get(mode) or pairs["same"]
                assert pair is not None
                common = {"label": labels[mode], "workers": args.workers,
                          "seconds": args.seconds,
                          "calls": args.relay_calls if mode == "relay" else args.calls,
                          "number": args.number, "key_bits": args.key_bits,
                          "dec_keys_max": args.dec_keys, "client": args.client}
                rows += run_mode(pair, mode, OURS, [server.pid], idle, common)
                if peer is not None and peer.runs(mode):
                    rows += run_mode(peer.pair, mode, PEER, peer.pids, peer_idle, common)
        if args.server_profile is not None:
            print("\nWhere the server spent its time, start-up included (cProfile):")
            pstats.Stats(str(args.server_profile)).sort_stats("tottime").print_stats(20)
        if "inprocess" in args.modes:
            rows.append(inprocess_relay(folder / "inprocess", args.relay_calls, args.profile))
            rows.append(inprocess_relay(folder / "inprocess-8", args.relay_calls, False,
                                        at_once=8))
    print_rows(rows)
    if peer is not None:
        print_side_by_side(rows)
    print_acceptance(rows, idle, refill)
    print(f"\nafter the load: {uptime()}")


def run_distributed(args: argparse.Namespace) -> None:
    """The ``distributed`` mode (:mod:`distributed_load`): printed rows, figures and issue
    14's two targets."""
    print(f"distributed: cn-qcn as examples/cn-qcn-deployment.yaml (qkdnet up) and as qkdnet "
          f"serve, one after the other; lean client, {args.workers} workers; {uptime()}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="kme-load-distributed-") as tmp:
        rows, figures = distributed_load.run(
            Path(tmp), EXPORT, prefill_bits=args.prefill_bits, speedup=args.speedup,
            seconds=args.seconds, workers=args.workers, relay_calls=args.relay_calls)
    print_rows(rows)
    print("  " + ", ".join(f"{name} {value:.1f}" for name, value in figures.items()))
    hs = next(r for r in rows if r.server == "deployed" and "Harbin" in r.label)
    deployed, single = (next(r for r in rows if r.server == who and r.mode == "distributed")
                        for who in ("deployed", "one process"))
    ratio = deployed.rate / single.rate if single.rate else math.nan
    print("\nIssue 14 acceptance (distributed mode)")
    met = hs.error_count == 0 and hs.quantile(0.99) < TARGET_DISTRIBUTED_P99_S
    print(f"  Harbin->Shenzhen across processes: p99 < {TARGET_DISTRIBUTED_P99_S * 1e3:.0f} ms: "
          f"p50 {_ms(hs.quantile(0.5))} ms, p99 {_ms(hs.quantile(0.99))} ms -> "
          f"{'met' if met else 'NOT met'}")
    print(f"  aggregate Get key calls/s, deployed over one process >= "
          f"{TARGET_DISTRIBUTED_RATIO}: {deployed.rate:.0f} / {single.rate:.0f} = "
          f"{ratio:.2f} -> {'met' if ratio >= TARGET_DISTRIBUTED_RATIO else 'NOT met'}")
    print(f"after the distributed runs: {uptime()}", flush=True)


def idle_shares(server: Server, peer: Peer | None, seconds: float
                ) -> tuple[float | None, float | None]:
    """qkdnet's and the peer's idle CPU (share of one core) over ``seconds`` each, printed;
    None where not measured."""
    if peer is not None:
        print(f"peer: {peer.pair.master.kme_url}, master {peer.pair.master.sae_id}, "
              f"slave {peer.pair.slave_id}; server CPU "
              + (f"of pid {', '.join(map(str, peer.pids))}" if peer.pids
                 else "not measured (no --server-pid)"), flush=True)
    if seconds <= 0:
        return None, None
    idle = asyncio.run(idle_cpu_share([server.pid], seconds))
    line = f"idle server CPU over {seconds:g} s: qkdnet {_share(idle)} of a core"
    peer_idle = None
    if peer is not None and peer.pids:
        peer_idle = asyncio.run(idle_cpu_share(peer.pids, seconds))
        line += f", peer {_share(peer_idle)}"
    print(line, flush=True)
    return idle, peer_idle


def run_mode(pair: Pair, mode: str, server: str, pids: Sequence[int], idle: float | None,
             common: dict[str, Any]) -> list[Measurement]:
    """One measurement, printed as it ends; none (and the reason printed) when it could not
    start, say because the master could not fetch the keys for ``dec``."""
    try:
        row = asyncio.run(measure(pair, GENERATOR_MODE[mode], server=server,
                                  server_pids=pids, **common))
    except (httpx.HTTPError, KmeError, QkdnetError) as exc:
        print(f"  {server}: {common['label']}: not measured: {type(exc).__name__}: {exc}",
              flush=True)
        return []
    row = dataclasses.replace(row, mode=mode, server_idle_share=idle)
    _progress(row)
    return [row]


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _progress(row: Measurement) -> None:
    print(f"  {row.server}: {row.label}: {row.rate:.1f} calls/s, {row.error_count} errors",
          flush=True)


if __name__ == "__main__":
    main()
