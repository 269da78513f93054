"""The node processes of a deployment on this machine: ``qkdnet up`` starts them, ``qkdnet
down`` stops them, ``qkdnet status`` lists them with their health.

Layout under the base folder ``BASE`` (``--dir``): ``BASE/pki`` the deployment's PKI
without the CA key (made on the first ``up`` in ``BASE-ca``, naming every host address, and
copied, as ``qkdnet serve`` does), and per process ``BASE/<process>/`` its data folder
(key stores, manifest, audit), ``node.pid`` and ``node.log``. A process is started as
``python -m qkdnet node --deployment FILE --process ID --dir BASE/ID --pki BASE/pki`` in a
session of its own, so it outlives the command that started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qkdnet.errors import ParameterError, QkdnetError
from qkdnet.files.deployment import Deployment, ProcessPlacement
from qkdnet.live.pki import Pki, copy_public_pki, init_pki, load_pki
from qkdnet.topology.served import served_nodes

#: How long ``up`` waits for a process's manifest, and ``down`` for a process to exit (s).
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_LOOPBACK = ("127.", "::1", "localhost")


class NodeStartFailed(QkdnetError):
    """A node process exited, or wrote no manifest in time; the message names its log."""


@dataclass(frozen=True)
class NodeProcessState:
    """What ``qkdnet status`` shows of one node process."""

    process: str
    host: str
    nodes: int
    pid: int | None  # None: not running
    kme_listening: bool
    km_listening: bool


def local_hosts(deployment: Deployment, host: str | None) -> list[str]:
    """The host ids ``up`` acts on: ``host`` if given, else every host whose address is a
    loopback address; ParameterError naming ``--host`` if that leaves none."""
    if host is not None:
        if host not in {h.id for h in deployment.hosts}:
            raise ParameterError("--host", host, "no such host in the deployment; it has "
                                 + ", ".join(h.id for h in deployment.hosts))
        return [host]
    found = [h.id for h in deployment.hosts if h.address.startswith(_LOOPBACK)]
    if not found:
        raise ParameterError("--host", None, "no host of the deployment is on loopback: "
                             "name the host this machine is with --host")
    return found


def deployment_pki(deployment: Deployment, base: Path) -> Pki:
    """``BASE/pki``, made if missing (CA in ``BASE-ca``, every node and SAE of the
    scenario, every host address named in the node certificates)."""
    public = base / "pki"
    if (public / "ca.crt").exists():
        return load_pki(public)
    ca_folder = base.with_name(base.name + "-ca")
    network = deployment.network
    ca = load_pki(ca_folder) if (ca_folder / "ca.crt").exists() else init_pki(
        ca_folder, served_nodes(network, deployment.all_nodes), [s.id for s in network.saes],
        kme_names=sorted({h.address for h in deployment.hosts}))
    return copy_public_pki(ca, public)


def start_processes(deployment: Deployment, deployment_file: Path, base: Path,
                    hosts: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Start every node process placed on ``hosts`` that is not running, with ``extra``
    arguments to ``qkdnet node``; wait for their manifests. The ids started."""
    pki = deployment_pki(deployment, base)
    started: list[tuple[ProcessPlacement, subprocess.Popen[bytes], Path]] = []
    for placement in deployment.processes:
        if placement.host not in hosts or running_pid(base, placement.id) is not None:
            continue
        folder = base / placement.id
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # it holds key material
        manifest = folder / "manifest.json"
        manifest.unlink(missing_ok=True)
        log = (folder / "node.log").open("ab")
        command = [sys.executable, "-m", "qkdnet", "node", "--deployment",
                   str(deployment_file.resolve()), "--process", placement.id, "--dir",
                   str(folder.resolve()), "--pki", str(pki.folder.resolve()), *extra]
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        (folder / "node.pid").write_text(f"{child.pid}\n")
        started.append((placement, child, manifest))
    deadline = time.monotonic() + START_TIMEOUT_S
    for placement, child, manifest in started:
        while not _manifest_of(manifest, child.pid):
            if child.poll() is not None:
                raise NodeStartFailed(f"node process {placement.id} exited "
                                      f"({child.returncode}): {_last_line(manifest.parent)}")
            if time.monotonic() > deadline:
                raise NodeStartFailed(f"node process {placement.id} wrote no manifest "
                                      f"within {START_TIMEOUT_S:g} s; see "
                                      f"{manifest.parent / 'node.log'}")
            time.sleep(0.1)
    return [p.id for p, _, _ in started]


def stop_processes(deployment: Deployment, base: Path, kill: bool = False) -> list[str]:
    """Stop every running node process of the deployment under ``base`` (SIGTERM, then
    SIGKILL after STOP_TIMEOUT_S; ``kill``: SIGKILL at once). The ids stopped."""
    stopped = []
    for placement in deployment.processes:
        pid = running_pid(base, placement.id)
        if pid is None:
            continue
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (base / placement.id / "node.pid").unlink(missing_ok=True)
        stopped.append(placement.id)
    return stopped


def process_states(deployment: Deployment, base: Path) -> list[NodeProcessState]:
    """Each node process of the deployment: whether it runs (by its pid file), and whether
    its first KME port and its KM port accept connections."""
    out = []
    for p in deployment.processes:
        address = deployment.host(p.host).address
        out.append(NodeProcessState(p.id, p.host, len(p.nodes), running_pid(base, p.id),
                                    _accepts(address, p.kme_port), _accepts(address, p.km_port)))
    return out


def running_pid(base: Path, process: str) -> int | None:
    """The pid of node process ``process`` under ``base`` if its pid file names a live
    ``qkdnet node`` of it, else None."""
    try:
        pid = int((base / process / "node.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"node" in command and process.encode() in command else None


def _last_line(folder: Path) -> str:
    """The last line of a node process's log, and where the log is."""
    log = folder / "node.log"
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"{lines[-1] if lines else 'no output'} (log: {log})"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _manifest_of(path: Path, pid: int) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("pid") == pid)
    except (OSError, ValueError):
        return False


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True
