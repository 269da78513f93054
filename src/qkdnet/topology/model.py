"""The network as data: nodes, QKD-links, KM-links, domains and regions.

A :class:`Network` is a small set of immutable records plus indexes; the networkx view
(:meth:`Network.graph`) is built on demand for path computations. Units: km, dB, degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

import networkx as nx


class NodeKind(StrEnum):
    """What a node is in CN-QCN's terms."""

    BACKBONE_ACCESS = "backbone_access"  # attaches metro networks, relays in several directions
    BACKBONE_RELAY = "backbone_relay"  # trusted relay between access nodes
    BSBN = "bsbn"  # node of the older Beijing-Shanghai backbone
    METRO_ACCESS = "metro_access"  # metro node with QKD devices and an optical switch
    USER = "user"  # user node behind a metro access node's switch
    GROUND_STATION = "ground_station"  # satellite ground station
    OM_CENTRE = "om_centre"  # operation and maintenance centre


class Multiplexing(StrEnum):
    """How a QKD-link's quantum channel shares the fibre plant."""

    WDM = "wdm"
    OPTICAL_SWITCH = "optical_switch"


class KMLinkKind(StrEnum):
    """How a KM-link gets its key."""

    DIRECT = "direct"  # over one QKD-link between neighbours
    REMOTE = "remote"  # over a predefined relay path of QKD-links
    SATELLITE = "satellite"  # by satellite key relay between ground stations


class DomainKind(StrEnum):
    """The routing domains a Level-2 controller owns."""

    BACKBONE = "backbone"
    BSBN = "bsbn"
    METRO = "metro"


@dataclass(frozen=True, slots=True)
class Node:
    """A site holding a Key Manager (or, for the O&M centre, the NMS)."""

    id: str
    name: str
    kind: NodeKind
    lat: float
    lon: float
    city: str = ""
    region: str = ""


@dataclass(frozen=True, slots=True)
class QKDLink:
    """A pair (or pairs) of QKD devices on one fibre between adjacent nodes.

    ``time_share`` is the fraction of time the devices serve this link: 1 for a dedicated
    link, 1/n for one of n user links behind an optical switch. ``field`` holds this link's
    field parameters (quantum-layer names: e_d, dark_count_hz, f_ec, xi, beta).
    """

    id: str
    a: str
    b: str
    length_km: float
    loss_db: float
    device_type: str
    device_pairs: int = 1
    multiplexing: Multiplexing = Multiplexing.WDM
    time_share: float = 1.0
    field: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __reduce__(self) -> tuple[Any, ...]:
        # a mappingproxy does not pickle: as the dict it wraps, made read-only again (the
        # twin's sweeps send scenarios to their workers)
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "field"}
        return _qkd_link, (values, dict(self.field))

    @property
    def ends(self) -> tuple[str, str]:
        """The two node ids."""
        return (self.a, self.b)

    def other(self, node: str) -> str:
        """The end that is not ``node``."""
        return self.b if node == self.a else self.a


def _qkd_link(values: dict[str, Any], field_: dict[str, float]) -> QKDLink:
    """A QKD-link from its field values and its ``field`` as a dict (unpickling)."""
    return QKDLink(**values, field=MappingProxyType(field_))


@dataclass(frozen=True, slots=True)
class KMLink:
    """A key-management link between two KMs and the QKD-links it draws key from.

    ``path`` lists QKD-link ids from ``a`` to ``b`` in order; empty for satellite KM-links.
    """

    id: str
    a: str
    b: str
    kind: KMLinkKind
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Domain:
    """A routing domain (the backbone, BSBN, one metro network) and its member nodes.

    ``managed_by`` names the operator whose key management system runs the domain ("" for
    none stated). Where two domains with different operators share a node (a gateway), keys
    cross between them through ETSI GS QKD 020 (:mod:`qkdnet.keys.domain_border`).
    """

    id: str
    kind: DomainKind
    name: str
    nodes: frozenset[str]
    managed_by: str = ""


@dataclass(frozen=True, slots=True)
class SAE:
    """A secure application entity (an end-user system) attached to a node's KME."""

    id: str
    node: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Region:
    """A management region: one EMS collects from its nodes."""

    id: str
    name: str


@dataclass(frozen=True)
class Network:
    """A whole QKD network. Build it with :func:`qkdnet.topology.validation.validated`
    (or a loader) so that every reference resolves."""

    name: str
    nodes: tuple[Node, ...]
    qkd_links: tuple[QKDLink, ...]
    km_links: tuple[KMLink, ...] = ()
    domains: tuple[Domain, ...] = ()
    regions: tuple[Region, ...] = ()
    notes: str = ""
    saes: tuple[SAE, ...] = ()
    #: Which SAEs may share keys: unordered pairs of SAE ids; None (the default) lets every
    #: two of ``saes`` share keys.
    sae_pairs: tuple[tuple[str, str], ...] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the lookup tables (cached mappingproxies, which do not pickle) are made again
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @cached_property
    def node(self) -> Mapping[str, Node]:
        """Nodes by id."""
        return MappingProxyType({n.id: n for n in self.nodes})

    @cached_property
    def link(self) -> Mapping[str, QKDLink]:
        """QKD-links by id."""
        return MappingProxyType({lk.id: lk for lk in self.qkd_links})

    @cached_property
    def km_link(self) -> Mapping[str, KMLink]:
        """KM-links by id."""
        return MappingProxyType({k.id: k for k in self.km_links})

    @cached_property
    def sae(self) -> Mapping[str, SAE]:
        """SAEs by id."""
        return MappingProxyType({s.id: s for s in self.saes})

    @cached_property
    def _sae_pair_set(self) -> frozenset[frozenset[str]] | None:
        if self.sae_pairs is None:
            return None
        return frozenset(frozenset(p) for p in self.sae_pairs)

    def may_share_keys(self, master: str, slave: str) -> bool:
        """Whether SAEs ``master`` and ``slave`` may share keys, in either role: both are
        known and, when the network states ``sae_pairs``, the two are listed as a pair."""
        if master not in self.sae or slave not in self.sae:
            return False
        pairs = self._sae_pair_set
        return pairs is None or frozenset((master, slave)) in pairs

    @cached_property
    def domain(self) -> Mapping[str, Domain]:
        """Domains by id."""
        return MappingProxyType({d.id: d for d in self.domains})

    def nodes_of(self, *kinds: NodeKind) -> list[Node]:
        """Nodes of the given kinds, in file order."""
        return [n for n in self.nodes if n.kind in kinds]

    def links_within(self, node_ids: Iterable[str]) -> list[QKDLink]:
        """QKD-links with both ends in ``node_ids``."""
        members = set(node_ids)
        return [lk for lk in self.qkd_links if lk.a in members and lk.b in members]

    def graph(self) -> nx.Graph:
        """Undirected networkx graph of the QKD-links: nodes carry the Node as ``node``,
        edges carry the QKDLink as ``link`` and its ``length_km`` and ``loss_db``."""
        return self._graph.copy(as_view=True)

    @cached_property
    def _graph(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from((n.id, {"node": n}) for n in self.nodes)
        g.add_edges_from(
            (lk.a, lk.b, {"link": lk, "length_km": lk.length_km, "loss_db": lk.loss_db})
            for lk in self.qkd_links
        )
        return g
