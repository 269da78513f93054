"""Level-2 controllers: key relay routing inside one domain (the backbone, BSBN, one metro
network) over its KM-links, with a key-aware cost and an edge-disjoint backup."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import networkx as nx

from qkdnet.control.cost import key_aware_cost, satellite_cost
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.route import Route
from qkdnet.topology.model import Domain, KMLinkKind, Network
from qkdnet.topology.paths import disjoint_paths_in


@dataclass(frozen=True, slots=True)
class Protected:
    """A working path and, where the topology allows, an edge-disjoint backup."""

    working: Route
    backup: Route | None


class Level2Controller:
    """Routes inside ``domain`` over the network's KM-links of ``kinds`` with both ends in
    the domain; :meth:`update` feeds it KM-link state. Satellite KM-links are priced by
    the key in their satellite pools (:func:`~qkdnet.control.cost.satellite_cost`)."""

    def __init__(self, network: Network, domain: Domain,
                 kinds: Collection[KMLinkKind] = (KMLinkKind.DIRECT,)) -> None:
        self.domain = domain
        self._edges = {k.id: (k.a, k.b) for k in network.km_links
                       if k.kind in kinds and k.a in domain.nodes and k.b in domain.nodes}
        self._satellite = frozenset(k.id for k in network.km_links
                                    if k.kind is KMLinkKind.SATELLITE and k.id in self._edges)
        self._state: dict[str, KMLinkState] = {}

    @property
    def km_links(self) -> frozenset[str]:
        """The KM-links this controller routes over."""
        return frozenset(self._edges)

    def update(self, state: KMLinkState) -> None:
        """Record the latest state of one of this domain's KM-links (others are ignored)."""
        if state.km_link in self._edges:
            self._state[state.km_link] = state

    def graph(self, need_bits: float, avoid: Iterable[str] = ()) -> nx.Graph:
        """The usable KM-links as a graph weighted by key-aware cost (``cost``), each edge
        naming its ``km_link``; those in ``avoid`` left out."""
        skip = set(avoid)
        g = nx.Graph()
        g.add_nodes_from(self.domain.nodes)
        for km, (a, b) in self._edges.items():
            price = satellite_cost if km in self._satellite else key_aware_cost
            cost = price(self._state.get(km), need_bits)
            if cost is not None and km not in skip and \
                    (not g.has_edge(a, b) or g.edges[a, b]["cost"] > cost):
                g.add_edge(a, b, cost=cost, km_link=km)
        return g

    def protected(self, source: str, target: str, need_bits: float,
                  avoid: Iterable[str] = ()) -> Protected | None:
        """Working and backup paths of least total cost for ``need_bits`` of key; None if
        ``target`` cannot be reached."""
        g = self.graph(need_bits, avoid)
        if source not in g or target not in g or not nx.has_path(g, source, target):
            return None
        found = [as_route(g, p) for p in disjoint_paths_in(g, source, target, 2, "cost")]
        found.sort(key=lambda p: (p.cost, len(p.nodes)))
        return Protected(found[0], found[1] if len(found) > 1 else None)


def as_route(g: nx.Graph, nodes: list[str]) -> Route:
    """The :class:`~qkdnet.keys.route.Route` through ``nodes`` of ``g``, priced at the
    sum of its edges' costs."""
    pairs = list(itertools.pairwise(nodes))
    return Route(tuple(nodes), tuple(g.edges[a, b]["km_link"] for a, b in pairs),
                sum(g.edges[a, b]["cost"] for a, b in pairs))
