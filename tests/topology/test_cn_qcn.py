"""The built-in CN-QCN scenario reproduces every figure the paper gives."""

from __future__ import annotations

from collections import Counter
from statistics import fmean

import networkx as nx
import numpy as np
import pytest

from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES, device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.rates import skr
from qkdnet.topology.cn_qcn import (
    DEFAULT_SEED,
    DESIGN_FLOOR_BPS,
    MAX_DEVICE_PAIRS,
    SPAN_TYPE_COST_ORDER,
    apportion,
    build_cn_qcn,
    data_rows,
    engineered_spans,
    slug,
)
from qkdnet.topology.model import (
    DomainKind,
    KMLinkKind,
    Multiplexing,
    Network,
    NodeKind,
    QKDLink,
)
from qkdnet.topology.paths import (
    edge_disjoint_paths,
    path_links,
    shortest_path,
    split_at_access_nodes,
)
from qkdnet.topology.summary import summary


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _backbone(net: Network) -> frozenset[str]:
    return net.domain["backbone"].nodes


def test_backbone_has_145_nodes_and_144_links(net: Network) -> None:
    """145 new backbone nodes joined by 144 fibre links: a tree."""
    links = net.links_within(_backbone(net))
    assert len(_backbone(net)) == 145
    assert len(links) == 144
    g = net.graph().subgraph(_backbone(net))
    assert nx.is_tree(g)


def test_backbone_fibre_totals_10103_km_with_70_km_links(net: Network) -> None:
    """10,103 km of fibre (within 1%), links about 70 km on average."""
    links = net.links_within(_backbone(net))
    total = sum(lk.length_km for lk in links)
    assert total == pytest.approx(10_103, rel=0.01)
    assert 65 < total / len(links) < 75


def test_mean_backbone_link_loss_is_18_61_db(net: Network) -> None:
    """The paper's average link attenuation, within 0.1 dB; links differ from each other."""
    losses = [lk.loss_db for lk in net.links_within(_backbone(net))]
    assert fmean(losses) == pytest.approx(18.61, abs=0.1)
    assert max(losses) - min(losses) > 10


def test_41_access_and_104_relay_nodes(net: Network) -> None:
    """Of the 145 backbone nodes, 41 are access nodes and 104 relays."""
    kinds = Counter(net.node[n].kind for n in _backbone(net))
    assert kinds == {NodeKind.BACKBONE_ACCESS: 41, NodeKind.BACKBONE_RELAY: 104}


def test_bsbn_has_32_nodes_and_2032_km(net: Network) -> None:
    """BSBN: 32 nodes, 2,032 km, joined to the new backbone at shared nodes."""
    bsbn = net.domain["bsbn"]
    assert bsbn.kind is DomainKind.BSBN
    assert len(bsbn.nodes) == 32
    assert sum(lk.length_km for lk in net.links_within(bsbn.nodes)) == pytest.approx(2032, 0.01)
    assert {"beijing", "hefei", "shanghai"} <= bsbn.nodes & _backbone(net)


@pytest.mark.parametrize(("a", "b", "via"), [
    ("beijing", "wuhan", {"jinan", "hefei"}),
    ("wuhan", "beijing", {"zhengzhou"}),
    ("shanghai", "hefei", {"nanjing"}),
    ("hefei", "shanghai", {"hangzhou"}),
])
def test_the_two_rings_give_two_edge_disjoint_paths(net: Network, a: str, b: str,
                                                    via: set[str]) -> None:
    """Ring Beijing-Jinan-Hefei-Wuhan and ring Shanghai-Hangzhou-Hefei-Nanjing: two
    edge-disjoint paths between ring cities, one of them through the named cities."""
    paths = edge_disjoint_paths(net, a, b, k=3)
    assert len(paths) == 2
    links = [{lk.id for lk in path_links(net, p)} for p in paths]
    assert not links[0] & links[1]
    assert any(via <= set(p) for p in paths)


def test_chain_segments_have_no_protection(net: Network) -> None:
    """Harbin-Beijing and Wuhan-Guangzhou are single chains: one path only."""
    assert len(edge_disjoint_paths(net, "harbin", "beijing")) == 1
    assert len(edge_disjoint_paths(net, "wuhan", "guangzhou")) == 1


def test_harbin_shenzhen_path_has_64_links_split_3_4_3_2(net: Network) -> None:
    """64 adjacent links; access nodes cut it into 12 access-to-access KM-links, 3, 4, 3 and
    2 of them between Harbin, Beijing, Wuhan, Guangzhou and Shenzhen."""
    path = shortest_path(net, "harbin", "shenzhen", weight="hops")
    assert len(path) - 1 == 64
    assert set(path) <= _backbone(net)
    segments = split_at_access_nodes(net, path)
    ends = [s[-1] for s in segments]
    cuts = [ends.index(city) + 1 for city in ("beijing", "wuhan", "guangzhou", "shenzhen")]
    assert [b - a for a, b in zip([0, *cuts], cuts, strict=False)] == [3, 4, 3, 2]


