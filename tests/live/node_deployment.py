"""What the node-process tests share: free ports for a deployment file, and the qkdnet
command line run in a folder."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def free_ports(n: int, width: int = 2) -> list[int]:
    """``n`` ports free now, each with the ``width - 1`` next ones free too (a process's
    KMEs take consecutive ports)."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            for k in range(1, width):
                with socket.socket() as next_one:
                    next_one.bind(("127.0.0.1", port + k))
        except OSError:
            continue
        if not any(abs(port - p) < width for p in found):
            found.append(port)
    return found


def qkdnet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m qkdnet ARGS` in ``cwd``, its output captured (at most 180 s)."""
    return subprocess.run([sys.executable, "-m", "qkdnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180)
