"""``kme_load.py --modes distributed``: cn-qcn deployed as one node process per region
(``examples/cn-qcn-deployment.yaml`` with ``qkdnet up``: 7 node processes and the
controller service) against ``qkdnet serve`` of the same scenario, in the same run, on the
same cores.

Two measurements on each:

- **Harbin -> Shenzhen**: Get key sae-harbin -> sae-shenzhen, whose relay crosses the
  regions' processes (KM-to-KM over mutual TLS) in the deployment; p50/p99 latency and
  the servers' CPU per call.
- **Aggregate**: one SAE pair at one node of each region (added to the scenario as
  ``bench-<node>-m`` / ``-s``), all loaded at once; calls/s in all. In one process every
  pair shares one event loop; deployed, each region's process serves its own pair.

Server CPU comes from /proc for every serving process (the deployment's node processes and
controller; ``qkdnet serve``'s one process); the client is the lean one (the servers, not
the client, are the bottleneck) in this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from etsi014_load import Measurement, Pair, SaeEnd, measure, process_cpu_s
from qkdnet.apps.sae_client import KmeError, SaeClient
from qkdnet.files.deployment import load_deployment
from qkdnet.files.networks import load_network, save_network
from qkdnet.live.launch import start_serve
from qkdnet.topology.model import SAE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cn-qcn-deployment.yaml"
HS = ("sae-harbin", "sae-shenzhen")
SETTLE_LIMIT_S = 180.0


@dataclasses.dataclass
class Target:
    """A running network to load: its manifests' SAEs and CA, and the serving pids."""

    name: str
    saes: dict[str, Any]
    ca: str
    pids: list[int]

    def end(self, sae: str) -> SaeEnd:
        entry = self.saes[sae]
        return SaeEnd(sae, entry["kme_url"], Path(entry["cert"]), Path(entry["key"]),
                      Path(self.ca))

    def pair(self, master: str, slave: str) -> Pair:
        return Pair(self.end(master), slave, self.end(slave))

    def client(self, sae: str) -> SaeClient:
        entry = self.saes[sae]
        return SaeClient(entry["kme_url"], entry["cert"], entry["key"], self.ca, timeout_s=10)


def bench_deployment(folder: Path, export: Sequence[str]) -> tuple[Path, Path, list[str]]:
    """cn-qcn (exported) with a benchmark SAE pair at one node of each region process of
    the example deployment, and the deployment naming that scenario file. Returns the
    scenario, the deployment file and the pairs' masters."""
    exported = folder / "cn-qcn.yaml"
    subprocess.run([*export, str(exported)], check=True, capture_output=True)
    network = load_network(exported)
    plan = load_deployment(EXAMPLE)
    extra: list[SAE] = []
    masters = []
    for process in plan.processes:
        with_sae = [s.node for s in network.saes if s.node in process.nodes]
        node = with_sae[0] if with_sae else process.nodes[0]
        extra += [SAE(f"bench-{node}-m", node, "Benchmark master"),
                  SAE(f"bench-{node}-s", node, "Benchmark slave")]
        masters.append(f"bench-{node}-m")
    scenario = save_network(dataclasses.replace(network, name="cn-qcn-bench",
                                                saes=network.saes + tuple(extra)),
                            folder / "cn-qcn-bench.yaml")
    document = yaml.safe_load(EXAMPLE.read_text())
    document["scenario"] = scenario.name
    deployment = folder / "deployment.yaml"
    deployment.write_text(yaml.safe_dump(document, sort_keys=False))
    return scenario, deployment, masters


def up(folder: Path, deployment: Path, prefill_bits: int, speedup: float) -> Target:
    """``qkdnet up`` the deployment (base ``folder/base``); its SAEs, CA and pids."""
    done = subprocess.run([sys.executable, "-m", "qkdnet", "up", str(deployment), "--dir",
                           str(folder / "base"), "--prefill-bits", str(prefill_bits),
                           "--speedup", repr(speedup)], capture_output=True, text=True,
                          timeout=SETTLE_LIMIT_S)
    if done.returncode != 0:
        raise RuntimeError(f"qkdnet up failed: {done.stdout}{done.stderr}")
    saes: dict[str, Any] = {}
    ca, pids = "", []
    for manifest in sorted((folder / "base").glob("*/manifest.json")):
        document = json.loads(manifest.read_text())
        pids.append(int(document["pid"]))
        saes.update(document.get("saes", {}))
        ca = document.get("ca", ca)
    return Target("deployed", saes, ca, pids)


