"""A twin scenario: which network, for how long, with what demand and what scripted faults
and what-if changes; checked before any simulation runs.

    qkdnet_twin: 1
    network: cn-qcn                 # a built-in name, or a scenario file beside this one
    weeks: 10
    seed: 1
    demands:                        # SAE pairs' key consumption between two nodes (bit/s)
      - {id: otp-1, source: harbin, target: shenzhen, rate_bps: 10000}
    faults:                         # on top of the random ones: cut this link at this time
      - {link: beijing--xiongan, at_h: 100, duration_h: 3}
    remove_links: [hefei--luan]     # what-if: as if these QKD-links did not exist

Errors name the file, the line and the path: ``twin.yaml:9: faults[0].link: unknown
QKD-link 'x'``; a demand between nodes no route joins, a negative duration and a fault
outside the run are refused the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict

from qkdnet.errors import ScenarioError
from qkdnet.topology.model import KMLinkKind, Network
from qkdnet.topology.scenario_file import load_document
from qkdnet.topology.scenarios import BUILT_IN, open_network

HOUR_S = 3600.0
WEEK_S = 7 * 24 * HOUR_S


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemandSpec(_Spec):
    id: str
    source: str
    target: str
    rate_bps: float = 8000.0


class FaultSpec(_Spec):
    link: str
    at_h: float
    duration_h: float


class TwinSpec(_Spec):
    qkdnet_twin: Literal[1]
    network: str = "cn-qcn"
    weeks: float = 10.0
    seed: int = 1
    demands: list[DemandSpec] = []
    faults: list[FaultSpec] = []
    remove_links: list[str] = []


@dataclass(frozen=True, slots=True)
class TwinDemand:
    """Key consumed between two nodes at ``rate_bps`` (bit/s) for the whole run."""

    id: str
    source: str
    target: str
    rate_bps: float


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


def load_twin_scenario(path: Path) -> TwinScenario:
    """Read and check a twin scenario file (see the module docstring)."""
    return load_document(path, TwinSpec, lambda spec: twin_scenario(spec, path.parent))


def twin_scenario(spec: TwinSpec, base: Path = Path(".")) -> TwinScenario:
    """The scenario of a parsed document, its network found by name or beside ``base``."""
    if not spec.weeks > 0:
        raise ScenarioError("weeks", f"the run must last more than 0 weeks, got {spec.weeks}")
    network = _without_links(_network(spec.network, base), spec.remove_links)
    duration = spec.weeks * WEEK_S
    return TwinScenario(network, duration, spec.seed,
                        tuple(_demand(network, i, d) for i, d in enumerate(spec.demands)),
                        tuple(_fault(network, duration, i, f) for i, f in enumerate(spec.faults)))


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


def _demand(network: Network, i: int, spec: DemandSpec) -> TwinDemand:
    for end in ("source", "target"):
        if getattr(spec, end) not in network.node:
            raise ScenarioError(f"demands[{i}].{end}", f"unknown node {getattr(spec, end)!r}")
    if not spec.rate_bps >= 0:
        raise ScenarioError(f"demands[{i}].rate_bps", "key rate must be >= 0 bit/s")
    if not nx.has_path(_reach(network), spec.source, spec.target):
        raise ScenarioError(f"demands[{i}]", f"no route joins {spec.source!r} and "
                            f"{spec.target!r}: they are in disconnected parts of the network")
    return TwinDemand(spec.id, spec.source, spec.target, spec.rate_bps)


def _reach(network: Network) -> nx.Graph:
    """Which nodes key can travel between: the QKD-links and the satellite KM-links."""
    g = nx.Graph(network.graph())
    g.add_edges_from((k.a, k.b) for k in network.km_links if k.kind is KMLinkKind.SATELLITE)
    return g


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
