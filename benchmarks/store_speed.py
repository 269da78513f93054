"""How fast a node's durable key store takes deposits and gives pads, side by side with
another qkdnet's store (the schema-2 layout of a row per 256-bit unit, at commit 80c8a2a).

Each layout runs in its own process (``PYTHONPATH`` set to its ``src`` folder), one after
the other, on a fresh SQLite file in a temporary folder, with the store's defaults (WAL,
``synchronous=NORMAL``, secure_delete). Printed per layout:

- deposits of 1 KiB blocks: Mbit/s and CPU per block, one transaction per block (what
  ``deposit`` does) and, where the store has it, ``deposit_many`` in batches of 256 blocks
  (what the supply pump does each pump); target >= 100 Mbit/s per process;
- takes of one 256-bit key's pad (2 units: pad and MAC key): take_outbound at the sender,
  take_inbound of the same ranges at the receiver, per take (wall and CPU, µs);
- the live supply pump on a three-node chain, one pump of all the key its two links made
  (fresh random blocks deposited at both ends: the old pump one transaction per block and
  end, the new one a ``deposit_many`` per store);
- a relay hop at a trusted node: take_inbound from one KM-link and take_outbound from the
  next, in one ``batch`` where the store has it (else two transactions).

Wall and CPU figures of a shared machine are noisy: each layout runs ``--repeats`` rounds and
the best wall and CPU figures are printed, ``uptime``'s load before and after, and only
figures of one run compare.

    python benchmarks/store_speed.py [--base /path/to/old/checkout/src] [--blocks N]
        [--takes N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK_BYTES = 1024
BATCH = 256
PAD_UNITS = 2  # one 256-bit key: its pad and its MAC key


def _timed(job: Callable[[], int]) -> tuple[float, float, int]:
    """(wall s, CPU s, count) of ``job``, which returns how many things it did."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = job()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def _child(blocks: int, takes: int) -> dict[str, Any]:
    """Run every measurement on this process's qkdnet; figures by name."""
    from qkdnet.keys.store import SCHEMA_VERSION, SQLiteKeyStore

    material = [os.urandom(BLOCK_BYTES) for _ in range(blocks)]
    out: dict[str, Any] = {"schema": SCHEMA_VERSION}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        capacity = 4 * blocks * BLOCK_BYTES

        def one_by_one() -> int:
            with SQLiteKeyStore(root / "single.sqlite", "A", capacity) as store:
                for n, m in enumerate(material):
                    store.deposit("A-B", n, m, True)
            return blocks

        out["deposit"] = _timed(one_by_one)
        many = getattr(SQLiteKeyStore, "deposit_many", None)
        if many is not None:
            from qkdnet.keys.pool import Deposit

            def batched() -> int:
                with SQLiteKeyStore(root / "many.sqlite", "A", capacity) as store:
                    for start in range(0, blocks, BATCH):
                        store.deposit_many([Deposit("A-B", n, material[n], True)
                                            for n in range(start, min(start + BATCH, blocks))])
                return blocks

            out["deposit_many"] = _timed(batched)

        # sender A and receiver B of KM-link A-B; a trusted node M between L1 and L2
        a = SQLiteKeyStore(root / "a.sqlite", "A", capacity)
        b = SQLiteKeyStore(root / "b.sqlite", "B", capacity)
        m = SQLiteKeyStore(root / "m.sqlite", "M", capacity)
        needed = takes * PAD_UNITS * 32 // BLOCK_BYTES + 1
        for n in range(needed):
            a.deposit("A-B", n, material[n % blocks], True)
            b.deposit("A-B", n, material[n % blocks], False)
            m.deposit("L1", n, material[n % blocks], False)
            m.deposit("L2", n, material[n % blocks], True)
        named = []

        def outbound() -> int:
            for _ in range(takes):
                named.append(a.take_outbound("A-B", PAD_UNITS)[0])
            return takes

        def inbound() -> int:
            for ranges in named:
                b.take_inbound("A-B", ranges)
            return takes

        out["take_outbound"] = _timed(outbound)
        out["take_inbound"] = _timed(inbound)
        batch = getattr(m, "batch", None)

        def hops() -> int:
            for ranges in named:
                if batch is None:
                    m.take_inbound("L1", ranges)
                    m.take_outbound("L2", PAD_UNITS)
                else:
                    with batch():
                        m.take_inbound("L1", ranges)
                        m.take_outbound("L2", PAD_UNITS)
            return takes

        out["relay_hop"] = _timed(hops)
        for store in (a, b, m):
            store.close()
        out["pump"] = _pump(root / "pump", blocks)
    return out


