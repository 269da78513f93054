"""Deployment files: where each node of a scenario runs (host, process, ports) and where the
controller, the EMSs and the NMS run, checked against the scenario when parsed.

The format (``qkdnet_deployment: 1``)::

    qkdnet_deployment: 1
    scenario: cn-qcn              # a built-in scenario, or a scenario file beside this one
    all_nodes: false              # true: user nodes without SAEs run KMEs too (serve --all-nodes)
    hosts:
      - {id: host-1, address: 10.0.0.1}          # an IP address or a host name
    processes:                    # node processes; several nodes may share one
      - {id: north, host: host-1, regions: [north], kme_port: 8443, km_port: 9443}
      - {id: beijing, host: host-1, nodes: [beijing, beijing-gs], kme_port: 8643, km_port: 9643}
    controller: {host: host-1, port: 7000}
    ems: [{region: north, host: host-1, port: 7100}]   # one per region of the scenario
    nms: {host: host-1, port: 8080, ems_port: 8081}   # ems_port: default port + 1
    devices: {host: host-1, port: 7300}   # optional: the emulated QKD devices' service
    vendor_devices:               # optional: real devices of direct KM-links
      - km_link: km:beijing~jinan
        a: {url: https://qkd-bj.example.net, ca: bj-ca.crt, cert: km-bj.crt, key: km-bj.key}
        b: {url: https://qkd-jn.example.net, ca: jn-ca.crt, cert: km-jn.crt, key: km-jn.key,
            peer_sae_id: QKD-BJ-01}

The NMS serves the O&M console and ``/metrics`` on ``port`` and takes the EMSs' batches
over mutual TLS on ``ems_port``.

A border KM-link (a direct KM-link whose ends are in different processes) takes its key
from a QKD device pair, each end's KM an ETSI GS QKD 014 SAE of its own end of the device.
With ``devices`` the emulated device pairs run in ``qkdnet qkd-devices`` on that host and
port; without it, in the process of each link's end ``a``. A direct KM-link in
``vendor_devices`` (a border one, or one whose ends share a process) takes its key from
the devices named there instead: each end's device KME at ``url`` (https), checked
against ``ca``, called with the client certificate ``cert``/``key`` (the KM's identity as
the device's SAE); ``peer_sae_id`` is the SAE ID the device knows the other end's KM by
(default: the other node's id), ``key_size`` the key size it hands out (bits, default
8192, a multiple of 256). Paths are relative to the deployment file; a host needs only
the files of the ends of the nodes it runs (see :func:`load_deployment`).

A process runs the nodes it names in ``nodes`` and every served node (one that runs a KM:
:func:`~qkdnet.topology.served.served_nodes`) of its ``regions`` that no process names
explicitly, so a region's process can leave a few of its nodes to another process. Every
served node runs in exactly one process. A process serves its nodes' KMEs (ETSI GS QKD 014)
on consecutive ports from ``kme_port``, one per node in the scenario's node order, and
listens for KM-to-KM messages on ``km_port``. No two listeners share a port on one host.

Errors name the file, the line, the path in the document and the problem:
``dep.yaml:9: processes[1].kme_port: ports 8443..8466 on host 'host-1' clash with
processes[0] (8443..8466)``; a mistake in the scenario file names the scenario file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field

from qkdnet.errors import ScenarioError
from qkdnet.files.documents import document_format, read_document
from qkdnet.files.networks import load_network
from qkdnet.topology.model import KMLinkKind, Network
from qkdnet.topology.scenario_file import DocumentFormat, parse_document
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.served import served_nodes

FORMAT_VERSION = 1
#: Ids of hosts and processes name containers and Services: DNS labels (RFC 1123), a
#: process id short enough to take a prefix and a suffix within a label's 63 characters.
ID_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_HOST_ID = 63
MAX_PROCESS_ID = 40
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
Port = int


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(_Spec):
    id: str
    address: str


class ProcessSpec(_Spec):
    id: str
    host: str
    regions: list[str] = []
    nodes: list[str] = []
    kme_port: int
    km_port: int


class ServiceSpec(_Spec):
    host: str
    port: int


class NmsSpec(_Spec):
    host: str
    port: int
    ems_port: int | None = None


class EmsSpec(_Spec):
    region: str
    host: str
    port: int


class VendorEndSpec(_Spec):
    url: str
    ca: str
    cert: str
    key: str
    peer_sae_id: str | None = None


class VendorDeviceSpec(_Spec):
    km_link: str
    a: VendorEndSpec
    b: VendorEndSpec
    key_size: int = 8192


class DeploymentSpec(_Spec):
    qkdnet_deployment: Literal[1]
    scenario: str
    all_nodes: bool = False
    hosts: list[HostSpec] = Field(min_length=1)
    processes: list[ProcessSpec] = Field(min_length=1)
    controller: ServiceSpec
    ems: list[EmsSpec] = []
    nms: NmsSpec
    devices: ServiceSpec | None = None
    vendor_devices: list[VendorDeviceSpec] = []


@dataclass(frozen=True)
class Host:
    """A machine the deployment runs on: its id and the address others reach it at."""

    id: str
    address: str


@dataclass(frozen=True)
class ProcessPlacement:
    """A node process: the nodes it runs (scenario order), on which host, its first KME
    port (node ``i`` of ``nodes`` serves on ``kme_port + i``) and its KM-to-KM port."""

    id: str
    host: str
    nodes: tuple[str, ...]
    kme_port: Port
    km_port: Port

    def kme_port_of(self, node: str) -> Port:
        """The port ``node``'s KME listens on."""
        return self.kme_port + self.nodes.index(node)

    @property
    def kme_ports(self) -> range:
        """Every KME port of the process."""
        return range(self.kme_port, self.kme_port + len(self.nodes))


