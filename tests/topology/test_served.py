"""The served-node rule in the topology layer is the one `qkdnet serve` applies."""

from __future__ import annotations

import pytest

from qkdnet.live.keynet import served_nodes as serve_rule
from qkdnet.topology.model import NodeKind
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.served import served_nodes


@pytest.mark.parametrize("everything", [False, True])
def test_the_topology_rule_matches_the_live_rule(everything: bool) -> None:
    """Deployment files and `qkdnet serve` agree on which cn-qcn nodes run a KM."""
    network = BUILT_IN["cn-qcn"]()
    assert served_nodes(network, everything) == serve_rule(network, everything)


def test_user_nodes_without_saes_run_a_km_only_with_everything() -> None:
    """cn-qcn: 217 KM nodes by default; every user node without an SAE joins with everything."""
    network = BUILT_IN["cn-qcn"]()
    default, everything = served_nodes(network), served_nodes(network, everything=True)
    assert len(default) == 217
    extra = set(everything) - set(default)
    assert extra and all(network.node[n].kind is NodeKind.USER for n in extra)
