"""What runs in each container of a deployment, whatever runs the containers: its command,
the files it reads (the deployment file, the scenario file, certificates) and where they
are mounted. The compose and Kubernetes writers (:mod:`qkdnet.deploy.compose`,
:mod:`qkdnet.deploy.kubernetes`) share it, so both run the same commands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qkdnet.files.deployment import (
    Deployment,
    ProcessPlacement,
    deployment_document,
    format_deployment,
)
from qkdnet.topology.scenario_file import format_network
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.service_ids import CONTROLLER_ID, DEVICES_ID, NMS_ID, ems_id

CONFIG_DIR = "/etc/qkdnet"
DEPLOYMENT_FILE = "deployment.yaml"
SCENARIO_FILE = "scenario.yaml"
PKI_DIR = f"{CONFIG_DIR}/pki"
#: Where a node process finds the certificates and keys of its vendor QKD devices (the
#: mounted deployment file names them there, relative to itself).
VENDOR_DIR = f"{CONFIG_DIR}/vendor"
#: Where a node process's volume is mounted (the image user's home).
DATA_DIR = "/var/lib/qkdnet"
#: A node process's data folder (``--dir``), a folder the process makes in its volume:
#: the volume's root may be group-accessible (Kubernetes' fsGroup makes it 2770), and the
#: data folder must be private to the process (mode 0700, see qkdnet.live.data_folder).
STATE_DIR = f"{DATA_DIR}/state"
DEFAULT_IMAGE = "qkdnet:latest"
#: The user and group every container runs as: the image's USER (the repository's
#: Dockerfile), never root. Kubernetes gets them as runAsUser/runAsGroup/fsGroup; on a
#: Compose host the PKI files mounted must be readable by this uid.
RUN_AS_UID = 10001
RUN_AS_GID = 10001
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Container:
    """One container: a service name, a component (node, controller, devices, ems, nms),
    the host (deployment host id) it is placed on, its arguments after ``qkdnet``, the PKI
    files it needs (paths relative to a ``qkdnet pki`` folder), its listening ports,
    whether it keeps state (a node process's key stores), and the files of its vendor QKD
    devices (path under :data:`VENDOR_DIR`, the file where the manifests are written)."""

    name: str
    component: str
    host: str
    args: tuple[str, ...]
    pki_files: tuple[str, ...]
    ports: tuple[int, ...]
    stateful: bool
    vendor_files: tuple[tuple[str, Path], ...] = ()


def label(text: str) -> str:
    """``text`` as a DNS label (lower-case letters, digits, '-'), for names built from
    scenario ids such as regions."""
    out = _NOT_LABEL.sub("-", text.lower()).strip("-")
    return out[:40].rstrip("-") or "x"


def config_files(deployment: Deployment, hosts: dict[str, str] | None = None
                 ) -> dict[str, str]:
    """The text of each file mounted in ``CONFIG_DIR``: the deployment file and, when the
    scenario is not built in, the scenario beside it as ``scenario.yaml``. ``hosts`` (host
    id -> address) replaces the hosts of the deployment when given (see
    :func:`qkdnet.deploy.kubernetes.cluster_deployment`)."""
    built_in = deployment.scenario in BUILT_IN
    document = deployment_document(deployment,
                                   None if built_in else SCENARIO_FILE)
    if hosts is not None:
        document["hosts"] = [{"id": h, "address": a} for h, a in hosts.items()]
    for entry in document.get("vendor_devices", ()):
        for end in ("a", "b"):
            for kind in _VENDOR_KINDS:
                entry[end][kind] = f"vendor/{_vendor_path(entry['km_link'], end, kind)}"
    files = {DEPLOYMENT_FILE: format_deployment(document)}
    if not built_in:
        files[SCENARIO_FILE] = format_network(deployment.network, "yaml")
    return files


_VENDOR_KINDS = ("ca", "cert", "key")


def _vendor_path(km_link: str, end: str, kind: str) -> str:
    """Where under :data:`VENDOR_DIR` end ``end`` of ``km_link``'s vendor device finds its
    ``kind`` (ca, cert, key) file."""
    return f"{label(km_link)}/{end}.{kind}"


def vendor_files(deployment: Deployment, process: ProcessPlacement
                 ) -> tuple[tuple[str, Path], ...]:
    """The vendor device files a node process needs (its nodes' ends): path under
    :data:`VENDOR_DIR`, and the file the deployment names."""
    out = []
    for v in deployment.vendor_devices.values():
        km = deployment.network.km_link[v.km_link]
        for end, node, files in (("a", km.a, v.a), ("b", km.b, v.b)):
            if node in process.nodes:
                out += [(_vendor_path(v.km_link, end, kind), getattr(files, kind))
                        for kind in _VENDOR_KINDS]
    return tuple(out)


def node_pki_files(process: ProcessPlacement) -> tuple[str, ...]:
    """The PKI files a node process needs: the CA certificate and each node's KME pair."""
    return ("ca.crt", *(f"kme/{n}.{kind}" for n in process.nodes for kind in ("crt", "key")))


def service_pki_files(service: str) -> tuple[str, ...]:
    """The PKI files a service (controller, EMS, NMS) needs: the CA certificate and its own
    pair (:mod:`qkdnet.topology.service_ids`)."""
    return ("ca.crt", f"kme/{service}.crt", f"kme/{service}.key")


def containers(deployment: Deployment, listen: str | None = None) -> list[Container]:
    """Every container of ``deployment``: node processes, the controller, the emulated
    QKD devices (where the deployment places them), one EMS per region, the NMS.
    ``listen``: the address each listens on (Kubernetes: 0.0.0.0), else the one the
    deployment gives its host."""
    base = ("--deployment", f"{CONFIG_DIR}/{DEPLOYMENT_FILE}", "--pki", PKI_DIR)
    extra = ("--listen", listen) if listen else ()
    out = [Container(f"node-{p.id}", "node", p.host,
                     ("node", *base, "--process", p.id, "--dir", STATE_DIR, *extra),
                     node_pki_files(p), (*p.kme_ports, p.km_port), True,
                     vendor_files(deployment, p))
           for p in deployment.processes]
    out.append(Container("controller", "controller", deployment.controller.host,
                         ("controller", *base, *extra), service_pki_files(CONTROLLER_ID),
                         (deployment.controller.port,), False))
    if deployment.devices is not None:
        # flying satellites, it keeps their pools and clock (satellite.sqlite) in a volume
        flies = bool(deployment.satellite_links)
        out.append(Container("devices", "devices", deployment.devices.host,
                             ("qkd-devices", *base, *(("--dir", STATE_DIR) if flies else ()),
                              *extra), service_pki_files(DEVICES_ID),
                             (deployment.devices.port,), flies))
    out += [Container(f"ems-{label(e.region)}", "ems", e.host,
                      ("ems", *base, "--region", e.region, *extra),
                      service_pki_files(ems_id(e.region)), (e.port,), False)
            for e in deployment.ems]
    out.append(Container("nms", "nms", deployment.nms.host, ("nms", *base, *extra),
                         service_pki_files(NMS_ID),
                         (deployment.nms.port, deployment.nms.intake_port), False))
    return out