@dataclass(frozen=True)
class ServicePlacement:
    """A service (the controller, the NMS) on a host and port; the NMS takes the EMSs'
    batches on ``ems_port`` too (None: ``port + 1``)."""

    host: str
    port: Port
    ems_port: Port | None = None

    @property
    def intake_port(self) -> Port:
        """The NMS's port for the EMSs' batches."""
        return self.port + 1 if self.ems_port is None else self.ems_port


@dataclass(frozen=True)
class EmsPlacement:
    """The EMS of ``region`` on a host and port."""

    region: str
    host: str
    port: Port


@dataclass(frozen=True)
class VendorEnd:
    """One end's device of a vendor QKD device pair: its ETSI GS QKD 014 KME's base URL,
    the CA its certificate is checked against, the KM's client certificate and key as its
    SAE, and the SAE ID the device knows the other end's KM by."""

    url: str
    ca: Path
    cert: Path
    key: Path
    peer_sae_id: str


@dataclass(frozen=True)
class VendorDevice:
    """The vendor device pair of direct KM-link ``km_link``: the device end of its end
    ``a`` and of its end ``b``, handing out keys of ``key_bits`` bits."""

    km_link: str
    a: VendorEnd
    b: VendorEnd
    key_bits: int

    def end(self, node_is_a: bool) -> VendorEnd:
        """The device end of the link's end ``a`` (True) or ``b``."""
        return self.a if node_is_a else self.b


