"""Coordination of the regional Level-1 controllers: one national view of the KM-link
state, and routes between regions stitched from the two regions' segments.

A route inside one region is its Level-1 controller's. A route from region A to region B
asks A for the segments of all its domains, reaching B's gateways as well as its own, and B
for the segments of its own metro networks; the cheapest chain through both is the route.
No third region's metro networks are consulted: metro networks carry no transit key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import networkx as nx

from qkdnet.control.level1 import KMLinkView, Level1Controller, cheapest
from qkdnet.keys.route import Route


class Level1Coordination(KMLinkView):
    """All regions' Level-1 controllers; ``region_of`` gives each node's region."""

    def __init__(self, regional: Sequence[Level1Controller],
                 region_of: Mapping[str, str]) -> None:
        super().__init__(l2 for l1 in regional for l2 in l1.level2s)
        self.regional = {l1.region: l1 for l1 in regional}
        self.region_of = dict(region_of)

    def route(self, source: str, target: str, need_bits: float,
              avoid: Iterable[str] = ()) -> Route | None:
        """The cheapest route, inside one region or coordinated across two."""
        if source == target:
            return Route((source,), (), 0.0)
        first = self.regional[self.region_of[source]]
        last = self.regional[self.region_of[target]]
        skip = frozenset(avoid)
        if first is last:
            return first.route(source, target, need_bits, skip)
        ends = {source, target}
        segments = nx.compose(first.segments(ends | last.gateways, need_bits, skip),
                              last.segments(ends, need_bits, skip, local_only=True))
        return cheapest(segments, source, target)