CHAIN = """\
qkdnet_scenario: 1
name: store-speed
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_access, lat: 40.6, lon: 116.6}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: c, length_km: 60, device_type: II}
"""


def _pump(folder: Path, blocks: int) -> tuple[float, float, int]:
    """The live key supply on the chain a--b--c: both links made ``blocks`` / 2 blocks in
    one second, pumped without a budget (made with fresh random bytes, stored at both
    ends)."""
    from qkdnet.files.networks import load_network
    from qkdnet.live.keynet import KeyNetwork, served_nodes

    folder.mkdir()
    (folder / "chain.yaml").write_text(CHAIN)
    network = load_network(folder / "chain.yaml")
    keynet = KeyNetwork(network, folder / "stores", served_nodes(network),
                        capacity_bytes_per_link=4 * blocks * BLOCK_BYTES)
    keynet.supply.start(0.0)
    rate = blocks / 2 * BLOCK_BYTES * 8 + 1
    keynet.supply.set_rates(dict.fromkeys(network.link, rate), 0.0)
    figures = _timed(lambda: int(keynet.supply.pump(1.0)))
    for store in keynet.stores.values():
        store.close()
    return figures


def _best(blocks: int, takes: int, repeats: int) -> dict[str, Any]:
    """The best wall and the best CPU time of each measurement over ``repeats`` rounds (a
    busy machine only ever makes a figure worse)."""
    best = _child(blocks, takes)
    for _ in range(repeats - 1):
        for name, figures in _child(blocks, takes).items():
            if name != "schema":
                wall, cpu, count = figures
                best[name] = (min(wall, best[name][0]), min(cpu, best[name][1]), count)
    return best


def _run(src: Path, blocks: int, takes: int, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, __file__, "--child", "--blocks", str(blocks),
                           "--takes", str(takes), "--repeats", str(repeats)], env=env,
                          capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def _rows(figures: dict[str, Any]) -> dict[str, str]:
    rows: dict[str, str] = {}
    for name in ("deposit", "deposit_many"):
        if name in figures:
            wall, cpu, count = figures[name]
            rows[f"{name} 1 KiB blocks, Mbit/s (CPU µs/block)"] = (
                f"{count * BLOCK_BYTES * 8 / wall / 1e6:8.1f} ({cpu / count * 1e6:6.1f})")
    wall, cpu, count = figures["pump"]
    rows["supply pump (both ends), Mbit/s (CPU µs/block)"] = (
        f"{count * BLOCK_BYTES * 8 / wall / 1e6:8.1f} ({cpu / count * 1e6:6.1f})")
    for name in ("take_outbound", "take_inbound", "relay_hop"):
        wall, cpu, count = figures[name]
        rows[f"{name}, per call µs wall (CPU)"] = (
            f"{wall / count * 1e6:8.1f} ({cpu / count * 1e6:6.1f})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="src folder of the qkdnet to compare with")
    parser.add_argument("--blocks", type=int, default=8192)
    parser.add_argument("--takes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per layout; the best wall and CPU figures are kept")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_best(args.blocks, args.takes, args.repeats)))
        return
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True,
                                  check=False).stdout.strip())
    here = Path(__file__).resolve().parents[1] / "src"
    layouts = {"this": _run(here, args.blocks, args.takes, args.repeats)}
    if args.base is not None:
        layouts["base"] = _run(args.base, args.blocks, args.takes, args.repeats)
    tables = {name: _rows(figures) for name, figures in layouts.items()}
    names = list(tables)
    print(f"{'':48s}" + "".join(f"{n + ' (schema ' + layouts[n]['schema'] + ')':>24s}"
                                for n in names))
    for row in tables["this"]:
        print(f"{row:48s}" + "".join(f"{tables[n].get(row, '–'):>24s}" for n in names))
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True,
                                  check=False).stdout.strip())


if __name__ == "__main__":
    main()