@dataclass(frozen=True)
class Deployment:
    """A checked deployment of ``network``: every served node in exactly one process, no
    port used twice on a host. ``scenario`` is the reference as written in the file."""

    scenario: str
    network: Network = field(repr=False)
    all_nodes: bool
    hosts: tuple[Host, ...]
    processes: tuple[ProcessPlacement, ...]
    controller: ServicePlacement
    ems: tuple[EmsPlacement, ...]
    nms: ServicePlacement
    devices: ServicePlacement | None = None
    vendor_devices: Mapping[str, VendorDevice] = field(default_factory=dict)
    _process_of: Mapping[str, ProcessPlacement] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a lookup table built once; the dataclass is frozen, hence object.__setattr__
        object.__setattr__(self, "_process_of", MappingProxyType(
            {n: p for p in self.processes for n in p.nodes}))

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node placed, process by process."""
        return tuple(n for p in self.processes for n in p.nodes)

    @property
    def border_links(self) -> tuple[str, ...]:
        """The border KM-links: direct KM-links whose two ends run in different processes
        (their key comes from a QKD device pair, each end from its own device end)."""
        return border_links(self.network, self._process_of)

    @property
    def satellite_links(self) -> tuple[str, ...]:
        """The satellite KM-links whose two ground stations are placed: the devices service
        flies the satellites and serves each as a device pair to its two ends."""
        return satellite_links(self.network, self._process_of)

    def devices_address(self) -> tuple[str, Port]:
        """Where the emulated devices' service listens; KeyError if it is not placed."""
        if self.devices is None:
            raise KeyError("devices")
        return self.address(self.devices.host, self.devices.port)

    def host(self, host_id: str) -> Host:
        """The host ``host_id``."""
        for h in self.hosts:
            if h.id == host_id:
                return h
        raise KeyError(host_id)

    def process(self, process_id: str) -> ProcessPlacement:
        """The node process ``process_id``."""
        for p in self.processes:
            if p.id == process_id:
                return p
        raise KeyError(process_id)

    def process_of(self, node: str) -> ProcessPlacement:
        """The process that runs ``node``."""
        return self._process_of[node]

    def processes_on(self, host_id: str) -> tuple[ProcessPlacement, ...]:
        """The node processes placed on host ``host_id``."""
        return tuple(p for p in self.processes if p.host == host_id)

    def ems_of(self, region: str) -> EmsPlacement:
        """The EMS of ``region``."""
        for e in self.ems:
            if e.region == region:
                return e
        raise KeyError(region)

    def address(self, host_id: str, port: Port) -> tuple[str, Port]:
        """``(address, port)`` of a listener on host ``host_id``."""
        return self.host(host_id).address, port

    def km_address(self, node: str) -> tuple[str, Port]:
        """Where ``node``'s KM takes KM-to-KM messages: its process's host and km_port."""
        p = self.process_of(node)
        return self.address(p.host, p.km_port)

    def kme_address(self, node: str) -> tuple[str, Port]:
        """Where ``node``'s KME (ETSI GS QKD 014) listens."""
        p = self.process_of(node)
        return self.address(p.host, p.kme_port_of(node))

    def kme_url(self, node: str) -> str:
        """The base URL of ``node``'s KME, ``https://address:port``."""
        return _url(*self.kme_address(node))

    def controller_address(self) -> tuple[str, Port]:
        """Where the controller listens."""
        return self.address(self.controller.host, self.controller.port)

    def ems_address(self, region: str) -> tuple[str, Port]:
        """Where the EMS of ``region`` listens."""
        e = self.ems_of(region)
        return self.address(e.host, e.port)

    def nms_address(self) -> tuple[str, Port]:
        """Where the NMS listens (the O&M console and /metrics)."""
        return self.address(self.nms.host, self.nms.port)

    def nms_intake_address(self) -> tuple[str, Port]:
        """Where the NMS takes the EMSs' batches (mutual TLS)."""
        return self.address(self.nms.host, self.nms.intake_port)


def load_deployment(path: Path, vendor_files_at: Collection[str] | None = None
                    ) -> Deployment:
    """Read and check a deployment file and the scenario it names (a scenario file is found
    beside it); every problem is a ScenarioError naming the file, the line and the path.
    ``vendor_files_at``: the nodes whose vendor devices' files must exist here (None:
    every node's; a host has only the files of the nodes it runs)."""
    return parse_deployment(read_document(path), str(path), document_format(path), path.parent,
                            vendor_files_at)


def parse_deployment(text: str, source: str, fmt: DocumentFormat,
                     base: Path = Path("."), vendor_files_at: Collection[str] | None = None
                     ) -> Deployment:
    """Parse and check the text of a deployment file; a scenario file it names is read
    from ``base``."""
    return parse_document(text, source, fmt, DeploymentSpec,
                          lambda spec: deployment_from_spec(spec, base, vendor_files_at))


def deployment_from_spec(spec: DeploymentSpec, base: Path,
                         vendor_files_at: Collection[str] | None = None) -> Deployment:
    """The deployment of a parsed document, checked against its scenario (errors carry
    document paths); the files of the vendor devices of the nodes ``vendor_files_at``
    (None: all) must exist."""
    network = _scenario(spec.scenario, base)
    hosts = _hosts(spec.hosts)
    placed = _placement(spec, network)
    processes = tuple(ProcessPlacement(p.id, p.host, placed[p.id], p.kme_port, p.km_port)
                      for p in spec.processes)
    for i, p in enumerate(spec.processes):
        _known_host(hosts, p.host, f"processes[{i}].host")
    for where, s in (("controller", spec.controller), ("nms", spec.nms)):
        _known_host(hosts, s.host, f"{where}.host")
    if spec.devices is not None:
        _known_host(hosts, spec.devices.host, "devices.host")
    _check_ems(spec, network, hosts)
    _check_ports(spec, processes)
    if spec.devices is None:
        flown = satellite_links(network, {n: p.id for p in processes for n in p.nodes})
        if flown:
            raise ScenarioError("devices", f"missing: the devices service flies the "
                                f"satellite of the satellite KM-links {', '.join(flown)}; "
                                "place it (devices: {host: ..., port: ...})")
    vendor = _vendor_devices(spec.vendor_devices, network, processes, base, vendor_files_at)
    return Deployment(
        spec.scenario, network, spec.all_nodes,
        tuple(Host(h.id, h.address) for h in spec.hosts), processes,
        ServicePlacement(spec.controller.host, spec.controller.port),
        tuple(EmsPlacement(e.region, e.host, e.port) for e in spec.ems),
        ServicePlacement(spec.nms.host, spec.nms.port, spec.nms.ems_port),
        None if spec.devices is None else ServicePlacement(spec.devices.host,
                                                           spec.devices.port),
        MappingProxyType(vendor))


