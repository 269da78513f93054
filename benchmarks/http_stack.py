"""The HTTP/TLS layer alone: one trivial ASGI app served over mutual TLS by qkdnet's server
stack (uvicorn's httptools protocol on uvloop, the client certificate read once per
connection: what every KME runs on) and, when it is installed, by granian (a Rust HTTP
server for ASGI; ``pip install granian``), each loaded by the same lean client.

    python benchmarks/http_stack.py [--seconds 10] [--workers 16] [--stacks qkdnet,granian]

The app answers every request with the same Key container of one 256-bit key (zeros: no
key material), so the figures are what the stack costs per call, without key logic. The
server's CPU per call comes from /proc (the server process and its children: granian
serves from a worker process). Issue 13 asked to measure granian as a candidate: it
verifies the client certificate against a CA (``--ssl-client-verify``) but, as of 2.8,
does not hand it to the application (no ``tls`` extension in the ASGI scope), so a KME on
it could not tell which SAE calls; this script measures what that layer would save.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from etsi014_load import Measurement, Pair, SaeEnd, measure
from qkdnet.live.pki import init_pki

STACKS = ("qkdnet", "granian")
SAE, SLAVE, KME = "sae-bench", "sae-slave", "kme-bench"
_REPLY = json.dumps({"keys": [{"key_ID": "00000000-0000-7000-8000-000000000000",
                               "key": base64.b64encode(bytes(32)).decode()}]},
                    separators=(",", ":")).encode()
_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_REPLY))]

Scope = MutableMapping[str, Any]


async def app(scope: Scope, receive: Callable[[], Awaitable[Scope]],
              send: Callable[[Scope], Awaitable[None]]) -> None:
    """The trivial app: the body read, the same Key container sent back."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEAD})
    await send({"type": "http.response.body", "body": _REPLY})


def serve_qkdnet(port: int, pki: Path) -> None:
    """Serve :func:`app` on qkdnet's stack (``make_server``) on uvloop until killed."""
    import uvloop

    from qkdnet.live.pki import load_pki
    from qkdnet.live.tls_server import make_server, server_ssl_context
    files = load_pki(pki)
    context = server_ssl_context(files.kme_cert(KME), files.kme_key(KME), files.ca_cert)
    server = make_server(app, "127.0.0.1", port, context)
    uvloop.run(server.serve())


def start(stack: str, port: int, pki: Path) -> subprocess.Popen[bytes]:
    """The server of ``stack`` on ``port``, started (wait for :func:`wait_listening`)."""
    here = Path(__file__).resolve().parent
    if stack == "qkdnet":
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-qkdnet", str(port),
                   "--pki", str(pki)]
    else:
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host",
                   "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--runtime-threads", "1", "--loop", "uvloop", "--no-ws", "--http", "1",
                   "--ssl-certificate", str(pki / "kme" / f"{KME}.crt"),
                   "--ssl-keyfile", str(pki / "kme" / f"{KME}.key"),
                   "--ssl-ca", str(pki / "ca.crt"), "--ssl-client-verify",
                   "--working-dir", str(here), "--no-log", "http_stack:app"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=here)


def wait_listening(port: int, process: subprocess.Popen[bytes], limit_s: float = 30) -> None:
    """Return once ``port`` accepts connections; RuntimeError if the server died first."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the server exited ({process.returncode}): {error[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {limit_s} s")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian's worker is a child of its main process)."""
    pids, todo = [], [pid]
    while todo:
        here = todo.pop()
        pids.append(here)
        for task in Path(f"/proc/{here}/task").iterdir():
            todo += [int(p) for p in (task / "children").read_text().split()]
    return pids


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(stack: str, pki: Path, args: argparse.Namespace) -> Measurement:
    port = free_port()
    process = start(stack, port, pki)
    try:
        wait_listening(port, process)
        end = SaeEnd(SAE, f"https://127.0.0.1:{port}", pki / "sae" / f"{SAE}.crt",
                     pki / "sae" / f"{SAE}.key", pki / "ca.crt")
        return asyncio.run(measure(Pair(end, SLAVE), "enc", label="trivial app, keep-alive",
                                   server=stack, workers=args.workers, seconds=args.seconds,
                                   calls=args.calls, server_pids=tree(process.pid),
                                   client="lean"))
    finally:
        process.terminate()
        process.wait(15)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (s)")
    parser.add_argument("--calls", type=int, default=0, help="calls per run instead")
    parser.add_argument("--workers", type=int, default=16, help="asyncio client workers")
    parser.add_argument("--stacks", default=",".join(STACKS),
                        help=f"comma-separated, of {', '.join(STACKS)}")
    parser.add_argument("--serve-qkdnet", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_qkdnet is not None:
        serve_qkdnet(args.serve_qkdnet, args.pki)
        return
    stacks = [s for s in args.stacks.split(",") if s]
    for stack in stacks:
        if stack not in STACKS:
            parser.error(f"--stacks: unknown stack {stack!r}; the stacks are "
                         f"{', '.join(STACKS)}")
    if "granian" in stacks and importlib.util.find_spec("granian") is None:
        print("granian is not installed (pip install granian): measuring qkdnet's stack only")
        stacks.remove("granian")
    print(f"lean client, {args.workers} asyncio workers, HTTP/1.1 over mutual TLS; "
          f"{os.cpu_count()} CPUs; {Path('/proc/loadavg').read_text().split()[:3]} load")
    with tempfile.TemporaryDirectory(prefix="http-stack-") as tmp:
        pki = init_pki(Path(tmp), [KME], [SAE]).folder
        rows = [run(stack, pki, args) for stack in stacks]
    print(f"\n{'stack':8s} {'calls':>7s} {'errors':>6s} {'calls/s':>8s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'srv CPU ms/call':>15s} {'cli CPU ms/call':>15s}")
    for r in rows:
        cpu = r.server_cpu_per_call
        print(f"{r.server:8s} {r.calls:7d} {r.error_count:6d} {r.rate:8.1f} "
              f"{r.quantile(0.5) * 1e3:7.2f} {r.quantile(0.99) * 1e3:7.2f} "
              f"{'-' if cpu is None else f'{cpu * 1e3:.3f}':>15s} "
              f"{r.client_cpu_per_call * 1e3:15.3f}")
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
