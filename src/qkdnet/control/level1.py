"""Level-1 controllers: key relay routes between domains, stitched from Level-2 paths.

A Level-1 controller serves one region: it stitches across the region's metro networks and
the national domains (the backbone, BSBN) whose Level-2 controllers every region shares.
Gateways are nodes that belong to more than one of its domains (a backbone access node with
a metro network, the nodes BSBN shares with the new backbone). Each Level-2 controller
prices the paths between the gateways of its domain (and the demand's ends, if they are in
it); the cheapest chain of such segments from source to target is the route. The backup is
the cheapest route that avoids every KM-link of the working one, so the two are
edge-disjoint even when they cross different domains (a ring closed through BSBN).
Routes between regions are coordinated by :mod:`qkdnet.control.coordination`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence

import networkx as nx

from qkdnet.control.cost import key_aware_cost
from qkdnet.control.level2 import Level2Controller, Protected, as_route
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.route import Route


class KMLinkView:
    """What protection and the KMs use of the Level-1 layer (one region's controller or the
    coordination of all regions): the KM-link state it routes with, passed on to the
    Level-2 controllers that route over each KM-link; subclasses give :meth:`route`."""

    def __init__(self, level2s: Iterable[Level2Controller]) -> None:
        self._state: dict[str, KMLinkState] = {}
        self._owners: dict[str, list[Level2Controller]] = {}
        for l2 in dict.fromkeys(level2s):  # a shared controller counts once
            for km in l2.km_links:
                self._owners.setdefault(km, []).append(l2)

    def state(self, km_link: str) -> KMLinkState | None:
        """The last state reported for ``km_link`` (None: never reported)."""
        return self._state.get(km_link)

    def update(self, state: KMLinkState) -> None:
        """Pass a KM-link's state to the Level-2 controllers that route over it."""
        self._state[state.km_link] = state
        for l2 in self._owners.get(state.km_link, ()):
            l2.update(state)

    def usable(self, path: Route, need_bits: float) -> bool:
        """Whether every KM-link of ``path`` is up and holds ``need_bits`` of key."""
        return all(key_aware_cost(self._state.get(km), need_bits) is not None
                   for km in path.km_links)

    def drained(self, path: Route, need_bits: float) -> list[str]:
        """The KM-links of ``path`` last reported holding less than ``need_bits`` of key
        (they may still refill fast enough to be usable)."""
        return [km for km in path.km_links
                if (state := self._state.get(km)) is not None and state.key_bits < need_bits]

    def refill_bps(self, path: Route) -> float:
        """The slowest refill (bit/s) reported on ``path``: what it can carry once its
        pools are drained (infinite for a path of no KM-links or none reported)."""
        rates = [state.rate_bps for km in path.km_links
                 if (state := self._state.get(km)) is not None]
        return min(rates, default=math.inf)

    def route(self, source: str, target: str, need_bits: float,
              avoid: Iterable[str] = ()) -> Route | None:
        """The cheapest route for ``need_bits`` avoiding the KM-links ``avoid``; None if
        there is none."""
        raise NotImplementedError

    def protected(self, source: str, target: str, need_bits: float,
                  avoid: Iterable[str] = ()) -> Protected | None:
        """A working route and an edge-disjoint backup (None where none exists)."""
        working = self.route(source, target, need_bits, avoid)
        if working is None:
            return None
        backup = self.route(source, target, need_bits, {*avoid, *working.km_links})
        return Protected(working, backup)


class Level1Controller(KMLinkView):
    """Stitches routes across the domains of ``level2s`` (one per domain); ``local`` are
    the region's own (metro) Level-2 controllers among them, the rest are shared."""

    def __init__(self, level2s: Sequence[Level2Controller], region: str = "",
                 local: Collection[Level2Controller] = ()) -> None:
        super().__init__(level2s)
        self.region = region
        self.level2s = list(level2s)
        self.local = [l2 for l2 in self.level2s if l2 in local]
        seen: dict[str, int] = {}
        for l2 in self.level2s:
            for node in l2.domain.nodes:
                seen[node] = seen.get(node, 0) + 1
        self.gateways = frozenset(n for n, count in seen.items() if count > 1)

    def route(self, source: str, target: str, need_bits: float,
              avoid: Iterable[str] = ()) -> Route | None:
        """The cheapest stitched route for ``need_bits``; None if there is none."""
        if source == target:
            return Route((source,), (), 0.0)
        return cheapest(self.segments({source, target}, need_bits, frozenset(avoid)),
                        source, target)

    def segments(self, points: Collection[str], need_bits: float, skip: frozenset[str],
                 local_only: bool = False) -> nx.Graph:
        """The priced Level-2 paths between this region's gateways and ``points`` (the
        demand's ends, another region's gateways), over all its domains or only its own
        (``local_only``): the graph routes are stitched on."""
        segments = nx.Graph()
        wanted = self.gateways | set(points)
        for l2 in self.local if local_only else self.level2s:
            _add_segments(segments, l2, wanted, need_bits, skip)
        return segments


def cheapest(segments: nx.Graph, source: str, target: str) -> Route | None:
    """The cheapest chain of segments from ``source`` to ``target``, joined into one path."""
    if source not in segments or target not in segments or \
            not nx.has_path(segments, source, target):
        return None
    hops = nx.shortest_path(segments, source, target, weight="cost")
    return _join([segments.edges[a, b]["path"].oriented(a) for a, b in itertools.pairwise(hops)])


def _add_segments(segments: nx.Graph, l2: Level2Controller, wanted: Collection[str],
                  need_bits: float, skip: frozenset[str]) -> None:
    g = l2.graph(need_bits, skip)
    points = sorted(n for n in wanted if n in l2.domain.nodes)  # ties break the same way
    for p in points:
        cost, nodes = nx.single_source_dijkstra(g, p, weight="cost")
        for q in points:
            if q == p or q not in cost:
                continue
            if not segments.has_edge(p, q) or segments.edges[p, q]["cost"] > cost[q]:
                segments.add_edge(p, q, cost=cost[q], path=_Segment(as_route(g, nodes[q])))


class _Segment:
    """A Level-2 path stored once per gateway pair, walked in either direction."""

    def __init__(self, path: Route) -> None:
        self.path = path

    def oriented(self, start: str) -> Route:
        return self.path if self.path.nodes[0] == start else self.path.reversed()


def _join(parts: list[Route]) -> Route:
    nodes: list[str] = [parts[0].nodes[0]]
    links: list[str] = []
    for part in parts:
        nodes += part.nodes[1:]
        links += part.km_links
    return Route(tuple(nodes), tuple(links), sum(p.cost for p in parts))
