"""The headline figures of a network, as the paper reports them."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from qkdnet.topology.model import DomainKind, KMLinkKind, Network, NodeKind


def _domain_nodes(network: Network, kind: DomainKind, fallback: set[NodeKind]) -> set[str]:
    members = {n for d in network.domains if d.kind is kind for n in d.nodes}
    return members or {n.id for n in network.nodes if n.kind in fallback}


def summary(network: Network) -> dict[str, Any]:
    """Counts (nodes, links), fibre km and mean loss (dB) per part of the network.

    The backbone and BSBN are their domains when the network names them, else the nodes of
    backbone (access, relay) and BSBN kinds.
    """
    backbone = _domain_nodes(network, DomainKind.BACKBONE,
                             {NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY})
    bsbn = _domain_nodes(network, DomainKind.BSBN, {NodeKind.BSBN})
    bb_links = network.links_within(backbone)
    bsbn_links = network.links_within(bsbn)
    kinds = [network.node[n].kind for n in backbone]
    km_kinds = [k.kind for k in network.km_links]
    return {
        "name": network.name,
        "nodes": len(network.nodes),
        "qkd_links": len(network.qkd_links),
        "backbone_nodes": len(backbone),
        "backbone_links": len(bb_links),
        "backbone_fibre_km": round(sum(lk.length_km for lk in bb_links), 1),
        "mean_backbone_link_km": round(fmean(lk.length_km for lk in bb_links), 2)
        if bb_links else 0.0,
        "mean_backbone_link_loss_db": round(fmean(lk.loss_db for lk in bb_links), 3)
        if bb_links else 0.0,
        "access_nodes": kinds.count(NodeKind.BACKBONE_ACCESS),
        "relay_nodes": kinds.count(NodeKind.BACKBONE_RELAY),
        "bsbn_nodes": len(bsbn),
        "bsbn_links": len(bsbn_links),
        "bsbn_fibre_km": round(sum(lk.length_km for lk in bsbn_links), 1),
        "metro_networks": sum(d.kind is DomainKind.METRO for d in network.domains),
        "metro_access_nodes": len(network.nodes_of(NodeKind.METRO_ACCESS)),
        "user_nodes": len(network.nodes_of(NodeKind.USER)),
        "ground_stations": len(network.nodes_of(NodeKind.GROUND_STATION)),
        "om_centres": len(network.nodes_of(NodeKind.OM_CENTRE)),
        "km_links_direct": km_kinds.count(KMLinkKind.DIRECT),
        "km_links_remote": km_kinds.count(KMLinkKind.REMOTE),
        "km_links_satellite": km_kinds.count(KMLinkKind.SATELLITE),
        "regions": len(network.regions),
    }
