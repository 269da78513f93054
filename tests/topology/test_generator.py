"""The synthetic network generator: size, reproducibility and CN-QCN's shape."""

from __future__ import annotations

from collections import Counter
from statistics import fmean

import networkx as nx
import pytest

from qkdnet.errors import ParameterError
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import KMLinkKind, Multiplexing, Network, NodeKind
from qkdnet.topology.validation import validated

BACKBONE = {NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY}


@pytest.fixture(scope="module")
def network() -> Network:
    return generate_network(2000, seed=7)


def _fingerprint(net: Network) -> list[tuple[str, str, str, float, float]]:
    return [(lk.id, lk.a, lk.b, lk.length_km, lk.loss_db) for lk in net.qkd_links]


@pytest.mark.parametrize("size", [10, 11, 50, 999, 2000, 5003])
def test_node_count_is_exactly_the_request(size: int) -> None:
    """The network has exactly as many nodes as asked for, small sizes included."""
    assert len(generate_network(size, seed=1).nodes) == size


def test_generated_network_validates(network: Network) -> None:
    """Every consistency rule holds (validated returns the network unchanged)."""
    assert validated(network) is network


def test_same_seed_gives_the_same_network(network: Network) -> None:
    """The seed alone fixes the network: ids, ends, lengths and losses all repeat."""
    again = generate_network(2000, seed=7)
    assert [n.id for n in again.nodes] == [n.id for n in network.nodes]
    assert _fingerprint(again) == _fingerprint(network)
    assert again == network


def test_different_seeds_give_different_networks(network: Network) -> None:
    """Another seed draws another network."""
    assert _fingerprint(generate_network(2000, seed=8)) != _fingerprint(network)


@pytest.mark.parametrize("seed", range(5))
def test_network_is_connected(seed: int) -> None:
    """Every node reaches every other over QKD-links."""
    assert nx.is_connected(generate_network(1500, seed).graph())


def test_users_sit_behind_an_optical_switch_shared_in_time(network: Network) -> None:
    """Each user has one optical-switch link, time share 1/n for n <= 24 users per switch."""
    user_links = [lk for lk in network.qkd_links if network.node[lk.b].kind is NodeKind.USER]
    per_switch = Counter(lk.a for lk in user_links)
    assert len(user_links) == len(network.nodes_of(NodeKind.USER))
    assert max(per_switch.values()) <= 24
    for lk in user_links:
        assert network.node[lk.a].kind is NodeKind.METRO_ACCESS
        assert lk.multiplexing is Multiplexing.OPTICAL_SWITCH
        assert lk.time_share == pytest.approx(1 / per_switch[lk.a])


def test_device_types_follow_the_tier(network: Network) -> None:
    """Backbone links use types I-IV, metro and user links V-VII."""
    for lk in network.qkd_links:
        backbone = {network.node[lk.a].kind, network.node[lk.b].kind} <= BACKBONE
        assert lk.device_type in ({"I", "II", "III", "IV"} if backbone else {"V", "VI", "VII"})


def test_field_parameters_match_the_protocol(network: Network) -> None:
    """DV links carry e_d, dark counts and f_ec in the field spread; CV links xi and beta."""
    for lk in network.qkd_links:
        if lk.device_type in {"VI", "VII"}:
            assert set(lk.field) == {"xi", "beta"}
            assert 0.02 <= lk.field["xi"] <= 0.05 and 0.90 <= lk.field["beta"] <= 0.95
        else:
            assert set(lk.field) == {"e_d", "dark_count_hz", "f_ec"}
            assert 0.005 <= lk.field["e_d"] <= 0.02
            assert 600 <= lk.field["dark_count_hz"] <= 1000
            assert 1.2 <= lk.field["f_ec"] <= 2.0


def test_backbone_spans_average_about_70_km(network: Network) -> None:
    """Backbone nodes are 55-85 km apart on average, as CN-QCN's ~70 km."""
    spans = [lk.length_km for lk in network.links_within(n.id for n in network.nodes
                                                          if n.kind in BACKBONE)]
    assert 55 <= fmean(spans) <= 85


def test_backbone_has_rings(network: Network) -> None:
    """The backbone is not a tree: some chains close rings."""
    backbone = network.graph().subgraph(n.id for n in network.nodes if n.kind in BACKBONE)
    assert nx.is_connected(backbone)
    assert backbone.number_of_edges() > backbone.number_of_nodes() - 1


def test_remote_km_links_join_access_nodes(network: Network) -> None:
    """There are remote KM-links, each between two access nodes over a multi-link path."""
    remote = [k for k in network.km_links if k.kind is KMLinkKind.REMOTE]
    assert remote
    for km in remote:
        assert network.node[km.a].kind is NodeKind.BACKBONE_ACCESS
        assert network.node[km.b].kind is NodeKind.BACKBONE_ACCESS
        assert len(km.path) >= 2


def test_every_qkd_link_has_one_direct_km_link(network: Network) -> None:
    """One direct KM-link per QKD-link, over that link."""
    direct = [k.path for k in network.km_links if k.kind is KMLinkKind.DIRECT]
    assert sorted(p[0] for p in direct) == sorted(lk.id for lk in network.qkd_links)


def test_domains_and_regions_cover_every_node(network: Network) -> None:
    """Backbone and metro domains together hold every node; every node has a region."""
    covered = set().union(*(d.nodes for d in network.domains))
    assert covered == set(network.node)
    assert all(n.region for n in network.nodes)


def test_sizes_below_ten_are_refused() -> None:
    """Fewer than 10 nodes is a parameter error naming --nodes."""
    with pytest.raises(ParameterError, match="--nodes"):
        generate_network(9, seed=1)
