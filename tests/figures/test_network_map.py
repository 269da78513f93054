"""The network map: legend counts, and a PNG that actually shows something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkdnet.figures.network_map import draw_map, legend_entries
from qkdnet.topology.model import (
    Domain,
    DomainKind,
    KMLink,
    KMLinkKind,
    Network,
    Node,
    NodeKind,
    QKDLink,
)
from qkdnet.topology.validation import validated

K = NodeKind


def _node(id_: str, kind: NodeKind, lat: float, lon: float, city: str) -> Node:
    return Node(id_, f"{city} {kind}", kind, lat, lon, city=city, region="north")


def _link(a: str, b: str, km: float = 70.0, device: str = "I") -> QKDLink:
    return QKDLink(f"{a}-{b}", a, b, km, km * 0.2, device)


def small_network() -> Network:
    """Every node kind, every link group, one satellite KM-link."""
    nodes = (
        _node("bj", K.BACKBONE_ACCESS, 39.90, 116.40, "Beijing"),
        _node("wh", K.BACKBONE_ACCESS, 30.59, 114.31, "Wuhan"),
        _node("r1", K.BACKBONE_RELAY, 36.5, 115.6, "Handan"),
        _node("r2", K.BACKBONE_RELAY, 33.5, 114.9, "Zhumadian"),
        _node("jn", K.BSBN, 36.65, 117.00, "Jinan"),
        _node("hf", K.BSBN, 31.82, 117.23, "Hefei"),
        _node("m1", K.METRO_ACCESS, 39.95, 116.30, "Beijing"),
        _node("m2", K.METRO_ACCESS, 39.85, 116.50, "Beijing"),
        *(_node(f"u{i}", K.USER, 39.9 + 0.02 * i, 116.35 + 0.02 * i, "Beijing")
          for i in range(4)),
        _node("gs-bj", K.GROUND_STATION, 40.05, 116.60, "Beijing"),
        _node("gs-xj", K.GROUND_STATION, 43.8, 87.6, "Urumqi"),
        _node("om", K.OM_CENTRE, 31.85, 117.30, "Hefei"),
    )
    links = (
        _link("bj", "r1"), _link("r1", "r2"), _link("r2", "wh"),
        _link("bj", "jn"), _link("jn", "hf"),
        _link("bj", "m1", 10, "V"), _link("m1", "m2", 10, "V"),
        _link("m1", "u0", 5, "VI"), _link("m1", "u1", 5, "VI"),
        _link("m2", "u2", 5, "VII"), _link("m2", "u3", 5, "VII"),
        _link("gs-bj", "bj", 20),
    )
    domains = (
        Domain("backbone", DomainKind.BACKBONE, "backbone", frozenset({"bj", "wh", "r1", "r2"})),
        Domain("bsbn", DomainKind.BSBN, "BSBN", frozenset({"bj", "jn", "hf"})),
        Domain("metro-bj", DomainKind.METRO, "Beijing metro",
               frozenset({"m1", "m2", "u0", "u1", "u2", "u3"})),
    )
    sat = KMLink("sat-bj-xj", "gs-bj", "gs-xj", KMLinkKind.SATELLITE)
    return validated(Network("test net", nodes, links, (sat,), domains))


def test_legend_lists_each_element_with_its_count() -> None:
    """Counts per link group, satellite KM-links and node kind, links first."""
    assert legend_entries(small_network()) == [
        "backbone fibre link (3)",
        "BSBN fibre link (2)",
        "metro link (6)",
        "ground-station fibre link (1)",
        "satellite KM-link (1)",
        "backbone access node (2)",
        "backbone relay node (2)",
        "BSBN node (2)",
        "metro access node (2)",
        "user node (4)",
        "ground station (2)",
        "O&M centre (1)",
        "metro network (1)",
    ]


def test_kinds_the_network_lacks_are_not_in_the_legend() -> None:
    """A backbone-only network has only backbone entries."""
    nodes = (_node("a", K.BACKBONE_ACCESS, 39.9, 116.4, "Beijing"),
             _node("b", K.BACKBONE_RELAY, 38.0, 116.0, "Shijiazhuang"))
    net = validated(Network("n", nodes, (_link("a", "b"),)))
    assert legend_entries(net) == ["backbone fibre link (1)", "backbone access node (1)",
                                   "backbone relay node (1)"]


def test_the_map_is_a_png_that_is_not_blank(tmp_path: Path) -> None:
    """A 12 x 9 in, 150 dpi PNG with many colours, the BSBN red among them."""
    import matplotlib.image

    out = draw_map(small_network(), tmp_path / "maps" / "net.png", title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < len(data) < 5_000_000
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (1350, 1800)
    rgb = np.round(image[..., :3] * 255).astype(int).reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 20
    red = (rgb[:, 0] > 190) & (rgb[:, 1] < 70) & (rgb[:, 2] < 70)
    assert red.sum() > 50


@pytest.mark.parametrize("nodes", [(), (_node("a", K.OM_CENTRE, 31.8, 117.3, "Hefei"),)])
def test_tiny_networks_still_draw(tmp_path: Path, nodes: tuple[Node, ...]) -> None:
    """An empty network, or one node and no links, gives a map rather than an error."""
    out = draw_map(validated(Network("tiny", nodes, ())), tmp_path / "tiny.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_the_map_lies_over_sea_land_and_provinces(tmp_path: Path) -> None:
    """A coastal network's map shows the sea and China's land in their colours, and the
    geography does not widen the view beyond the nodes' margin."""
    import matplotlib.image

    nodes = (_node("sh", K.BACKBONE_ACCESS, 31.23, 121.47, "Shanghai"),
             _node("qd", K.BACKBONE_ACCESS, 36.07, 120.38, "Qingdao"),
             _node("hf", K.BACKBONE_ACCESS, 31.82, 117.23, "Hefei"))
    net = validated(Network("coast", nodes, (_link("sh", "qd", 600), _link("hf", "sh", 450))))
    out = draw_map(net, tmp_path / "coast.png")
    rgb = np.round(matplotlib.image.imread(out)[..., :3] * 255).astype(int).reshape(-1, 3)

    def share(colour: str) -> float:
        target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(rgb - target).max(axis=1) <= 2).mean())

    assert share("#e4eef6") > 0.05  # the Yellow Sea and the East China Sea
    assert share("#fbfaf7") > 0.05  # China's land
    assert share("#f4f2ec") < 0.02  # hardly any other country's: the view stays on the nodes
