"""The processes of a deployment on this machine: ``qkdnet up`` starts them, ``qkdnet down``
stops them, ``qkdnet status`` lists them with their health. They are the node processes,
the controller service, the EMS of each region and the NMS placed on this machine's
host(s).

Layout under the base folder ``BASE`` (``--dir``): ``BASE/pki`` the deployment's PKI
without the CA key (made on the first ``up`` in ``BASE-ca``: every node, SAE and the
controller, naming every host address; copied as ``qkdnet serve`` does), per node process
``BASE/<process>/`` its data folder (key stores, manifest, audit), ``node.pid`` and
``node.log``, ``BASE/controller/`` with ``controller.pid`` and ``controller.log``,
``BASE/devices/`` (``qkd-devices.pid``, ``qkd-devices.log``) where the deployment places the
emulated QKD devices' service,
``BASE/nms/`` (``nms.pid``, ``nms.log``, the O&M operators and audit log) and
``BASE/ems-<region>/`` (``ems.pid``, ``ems.log``). A process is started as ``python -m
qkdnet node --deployment FILE --process ID --dir BASE/ID --pki BASE/pki`` (or ``qkdnet
controller ...``, ``qkdnet qkd-devices ...``, ``qkdnet nms ...``, ``qkdnet ems ... --region
R``) in a session of its own, so it outlives the command that started it; the controller
first, then the devices service, the NMS, the EMSs and the node processes (the devices
service gets the nodes' ``--speedup``, so its devices make key as fast as the nodes'
own).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from qkdnet.errors import ParameterError, QkdnetError
from qkdnet.files.deployment import Deployment
from qkdnet.keys.domain_border import interop_kms_ids
from qkdnet.live.border_supply import FIGURES_FILE, read_figures
from qkdnet.live.pki import Pki, copy_public_pki, init_pki, load_pki
from qkdnet.topology.served import served_nodes
from qkdnet.topology.service_ids import service_ids

#: How long ``up`` waits for a process's manifest, and ``down`` for a process to exit (s).
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_LOOPBACK = ("127.", "::1", "localhost")
#: The folder (under BASE) and the name of the controller service's process.
CONTROLLER = "controller"
#: The folder (under BASE) and the name of the NMS's process.
NMS = "nms"
#: The folder (under BASE) and the name of the emulated devices' service.
DEVICES = "devices"


@dataclass(frozen=True)
class _Managed:
    """A process ``up`` starts: its folder under BASE, its kind (node, controller,
    qkd-devices, nms or ems: the names of its pid and log files), the host it is placed on
    and its ``qkdnet`` arguments."""

    name: str
    kind: str
    host: str
    args: tuple[str, ...]


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
    scenario, the interop KMSs of its gateways between operators' domains, the controller,
    each region's EMS and the NMS, every host address named in the KME-type
    certificates)."""
    public = base / "pki"
    if (public / "ca.crt").exists():
        return load_pki(public)
    ca_folder = base.with_name(base.name + "-ca")
    network = deployment.network
    nodes = served_nodes(network, deployment.all_nodes)
    ca = load_pki(ca_folder) if (ca_folder / "ca.crt").exists() else init_pki(
        ca_folder, [*nodes, *interop_kms_ids(network, nodes), *service_ids(network)],
        [s.id for s in network.saes], kme_names=sorted({h.address for h in deployment.hosts}))
    return copy_public_pki(ca, public)


