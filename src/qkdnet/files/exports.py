"""Exports written for other tools: GraphML (networkx, Gephi, yEd) and GeoJSON (map tools),
from the documents :mod:`qkdnet.topology.export` builds."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from qkdnet.topology.export import to_geojson, to_graphml_graph
from qkdnet.topology.model import Network


def write_graphml(network: Network, path: Path) -> Path:
    """Write the QKD-link graph as GraphML; returns ``path``."""
    nx.write_graphml(to_graphml_graph(network), path)
    return path


def write_geojson(network: Network, path: Path) -> Path:
    """Write :func:`~qkdnet.topology.export.to_geojson` to ``path``; returns ``path``."""
    path.write_text(json.dumps(to_geojson(network)), encoding="utf-8")
    return path