def deployment_document(deployment: Deployment, scenario: str | None = None
                        ) -> dict[str, Any]:
    """Plain data in the file format (``scenario``: the reference to write instead of the
    one read); loading it beside the same scenario gives back an equal deployment. Each
    process is written with the nodes it runs, not the regions it was given."""
    return {
        "qkdnet_deployment": FORMAT_VERSION,
        "scenario": deployment.scenario if scenario is None else scenario,
        "all_nodes": deployment.all_nodes,
        "hosts": [{"id": h.id, "address": h.address} for h in deployment.hosts],
        "processes": [{"id": p.id, "host": p.host, "nodes": list(p.nodes),
                       "kme_port": p.kme_port, "km_port": p.km_port}
                      for p in deployment.processes],
        "controller": {"host": deployment.controller.host, "port": deployment.controller.port},
        "ems": [{"region": e.region, "host": e.host, "port": e.port} for e in deployment.ems],
        "nms": {"host": deployment.nms.host, "port": deployment.nms.port,
                **({} if deployment.nms.ems_port is None
                   else {"ems_port": deployment.nms.ems_port})},
        **({} if deployment.devices is None else {
            "devices": {"host": deployment.devices.host, "port": deployment.devices.port}}),
        **({} if not deployment.vendor_devices else {
            "vendor_devices": [{"km_link": v.km_link, "a": _vendor_end(v.a),
                                "b": _vendor_end(v.b), "key_size": v.key_bits}
                               for v in deployment.vendor_devices.values()]}),
    }


def _vendor_end(end: VendorEnd) -> dict[str, str]:
    return {"url": end.url, "ca": str(end.ca), "cert": str(end.cert), "key": str(end.key),
            "peer_sae_id": end.peer_sae_id}


def border_links(network: Network, process_of: Mapping[str, object]) -> tuple[str, ...]:
    """The direct KM-links of ``network`` whose ends are both placed (``process_of``:
    node -> its process), in different processes."""
    return tuple(km.id for km in network.km_links
                 if km.kind is KMLinkKind.DIRECT and km.a in process_of
                 and km.b in process_of and process_of[km.a] != process_of[km.b])


def satellite_links(network: Network, process_of: Mapping[str, object]) -> tuple[str, ...]:
    """The satellite KM-links of ``network`` whose ends are both placed (``process_of``:
    node -> its process)."""
    return tuple(km.id for km in network.km_links
                 if km.kind is KMLinkKind.SATELLITE and km.a in process_of
                 and km.b in process_of)


#: The key sizes a vendor device may hand out are whole pool units (bits).
_KEY_UNIT_BITS = 256


def _vendor_devices(specs: list[VendorDeviceSpec], network: Network,
                    processes: tuple[ProcessPlacement, ...], base: Path,
                    files_at: Collection[str] | None) -> dict[str, VendorDevice]:
    process_of = {n: p.id for p in processes for n in p.nodes}
    km_links = {km.id: km for km in network.km_links}
    out: dict[str, VendorDevice] = {}
    for i, v in enumerate(specs):
        where = f"vendor_devices[{i}]"
        km = km_links.get(v.km_link)
        if km is None:
            raise ScenarioError(f"{where}.km_link", f"unknown KM-link {v.km_link!r}")
        if km.kind is not KMLinkKind.DIRECT or km.a not in process_of \
                or km.b not in process_of:
            raise ScenarioError(f"{where}.km_link", f"KM-link {v.km_link!r} is not a direct "
                                "KM-link between two nodes of the deployment: no QKD device "
                                "pair joins its ends")
        if v.km_link in out:
            raise ScenarioError(f"{where}.km_link", f"KM-link {v.km_link!r} is named twice")
        if v.key_size < _KEY_UNIT_BITS or v.key_size % _KEY_UNIT_BITS:
            raise ScenarioError(f"{where}.key_size", f"{v.key_size} bits is not a positive "
                                f"multiple of {_KEY_UNIT_BITS}")
        ends = [_vendor_end_of(e, f"{where}.{name}", other, base,
                               files_at is None or node in files_at)
                for e, name, node, other in ((v.a, "a", km.a, km.b), (v.b, "b", km.b, km.a))]
        out[v.km_link] = VendorDevice(v.km_link, ends[0], ends[1], v.key_size)
    return out


