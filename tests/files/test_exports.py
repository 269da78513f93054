"""Exports written to files: GraphML that plain networkx reads back, GeoJSON that json reads."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from qkdnet.files.exports import write_geojson, write_graphml
from qkdnet.topology.export import to_geojson
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import Network


@pytest.fixture(scope="module")
def net() -> Network:
    return generate_network(120, seed=4)


def test_written_graphml_reads_back_in_networkx(net: Network, tmp_path: Path) -> None:
    """The file at the returned path holds every node and every QKD-link, with attributes."""
    path = write_graphml(net, tmp_path / "net.graphml")
    assert path == tmp_path / "net.graphml"
    graph = nx.read_graphml(path)
    assert set(graph.nodes) == {n.id for n in net.nodes}
    assert graph.number_of_edges() == len(net.qkd_links)
    link = net.qkd_links[0]
    assert graph.edges[link.a, link.b]["loss_db"] == link.loss_db


def test_written_geojson_is_plain_json(net: Network, tmp_path: Path) -> None:
    """The written file parses with json.loads and holds the same document."""
    path = write_geojson(net, tmp_path / "net.geojson")
    assert path == tmp_path / "net.geojson"
    assert json.loads(path.read_text(encoding="utf-8")) == to_geojson(net)
