"""Satellite KM-links in the control layer: priced by the key in their satellite pools,
unusable until key is reported there, routing the metro networks reached only by satellite
(Chongqing, Haikou), and protecting a demand through the satellite when fibre fails."""

from __future__ import annotations

import networkx as nx
import pytest

from qkdnet.control.controller import Controller, Demand
from qkdnet.control.cost import satellite_cost
from qkdnet.control.hierarchy import controllers_for
from qkdnet.keys.link_state import KMLinkState
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import KMLinkKind, Network, NodeKind


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _satellite_states(net: Network, key_bits: float) -> list[KMLinkState]:
    return [KMLinkState(k.id, key_bits) for k in net.km_links if k.kind is KMLinkKind.SATELLITE]


def test_satellite_cost_follows_the_key_in_the_pools_not_a_hop_count() -> None:
    """More key is cheaper; too little, down or never reported is unusable."""
    full = satellite_cost(KMLinkState("sat:x~y", 6e5), 512)
    low = satellite_cost(KMLinkState("sat:x~y", 2e4), 512)
    assert full is not None and low is not None and 1.0 < full < low
    assert low / full == pytest.approx((1 + 1e9 / 2e4) / (1 + 1e9 / 6e5))
    assert satellite_cost(KMLinkState("sat:x~y", 100), 512) is None
    assert satellite_cost(KMLinkState("sat:x~y", 6e5, up=False), 512) is None
    assert satellite_cost(None, 512) is None


def test_chongqing_and_haikou_users_are_routed_once_the_satellite_pools_hold_key(
        net: Network) -> None:
    """No route before any pass; with key in the pools, through the ground stations."""
    control = Controller(controllers_for(net))
    control.add(Demand("cq", "chongqing-m1-u1", "beijing-m1"))
    control.add(Demand("hk", "haikou-m1", "guangzhou-m1"))
    assert control.active("cq") is None and control.active("hk") is None
    changes = control.report(_satellite_states(net, 3e5))
    assert {c.demand for c in changes} == {"cq", "hk"}
    cq, hk = control.active("cq"), control.active("hk")
    assert cq is not None and "sat:beijing-gs~chongqing-gs" in cq.km_links
    assert hk is not None and any(k.startswith("sat:") and "hainan-gs" in k
                                  for k in hk.km_links)
    assert sum(k.startswith("sat:") for k in cq.km_links) == 1


def test_the_route_takes_the_satellite_link_whose_pools_hold_more(net: Network) -> None:
    """Chongqing to Beijing: via Shanghai's ground station, whose pools hold more key,
    rather than straight to Beijing's, fibre from Shanghai on."""
    l1 = controllers_for(net)
    for state in _satellite_states(net, 1e5):
        l1.update(state)
    l1.update(KMLinkState("sat:shanghai-gs~chongqing-gs", 5e5))
    route = l1.route("chongqing-m1", "beijing-m1", 512)
    assert route is not None and "sat:shanghai-gs~chongqing-gs" in route.km_links
    assert "shanghai" in route.nodes and "sat:beijing-gs~chongqing-gs" not in route.km_links


def test_fibre_keeps_the_demands_while_it_lasts(net: Network) -> None:
    """With key in the satellite pools, Beijing-Guangzhou still goes by fibre."""
    l1 = controllers_for(net)
    for state in _satellite_states(net, 6e5):
        l1.update(state)
    route = l1.route("beijing", "guangzhou", 512)
    assert route is not None and not any(k.startswith("sat:") for k in route.km_links)


def test_a_fibre_cut_is_protected_through_the_satellite_where_key_is_there(
        net: Network) -> None:
    """Cut every fibre way from Beijing to Guangzhou: the demand moves to the satellite."""
    control = Controller(controllers_for(net))
    control.report(_satellite_states(net, 6e5))
    control.add(Demand("d", "beijing", "guangzhou"))
    fibre = nx.Graph()
    tails = {n.id for n in net.nodes_of(NodeKind.GROUND_STATION)}
    fibre.add_edges_from((k.a, k.b, {"km": k.id}) for k in net.km_links
                         if k.kind is KMLinkKind.DIRECT and not {k.a, k.b} & tails)
    cut = [fibre.edges[e]["km"] for e in nx.minimum_edge_cut(fibre, "beijing", "guangzhou")]
    control.report([KMLinkState(km, 0.0, up=False) for km in cut])
    route = control.active("d")
    assert route is not None and "sat:beijing-gs~guangzhou-gs" in route.km_links
    control.report(_satellite_states(net, 0.0))  # the pools ran dry: nothing left
    assert control.active("d") is None
