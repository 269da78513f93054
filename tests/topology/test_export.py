"""Exports for other tools as data: a graph whose GraphML plain networkx reads back, and
GeoJSON for map tools."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import networkx as nx
import pytest

from qkdnet.quantum.devices import CV_DEVICE_TYPES
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.export import to_geojson, to_graphml_graph
from qkdnet.topology.model import KMLinkKind, Network, Node, NodeKind, QKDLink
from qkdnet.topology.validation import validated


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _graphml_text(network: Network) -> str:
    return "\n".join(nx.generate_graphml(to_graphml_graph(network)))


@pytest.fixture(scope="module")
def graphml(net: Network) -> nx.Graph:
    return nx.parse_graphml(_graphml_text(net))


@pytest.fixture(scope="module")
def geojson(net: Network) -> dict[str, Any]:
    return to_geojson(net)


def _features(doc: dict[str, Any], geometry: str, kind: str | None = None) -> list[Any]:
    return [f for f in doc["features"] if f["geometry"]["type"] == geometry
            and (kind is None or f["properties"].get("kind") == kind)]


# --- GraphML ----------------------------------------------------------------------------


def test_graphml_has_a_node_per_node_and_an_edge_per_qkd_link(
    net: Network, graphml: nx.Graph
) -> None:
    """Read back by plain networkx, CN-QCN has its 1,065 nodes and every QKD-link."""
    assert graphml.number_of_nodes() == len(net.nodes) == 1065
    assert graphml.number_of_edges() == len(net.qkd_links)
    assert set(graphml.nodes) == {n.id for n in net.nodes}
    assert graphml.graph["name"] == "cn-qcn"


def test_graphml_keeps_node_attributes(graphml: nx.Graph) -> None:
    """A node keeps its kind and coordinates."""
    harbin = graphml.nodes["harbin"]
    assert (harbin["kind"], harbin["lat"], harbin["lon"]) == ("backbone_access", 45.8, 126.53)
    assert harbin["name"] == "Harbin"
    assert "backbone" in harbin["domains"].split(",")


def test_graphml_keeps_link_attributes_and_dv_field_parameters(
    net: Network, graphml: nx.Graph
) -> None:
    """A DV link keeps its id, length, loss, device type and field parameters as field_*."""
    link = next(lk for lk in net.qkd_links if lk.device_type not in CV_DEVICE_TYPES)
    edge = graphml.edges[link.a, link.b]
    assert edge["id"] == link.id
    assert (edge["length_km"], edge["loss_db"]) == (link.length_km, link.loss_db)
    assert edge["device_type"] == link.device_type
    assert edge["field_e_d"] == link.field["e_d"]
    assert edge["field_dark_count_hz"] == link.field["dark_count_hz"]


def test_graphml_gives_cv_links_their_own_field_parameters(
    net: Network, graphml: nx.Graph
) -> None:
    """A CV link carries excess noise and reconciliation efficiency, and no QBER."""
    link = next(lk for lk in net.qkd_links if lk.device_type in CV_DEVICE_TYPES)
    edge = graphml.edges[link.a, link.b]
    assert edge["field_xi"] == link.field["xi"]
    assert edge["field_beta"] == link.field["beta"]
    assert "field_e_d" not in edge


def test_graphml_declares_each_attribute_once_even_for_whole_numbers() -> None:
    """A network built in code with whole-number km and degrees still gives one GraphML key
    per attribute name, so tools other than networkx read one column each."""
    nodes = (Node("a", "A", NodeKind.BACKBONE_ACCESS, 40, 116),
             Node("b", "B", NodeKind.BACKBONE_ACCESS, 38.5, 117.2),
             Node("c", "C", NodeKind.BACKBONE_ACCESS, 36, 117.5))
    links = (QKDLink("a-b", "a", "b", 70, 14, "I"), QKDLink("b-c", "b", "c", 80.5, 16.1, "I"))
    text = _graphml_text(validated(Network("ints", nodes, links)))
    keys = ET.fromstring(text).findall("{http://graphml.graphdrawing.org/xmlns}key")
    names = Counter((k.get("for"), k.get("attr.name")) for k in keys)
    assert [name for name, count in names.items() if count > 1] == []


# --- GeoJSON ----------------------------------------------------------------------------


def test_geojson_is_a_feature_collection_named_for_the_network(geojson: dict[str, Any]) -> None:
    """The document is a FeatureCollection of Features."""
    assert geojson["type"] == "FeatureCollection"
    assert geojson["name"] == "cn-qcn"
    assert {f["type"] for f in geojson["features"]} == {"Feature"}


def test_geojson_has_a_point_per_node(net: Network, geojson: dict[str, Any]) -> None:
    """Every node is one Point, carrying its id and kind."""
    points = _features(geojson, "Point")
    assert len(points) == len(net.nodes) == 1065
    assert [p["properties"]["id"] for p in points] == [n.id for n in net.nodes]
    assert points[0]["properties"]["kind"] == net.nodes[0].kind.value


def test_geojson_has_a_line_per_qkd_link_and_per_satellite_km_link(
    net: Network, geojson: dict[str, Any]
) -> None:
    """QKD-links and satellite KM-links are LineStrings; fibre KM-links are not drawn."""
    satellite = [k for k in net.km_links if k.kind is KMLinkKind.SATELLITE]
    assert satellite
    assert len(_features(geojson, "LineString", "qkd_link")) == len(net.qkd_links)
    assert [f["properties"]["id"] for f in _features(geojson, "LineString",
                                                     "satellite_km_link")] == [
        k.id for k in satellite]
    assert len(_features(geojson, "LineString")) == len(net.qkd_links) + len(satellite)


def test_geojson_coordinates_are_lon_then_lat(geojson: dict[str, Any]) -> None:
    """Harbin is at [126.53, 45.8]: longitude first, as GeoJSON requires."""
    [harbin] = [p for p in _features(geojson, "Point") if p["properties"]["id"] == "harbin"]
    assert harbin["geometry"]["coordinates"] == [126.53, 45.8]


def test_geojson_lines_join_their_end_nodes(net: Network, geojson: dict[str, Any]) -> None:
    """A link's line runs from node a to node b, each end in [lon, lat] order."""
    [feature] = [f for f in _features(geojson, "LineString", "qkd_link")
                 if f["properties"]["id"] == net.qkd_links[0].id]
    a, b = net.node[net.qkd_links[0].a], net.node[net.qkd_links[0].b]
    assert feature["geometry"]["coordinates"] == [[a.lon, a.lat], [b.lon, b.lat]]
    assert feature["properties"]["length_km"] == net.qkd_links[0].length_km