def down(folder: Path, deployment: Path) -> None:
    subprocess.run([sys.executable, "-m", "qkdnet", "down", str(deployment), "--dir",
                    str(folder / "base")], capture_output=True, timeout=120)


def wait_routes(target: Target, pairs: Sequence[tuple[str, str]]) -> float:
    """Wait until Get status answers for every pair (routes known, pools filled); the
    seconds it took."""
    start = time.monotonic()
    for master, slave in pairs:
        with target.client(master) as kme:
            while True:
                try:
                    if kme.status(slave).stored_key_count > 0:
                        break
                except KmeError:
                    pass
                if time.monotonic() - start > SETTLE_LIMIT_S:
                    raise RuntimeError(f"{target.name}: no route or key {master} -> {slave}")
                time.sleep(0.2)
    return time.monotonic() - start


async def aggregate(target: Target, masters: Sequence[str], seconds: float,
                    workers: int) -> Measurement:
    """Every pair loaded at once, ``workers`` workers in all; one row."""
    each = max(1, workers // len(masters))
    jobs = [measure(target.pair(m, m.removesuffix("-m") + "-s"), "enc",
                    label="", server=target.name, workers=each, seconds=seconds,
                    client="lean") for m in masters]
    began, cpu = time.perf_counter(), process_cpu_s(target.pids)
    rows = await asyncio.gather(*jobs)
    after = process_cpu_s(target.pids)
    row = Measurement(f"Get key, {len(masters)} pairs at one node of each region at once",
                      target.name, "distributed")
    for r in rows:
        row.latencies += r.latencies
        row.errors.update(r.errors)
        row.client_cpu_s += r.client_cpu_s / len(rows)  # one client process: counted once
    row.wall_s = time.perf_counter() - began
    if cpu is not None and after is not None:
        row.server_cpu_s = after - cpu
    return row


async def harbin_shenzhen(target: Target, calls: int, workers: int) -> Measurement:
    return await measure(target.pair(*HS), "enc",
                         label="Get key Harbin->Shenzhen, across the region processes"
                         if target.name == "deployed" else "Get key Harbin->Shenzhen",
                         server=target.name, workers=workers, calls=calls,
                         server_pids=target.pids, client="lean")


def run(folder: Path, export: Sequence[str], *, prefill_bits: int, speedup: float,
        seconds: float, workers: int, relay_calls: int
        ) -> tuple[list[Measurement], dict[str, float]]:
    """Both measurements, deployed and in one process; the rows and a few figures (start
    and settle seconds, RSS)."""
    scenario, deployment, masters = bench_deployment(folder, export)
    pairs = [HS, *((m, m.removesuffix("-m") + "-s") for m in masters)]
    rows: list[Measurement] = []
    figures: dict[str, float] = {}
    began = time.monotonic()
    deployed = up(folder, deployment, prefill_bits, speedup)
    try:
        figures["deployed start s"] = time.monotonic() - began
        figures["deployed settle s"] = wait_routes(deployed, pairs)
        figures["deployed RSS MB"] = sum(_rss_mb(p) for p in deployed.pids)
        rows.append(asyncio.run(harbin_shenzhen(deployed, relay_calls, workers)))
        rows.append(asyncio.run(aggregate(deployed, masters, seconds, workers)))
    finally:
        down(folder, deployment)
    began = time.monotonic()
    served = start_serve(folder / "serve", str(scenario),
                         ["--prefill-bits", str(prefill_bits), "--speedup", repr(speedup)],
                         timeout_s=SETTLE_LIMIT_S)
    try:
        single = Target("one process", served.manifest["saes"], served.manifest["ca"],
                        [int(served.manifest["pid"])])
        figures["one process start s"] = time.monotonic() - began
        figures["one process settle s"] = wait_routes(single, pairs)
        figures["one process RSS MB"] = _rss_mb(single.pids[0])
        rows.append(asyncio.run(harbin_shenzhen(single, relay_calls, workers)))
        rows.append(asyncio.run(aggregate(single, masters, seconds, workers)))
    finally:
        served.stop(30)
    return rows, figures


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