def test_each_access_to_access_stretch_is_a_km_link(net: Network) -> None:
    """Every stretch of the Harbin-Shenzhen path between access nodes is one KM-link whose
    path is exactly that stretch's QKD-links."""
    path = shortest_path(net, "harbin", "shenzhen", weight="hops")
    by_ends = {frozenset((k.a, k.b)): k for k in net.km_links
               if k.kind in (KMLinkKind.REMOTE, KMLinkKind.DIRECT)}
    for segment in split_at_access_nodes(net, path):
        km = by_ends[frozenset((segment[0], segment[-1]))]
        assert set(km.path) == {lk.id for lk in path_links(net, segment)}


def test_20_metro_networks_with_36_access_nodes_and_800_users(net: Network) -> None:
    """20 metro networks, 36 metro access nodes, more than 800 user nodes."""
    metros = [d for d in net.domains if d.kind is DomainKind.METRO]
    assert len(metros) == 20
    assert len(net.nodes_of(NodeKind.METRO_ACCESS)) == 36
    assert len(net.nodes_of(NodeKind.USER)) >= 800
    named = {d.id for d in metros}
    assert {"metro-beijing", "metro-shanghai", "metro-jinhua", "metro-haikou",
            "metro-chongqing"} <= named


def test_metro_access_nodes_form_rings_or_chains(net: Network) -> None:
    """Inside a metro network (users aside) every node has at most two metro neighbours
    and the metro core is connected: a ring or a chain."""
    for d in (d for d in net.domains if d.kind is DomainKind.METRO):
        core = {n for n in d.nodes if net.node[n].kind is not NodeKind.USER}
        g = net.graph().subgraph(core)
        assert nx.is_connected(g), d.id
        assert max(dict(g.degree()).values()) <= 2, d.id


def test_users_hang_in_trees_behind_24_port_switches(net: Network) -> None:
    """Each user node has exactly one link, to a metro access node, through an optical
    switch shared by at most 24 users, its time share 1/n."""
    users_of: Counter[str] = Counter()
    for lk in net.qkd_links:
        kinds = {net.node[lk.a].kind, net.node[lk.b].kind}
        if NodeKind.USER in kinds:
            assert kinds == {NodeKind.USER, NodeKind.METRO_ACCESS}
            assert lk.multiplexing is Multiplexing.OPTICAL_SWITCH
            users_of[lk.a if net.node[lk.a].kind is NodeKind.METRO_ACCESS else lk.b] += 1
    assert max(users_of.values()) <= 24
    for lk in net.qkd_links:
        if lk.multiplexing is Multiplexing.OPTICAL_SWITCH:
            hub = lk.a if lk.a in users_of else lk.b
            assert lk.time_share == pytest.approx(1 / users_of[hub])


def test_six_ground_stations_and_one_om_centre(net: Network) -> None:
    """Ground stations at Beijing, Shanghai, Guangzhou, Chongqing, Hainan and Xinjiang,
    linked by satellite KM-links; one O&M centre."""
    stations = {n.id for n in net.nodes_of(NodeKind.GROUND_STATION)}
    assert stations == {f"{c}-gs" for c in ("beijing", "shanghai", "guangzhou", "chongqing",
                                            "hainan", "xinjiang")}
    satellite = [k for k in net.km_links if k.kind is KMLinkKind.SATELLITE]
    assert len(satellite) == 15
    assert len(net.nodes_of(NodeKind.OM_CENTRE)) == 1


def test_device_types_as_deployed(net: Network) -> None:
    """Backbone and BSBN links carry types I-IV, metro and user links types V-VII (type II
    where a metro link is longer than metro devices reach), and each link its own field
    parameters."""
    core = _backbone(net) | net.domain["bsbn"].nodes
    long_metro = 0
    for lk in net.qkd_links:
        kinds = {net.node[lk.a].kind, net.node[lk.b].kind}
        if {lk.a, lk.b} <= core:
            assert lk.device_type in BACKBONE_DEVICE_TYPES
        if kinds & {NodeKind.METRO_ACCESS, NodeKind.USER}:
            if lk.loss_db > 15:
                assert lk.device_type == "II"
                long_metro += 1
            else:
                assert lk.device_type in METRO_DEVICE_TYPES
    assert long_metro >= 1  # Haikou's metro hangs off the Hainan ground station
    e_d = [lk.field["e_d"] for lk in net.links_within(_backbone(net))]
    assert len(set(e_d)) == len(e_d)
    assert all(0.005 <= x <= 0.02 for x in e_d)


def _worst_bps(device: str, loss_db: float) -> float:
    """One device pair's key rate (bit/s) at the pessimistic field corner."""
    d = device_type(device)
    return float(skr(d, loss_db, pessimistic_params(d)))


def _spans(net: Network) -> list[QKDLink]:
    core = _backbone(net) | net.domain["bsbn"].nodes
    return [lk for lk in net.qkd_links if {lk.a, lk.b} <= core]


