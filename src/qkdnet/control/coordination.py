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

from qkdnet.control.level1 import Level1Controller, cheapest
from qkdnet.control.level2 import Level2Controller, Path, Protected
from qkdnet.control.link_state import KMLinkState, key_aware_cost


class Level1Coordination:
    """All regions' Level-1 controllers; ``region_of`` gives each node's region."""

    def __init__(self, regional: Sequence[Level1Controller],
                 region_of: Mapping[str, str]) -> None:
        self.regional = {l1.region: l1 for l1 in regional}
        self.region_of = dict(region_of)
        self._state: dict[str, KMLinkState] = {}
        self._owners: dict[str, list[Level2Controller]] = {}
        seen: set[int] = set()
        for l1 in regional:
            for l2 in l1.level2s:
                if id(l2) in seen:
                    continue
                seen.add(id(l2))
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
        """The KM-links of ``path`` last reported holding less than ``need_bits``."""
        return [km for km in path.km_links
                if (state := self._state.get(km)) is not None and state.key_bits < need_bits]

    def route(self, source: str, target: str, need_bits: float,
              avoid: Iterable[str] = ()) -> Path | None:
        """The cheapest route, inside one region or coordinated across two."""
        if source == target:
            return Path((source,), (), 0.0)
        first = self.regional[self.region_of[source]]
        last = self.regional[self.region_of[target]]
        skip = frozenset(avoid)
        if first is last:
            return first.route(source, target, need_bits, skip)
        ends = {source, target}
        segments = nx.compose(first.segments(ends | last.gateways, need_bits, skip),
                              last.segments(ends, need_bits, skip, local_only=True))
        return cheapest(segments, source, target)

    def protected(self, source: str, target: str, need_bits: float,
                  avoid: Iterable[str] = ()) -> Protected | None:
        """A working route and an edge-disjoint backup (None where none exists)."""
        working = self.route(source, target, need_bits, avoid)
        if working is None:
            return None
        backup = self.route(source, target, need_bits, {*avoid, *working.km_links})
        return Protected(working, backup)
