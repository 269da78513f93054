"""The consistency rules every network obeys: each broken rule is named by the path of the
offending entry and the problem in words."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import (
    Domain,
    DomainKind,
    KMLink,
    KMLinkKind,
    Network,
    Node,
    NodeKind,
    QKDLink,
    Region,
)
from qkdnet.topology.validation import validated

# A small valid network: a chain a-b-c-d, two ground stations, two regions, one domain.
NODES = (
    Node("a", "A", NodeKind.BACKBONE_ACCESS, 39.9, 116.4, region="north"),
    Node("b", "B", NodeKind.BACKBONE_RELAY, 38.0, 117.0, region="north"),
    Node("c", "C", NodeKind.BACKBONE_RELAY, 36.7, 117.0, region="south"),
    Node("d", "D", NodeKind.BACKBONE_ACCESS, 34.3, 117.2, region="south"),
    Node("g1", "G1", NodeKind.GROUND_STATION, 40.4, 116.7, region="north"),
    Node("g2", "G2", NodeKind.GROUND_STATION, 31.2, 121.5, region="south"),
)
LINKS = (
    QKDLink("a-b", "a", "b", 70.0, 14.0, "I"),
    QKDLink("b-c", "b", "c", 80.0, 16.0, "II"),
    QKDLink("c-d", "c", "d", 90.0, 18.0, "III"),
    QKDLink("a-g1", "a", "g1", 30.0, 6.0, "V"),
    QKDLink("d-g2", "d", "g2", 30.0, 6.0, "VI"),
)
KM_LINKS = (
    KMLink("km-a-b", "a", "b", KMLinkKind.DIRECT, ("a-b",)),
    KMLink("km-a-d", "a", "d", KMLinkKind.REMOTE, ("a-b", "b-c", "c-d")),
    KMLink("sat-g1-g2", "g1", "g2", KMLinkKind.SATELLITE),
)
GOOD = Network(
    "good", NODES, LINKS, KM_LINKS,
    (Domain("backbone", DomainKind.BACKBONE, "Backbone", frozenset({"a", "b", "c", "d"})),),
    (Region("north", "North"), Region("south", "South")),
)


def _refusal(network: Network) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        validated(network)
    return caught.value


def _with_node(i: int, **changes: Any) -> Network:
    nodes = list(GOOD.nodes)
    nodes[i] = replace(nodes[i], **changes)
    return replace(GOOD, nodes=tuple(nodes))


def _with_link(i: int, **changes: Any) -> Network:
    links = list(GOOD.qkd_links)
    links[i] = replace(links[i], **changes)
    return replace(GOOD, qkd_links=tuple(links))


def _plus_link(link: QKDLink) -> Network:
    return replace(GOOD, qkd_links=(*GOOD.qkd_links, link))


def _plus_km_link(km: KMLink) -> Network:
    return replace(GOOD, km_links=(*GOOD.km_links, km))


def _plus_domain(domain: Domain) -> Network:
    return replace(GOOD, domains=(*GOOD.domains, domain))


def test_a_valid_network_is_returned_unchanged() -> None:
    """validated() hands back the very object it was given."""
    assert validated(GOOD) is GOOD


def test_the_built_in_network_is_valid() -> None:
    """CN-QCN obeys every rule."""
    network = build_cn_qcn()
    assert validated(network) is network


def test_regions_are_optional_when_none_are_declared() -> None:
    """Without declared regions any node region, even none, is accepted."""
    network = replace(_with_node(0, region=""), regions=())
    assert validated(network) is network


BROKEN = [
    # unique, non-empty ids in every section
    pytest.param(replace(GOOD, nodes=(*NODES, replace(NODES[1], lat=38.1))),
                 "nodes[6].id", "duplicate id 'b'", id="duplicate node id"),
    pytest.param(_with_node(2, id=""), "nodes[2].id", "must not be empty", id="empty node id"),
    pytest.param(replace(GOOD, regions=(*GOOD.regions, Region("north", "Again"))),
                 "regions[2].id", "duplicate id 'north'", id="duplicate region id"),
    pytest.param(_plus_link(QKDLink("b-c", "a", "d", 200.0, 40.0, "I")),
                 "qkd_links[5].id", "duplicate id 'b-c'", id="duplicate QKD-link id"),
    pytest.param(_plus_km_link(KMLink("km-a-b", "b", "c", KMLinkKind.DIRECT, ("b-c",))),
                 "km_links[3].id", "duplicate id 'km-a-b'", id="duplicate KM-link id"),
    pytest.param(_plus_domain(Domain("backbone", DomainKind.METRO, "Metro", frozenset({"a"}))),
                 "domains[1].id", "duplicate id 'backbone'", id="duplicate domain id"),
    # nodes
    pytest.param(_with_node(0, lat=90.5), "nodes[0].lat", "outside [-90, 90]",
                 id="latitude above 90"),
    pytest.param(_with_node(0, lon=-180.5), "nodes[0].lon", "outside [-180, 180]",
                 id="longitude below -180"),
    pytest.param(_with_node(3, region="west"), "nodes[3].region", "unknown region 'west'",
                 id="unknown region"),
    # QKD-links
    pytest.param(_with_link(1, b="x"), "qkd_links[1].b", "unknown node 'x'",
                 id="link to an unknown node"),
    pytest.param(_with_link(1, b="b"), "qkd_links[1].b", "to itself", id="self-loop link"),
    pytest.param(_plus_link(QKDLink("b-a", "b", "a", 71.0, 14.2, "II")),
                 "qkd_links[5]", "second link between 'b' and 'a'",
                 id="second link between the same pair"),
    pytest.param(_with_link(0, length_km=0.0), "qkd_links[0].length_km", "must be > 0 km",
                 id="zero length"),
    pytest.param(_with_link(0, length_km=float("nan")), "qkd_links[0].length_km",
                 "must be > 0 km", id="NaN length"),
    pytest.param(_with_link(0, loss_db=-0.1), "qkd_links[0].loss_db", "must be >= 0 dB",
                 id="negative loss"),
    pytest.param(_with_link(0, device_type="VIII"), "qkd_links[0].device_type",
                 "unknown device type 'VIII'", id="unknown device type"),
    pytest.param(_with_link(0, device_pairs=0), "qkd_links[0].device_pairs", ">= 1",
                 id="no device pairs"),
    pytest.param(_with_link(0, time_share=0.0), "qkd_links[0].time_share", "(0, 1]",
                 id="time share 0"),
    pytest.param(_with_link(0, time_share=1.5), "qkd_links[0].time_share", "(0, 1]",
                 id="time share above 1"),
    pytest.param(_with_link(0, field={"e_d": 0.01, "qber": 0.02}), "qkd_links[0].field.qber",
                 "unknown field parameter", id="unknown field parameter"),
    # KM-links
    pytest.param(_plus_km_link(KMLink("km-x", "a", "x", KMLinkKind.REMOTE, ("a-b",))),
                 "km_links[3].b", "unknown node 'x'", id="KM-link to an unknown node"),
    pytest.param(_plus_km_link(KMLink("km-a-a", "a", "a", KMLinkKind.REMOTE, ("a-b", "a-b"))),
                 "km_links[3].b", "to itself", id="KM-link from a node to itself"),
    pytest.param(_plus_km_link(KMLink("km-a-c", "a", "c", KMLinkKind.REMOTE, ("a-b", "b-z"))),
                 "km_links[3].path[1]", "unknown QKD-link 'b-z'",
                 id="KM-link over an unknown QKD-link"),
    pytest.param(_plus_km_link(KMLink("sat", "g2", "g1", KMLinkKind.SATELLITE, ("d-g2",))),
                 "km_links[3].path", "no fibre path", id="satellite KM-link with a path"),
    pytest.param(_plus_km_link(KMLink("sat", "g1", "d", KMLinkKind.SATELLITE)),
                 "km_links[3].b", "ground stations",
                 id="satellite KM-link to a fibre node"),
    pytest.param(_plus_km_link(KMLink("km-b-d", "b", "d", KMLinkKind.REMOTE)),
                 "km_links[3].path", "needs a path", id="remote KM-link without a path"),
    pytest.param(_plus_km_link(KMLink("km-a-c", "a", "c", KMLinkKind.DIRECT, ("a-b", "b-c"))),
                 "km_links[3].path", "exactly one QKD-link", id="direct KM-link over two links"),
    pytest.param(_plus_km_link(KMLink("km-a-d2", "a", "d", KMLinkKind.REMOTE, ("a-b", "c-d"))),
                 "km_links[3].path[1]", "not connected", id="KM-link path with a gap"),
    pytest.param(_plus_km_link(KMLink("km-a-d2", "a", "d", KMLinkKind.REMOTE, ("a-b", "b-c"))),
                 "km_links[3].path", "ends at 'c', not at 'd'",
                 id="KM-link path ending elsewhere"),
    # domains
    pytest.param(_plus_domain(Domain("metro", DomainKind.METRO, "Metro", frozenset({"a", "q"}))),
                 "domains[1].nodes", "unknown node 'q'", id="unknown domain member"),
]


@pytest.mark.parametrize(("network", "where", "problem"), BROKEN)
def test_a_broken_rule_is_named_by_path_and_problem(
    network: Network, where: str, problem: str
) -> None:
    """The error carries the path of the offending entry and says what is wrong with it."""
    err = _refusal(network)
    assert err.path == where
    assert problem in err.problem
    assert (err.source, err.line) == (None, None)
    assert str(err) == f"{where}: {err.problem}"


def test_the_first_broken_rule_is_the_one_reported() -> None:
    """With two mistakes, the earlier one in the network is named."""
    links = list(LINKS)
    links[1] = replace(links[1], loss_db=-1.0)
    links[3] = replace(links[3], length_km=0.0)
    assert _refusal(replace(GOOD, qkd_links=tuple(links))).path == "qkd_links[1].loss_db"


def test_an_sae_on_an_unknown_node_is_refused() -> None:
    """Applications attach to nodes of the network."""
    from dataclasses import replace

    from qkdnet.errors import ScenarioError
    from qkdnet.topology.cn_qcn import build_cn_qcn
    from qkdnet.topology.model import SAE

    network = build_cn_qcn()
    with pytest.raises(ScenarioError) as error:
        validated(replace(network, saes=(*network.saes, SAE("sae-x", "atlantis"))))
    assert error.value.path.startswith("saes[") and "unknown node" in error.value.problem
