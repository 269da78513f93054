"""Which part of the network a QKD-link belongs to: backbone, BSBN, metro, a ground
station's tail fibre, or none of these (the network map draws each part in its own style)."""

from __future__ import annotations

from enum import StrEnum

from qkdnet.topology.model import DomainKind, Network, NodeKind, QKDLink

_BACKBONE_KINDS = frozenset({NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY})
_METRO_KINDS = frozenset({NodeKind.METRO_ACCESS, NodeKind.USER})


class LinkCategory(StrEnum):
    """The part of the network a QKD-link belongs to."""

    BACKBONE = "backbone"  # both ends backbone access/relay nodes
    BSBN = "bsbn"  # touches a BSBN node, or both ends in a BSBN domain
    METRO = "metro"  # touches a metro access or user node
    GROUND_STATION = "ground_station"  # a ground station's tail fibre
    OTHER = "other"  # anything else


def link_category(network: Network, link: QKDLink) -> LinkCategory:
    """The part ``link`` belongs to: metro (a link into a metro network, even from a BSBN
    node), then ground-station tails, then BSBN, then backbone."""
    kinds = {network.node[link.a].kind, network.node[link.b].kind}
    if kinds & _METRO_KINDS:
        return LinkCategory.METRO
    if NodeKind.GROUND_STATION in kinds:
        return LinkCategory.GROUND_STATION
    if NodeKind.BSBN in kinds or {link.a, link.b} <= _bsbn_members(network):
        return LinkCategory.BSBN
    if kinds <= _BACKBONE_KINDS:
        return LinkCategory.BACKBONE
    return LinkCategory.OTHER


def _bsbn_members(network: Network) -> frozenset[str]:
    return frozenset().union(*(d.nodes for d in network.domains if d.kind is DomainKind.BSBN))