def managed(deployment: Deployment, deployment_file: Path, base: Path, pki: Path
            ) -> list[_Managed]:
    """Every process of the deployment ``up`` manages: the controller, the devices service
    (where placed), the NMS, the EMSs, the node processes (the options of the node
    processes and the devices service are added at start, see :func:`start_processes`)."""
    common = ("--deployment", str(deployment_file.resolve()), "--pki", str(pki.resolve()))
    out = [_Managed(CONTROLLER, "controller", deployment.controller.host,
                    ("controller", *common, "--dir", str((base / CONTROLLER).resolve())))]
    if deployment.devices is not None:
        out.append(_Managed(DEVICES, "qkd-devices", deployment.devices.host,
                            ("qkd-devices", *common, "--dir", str((base / DEVICES).resolve()))))
    out.append(_Managed(NMS, "nms", deployment.nms.host,
                        ("nms", *common, "--dir", str((base / NMS).resolve()))))
    out += [_Managed(f"ems-{e.region}", "ems", e.host,
                     ("ems", *common, "--region", e.region, "--dir",
                      str((base / f"ems-{e.region}").resolve())))
            for e in deployment.ems]
    out += [_Managed(p.id, "node", p.host,
                     ("node", *common, "--process", p.id, "--dir",
                      str((base / p.id).resolve())))
            for p in deployment.processes]
    return out