def _vendor_end_of(spec: VendorEndSpec, where: str, other: str, base: Path,
                   check_files: bool) -> VendorEnd:
    url = urlsplit(spec.url)
    try:
        url.port  # noqa: B018  (raises on a port that is not a number)
        ok = url.scheme == "https" and bool(url.hostname) and not url.query \
            and not url.fragment
    except ValueError:
        ok = False
    if not ok:
        raise ScenarioError(f"{where}.url", f"{spec.url!r} is not an https URL of a device "
                            "KME (https://host[:port][/path])")
    files = []
    for name in ("ca", "cert", "key"):
        path = base / getattr(spec, name)
        if check_files and not path.is_file():
            raise ScenarioError(f"{where}.{name}", f"no file {path}")
        files.append(path.resolve())
    return VendorEnd(spec.url.rstrip("/"), files[0], files[1], files[2],
                     spec.peer_sae_id or other)


def format_deployment(document: Mapping[str, Any]) -> str:
    """A deployment document as the YAML text of a deployment file."""
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=None, width=100)


def _url(address: str, port: Port) -> str:
    host = f"[{address}]" if ":" in address else address  # an IPv6 literal (RFC 3986)
    return f"https://{host}:{port}"


def _scenario(name: str, base: Path) -> Network:
    if name in BUILT_IN:
        return BUILT_IN[name]()
    path = base / name
    if not path.is_file():
        raise ScenarioError("scenario", f"{name!r} is neither a built-in scenario ("
                            + ", ".join(BUILT_IN) + ") nor a file beside this one")
    return load_network(path)  # its errors name the scenario file, not this one


def _hosts(hosts: list[HostSpec]) -> dict[str, HostSpec]:
    seen: dict[str, HostSpec] = {}
    for i, h in enumerate(hosts):
        _check_id(h.id, f"hosts[{i}].id", seen, MAX_HOST_ID)
        if not _is_address(h.address):
            raise ScenarioError(f"hosts[{i}].address", f"{h.address!r} is neither an IP "
                                "address nor a host name")
        seen[h.id] = h
    return seen


def _check_id(ident: str, where: str, seen: Mapping[str, object], longest: int) -> None:
    if ident in seen:
        raise ScenarioError(where, f"duplicate id {ident!r}")
    if not ID_PATTERN.fullmatch(ident) or len(ident) > longest:
        raise ScenarioError(where, f"{ident!r} is not a valid id: lower-case letters, digits "
                            f"and '-', starting with a letter, at most {longest} characters "
                            "(it names containers and Services)")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    # a host name (RFC 1123): dot-separated labels, not all-numeric like a mistyped IPv4
    name = text.removesuffix(".")
    labels = name.split(".")
    return (0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(lb) for lb in labels)
            and not labels[-1].isdigit())


def _known_host(hosts: Mapping[str, HostSpec], host: str, where: str) -> None:
    if host not in hosts:
        raise ScenarioError(where, f"unknown host {host!r}; hosts: " + ", ".join(hosts))


