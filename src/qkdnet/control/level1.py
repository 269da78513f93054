"""The Level-1 controller: key relay routes between domains, stitched from Level-2 paths.

Gateways are nodes that belong to more than one domain (a backbone access node with a metro
network, the nodes BSBN shares with the new backbone). Each Level-2 controller prices the
paths between the gateways of its domain (and the demand's ends, if they are in it); the
cheapest chain of such segments from source to target is the route. The backup is the
cheapest route that avoids every KM-link of the working one, so the two are edge-disjoint
even when they cross different domains (a ring closed through BSBN).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import networkx as nx

from qkdnet.control.level2 import Level2Controller, Path, Protected, as_path
from qkdnet.control.link_state import KMLinkState, key_aware_cost


class Level1Controller:
    """Stitches routes across the domains of ``level2s`` (one per domain)."""

    def __init__(self, level2s: Sequence[Level2Controller]) -> None:
        self.level2s = list(level2s)
        seen: dict[str, int] = {}
        for l2 in self.level2s:
            for node in l2.domain.nodes:
                seen[node] = seen.get(node, 0) + 1
        self.gateways = frozenset(n for n, count in seen.items() if count > 1)
        self._state: dict[str, KMLinkState] = {}
        self._owners: dict[str, list[Level2Controller]] = {}
        for l2 in self.level2s:
            for km in l2.km_links:
                self._owners.setdefault(km, []).append(l2)

    def update(self, state: KMLinkState) -> None:
        """Pass a KM-link's state to the Level-2 controllers that route over it."""
        self._state[state.km_link] = state
        for l2 in self._owners.get(state.km_link, ()):
            l2.update(state)

    def usable(self, path: Path, need_bits: float) -> bool:
        """Whether every KM-link of ``path`` is up and holds ``need_bits`` of key."""
        return all(key_aware_cost(self._state.get(km), need_bits) is not None
                   for km in path.km_links)

    def drained(self, path: Path, need_bits: float) -> list[str]:
        """The KM-links of ``path`` last reported holding less than ``need_bits`` of key
        (they may still refill fast enough to be usable)."""
        return [km for km in path.km_links
                if (state := self._state.get(km)) is not None and state.key_bits < need_bits]

    def route(self, source: str, target: str, need_bits: float,
              avoid: Iterable[str] = ()) -> Path | None:
        """The cheapest stitched route for ``need_bits``; None if there is none."""
        if source == target:
            return Path((source,), (), 0.0)
        skip = frozenset(avoid)
        segments = nx.Graph()
        for l2 in self.level2s:
            self._add_segments(segments, l2, {source, target}, need_bits, skip)
        if source not in segments or target not in segments or \
                not nx.has_path(segments, source, target):
            return None
        hops = nx.shortest_path(segments, source, target, weight="cost")
        return _join([segments.edges[a, b]["path"].oriented(a)
                      for a, b in itertools.pairwise(hops)])

    def protected(self, source: str, target: str, need_bits: float,
                  avoid: Iterable[str] = ()) -> Protected | None:
        """A working route and an edge-disjoint backup (None where none exists)."""
        working = self.route(source, target, need_bits, avoid)
        if working is None:
            return None
        backup = self.route(source, target, need_bits, {*avoid, *working.km_links})
        return Protected(working, backup)

    def _add_segments(self, segments: nx.Graph, l2: Level2Controller, ends: set[str],
                      need_bits: float, skip: frozenset[str]) -> None:
        g = l2.graph(need_bits, skip)
        points = [n for n in (self.gateways | ends) if n in l2.domain.nodes]
        for p in points:
            cost, nodes = nx.single_source_dijkstra(g, p, weight="cost")
            for q in points:
                if q == p or q not in cost:
                    continue
                if not segments.has_edge(p, q) or segments.edges[p, q]["cost"] > cost[q]:
                    segments.add_edge(p, q, cost=cost[q], path=_Segment(as_path(g, nodes[q])))


class _Segment:
    """A Level-2 path stored once per gateway pair, walked in either direction."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def oriented(self, start: str) -> Path:
        p = self.path
        if p.nodes[0] == start:
            return p
        return Path(p.nodes[::-1], p.km_links[::-1], p.cost)


def _join(parts: list[Path]) -> Path:
    nodes: list[str] = [parts[0].nodes[0]]
    links: list[str] = []
    for part in parts:
        nodes += part.nodes[1:]
        links += part.km_links
    return Path(tuple(nodes), tuple(links), sum(p.cost for p in parts))