def start_processes(deployment: Deployment, deployment_file: Path, base: Path,
                    hosts: Sequence[str], extra: Sequence[str] | None = None,
                    devices_extra: Sequence[str] = (),
                    only: Collection[str] | None = None) -> list[str]:
    """Start every process placed on ``hosts`` that is not running (the controller service
    first, then the NMS, the EMSs, the node processes), with ``extra`` arguments to
    ``qkdnet node`` (None: those each node process was last started with, recorded in
    ``BASE/<process>/node.options``) and their ``--speedup`` and ``devices_extra`` to the
    devices service; wait for each one's manifest before the next starts. The names
    started."""
    pki = deployment_pki(deployment, base)
    started = []
    for proc in managed(deployment, deployment_file, base, pki.folder):
        if proc.host not in hosts or running_pid(base, proc) is not None \
                or (only is not None and proc.name not in only):
            continue
        folder = base / proc.name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # it holds key material
        manifest = folder / "manifest.json"
        manifest.unlink(missing_ok=True)
        args = proc.args
        if proc.kind == "node":
            args = (*args, *_node_options(folder, extra))
        elif proc.kind == "qkd-devices":
            args = (*args, *_node_options(folder, None if extra is None
                                          else [*_speedup_only(extra), *devices_extra]))
        log = (folder / f"{proc.kind}.log").open("ab")
        child = subprocess.Popen([sys.executable, "-m", "qkdnet", *args], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        log.close()
        (folder / f"{proc.kind}.pid").write_text(f"{child.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _manifest_of(manifest, child.pid):
            if child.poll() is not None:
                raise NodeStartFailed(f"{proc.kind} process {proc.name} exited "
                                      f"({child.returncode}): {_last_line(folder, proc)}")
            if time.monotonic() > deadline:
                raise NodeStartFailed(f"{proc.kind} process {proc.name} wrote no manifest "
                                      f"within {START_TIMEOUT_S:g} s; see "
                                      f"{folder / (proc.kind + '.log')}")
            time.sleep(0.1)
        started.append(proc.name)
    return started


def stop_processes(deployment: Deployment, deployment_file: Path, base: Path,
                   kill: bool = False) -> list[str]:
    """Stop every running process of the deployment under ``base``, the nodes first and
    the controller last (SIGTERM, then SIGKILL after STOP_TIMEOUT_S; ``kill``: SIGKILL at
    once). The names
    stopped."""
    stopped = []
    for proc in reversed(managed(deployment, deployment_file, base, base / "pki")):
        pid = running_pid(base, proc)
        if pid is None:
            continue
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (base / proc.name / f"{proc.kind}.pid").unlink(missing_ok=True)
        stopped.append(proc.name)
    return stopped


def kill_node_process(deployment: Deployment, deployment_file: Path, base: Path,
                      node: str) -> str:
    """SIGKILL the node process that runs ``node`` (and so every node placed with it), as
    a crash would; its name. ParameterError if the node is not placed, or its process is
    not running from ``base`` on this machine."""
    try:
        placement = deployment.process_of(node)
    except KeyError:
        raise ParameterError("NODE", node, "not placed in the deployment") from None
    proc = next(p for p in managed(deployment, deployment_file, base, base / "pki")
                if p.kind == "node" and p.name == placement.id)
    pid = running_pid(base, proc)
    if pid is None:
        raise ParameterError("NODE", node, f"its process {placement.id} is not running from "
                             f"{base} on this machine")
    os.kill(pid, signal.SIGKILL)
    (base / proc.name / "node.pid").unlink(missing_ok=True)
    return placement.id


def process_states(deployment: Deployment, deployment_file: Path, base: Path
                   ) -> list[NodeProcessState]:
    """Each process of the deployment: whether it runs (by its pid file), and whether its
    ports accept connections (a node process: its first KME port and its KM port; the
    controller, the devices service and an EMS: its port, both columns; the NMS: its O&M
    port and its port for the EMSs)."""
    out = []
    for proc in managed(deployment, deployment_file, base, base / "pki"):
        address = deployment.host(proc.host).address
        pid = running_pid(base, proc)
        if proc.kind != "node":
            ports = {"controller": (deployment.controller.port,) * 2,
                     "qkd-devices": (deployment.devices_address()[1],) * 2
                     if deployment.devices is not None else (0, 0),
                     "nms": (deployment.nms.port, deployment.nms.intake_port)}.get(
                proc.kind) or (deployment.ems_of(proc.name.removeprefix("ems-")).port,) * 2
            out.append(NodeProcessState(proc.name, proc.host, 0, pid,
                                        _accepts(address, ports[0]),
                                        _accepts(address, ports[1])))
            continue
        p = deployment.process(proc.name)
        out.append(NodeProcessState(p.id, p.host, len(p.nodes), pid,
                                    _accepts(address, p.kme_port), _accepts(address, p.km_port)))
    return out


@dataclass(frozen=True)
class BorderSupplyState:
    """What ``qkdnet status`` shows of one end of a border KM-link: the node process, the
    blocks its supply stored since it started and the key (bits) it lost."""

    km_link: str
    process: str
    stored_blocks: int
    lost_bits: int


def border_supply_states(deployment: Deployment, base: Path) -> list[BorderSupplyState]:
    """The border supply's figures each running node process under ``base`` last wrote
    (every second), by KM-link and process."""
    out = []
    for p in deployment.processes:
        figures = read_figures(base / p.id / FIGURES_FILE)
        out += [BorderSupplyState(link, p.id, f.stored_blocks, f.lost_bits)
                for link, f in sorted(figures.items())]
    return out


def running_pid(base: Path, proc: _Managed) -> int | None:
    """The pid of ``proc`` under ``base`` if its pid file names a live ``qkdnet`` process
    of it, else None."""
    try:
        pid = int((base / proc.name / f"{proc.kind}.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if proc.kind.encode() in command and (
        proc.kind in ("controller", "nms", "qkd-devices") or proc.name.removeprefix("ems-").encode()
        in command) else None


def _node_options(folder: Path, extra: Sequence[str] | None) -> list[str]:
    """``extra`` (recorded in ``folder/node.options`` for the next start), or, when None,
    what was recorded (none if nothing was)."""
    record = folder / "node.options"
    if extra is not None:
        record.write_text(json.dumps(list(extra)), encoding="utf-8")
        return list(extra)
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(a) for a in recorded] if isinstance(recorded, list) else []


def _speedup_only(options: Sequence[str]) -> list[str]:
    """The ``--speedup`` of a node process's options (what the devices service takes)."""
    at = [i for i, option in enumerate(options[:-1]) if option == "--speedup"]
    return ["--speedup", options[at[-1] + 1]] if at else []


def _last_line(folder: Path, proc: _Managed) -> str:
    """The last line of a process's log, and where the log is."""
    log = folder / f"{proc.kind}.log"
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
