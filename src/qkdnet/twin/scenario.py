"""A twin scenario: which network, for how long, with what demand and what scripted faults
and what-if changes; checked before any simulation runs.

    qkdnet_twin: 1
    network: cn-qcn                 # a built-in name, or a scenario file beside this one
    weeks: 10
    seed: 1
    demands:                        # SAE pairs' key consumption between two nodes (bit/s),
      - {id: otp-1, source: harbin, target: shenzhen, rate_bps: 10000, key_bits: 4096}
    segments: [harbin, beijing, wuhan] # a watched backbone path, cut into segments here
    faults:                         # on top of the random ones: cut this link at this time
      - {link: beijing--xiongan, at_h: 100, duration_h: 3}
    remove_links: [hefei--luan]     # what-if: as if these QKD-links did not exist
    add_links:                      # what-if: new QKD-links, each with its direct KM-link
      - {a: tangshan-beijing-r1, b: tianjin, length_km: 104.1, loss_db: 27.0,
         device_type: II, device_pairs: 4}  # (`qkdnet plan --out` writes these)
    add_device_pairs: {tieling--shenyang: 1}  # what-if: more device pairs on a link
    random_faults: true             # the calibrated fault process (twin/faults.py)
    maintenance_every_h: 720        # maintenance windows: each link down once a period,
    maintenance_h: 2                #   for this long, at a random phase (default: none)
    dynamics: true                  # day-night drift and vibration bursts (quantum/dynamics.py)
    step_s: 300                     # resolution of key rates and pools (s)
    pool_bits: 100000000            # each KM-link's key pool holds at most this (bits)
    satellites:                     # default: [jinan-1] on a network with satellite KM-links;
      - {id: jinan-1}               #   [] for none; tle: [line1, line2] for the orbit model
    add_ground_stations:            # what-if: a ground station on a 30 km tail fibre, joined
      - {id: wuhan-gs, lat: 30.45, lon: 114.52, attach: wuhan}  # to every other by satellite
    satellite_pool_bits: 10000000   # each satellite's pool with a ground station (bits)

Without ``demands`` and ``segments`` a ``cn-qcn`` run takes :data:`CN_QCN_DEMANDS` and
:data:`CN_QCN_SEGMENTS` (the paper's Harbin-Beijing-Wuhan-Guangzhou-Shenzhen path).

Each satellite passes over the ground stations (:func:`~qkdnet.twin.satellite_passes.
scenario_passes`); a demand reached only by satellite is accepted when the scenario has a
satellite and refused as disconnected when it has none.

Errors name the file, the line and the path: ``twin.yaml:9: faults[0].link: unknown
QKD-link 'x'``; a demand between nodes no route joins, a negative duration and a fault
outside the run are refused the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import networkx as nx
import yaml
from pydantic import BaseModel, ConfigDict

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.files.documents import load_document, read_document
from qkdnet.files.networks import open_network
from qkdnet.quantum.devices import device_type
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import KMLink, KMLinkKind, Network, Node, NodeKind, QKDLink
from qkdnet.topology.scenario_file import line_of
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.validation import validated
from qkdnet.twin.faults import DEFAULT_MODEL, FaultModel
from qkdnet.twin.satellite_passes import JINAN_1, TwinSatellite, orbit_of, scenario_passes
from qkdnet.units import HOUR_S, WEEK_S

# Re-exported only for cli.py, which imports it from here until the CLI split imports it
# from qkdnet.units; drop at merge.


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemandSpec(_Spec):
    id: str
    source: str
    target: str
    rate_bps: float = 8000.0
    key_bits: int = 256


class FaultSpec(_Spec):
    link: str
    at_h: float
    duration_h: float


class LinkSpec(_Spec):
    a: str
    b: str
    length_km: float
    loss_db: float
    device_type: str
    device_pairs: int = 1
    field: dict[str, float] = {}


class SatelliteSpec(_Spec):
    id: str
    tle: list[str] | None = None


class GroundStationSpec(_Spec):
    id: str
    lat: float
    lon: float
    attach: str
    name: str = ""
    fibre_km: float = 30.0


class TwinSpec(_Spec):
    qkdnet_twin: Literal[1]
    network: str = "cn-qcn"
    weeks: float = 10.0
    seed: int = 1
    demands: list[DemandSpec] | None = None
    segments: list[str] | None = None
    faults: list[FaultSpec] = []
    remove_links: list[str] = []
    add_links: list[LinkSpec] = []
    add_device_pairs: dict[str, int] = {}
    random_faults: bool = True
    maintenance_every_h: float | None = None
    maintenance_h: float = 2.0
    dynamics: bool = True
    step_s: float = 300.0
    pool_bits: float = 1e8
    satellites: list[SatelliteSpec] | None = None
    add_ground_stations: list[GroundStationSpec] = []
    satellite_pool_bits: float = 1e7


@dataclass(frozen=True, slots=True)
class TwinDemand:
    """Key consumed between two nodes at ``rate_bps`` (bit/s) for the whole run, in keys
    of ``key_bits``; a demand of rate 0 is a watched service (routed, never consuming)."""

    id: str
    source: str
    target: str
    rate_bps: float
    key_bits: int = 256


#: Key services on the built-in network (assumed; the paper names the kinds, not the
#: pairs): one-time-pad lines between metro access nodes and AES key refresh (a 256-bit
#: key a second) between user nodes across the country.
CN_QCN_DEMANDS = (
    TwinDemand("otp-beijing-shanghai", "beijing-m1", "shanghai-m1", 8_000.0, 4096),
    TwinDemand("otp-guangzhou-shenzhen", "guangzhou-m1", "shenzhen-m1", 8_000.0, 4096),
    TwinDemand("otp-hefei-hangzhou", "hefei-m1", "hangzhou-m1", 12_000.0, 4096),
    TwinDemand("aes-harbin-shenzhen", "harbin-m1-u1", "shenzhen-m1-u1", 256.0, 256),
    TwinDemand("aes-beijing-guangzhou", "beijing-m2-u3", "guangzhou-m2-u2", 256.0, 256),
    TwinDemand("aes-shanghai-shenyang", "shanghai-m2-u5", "shenyang-m1-u1", 256.0, 256),
    TwinDemand("aes-wuhan-jinan", "wuhan-m1-u4", "jinan-m2-u2", 256.0, 256),
)
#: The paper's observed path, cut into its four segments (Fig. 5, Table 1).
CN_QCN_SEGMENTS = ("harbin", "beijing", "wuhan", "guangzhou", "shenzhen")


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """QKD-link ``link`` down from ``start_s`` for ``duration_s`` (s of simulated time)."""

    link: str
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class TwinScenario:
    """Everything a twin run needs, consistent with its network."""

    network: Network
    duration_s: float
    seed: int
    demands: tuple[TwinDemand, ...] = ()
    faults: tuple[ScriptedFault, ...] = ()
    segments: tuple[str, ...] = ()
    random_faults: bool = True
    fault_model: FaultModel = DEFAULT_MODEL
    dynamics: bool = True
    step_s: float = 300.0
    pool_bits: float = 1e8
    satellites: tuple[TwinSatellite, ...] = ()
    #: The satellites' passes over the ground stations, ordered by their end (the input
    #: the twin fills the satellite pools from).
    passes: tuple[SatellitePass, ...] = ()
    satellite_pool_bits: float = 1e7
    #: QKD-links a what-if added (``add_links``, ``qkdnet plan``): their random faults come
    #: from a stream of their own, so every other link fails as in the scenario without
    #: them on the same seed, and a what-if and its base compare run by run.
    added_links: tuple[str, ...] = ()

    @property
    def weeks(self) -> int:
        """Weeks in the run, a last part-week counted (the windows of the weekly figures)."""
        return max(1, math.ceil(self.duration_s / WEEK_S - 1e-9))


def built_in_scenario(weeks: float = 10.0, seed: int = 1) -> TwinScenario:
    """The main job: cn-qcn for ``weeks`` with its default demands and segments."""
    return twin_scenario(TwinSpec(qkdnet_twin=1, weeks=weeks, seed=seed))


def load_twin_scenario(path: Path, weeks: float | None = None,
                       seed: int | None = None) -> TwinScenario:
    """Read and check a twin scenario file (see the module docstring); ``weeks`` and
    ``seed``, when given, replace the file's. A network's scenario file
    (``qkdnet_scenario: 1``) is run as a twin scenario of that network with every default
    (``network:`` naming the file)."""
    given = {k: v for k, v in (("weeks", weeks), ("seed", seed)) if v is not None}
    kind = _document_kind(path)
    if kind == "qkdnet_scenario":
        return twin_scenario(TwinSpec.model_validate(
            {"qkdnet_twin": 1, "network": path.name, **given}), path.parent)
    if kind == "qkdnet_deployment":
        raise ScenarioError("qkdnet_deployment", "a deployment file (for `qkdnet nodes` and "
                            "`qkdnet deploy`), not a scenario: give the twin the network's "
                            "scenario file or a twin file", str(path), _line_of_key(path, kind))
    return load_document(path, TwinSpec,
                         lambda spec: twin_scenario(spec.model_copy(update=given), path.parent))


def _document_kind(path: Path) -> str | None:
    """Which document ``path`` holds: ``qkdnet_scenario`` (a network's scenario),
    ``qkdnet_deployment``, or None for any other (a twin file, or one that cannot be read
    or parsed, left to the twin loader's errors)."""
    try:
        data = yaml.load(read_document(path), Loader=getattr(yaml, "CSafeLoader",
                                                            yaml.SafeLoader))
    except (ScenarioError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    return next((k for k in ("qkdnet_scenario", "qkdnet_deployment") if k in data), None)


def _line_of_key(path: Path, key: str) -> int | None:
    return line_of(read_document(path), (key,))


def twin_scenario(spec: TwinSpec, base: Path = Path(".")) -> TwinScenario:
    """The scenario of a parsed document, its network found by name or beside ``base``."""
    if not spec.weeks > 0:
        raise ScenarioError("weeks", f"the run must last more than 0 weeks, got {spec.weeks}")
    if not 1 <= spec.step_s <= 3600:
        raise ScenarioError("step_s", f"the step is 1 to 3600 s, got {spec.step_s}")
    if not spec.pool_bits > 0:
        raise ScenarioError("pool_bits", f"a pool holds more than 0 bits, got {spec.pool_bits}")
    if not spec.satellite_pool_bits > 0:
        raise ScenarioError("satellite_pool_bits", f"a pool holds more than 0 bits, got "
                            f"{spec.satellite_pool_bits}")
    network = _without_links(_network(spec.network, base), spec.remove_links)
    network = with_device_pairs(_with_added(network, spec.add_links), spec.add_device_pairs)
    network = _with_stations(network, spec.add_ground_stations)
    satellites = _satellites(network, spec.satellites)
    if not satellites:  # no satellite: its KM-links carry nothing, as if absent
        network = replace(network, km_links=tuple(
            k for k in network.km_links if k.kind is not KMLinkKind.SATELLITE))
    duration = spec.weeks * WEEK_S
    built_in = spec.network == "cn-qcn"
    if spec.demands is not None:
        demands = tuple(_demand(network, i, d) for i, d in enumerate(spec.demands))
    else:
        demands = tuple(_checked(network, d) for d in CN_QCN_DEMANDS) if built_in else ()
    if spec.segments is not None:
        segments = _segments(network, spec.segments)
    else:
        segments = _segments(network, list(CN_QCN_SEGMENTS)) if built_in else ()
    return TwinScenario(
        network, duration, spec.seed, demands,
        tuple(_fault(network, duration, i, f) for i, f in enumerate(spec.faults)),
        segments, spec.random_faults, _fault_model(spec), spec.dynamics, spec.step_s,
        spec.pool_bits, satellites,
        tuple(scenario_passes(satellites, network.nodes_of(NodeKind.GROUND_STATION),
                              duration)),
        spec.satellite_pool_bits, tuple(f"{lk.a}--{lk.b}" for lk in spec.add_links))


def _satellites(network: Network, specs: list[SatelliteSpec] | None
                ) -> tuple[TwinSatellite, ...]:
    if specs is None:
        has = any(k.kind is KMLinkKind.SATELLITE for k in network.km_links)
        return (TwinSatellite(JINAN_1),) if has else ()
    seen: set[str] = set()
    for i, sat in enumerate(specs):
        if sat.id in seen:
            raise ScenarioError(f"satellites[{i}].id", f"satellite {sat.id!r} named twice")
        seen.add(sat.id)
        if sat.tle is not None and len(sat.tle) != 2:
            raise ScenarioError(f"satellites[{i}].tle", "a TLE is two lines, got "
                                f"{len(sat.tle)}")
    out = tuple(TwinSatellite(s.id, None if s.tle is None else (s.tle[0], s.tle[1]))
                for s in specs)
    for i, twin_sat in enumerate(out):
        # a TLE SGP4 can fly, checked field by field
        orbit_of(twin_sat, f"satellites[{i}].tle")
    return out


def _with_stations(network: Network, added: list[GroundStationSpec]) -> Network:
    """The network with ground stations added: each on a tail fibre to ``attach`` (the
    device type and field parameters of the network's first ground-station tail, or of
    its first QKD-link, assumed) and joined to every other ground station by a satellite
    KM-link."""
    if not added:
        return network
    stations = [n.id for n in network.nodes_of(NodeKind.GROUND_STATION)]
    tails = [lk for lk in network.qkd_links if set(stations) & set(lk.ends)] \
        or list(network.qkd_links[:1])
    nodes, links, km_links = list(network.nodes), list(network.qkd_links), \
        list(network.km_links)
    for i, gs in enumerate(added):
        where = f"add_ground_stations[{i}]"
        if gs.id in network.node or gs.id in stations:
            raise ScenarioError(f"{where}.id", f"node {gs.id!r} exists already")
        if gs.attach not in network.node:
            raise ScenarioError(f"{where}.attach", f"unknown node {gs.attach!r}")
        if not (-90 <= gs.lat <= 90 and -180 <= gs.lon <= 180):
            raise ScenarioError(where, f"({gs.lat}, {gs.lon}) is not a latitude, longitude")
        if not gs.fibre_km > 0:
            raise ScenarioError(f"{where}.fibre_km", f"more than 0 km, got {gs.fibre_km}")
        if not tails:
            raise ScenarioError(where, "the network has no QKD-link to take a tail's "
                                "devices from")
        at = network.node[gs.attach]
        nodes.append(Node(gs.id, gs.name or gs.id, NodeKind.GROUND_STATION, gs.lat, gs.lon,
                          at.city, at.region))
        like = tails[0]
        link = QKDLink(f"{gs.attach}--{gs.id}", gs.attach, gs.id, gs.fibre_km,
                       like.loss_db * gs.fibre_km / max(like.length_km, 1e-9),
                       like.device_type, field=like.field)
        links.append(link)
        km_links.append(KMLink(f"km:{gs.attach}~{gs.id}", gs.attach, gs.id,
                               KMLinkKind.DIRECT, (link.id,)))
        km_links += [KMLink(f"sat:{other}~{gs.id}", other, gs.id, KMLinkKind.SATELLITE)
                     for other in stations]
        stations.append(gs.id)
    return validated(replace(network, nodes=tuple(nodes), qkd_links=tuple(links),
                             km_links=tuple(km_links)))


def _fault_model(spec: TwinSpec) -> FaultModel:
    if spec.maintenance_every_h is None:
        return DEFAULT_MODEL
    if not spec.maintenance_h > 0:
        raise ScenarioError("maintenance_h", f"a window lasts more than 0 h, got "
                            f"{spec.maintenance_h}")
    if not spec.maintenance_every_h > spec.maintenance_h:
        raise ScenarioError("maintenance_every_h", f"the period must be longer than the "
                            f"window ({spec.maintenance_h} h), got {spec.maintenance_every_h}")
    return replace(DEFAULT_MODEL, maintenance_period_s=spec.maintenance_every_h * HOUR_S,
                   maintenance_duration_s=spec.maintenance_h * HOUR_S)


def _network(name: str, base: Path) -> Network:
    if name in BUILT_IN:
        return open_network(name)
    path = base / name
    if not path.is_file():
        raise ScenarioError("network", f"{name!r} is neither a built-in scenario ("
                            + ", ".join(BUILT_IN) + ") nor a file beside this one")
    return open_network(str(path))


def _without_links(network: Network, removed: list[str]) -> Network:
    for i, link in enumerate(removed):
        if link not in network.link:
            raise ScenarioError(f"remove_links[{i}]", f"unknown QKD-link {link!r}")
    gone = set(removed)
    return replace(network,
                   qkd_links=tuple(lk for lk in network.qkd_links if lk.id not in gone),
                   km_links=tuple(k for k in network.km_links if not gone & set(k.path)))


def _with_added(network: Network, specs: list[LinkSpec]) -> Network:
    links = []
    for i, spec in enumerate(specs):
        where = f"add_links[{i}]"
        for end in ("a", "b"):
            if getattr(spec, end) not in network.node:
                raise ScenarioError(f"{where}.{end}", f"unknown node {getattr(spec, end)!r}")
        try:
            kind = device_type(spec.device_type).name
        except ParameterError as exc:
            raise ScenarioError(f"{where}.device_type", str(exc)) from None
        for name, ok, want in (("length_km", spec.length_km > 0, "more than 0 km"),
                               ("loss_db", spec.loss_db >= 0, "at least 0 dB"),
                               ("device_pairs", spec.device_pairs >= 1, "at least 1")):
            if not ok:
                raise ScenarioError(f"{where}.{name}", f"{want}, got {getattr(spec, name)}")
        links.append(QKDLink(f"{spec.a}--{spec.b}", spec.a, spec.b, spec.length_km,
                             spec.loss_db, kind, spec.device_pairs,
                             field=MappingProxyType(dict(spec.field))))
    try:
        return with_links(network, links)
    except ScenarioError as exc:
        raise ScenarioError(f"add_links[{exc.path}]", exc.problem) from None


def with_links(network: Network, links: Sequence[QKDLink]) -> Network:
    """``network`` with new QKD-links, each with a direct KM-link ``km:A~B`` (a what-if:
    new fibre and devices between two of its nodes). A link between two nodes already
    joined by a QKD-link, or between a node and itself, is refused (the error's path is
    the link's index in ``links``)."""
    g = network.graph()
    seen: set[frozenset[str]] = set()
    for i, lk in enumerate(links):
        ends = frozenset(lk.ends)
        if len(ends) == 1:
            raise ScenarioError(str(i), f"a link joins two nodes, got {lk.a!r} twice")
        if g.has_edge(lk.a, lk.b) or ends in seen:
            raise ScenarioError(str(i), f"{lk.a!r} and {lk.b!r} are joined by a QKD-link "
                                "already")
        seen.add(ends)
    km = [KMLink(f"km:{lk.a}~{lk.b}", lk.a, lk.b, KMLinkKind.DIRECT, (lk.id,)) for lk in links]
    return validated(replace(network, qkd_links=(*network.qkd_links, *links),
                             km_links=(*network.km_links, *km)))


def with_device_pairs(network: Network, added: Mapping[str, int]) -> Network:
    """``network`` with ``added[link]`` more device pairs on each named QKD-link (of its
    type); a ScenarioError names an unknown link or a count below 1."""
    for link, pairs in added.items():
        if link not in network.link:
            raise ScenarioError(f"add_device_pairs.{link}", f"unknown QKD-link {link!r}")
        if not pairs >= 1:
            raise ScenarioError(f"add_device_pairs.{link}", f"add at least 1 pair, got {pairs}")
    return replace(network, qkd_links=tuple(
        replace(lk, device_pairs=lk.device_pairs + added.get(lk.id, 0))
        for lk in network.qkd_links))


def _demand(network: Network, i: int, spec: DemandSpec) -> TwinDemand:
    if not spec.rate_bps >= 0:
        raise ScenarioError(f"demands[{i}].rate_bps", "key rate must be >= 0 bit/s")
    if not spec.key_bits >= 1:
        raise ScenarioError(f"demands[{i}].key_bits", "a key has at least 1 bit")
    return _checked(network, TwinDemand(spec.id, spec.source, spec.target, spec.rate_bps,
                                        spec.key_bits), f"demands[{i}]")


def _checked(network: Network, demand: TwinDemand, where: str = "demands") -> TwinDemand:
    for end in ("source", "target"):
        if getattr(demand, end) not in network.node:
            raise ScenarioError(f"{where}.{end}", f"unknown node {getattr(demand, end)!r}")
    if not nx.has_path(_reach(network), demand.source, demand.target):
        raise ScenarioError(where, f"no route joins {demand.source!r} and "
                            f"{demand.target!r}: they are in disconnected parts of the network")
    return demand


def _reach(network: Network) -> nx.Graph:
    """The QKD-links and the satellite KM-links (a scenario without satellites has none)."""
    satellite = [k for k in network.km_links if k.kind is KMLinkKind.SATELLITE]
    if not satellite:
        return network.graph()
    g = nx.Graph(network.graph())
    g.add_edges_from((k.a, k.b) for k in satellite)
    return g


def _segments(network: Network, waypoints: list[str]) -> tuple[str, ...]:
    if len(waypoints) == 1:
        raise ScenarioError("segments", "a watched path needs at least 2 nodes")
    g = network.graph()
    for i, node in enumerate(waypoints):
        if node not in network.node:
            raise ScenarioError(f"segments[{i}]", f"unknown node {node!r}")
        if i and not nx.has_path(g, waypoints[i - 1], node):
            raise ScenarioError(f"segments[{i}]", f"no QKD-link path joins "
                                f"{waypoints[i - 1]!r} and {node!r}")
    return tuple(waypoints)


def _fault(network: Network, duration_s: float, i: int, spec: FaultSpec) -> ScriptedFault:
    if spec.link not in network.link:
        raise ScenarioError(f"faults[{i}].link", f"unknown QKD-link {spec.link!r}")
    if not spec.duration_h > 0:
        raise ScenarioError(f"faults[{i}].duration_h",
                            f"a fault lasts more than 0 h, got {spec.duration_h}")
    if not 0 <= spec.at_h * HOUR_S < duration_s:
        raise ScenarioError(f"faults[{i}].at_h", f"{spec.at_h} h is outside the run "
                            f"(0 to {duration_s / HOUR_S:g} h)")
    return ScriptedFault(spec.link, spec.at_h * HOUR_S, spec.duration_h * HOUR_S)
