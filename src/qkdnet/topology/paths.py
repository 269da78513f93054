"""Paths through the QKD-link graph: shortest, edge-disjoint, and cut at access nodes.

Every function is pure and takes a validated :class:`~qkdnet.topology.model.Network`.
A path is a list of node ids from source to target. A path's weight is its length in km
(``"length_km"``), its loss in dB (``"loss_db"``) or its number of QKD-links (``"hops"``).
Unknown or unconnected nodes raise :class:`~qkdnet.errors.ScenarioError`; a bad weight
name or ``k`` raises :class:`~qkdnet.errors.ParameterError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Literal, get_args

import networkx as nx

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.topology.model import Network, NodeKind, QKDLink

Weight = Literal["length_km", "loss_db", "hops"]
WEIGHTS: tuple[str, ...] = get_args(Weight)
#: Integer cost units per weight unit for the min-cost flow (metres per km, millidB per dB):
#: network simplex is exact only on integers.
_COST_SCALE = 1000


def shortest_path(network: Network, source: str, target: str,
                  weight: Weight = "length_km") -> list[str]:
    """Node ids of a path from ``source`` to ``target`` of least total ``weight``
    (km, dB or hops)."""
    g = _connected_graph(network, source, target, weight)
    path: list[str] = nx.shortest_path(g, source, target, weight=_nx_weight(weight))
    return path


def edge_disjoint_paths(network: Network, source: str, target: str, k: int = 2,
                        weight: Weight = "length_km") -> list[list[str]]:
    """Up to ``k`` pairwise edge-disjoint paths of least *total* weight, lightest first.

    Solved as a min-cost flow (Suurballe/Bhandari), so it finds the pair that a greedy
    "shortest path, remove it, search again" misses on trap topologies. Fewer than ``k``
    paths come back when fewer edge-disjoint paths exist (a chain gives one). Weights are
    rounded to metres or millidB per link.
    """
    if k < 1:
        raise ParameterError("k", k, "at least 1 path")
    g = _connected_graph(network, source, target, weight)
    paths = disjoint_paths_in(g, source, target, k, None if weight == "hops" else weight)
    return sorted(paths, key=lambda p: (path_weight(network, p, weight), len(p), p))


def disjoint_paths_in(g: nx.Graph, source: str, target: str, k: int,
                      weight: str | None) -> list[list[str]]:
    """Up to ``k`` edge-disjoint paths of least total edge attribute ``weight`` (None:
    hops) in any undirected graph whose ``source`` reaches ``target``: the min-cost flow
    behind :func:`edge_disjoint_paths`, for callers with weights of their own (the control
    layer's key-aware cost)."""
    if source == target:
        return [[source]]
    arcs = _flow_graph(g, weight)
    n = min(k, nx.maximum_flow_value(arcs, source, target))
    arcs.nodes[source]["demand"], arcs.nodes[target]["demand"] = -n, n
    _, flow = nx.network_simplex(arcs, demand="demand", capacity="capacity", weight="cost")
    return _decompose(flow, source, target, n)


def path_links(network: Network, nodes: Sequence[str]) -> list[QKDLink]:
    """The QKD-links joining consecutive nodes of ``nodes``, in path order."""
    _check_known(network, *nodes)
    g = network.graph()
    links: list[QKDLink] = []
    for u, v in pairwise(nodes):
        data = g.get_edge_data(u, v)
        if data is None:
            raise ScenarioError("", f"no QKD-link between {u!r} and {v!r}")
        links.append(data["link"])
    return links


def path_weight(network: Network, nodes: Sequence[str], weight: Weight = "length_km") -> float:
    """Total ``weight`` along ``nodes``: km, dB, or the number of QKD-links for hops."""
    _check_weight(weight)
    links = path_links(network, nodes)
    if weight == "hops":
        return float(len(links))
    return float(sum(getattr(lk, weight) for lk in links))


def split_at_access_nodes(
    network: Network, nodes: Sequence[str],
    kinds: frozenset[NodeKind] = frozenset({NodeKind.BACKBONE_ACCESS}),
) -> list[list[str]]:
    """Cut ``nodes`` at every intermediate node whose kind is in ``kinds``.

    Consecutive segments share the cut node, so a backbone path becomes the chain of
    access-to-access KM-links that relay key along it. An empty path gives no segment.
    """
    _check_known(network, *nodes)
    segments: list[list[str]] = []
    start = 0
    for i in range(1, len(nodes) - 1):
        if network.node[nodes[i]].kind in kinds:
            segments.append(list(nodes[start : i + 1]))
            start = i
    if nodes:
        segments.append(list(nodes[start:]))
    return segments


def _connected_graph(network: Network, source: str, target: str, weight: str) -> nx.Graph:
    """The network's graph, once the weight is known and ``target`` reachable from ``source``."""
    _check_weight(weight)
    _check_known(network, source, target)
    g = network.graph()
    if not nx.has_path(g, source, target):
        raise ScenarioError("", f"no path between {source!r} and {target!r}")
    return g


def _check_weight(weight: str) -> None:
    if weight not in WEIGHTS:
        raise ParameterError("weight", weight, "one of " + ", ".join(WEIGHTS))


def _check_known(network: Network, *nodes: str) -> None:
    for n in nodes:
        if n not in network.node:
            raise ScenarioError("", f"unknown node {n!r}")


def _nx_weight(weight: str) -> str | None:
    # networkx counts edges when the weight is None
    return None if weight == "hops" else weight


def _flow_graph(g: nx.Graph, weight: str | None) -> nx.DiGraph:
    """Two unit-capacity arcs per edge, costed in thousandths of the weight (metres,
    millidB) or in hops when ``weight`` is None.

    Every arc also costs 1 on top of the scaled weight, which is first multiplied by more
    than the number of arcs: the optimum is unchanged in weight, ties go to fewer hops, and
    with all costs positive an optimal flow has no cycles (so never uses both arcs of a link).
    """
    arcs = nx.DiGraph()
    hop_scale = 2 * g.number_of_edges() + 1
    for u, v, data in g.edges(data=True):
        scaled = 1 if weight is None else round(data[weight] * _COST_SCALE)
        cost = scaled * hop_scale + 1
        arcs.add_edge(u, v, capacity=1, cost=cost)
        arcs.add_edge(v, u, capacity=1, cost=cost)
    return arcs


def _decompose(flow: Mapping[str, Mapping[str, Any]], source: str, target: str,
               n: int) -> list[list[str]]:
    """Split an acyclic unit flow of value ``n`` into ``n`` source-to-target paths."""
    succ = {u: sorted(v for v, f in out.items() if f > 0) for u, out in flow.items()}
    paths: list[list[str]] = []
    for _ in range(n):
        path = [source]
        while path[-1] != target:
            path.append(succ[path[-1]].pop(0))
        paths.append(path)
    return paths
