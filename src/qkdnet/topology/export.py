"""Exports for other tools as data: a GraphML-safe networkx graph (networkx, Gephi, yEd) and
a GeoJSON document (map tools); :mod:`qkdnet.files.exports` writes them to files."""

from __future__ import annotations

from typing import Any

import networkx as nx

from qkdnet.topology.model import KMLinkKind, Network


def to_graphml_graph(network: Network) -> nx.Graph:
    """A plain networkx graph with only GraphML-safe (str, int, float) attributes: one
    node per node, one edge per QKD-link; field parameters as ``field_<name>``."""
    domains: dict[str, list[str]] = {}
    for d in network.domains:
        for member in d.nodes:
            domains.setdefault(member, []).append(d.id)
    g = nx.Graph(name=network.name)
    for n in network.nodes:
        # float() throughout: a whole number would otherwise declare a second, integer key
        g.add_node(n.id, name=n.name, kind=n.kind.value, lat=float(n.lat), lon=float(n.lon),
                   city=n.city,
                   region=n.region, domains=",".join(sorted(domains.get(n.id, []))))
    for lk in network.qkd_links:
        g.add_edge(lk.a, lk.b, id=lk.id, length_km=float(lk.length_km),
                   loss_db=float(lk.loss_db), device_type=lk.device_type,
                   device_pairs=lk.device_pairs, multiplexing=lk.multiplexing.value,
                   time_share=float(lk.time_share),
                   **{f"field_{k}": float(v) for k, v in lk.field.items()})
    return g


def to_geojson(network: Network) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: a Point per node, a LineString per QKD-link and per
    satellite KM-link (coordinates in [lon, lat] order, as GeoJSON requires)."""
    where = {n.id: [n.lon, n.lat] for n in network.nodes}
    features: list[dict[str, Any]] = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": where[n.id]},
         "properties": {"id": n.id, "name": n.name, "kind": n.kind.value, "city": n.city,
                        "region": n.region}}
        for n in network.nodes
    ]
    features += [
        {"type": "Feature",
         "geometry": {"type": "LineString", "coordinates": [where[lk.a], where[lk.b]]},
         "properties": {"id": lk.id, "kind": "qkd_link", "a": lk.a, "b": lk.b,
                        "length_km": lk.length_km, "loss_db": lk.loss_db,
                        "device_type": lk.device_type, "multiplexing": lk.multiplexing.value}}
        for lk in network.qkd_links
    ]
    features += [
        {"type": "Feature",
         "geometry": {"type": "LineString", "coordinates": [where[k.a], where[k.b]]},
         "properties": {"id": k.id, "kind": "satellite_km_link", "a": k.a, "b": k.b}}
        for k in network.km_links if k.kind is KMLinkKind.SATELLITE
    ]
    return {"type": "FeatureCollection", "name": network.name, "features": features}
