"""Where one hop of the in-process 64-hop relay (Harbin to Shenzhen over CN-QCN, SQLite
stores, no HTTP, one call at a time) spends its time, in microseconds per hop: the store's
takes, the BEGIN and COMMIT of each store's group commit round (one call per round here:
concurrent calls share them), the one-time pad's seal and unseal, and the rest (the Key
Manager's rules and the in-memory transport), each measured by a wrapper around the call
(a wrapper adds ~0.3 us per call).

    python benchmarks/relay_hop_split.py [--calls N]

The calls are ``benchmarks/kme_load.py``'s ``inprocess_relay`` (warm-up calls included in
the parts, so the parts are divided by every call made).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import kme_load
from qkdnet.keys import relay_crypto, store

HOPS = 64


def _timed(owner: type, name: str, spent: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall time (s) to ``spent[name]``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start

    label = f"{owner.__name__}.{name}"
    spent[label] = 0.0
    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed relays (keys)")
    args = parser.parse_args()
    spent: dict[str, float] = {}
    for owner, name in ((store.SQLiteKeyStore, "take_inbound"),
                        (store.SQLiteKeyStore, "take_outbound"),
                        (store.SQLiteKeyStore, "begin_round"),
                        (store.SQLiteKeyStore, "end_round"),
                        (relay_crypto.OneTimePad, "seal"),
                        (relay_crypto.OneTimePad, "unseal")):
        _timed(owner, name, spent)
    with tempfile.TemporaryDirectory() as folder:
        row = kme_load.inprocess_relay(Path(folder), args.calls, profile=False)
    hops = (args.calls + kme_load.WARM_UP_CALLS) * HOPS
    cpu_us = row.server_cpu_s / args.calls / HOPS * 1e6
    print(f"CPU per 64-hop key: {row.server_cpu_s / args.calls * 1e3:.2f} ms "
          f"({cpu_us:.1f} us per hop, timed calls only)")
    for label, seconds in spent.items():
        print(f"  {label:32} {seconds / hops * 1e6:6.1f} us per hop (wall)")


if __name__ == "__main__":
    main()
