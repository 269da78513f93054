"""The control hierarchy of a network: a Level-2 controller per domain, a Level-1
controller per region, and their coordination across regions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from qkdnet.control.coordination import Level1Coordination
from qkdnet.control.level1 import Level1Controller
from qkdnet.control.level2 import Level2Controller
from qkdnet.topology.model import Domain, DomainKind, KMLinkKind, Network


def controllers_for(network: Network, fibre: Collection[KMLinkKind] = (KMLinkKind.DIRECT,)
                    ) -> Level1Coordination:
    """The control hierarchy of ``network``: a Level-2 controller per domain over its
    KM-links of the ``fibre`` kinds (plus one for the KM-links no domain holds, such as
    ground-station tails, and one for the satellite KM-links between the ground stations),
    a Level-1 controller per region over its metro networks and the national domains, and
    their coordination."""
    domains = list(network.domains)
    covered = {k.id for k in network.km_links for d in domains
               if k.a in d.nodes and k.b in d.nodes}
    loose = {n for k in network.km_links if k.id not in covered and k.kind in fibre
             for n in (k.a, k.b)}
    if loose:
        domains.append(Domain("unassigned", DomainKind.BACKBONE, "KM-links in no domain",
                              frozenset(loose)))
    level2s = [Level2Controller(network, d, fibre) for d in domains]
    stations = {n for k in network.km_links if k.kind is KMLinkKind.SATELLITE
                for n in (k.a, k.b)}
    if stations:  # national: every region reaches the others' ground stations through it
        level2s.append(Level2Controller(
            network, Domain("satellite", DomainKind.BACKBONE, "satellite KM-links",
                            frozenset(stations)), (KMLinkKind.SATELLITE,)))
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