@pytest.mark.parametrize("seed", [DEFAULT_SEED, 7])
def test_every_span_holds_the_design_floor_at_the_pessimistic_corner(seed: int) -> None:
    """Every backbone/BSBN span makes at least the 10 kbit/s design floor with every field
    parameter at its worst, unless no equipment can (4 pairs of type II short of it)."""
    assert DESIGN_FLOOR_BPS == 10_000.0
    net = build_cn_qcn(seed)
    short = [lk for lk in _spans(net)
             if lk.device_pairs * _worst_bps(lk.device_type, lk.loss_db) < DESIGN_FLOOR_BPS]
    for lk in short:
        assert (lk.device_type, lk.device_pairs) == ("II", MAX_DEVICE_PAIRS), lk.id
        assert lk.loss_db > 25, lk.id
    assert len(short) <= 5
    assert sum(lk.device_pairs > 1 for lk in _spans(net)) >= 5


@pytest.mark.parametrize("seed", [DEFAULT_SEED, 7])
def test_no_span_has_fewer_pairs_or_a_cheaper_type_that_would_do(seed: int) -> None:
    """With fewer device pairs no type holds the floor at the pessimistic corner, and with
    the same pairs no type cheaper than the chosen one (III < IV < I < II) does."""
    assert SPAN_TYPE_COST_ORDER == ("III", "IV", "I", "II")
    for lk in _spans(build_cn_qcn(seed)):
        for pairs in range(1, lk.device_pairs):
            assert all(pairs * _worst_bps(t, lk.loss_db) < DESIGN_FLOOR_BPS
                       for t in SPAN_TYPE_COST_ORDER), lk.id
        cheaper = SPAN_TYPE_COST_ORDER[:SPAN_TYPE_COST_ORDER.index(lk.device_type)]
        assert all(lk.device_pairs * _worst_bps(t, lk.loss_db) < DESIGN_FLOOR_BPS
                   for t in cheaper), lk.id


def test_the_rule_gives_type_iii_to_short_spans_and_type_ii_to_the_longest() -> None:
    """The rule at a few losses: 15 dB one pair of III; 21 dB one pair of I; 23 dB one pair
    of II; 26.5 dB four pairs of II (the most there is); a higher floor never costs less."""
    assert engineered_spans([15.0, 21.0, 23.0, 26.5]) == [
        ("III", 1), ("I", 1), ("II", 1), ("II", 4)]
    assert all(lk.device_type == "II" for lk in _spans(build_cn_qcn()) if lk.loss_db > 26)
    order = {t: i for i, t in enumerate(SPAN_TYPE_COST_ORDER)}
    for low, high in zip(engineered_spans(np.linspace(10, 28, 37), 8_000.0),
                         engineered_spans(np.linspace(10, 28, 37), 12_000.0), strict=True):
        assert (high[1], order[high[0]]) >= (low[1], order[low[0]])


def test_same_seed_same_network_other_seed_other_links(net: Network) -> None:
    """The scenario is reproducible; the seed only moves what is drawn, never the counts."""
    assert build_cn_qcn() == net
    other = build_cn_qcn(seed=7)
    assert other != net
    fixed = ("backbone_nodes", "backbone_links", "access_nodes", "relay_nodes", "bsbn_nodes",
             "metro_networks", "metro_access_nodes", "ground_stations", "backbone_fibre_km",
             "mean_backbone_link_loss_db")
    assert {k: summary(other)[k] for k in fixed} == {k: summary(net)[k] for k in fixed}
    assert summary(other)["user_nodes"] >= 800


def test_every_row_of_the_data_says_where_it_comes_from() -> None:
    """Each city, route, metro and site row is marked SOURCED or INFERRED."""
    for name, column in (("cities.csv", "source_or_reason"), ("cn_qcn_routes.csv", "source"),
                         ("cn_qcn_metros.csv", "source"), ("cn_qcn_sites.csv", "source")):
        for row in data_rows(name):
            assert row[column].startswith(("SOURCED", "INFERRED", "as above")), (name, row)


def test_apportion_keeps_the_longest_average_link_short() -> None:
    """Spare links go where links are longest; every stretch keeps its minimum."""
    assert apportion(6, [100.0, 300.0], [1, 1]) == [2, 4]
    assert apportion(3, [10.0, 10.0, 500.0], [1, 1, 1]) == [1, 1, 1]
    with pytest.raises(ValueError, match="minima"):
        apportion(2, [1.0, 1.0, 1.0], [1, 1, 1])


def test_city_ids_are_plain() -> None:
    """Ids are lower case without punctuation."""
    assert slug("Xiong'an") == "xiongan"
    assert slug("Suzhou (Anhui)") == "suzhou-anhui"



def test_applications_sit_in_harbin_and_shenzhen(net: Network) -> None:
    """The built-in scenario names SAEs at Harbin and Shenzhen (and a third, in Beijing)."""
    at = {s.node for s in net.saes}
    assert {"harbin", "shenzhen", "beijing"} <= at
