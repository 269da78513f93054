"""The control layer behind the key management layer's :class:`~qkdnet.keys.routing.Router`
interface: KMs ask it for relay routes instead of the simple shortest path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from qkdnet.control.coordination import Level1Coordination
from qkdnet.control.level1 import Level1Controller
from qkdnet.control.level2 import Level2Controller
from qkdnet.control.link_state import KMLinkState
from qkdnet.errors import ScenarioError
from qkdnet.keys.messages import Route
from qkdnet.topology.model import Domain, DomainKind, KMLinkKind, Network


def controllers_for(network: Network) -> Level1Coordination:
    """The control hierarchy of ``network``: a Level-2 controller per domain (plus one for
    the KM-links no domain holds, such as ground-station tails), a Level-1 controller per
    region over its metro networks and the national domains, and their coordination."""
    domains = list(network.domains)
    covered = {k.id for k in network.km_links for d in domains
               if k.a in d.nodes and k.b in d.nodes}
    loose = {n for k in network.km_links if k.id not in covered and k.kind is KMLinkKind.DIRECT
             for n in (k.a, k.b)}
    if loose:
        domains.append(Domain("unassigned", DomainKind.BACKBONE, "KM-links in no domain",
                              frozenset(loose)))
    level2s = [Level2Controller(network, d) for d in domains]
    national = [l2 for l2 in level2s if l2.domain.kind is not DomainKind.METRO]
    by_region: dict[str, list[Level2Controller]] = {n.region: [] for n in network.nodes}
    for l2 in level2s:
        if l2.domain.kind is DomainKind.METRO:
            [(region, _)] = Counter(network.node[n].region
                                    for n in l2.domain.nodes).most_common(1)
            by_region[region].append(l2)
    regional = [Level1Controller([*national, *metros], region, metros)
                for region, metros in sorted(by_region.items())]
    return Level1Coordination(regional, {n.id: n.region for n in network.nodes})


class ControlRouter:
    """Routes for the KMs from the Level-1 controller, for ``need_bits`` per key; the route
    of a node pair is kept until KM-link state changes."""

    def __init__(self, network: Network, need_bits: float = 512.0) -> None:
        self.level1 = controllers_for(network)
        self.need_bits = need_bits
        self._cache: dict[tuple[str, str], Route] = {}

    def update(self, state: KMLinkState) -> None:
        """New KM-link state: routes are recomputed on their next use."""
        self.update_all([state])

    def update_all(self, states: Iterable[KMLinkState]) -> None:
        """A batch of KM-link states (one report of the whole network)."""
        for state in states:
            self.level1.update(state)
        self._cache.clear()

    def route(self, source: str, destination: str) -> Route:
        cached = self._cache.get((source, destination))
        if cached is not None:
            return cached
        path = self.level1.route(source, destination, self.need_bits)
        if path is None:
            raise ScenarioError("", f"no KM-link route from {source!r} to {destination!r}")
        route = Route(path.nodes, path.km_links)
        self._cache[source, destination] = route
        return route
