"""The simple routing the KMs use until the control layer takes over."""

from __future__ import annotations

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.keys.routing import ShortestPathRouter
from qkdnet.topology.cn_qcn import build_cn_qcn


def test_harbin_to_shenzhen_uses_the_64_direct_km_links() -> None:
    """Fewest direct KM-links: the 64-link backbone path, each hop a KM-link of its ends."""
    network = build_cn_qcn()
    route = ShortestPathRouter(network).route("harbin", "shenzhen")
    assert route.hops == 64 and route.source == "harbin" and route.destination == "shenzhen"
    for (a, b), km in zip(zip(route.nodes, route.nodes[1:], strict=False), route.km_links,
                          strict=True):
        assert {network.km_link[km].a, network.km_link[km].b} == {a, b}


def test_unknown_and_unreachable_nodes_are_errors() -> None:
    """No route to nowhere; Xinjiang's ground station has no fibre KM-link."""
    router = ShortestPathRouter(build_cn_qcn())
    with pytest.raises(ScenarioError, match="unknown node"):
        router.route("harbin", "atlantis")
    with pytest.raises(ScenarioError, match="no KM-link route"):
        router.route("harbin", "xinjiang-gs")
