"""Which part of the network a QKD-link belongs to."""

from __future__ import annotations

from qkdnet.topology.link_category import LinkCategory, link_category
from qkdnet.topology.model import Domain, DomainKind, Network, Node, NodeKind, QKDLink
from qkdnet.topology.validation import validated

K = NodeKind


def _node(id_: str, kind: NodeKind, lat: float, lon: float) -> Node:
    return Node(id_, id_, kind, lat, lon)


def _link(a: str, b: str, device: str = "I") -> QKDLink:
    return QKDLink(f"{a}-{b}", a, b, 50.0, 10.0, device)


def _network() -> Network:
    nodes = (
        _node("bj", K.BACKBONE_ACCESS, 39.90, 116.40), _node("r1", K.BACKBONE_RELAY, 36.5, 115.6),
        _node("jn", K.BSBN, 36.65, 117.00), _node("m1", K.METRO_ACCESS, 39.95, 116.30),
        _node("u0", K.USER, 39.92, 116.35), _node("gs", K.GROUND_STATION, 40.05, 116.60),
        _node("om", K.OM_CENTRE, 31.85, 117.30),
    )
    links = (_link("bj", "r1"), _link("bj", "jn"), _link("jn", "m1", "V"),
             _link("m1", "u0", "VI"), _link("gs", "bj"), _link("om", "r1"))
    return validated(Network("parts", nodes, links))


def test_links_are_grouped_by_what_they_join() -> None:
    """Backbone, BSBN, metro/user, ground-station and other links land in their own parts."""
    net = _network()
    assert {lk.id: link_category(net, lk) for lk in net.qkd_links} == {
        "bj-r1": LinkCategory.BACKBONE,
        "bj-jn": LinkCategory.BSBN,
        "jn-m1": LinkCategory.METRO,  # into a metro network, even from a BSBN node
        "m1-u0": LinkCategory.METRO,
        "gs-bj": LinkCategory.GROUND_STATION,
        "om-r1": LinkCategory.OTHER,
    }


def test_a_link_inside_the_bsbn_domain_is_a_bsbn_link() -> None:
    """Two backbone access nodes that are both BSBN members are joined by a BSBN link."""
    nodes = (_node("a", K.BACKBONE_ACCESS, 39.9, 116.4),
             _node("b", K.BACKBONE_ACCESS, 31.2, 121.5))
    net = validated(Network("n", nodes, (_link("a", "b"),),
                            domains=(Domain("d", DomainKind.BSBN, "BSBN", frozenset("ab")),)))
    assert link_category(net, net.qkd_links[0]) is LinkCategory.BSBN
