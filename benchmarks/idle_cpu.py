"""Idle CPU of ``qkdnet serve``: the share of one core the serving process takes while no
client calls it (key supply, reports to the NMS, held-key expiry and the servers' own
timers are all that runs).

Starts ``qkdnet serve`` of a scenario (CN-QCN by default) in a subprocess, waits for its
manifest and ``--settle`` seconds more, then reads the process's utime+stime from
``/proc/<pid>/stat`` over ``--seconds`` (Linux only). Target: under 2 % of a core.

    .venv/bin/python benchmarks/idle_cpu.py [--scenario cn-qcn] [--seconds 30]
        [--settle 10] [--samples 3] [-- extra serve options]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from etsi014_load import process_cpu_s  # benchmarks/: the script's own folder
from qkdnet.live.launch import start_serve

TARGET_SHARE = 0.02  # of one core
START_TIMEOUT_S = 600.0


def cpu_s(pid: int) -> float:
    """utime+stime of process ``pid`` so far (s); SystemExit if it has gone."""
    spent = process_cpu_s([pid])
    if spent is None:
        raise SystemExit(f"idle_cpu: qkdnet serve (pid {pid}) has gone")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="cn-qcn")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each measurement (s)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="wait after the manifest before measuring (s)")
    parser.add_argument("--samples", type=int, default=1,
                        help="measurements one after the other")
    parser.add_argument("serve_options", nargs="*", help="extra options for qkdnet serve")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as tmp:
        began = time.monotonic()
        served = start_serve(Path(tmp) / "live", args.scenario, args.serve_options,
                             logs=Path(tmp) / "serve", timeout_s=START_TIMEOUT_S)
        try:
            pid = served.process.pid
            print(f"qkdnet serve {args.scenario}: {len(served.manifest['kmes'])} KMEs, "
                  f"manifest after {time.monotonic() - began:.1f} s; settling "
                  f"{args.settle:.0f} s", flush=True)
            time.sleep(args.settle)
            shares = []
            for i in range(args.samples):
                cpu0, wall0 = cpu_s(pid), time.monotonic()
                time.sleep(args.seconds)
                share = (cpu_s(pid) - cpu0) / (time.monotonic() - wall0)
                shares.append(share)
                print(f"  sample {i + 1}: {share * 100:.2f} % of a core over "
                      f"{args.seconds:.0f} s", flush=True)
        finally:
            served.stop(30)
    best, worst = min(shares), max(shares)
    print(f"idle CPU: {best * 100:.2f} % (best) .. {worst * 100:.2f} % (worst) of a core; "
          f"target < {TARGET_SHARE * 100:.0f} % -> "
          f"{'met' if worst < TARGET_SHARE else 'NOT met'}")


if __name__ == "__main__":
    main()