def _placement(spec: DeploymentSpec, network: Network) -> dict[str, tuple[str, ...]]:
    """The nodes of each process, in the scenario's node order."""
    served = served_nodes(network, spec.all_nodes)
    serving = set(served)
    regions = {r.id for r in network.regions} | {n.region for n in network.nodes}
    named: dict[str, str] = {}       # node -> where it was named
    region_of: dict[str, str] = {}   # region -> where it was named
    ids: dict[str, object] = {}
    for i, p in enumerate(spec.processes):
        _check_id(p.id, f"processes[{i}].id", ids, MAX_PROCESS_ID)
        ids[p.id] = p
        if not p.nodes and not p.regions:
            raise ScenarioError(f"processes[{i}]", "names no nodes and no regions")
        for j, node in enumerate(p.nodes):
            where = f"processes[{i}].nodes[{j}]"
            if node not in network.node:
                raise ScenarioError(where, f"unknown node {node!r}")
            if node not in serving:
                raise ScenarioError(where, f"node {node!r} runs no KM (no KM-link and no "
                                    "SAE" + ("" if spec.all_nodes else
                                             ", or a user node without an SAE: see "
                                             "all_nodes") + ")")
            if node in named:
                raise ScenarioError(where, f"node {node!r} is placed twice (also at "
                                    f"{named[node]})")
            named[node] = where
        for j, region in enumerate(p.regions):
            where = f"processes[{i}].regions[{j}]"
            if region not in regions:
                raise ScenarioError(where, f"unknown region {region!r}; regions: "
                                    + ", ".join(sorted(regions)))
            if region in region_of:
                raise ScenarioError(where, f"region {region!r} is placed twice (also at "
                                    f"{region_of[region]})")
            region_of[region] = where
    process_of = {node: i for i, p in enumerate(spec.processes) for node in p.nodes}
    for i, p in enumerate(spec.processes):
        for region in p.regions:
            for node in served:
                if network.node[node].region == region and node not in process_of:
                    process_of[node] = i
    missing = [n for n in served if n not in process_of]
    if missing:
        raise ScenarioError("processes", f"{len(missing)} node(s) that run a KM are placed "
                            "in no process: " + ", ".join(missing[:10])
                            + (", ..." if len(missing) > 10 else ""))
    placed = {p.id: tuple(n for n in served if process_of[n] == i)
              for i, p in enumerate(spec.processes)}
    for i, p in enumerate(spec.processes):
        if not placed[p.id]:
            raise ScenarioError(f"processes[{i}]", "runs no node: every node of its regions "
                                "is named by another process")
    return placed


def _check_ems(spec: DeploymentSpec, network: Network, hosts: Mapping[str, HostSpec]) -> None:
    regions = [r.id for r in network.regions]
    seen: dict[str, int] = {}
    for i, e in enumerate(spec.ems):
        if e.region not in regions:
            raise ScenarioError(f"ems[{i}].region", f"unknown region {e.region!r}; regions: "
                                + ", ".join(regions))
        if e.region in seen:
            raise ScenarioError(f"ems[{i}].region", f"a second EMS for region {e.region!r} "
                                f"(also ems[{seen[e.region]}])")
        seen[e.region] = i
        _known_host(hosts, e.host, f"ems[{i}].host")
    missing = [r for r in regions if r not in seen]
    if missing:
        raise ScenarioError("ems", "no EMS for region(s) " + ", ".join(missing))


def _listeners(spec: DeploymentSpec, processes: tuple[ProcessPlacement, ...]
               ) -> Iterator[tuple[str, str, range]]:
    """``(path, host, ports)`` of every listener, in document order."""
    for i, p in enumerate(processes):
        yield f"processes[{i}].kme_port", p.host, p.kme_ports
        yield f"processes[{i}].km_port", p.host, range(p.km_port, p.km_port + 1)
    yield "controller.port", spec.controller.host, range(spec.controller.port,
                                                         spec.controller.port + 1)
    for i, e in enumerate(spec.ems):
        yield f"ems[{i}].port", e.host, range(e.port, e.port + 1)
    yield "nms.port", spec.nms.host, range(spec.nms.port, spec.nms.port + 1)
    intake = spec.nms.port + 1 if spec.nms.ems_port is None else spec.nms.ems_port
    yield "nms.ems_port", spec.nms.host, range(intake, intake + 1)
    if spec.devices is not None:
        yield "devices.port", spec.devices.host, range(spec.devices.port,
                                                       spec.devices.port + 1)


def _check_ports(spec: DeploymentSpec, processes: tuple[ProcessPlacement, ...]) -> None:
    taken: list[tuple[str, str, range]] = []
    for where, host, ports in _listeners(spec, processes):
        if ports.start < 1 or ports.stop - 1 > 65535:
            raise ScenarioError(where, f"{_ports(ports)} "
                                + ("is" if len(ports) == 1 else "are") + " outside 1..65535")
        for other, other_host, other_ports in taken:
            if host == other_host and ports.start < other_ports.stop \
                    and other_ports.start < ports.stop:
                raise ScenarioError(where, f"{_ports(ports)} on host {host!r} "
                                    + ("clashes" if len(ports) == 1 else "clash") + " with "
                                    f"{other} ({_ports(other_ports)})")
        taken.append((where, host, ports))


def _ports(ports: range) -> str:
    if len(ports) == 1:
        return f"port {ports.start}"
    return f"ports {ports.start}..{ports.stop - 1}"
