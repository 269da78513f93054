"""Which nodes of a network run a Key Manager and so serve a KME: the rule that
``qkdnet serve``, ``qkdnet pki init`` and a deployment file (:mod:`qkdnet.files.deployment`)
share, kept in the topology layer so the file formats need not import the live driver."""

from __future__ import annotations

from qkdnet.topology.model import Network, NodeKind


def served_nodes(network: Network, everything: bool = False) -> list[str]:
    """Nodes that run a KM, in the network's node order: every node with a KM-link except
    user nodes without an SAE (``everything``: user nodes without an SAE too)."""
    with_sae = {s.node for s in network.saes}
    linked = {n for k in network.km_links for n in (k.a, k.b)}
    return [n.id for n in network.nodes
            if (n.id in linked or n.id in with_sae)
            and (everything or n.kind is not NodeKind.USER or n.id in with_sae)]
