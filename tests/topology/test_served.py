"""Which nodes run a Key Manager (the rule `qkdnet serve`, `qkdnet pki init` and deployment
files share)."""

from __future__ import annotations

from qkdnet.topology.model import NodeKind
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.served import served_nodes


def test_user_nodes_without_saes_run_a_km_only_with_everything() -> None:
    """cn-qcn: 217 KM nodes by default; every user node without an SAE joins with everything."""
    network = BUILT_IN["cn-qcn"]()
    default, everything = served_nodes(network), served_nodes(network, everything=True)
    assert len(default) == 217
    extra = set(everything) - set(default)
    assert extra and all(network.node[n].kind is NodeKind.USER for n in extra)
