"""Paths through the QKD-link graph: shortest, edge-disjoint, weighed, and cut at access
nodes."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.topology.model import Network, Node, NodeKind, QKDLink
from qkdnet.topology.paths import (
    edge_disjoint_paths,
    path_links,
    path_weight,
    shortest_path,
    split_at_access_nodes,
)
from qkdnet.topology.validation import validated

Edge = tuple[str, str, float, float]  # a, b, length_km, loss_db


def _net(edges: list[Edge], extra_nodes: tuple[str, ...] = (),
         kinds: dict[str, NodeKind] | None = None) -> Network:
    """A validated network of relay nodes (unless ``kinds`` says otherwise) and links."""
    kinds = kinds or {}
    ids = dict.fromkeys([*(e[0] for e in edges), *(e[1] for e in edges), *extra_nodes])
    nodes = tuple(Node(n, n.title(), kinds.get(n, NodeKind.BACKBONE_RELAY), 40.0, 116.0)
                  for n in ids)
    links = tuple(QKDLink(f"{a}-{b}", a, b, km, db, "I") for a, b, km, db in edges)
    return validated(Network("test", nodes, links))


def _edges(path: list[str]) -> set[frozenset[str]]:
    return {frozenset(pair) for pair in itertools.pairwise(path)}


# A five-node ring: s-a-b-t on one side, s-c-t on the other.
RING = _net([("s", "a", 10, 2), ("a", "b", 10, 2), ("b", "t", 10, 2),
             ("s", "c", 20, 4), ("c", "t", 20, 4)])
CHAIN = _net([("a", "b", 10, 2), ("b", "c", 10, 2), ("c", "d", 10, 2)])
# The shortest path s-a-b-t takes one link from each of the only two disjoint routes,
# s-a-t and s-b-t.
TRAP = _net([("s", "a", 1, 0.2), ("a", "b", 1, 0.2), ("b", "t", 1, 0.2),
             ("s", "b", 3, 0.6), ("a", "t", 3, 0.6)])


def test_shortest_path_takes_the_shorter_side_of_a_ring() -> None:
    """30 km via a and b beats 40 km via c."""
    assert shortest_path(RING, "s", "t") == ["s", "a", "b", "t"]


def test_loss_and_length_can_choose_different_paths() -> None:
    """A short lossy route wins on km, a long clean one on dB."""
    net = _net([("a", "b", 10, 20), ("b", "d", 10, 20), ("a", "c", 30, 3), ("c", "d", 30, 3)])
    assert shortest_path(net, "a", "d", weight="length_km") == ["a", "b", "d"]
    assert shortest_path(net, "a", "d", weight="loss_db") == ["a", "c", "d"]


def test_hops_counts_links_not_kilometres() -> None:
    """One 100 km link is one hop; three 1 km links are three."""
    net = _net([("a", "d", 100, 20), ("a", "b", 1, 0.2), ("b", "c", 1, 0.2),
                ("c", "d", 1, 0.2)])
    assert shortest_path(net, "a", "d") == ["a", "b", "c", "d"]
    assert shortest_path(net, "a", "d", weight="hops") == ["a", "d"]


def test_a_node_is_its_own_shortest_path() -> None:
    """From a node to itself the path is that node alone."""
    assert shortest_path(CHAIN, "b", "b") == ["b"]


def test_a_ring_gives_two_disjoint_paths_one_per_side() -> None:
    """Both sides of the ring come back, shorter first, sharing no link."""
    first, second = edge_disjoint_paths(RING, "s", "t")
    assert first == ["s", "a", "b", "t"]
    assert second == ["s", "c", "t"]
    assert not _edges(first) & _edges(second)


def test_a_chain_gives_only_one_path() -> None:
    """Without a second route, asking for two gives one."""
    assert edge_disjoint_paths(CHAIN, "a", "d", k=2) == [["a", "b", "c", "d"]]


def test_asking_for_more_paths_than_exist_gives_all_there_are() -> None:
    """A ring has two disjoint routes between two nodes, however many are asked for."""
    assert len(edge_disjoint_paths(RING, "s", "t", k=5)) == 2


def test_greedy_fails_on_the_trap_but_min_cost_flow_finds_two_paths() -> None:
    """Removing the shortest path disconnects the trap; the flow still finds s-a-t, s-b-t."""
    greedy = nx.Graph(TRAP.graph())
    greedy.remove_edges_from(itertools.pairwise(shortest_path(TRAP, "s", "t")))
    assert not nx.has_path(greedy, "s", "t")
    paths = edge_disjoint_paths(TRAP, "s", "t")
    assert sorted(paths) == [["s", "a", "t"], ["s", "b", "t"]]
    assert sum(path_weight(TRAP, p) for p in paths) == pytest.approx(8.0)


def test_disjoint_paths_minimise_the_chosen_weight() -> None:
    """With loss as the weight the pair avoids a short but lossy detour."""
    net = _net([("s", "a", 1, 9), ("a", "t", 1, 9), ("s", "b", 5, 1), ("b", "t", 5, 1),
                ("s", "c", 6, 2), ("c", "t", 6, 2)])
    assert edge_disjoint_paths(net, "s", "t") == [["s", "a", "t"], ["s", "b", "t"]]
    assert edge_disjoint_paths(net, "s", "t", weight="loss_db") == [["s", "b", "t"],
                                                                     ["s", "c", "t"]]


def test_unknown_nodes_are_scenario_errors() -> None:
    """Every function names the node it does not know."""
    with pytest.raises(ScenarioError, match="unknown node 'x'"):
        shortest_path(RING, "s", "x")
    with pytest.raises(ScenarioError, match="unknown node 'x'"):
        edge_disjoint_paths(RING, "x", "t")
    with pytest.raises(ScenarioError, match="unknown node 'x'"):
        path_links(RING, ["s", "x"])
    with pytest.raises(ScenarioError, match="unknown node 'x'"):
        split_at_access_nodes(RING, ["s", "x"])


def test_disconnected_nodes_are_scenario_errors() -> None:
    """No path at all is an error, not an empty answer."""
    net = _net([("a", "b", 10, 2)], extra_nodes=("z",))
    with pytest.raises(ScenarioError, match="no path between 'a' and 'z'"):
        shortest_path(net, "a", "z")
    with pytest.raises(ScenarioError, match="no path between 'a' and 'z'"):
        edge_disjoint_paths(net, "a", "z")


def test_bad_weight_and_k_are_parameter_errors() -> None:
    """Only km, dB and hops are weights, and at least one path must be asked for."""
    with pytest.raises(ParameterError, match="weight"):
        shortest_path(RING, "s", "t", weight="metres")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="k=0"):
        edge_disjoint_paths(RING, "s", "t", k=0)


def test_path_links_follow_the_path_in_order() -> None:
    """Each consecutive pair of nodes maps to the QKD-link joining them."""
    assert [lk.id for lk in path_links(RING, ["s", "c", "t"])] == ["s-c", "c-t"]
    assert path_links(RING, ["s"]) == []


def test_path_links_reject_nodes_that_are_not_neighbours() -> None:
    """A jump between nodes without a QKD-link is an error."""
    with pytest.raises(ScenarioError, match="no QKD-link between 's' and 't'"):
        path_links(RING, ["s", "t"])


def test_path_weight_sums_km_db_or_hops() -> None:
    """The same path weighs 40 km, 8 dB or 2 hops."""
    path = ["s", "c", "t"]
    assert path_weight(RING, path) == pytest.approx(40.0)
    assert path_weight(RING, path, "loss_db") == pytest.approx(8.0)
    assert path_weight(RING, path, "hops") == 2.0


def test_split_at_access_nodes_cuts_a_backbone_path_into_km_links() -> None:
    """Harbin r r r Changchun r Beijing becomes Harbin..Changchun and Changchun..Beijing."""
    access = NodeKind.BACKBONE_ACCESS
    path = ["harbin", "r1", "r2", "r3", "changchun", "r4", "beijing"]
    net = _net([(a, b, 100, 20) for a, b in itertools.pairwise(path)],
               kinds={"harbin": access, "changchun": access, "beijing": access})
    assert split_at_access_nodes(net, path) == [
        ["harbin", "r1", "r2", "r3", "changchun"], ["changchun", "r4", "beijing"]]


def test_split_uses_the_kinds_asked_for() -> None:
    """Cutting at relays instead gives one segment per link; no cut gives the whole path."""
    path = ["a", "b", "c", "d"]
    assert split_at_access_nodes(CHAIN, path, frozenset({NodeKind.BACKBONE_RELAY})) == [
        ["a", "b"], ["b", "c"], ["c", "d"]]
    assert split_at_access_nodes(CHAIN, path) == [path]
    assert split_at_access_nodes(CHAIN, []) == []


@st.composite
def _connected_networks(draw: st.DrawFn) -> tuple[Network, str, str]:
    """A random connected network of 2-7 nodes (a random tree plus extra links) and two
    distinct end nodes."""
    n = draw(st.integers(2, 7))
    ids = [f"n{i}" for i in range(n)]
    pairs = {frozenset((ids[i], ids[draw(st.integers(0, i - 1))])) for i in range(1, n)}
    others = [frozenset(p) for p in itertools.combinations(ids, 2)
              if frozenset(p) not in pairs]
    pairs |= set(draw(st.lists(st.sampled_from(others), unique=True)) if others else [])
    edges: list[Edge] = []
    for a, b in sorted(sorted(p) for p in pairs):
        edges.append((a, b, float(draw(st.integers(1, 50))), 1.0))
    s, t = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=2, unique=True))
    return _net(edges), s, t


@settings(max_examples=150, deadline=None)
@given(case=_connected_networks(), k=st.integers(1, 4))
def test_disjoint_paths_are_simple_disjoint_and_as_many_as_connectivity_allows(
        case: tuple[Network, str, str], k: int) -> None:
    """Simple s-t paths, no link shared, min(k, edge connectivity) of them."""
    net, s, t = case
    paths = edge_disjoint_paths(net, s, t, k=k)
    assert len(paths) == min(k, nx.edge_connectivity(net.graph(), s, t))
    for p in paths:
        assert p[0] == s and p[-1] == t and len(set(p)) == len(p)
        assert len(path_links(net, p)) == len(p) - 1
    for p, q in itertools.combinations(paths, 2):
        assert not _edges(p) & _edges(q)


@settings(max_examples=100, deadline=None)
@given(case=_connected_networks())
def test_two_disjoint_paths_have_the_least_total_length(
        case: tuple[Network, str, str]) -> None:
    """No pair of edge-disjoint simple paths found by brute force is shorter in total."""
    net, s, t = case
    paths = edge_disjoint_paths(net, s, t, k=2)
    if len(paths) < 2:
        return
    simple = list(nx.all_simple_paths(net.graph(), s, t))
    best = min(path_weight(net, p) + path_weight(net, q)
               for p, q in itertools.combinations(simple, 2) if not _edges(p) & _edges(q))
    assert sum(path_weight(net, p) for p in paths) == pytest.approx(best)
