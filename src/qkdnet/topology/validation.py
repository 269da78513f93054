"""Consistency rules every network obeys, checked once when it is built or loaded.

A broken rule raises :class:`~qkdnet.errors.ScenarioError` with the path of the offending
entry (``qkd_links[3].b``) and the problem in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from qkdnet.errors import ScenarioError
from qkdnet.quantum.devices import DEVICE_TYPES
from qkdnet.quantum.field import FIELD_PARAMETERS
from qkdnet.topology.model import KMLinkKind, Network, Node, NodeKind


def validated(network: Network) -> Network:
    """``network`` itself if every rule holds; otherwise the first broken rule is raised."""
    _check_unique("nodes", (n.id for n in network.nodes))
    _check_unique("regions", (r.id for r in network.regions))
    _check_nodes(network)
    _check_qkd_links(network)
    _check_km_links(network)
    _check_domains(network)
    _check_saes(network)
    _check_sae_pairs(network)
    return network


def _check_unique(section: str, ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if not item:
            raise ScenarioError(f"{section}[{i}].id", "id must not be empty")
        if item in seen:
            raise ScenarioError(f"{section}[{i}].id", f"duplicate id {item!r}")
        seen.add(item)


def _check_nodes(network: Network) -> None:
    regions = {r.id for r in network.regions}
    for i, n in enumerate(network.nodes):
        if not -90.0 <= n.lat <= 90.0:
            raise ScenarioError(f"nodes[{i}].lat", f"latitude {n.lat} outside [-90, 90]")
        if not -180.0 <= n.lon <= 180.0:
            raise ScenarioError(f"nodes[{i}].lon", f"longitude {n.lon} outside [-180, 180]")
        if regions and n.region not in regions:
            raise ScenarioError(f"nodes[{i}].region", f"unknown region {n.region!r}")


def _check_qkd_links(network: Network) -> None:
    _check_unique("qkd_links", (lk.id for lk in network.qkd_links))
    nodes = network.node
    pairs: set[frozenset[str]] = set()
    for i, lk in enumerate(network.qkd_links):
        at = f"qkd_links[{i}]"
        _check_ends(at, lk.a, lk.b, nodes, "link")
        pair = frozenset(lk.ends)
        if pair in pairs:
            raise ScenarioError(at, f"second link between {lk.a!r} and {lk.b!r}; use "
                                "device_pairs for parallel devices")
        pairs.add(pair)
        if not lk.length_km > 0:
            raise ScenarioError(f"{at}.length_km", f"length must be > 0 km, got {lk.length_km}")
        if not lk.loss_db >= 0:
            raise ScenarioError(f"{at}.loss_db", f"loss must be >= 0 dB, got {lk.loss_db}")
        if lk.device_type not in DEVICE_TYPES:
            raise ScenarioError(f"{at}.device_type", f"unknown device type {lk.device_type!r}; "
                                "known: " + ", ".join(DEVICE_TYPES))
        if lk.device_pairs < 1:
            raise ScenarioError(f"{at}.device_pairs", "must be >= 1")
        if not 0 < lk.time_share <= 1:
            raise ScenarioError(f"{at}.time_share", "must be in (0, 1]")
        for name in lk.field:
            if name not in FIELD_PARAMETERS:
                raise ScenarioError(f"{at}.field.{name}", "unknown field parameter; known: "
                                    + ", ".join(FIELD_PARAMETERS))


def _check_ends(at: str, a: str, b: str, nodes: Mapping[str, Node], what: str) -> None:
    for end, node in (("a", a), ("b", b)):
        if node not in nodes:
            raise ScenarioError(f"{at}.{end}", f"unknown node {node!r}")
    if a == b:
        raise ScenarioError(f"{at}.b", f"{what} joins node {a!r} to itself")


def _check_km_links(network: Network) -> None:
    _check_unique("km_links", (k.id for k in network.km_links))
    nodes, links = network.node, network.link
    for i, km in enumerate(network.km_links):
        at = f"km_links[{i}]"
        _check_ends(at, km.a, km.b, nodes, "KM-link")
        for j, link_id in enumerate(km.path):
            if link_id not in links:
                raise ScenarioError(f"{at}.path[{j}]", f"unknown QKD-link {link_id!r}")
        if km.kind is KMLinkKind.SATELLITE:
            if km.path:
                raise ScenarioError(f"{at}.path", "a satellite KM-link has no fibre path")
            for end in ("a", "b"):
                if nodes[getattr(km, end)].kind is not NodeKind.GROUND_STATION:
                    raise ScenarioError(f"{at}.{end}", "satellite KM-links join ground stations")
            continue
        if not km.path:
            raise ScenarioError(f"{at}.path", f"a {km.kind} KM-link needs a path of QKD-links")
        if km.kind is KMLinkKind.DIRECT and len(km.path) != 1:
            raise ScenarioError(f"{at}.path", "a direct KM-link uses exactly one QKD-link")
        _check_walk(at, km.a, km.b, km.path, network)


def _check_walk(at: str, start: str, end: str, path: Sequence[str], network: Network) -> None:
    here = start
    for j, link_id in enumerate(path):
        link = network.link[link_id]
        if here not in link.ends:
            raise ScenarioError(f"{at}.path[{j}]", f"path is not connected: {link_id!r} does "
                                f"not touch {here!r}")
        here = link.other(here)
    if here != end:
        raise ScenarioError(f"{at}.path", f"path ends at {here!r}, not at {end!r}")


def _check_saes(network: Network) -> None:
    _check_unique("saes", (s.id for s in network.saes))
    for i, sae in enumerate(network.saes):
        if sae.node not in network.node:
            raise ScenarioError(f"saes[{i}].node", f"unknown node {sae.node!r}")


def _check_sae_pairs(network: Network) -> None:
    seen: set[frozenset[str]] = set()
    for i, (a, b) in enumerate(network.sae_pairs or ()):
        for j, sae in enumerate((a, b)):
            if sae not in network.sae:
                raise ScenarioError(f"sae_pairs[{i}][{j}]", f"unknown SAE {sae!r}")
        if a == b:
            raise ScenarioError(f"sae_pairs[{i}]", f"pairs SAE {a!r} with itself")
        pair = frozenset((a, b))
        if pair in seen:
            raise ScenarioError(f"sae_pairs[{i}]", f"duplicate pair of {a!r} and {b!r} "
                                "(pairs are unordered)")
        seen.add(pair)


def _check_domains(network: Network) -> None:
    _check_unique("domains", (d.id for d in network.domains))
    nodes = network.node
    for i, d in enumerate(network.domains):
        for member in sorted(d.nodes):
            if member not in nodes:
                raise ScenarioError(f"domains[{i}].nodes", f"unknown node {member!r}")
        if d.managed_by and d.managed_by != d.managed_by.strip():
            raise ScenarioError(f"domains[{i}].managed_by", f"operator {d.managed_by!r} has "
                                "leading or trailing spaces")
