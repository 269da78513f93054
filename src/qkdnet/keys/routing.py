"""Which KM-links a relay uses: the one interface the key management layer asks for a
route, so the control layer can replace the simple shortest-path routing here."""

from __future__ import annotations

from collections.abc import Collection
from itertools import pairwise
from typing import Protocol

import networkx as nx

from qkdnet.errors import ScenarioError
from qkdnet.keys.messages import Route
from qkdnet.topology.model import KMLinkKind, Network


class Router(Protocol):
    """Chooses the relay route for a key from ``source`` to ``destination`` (node ids)."""

    def route(self, source: str, destination: str) -> Route:
        """The route, or ScenarioError if the two nodes cannot be joined."""


class ShortestPathRouter:
    """Fewest KM-link hops over the network's KM-links of the given kinds (by default the
    direct ones, whose pools the QKD-links fill)."""

    def __init__(self, network: Network,
                 kinds: Collection[KMLinkKind] = (KMLinkKind.DIRECT,)) -> None:
        self._graph = nx.Graph()
        self._graph.add_nodes_from(n.id for n in network.nodes)
        for km in network.km_links:
            if km.kind in kinds:
                self._graph.add_edge(km.a, km.b, km_link=km.id)

    def route(self, source: str, destination: str) -> Route:
        for node in (source, destination):
            if node not in self._graph:
                raise ScenarioError("", f"unknown node {node!r}")
        try:
            nodes: list[str] = nx.shortest_path(self._graph, source, destination)
        except nx.NetworkXNoPath:
            raise ScenarioError("", f"no KM-link route from {source!r} to {destination!r}"
                                ) from None
        links = tuple(self._graph.edges[a, b]["km_link"] for a, b in pairwise(nodes))
        return Route(tuple(nodes), links)
