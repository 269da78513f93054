"""A map of the network in the manner of the CN-QCN paper's Fig. 1: fibre links and nodes
on longitude/latitude axes, satellite KM-links as dashed arcs, a legend with counts, over
the geography of :mod:`qkdnet.topology.basemap` (Natural Earth: land, coasts, borders and
China's provinces).

Links are grouped by the part of the network they belong to
(:func:`~qkdnet.topology.link_category.link_category`) and each group is drawn as one
``LineCollection``, so the ~1,000 links of CN-QCN draw in well under a second. The legend
labels come from :func:`legend_entries`, which the tests check against known counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qkdnet.topology.basemap import basemap
from qkdnet.topology.link_category import LinkCategory, link_category
from qkdnet.topology.model import DomainKind, KMLinkKind, Network, Node, NodeKind

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Degrees of margin around the outermost nodes.
MARGIN_DEG = 1.5
#: Smallest and largest marker area (pt²) in the legend.
_KEY_SIZES = (14.0, 90.0)
#: Where an empty map is centred (lon, lat): eastern China.
_EMPTY_CENTRE = (112.0, 35.0)
_LABELLED_KINDS = (NodeKind.BACKBONE_ACCESS, NodeKind.GROUND_STATION)

Segment = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class _NodeStyle:
    label: str
    marker: str
    size: float
    colour: str
    edge: str
    zorder: int


@dataclass(frozen=True, slots=True)
class _LineStyle:
    label: str
    colour: str
    width: float
    dashed: bool
    zorder: int


# Dict order is legend order.
_NODE_STYLES: dict[NodeKind, _NodeStyle] = {
    NodeKind.BACKBONE_ACCESS: _NodeStyle("backbone access node", "o", 42, "#1f4e9c", "white", 7),
    NodeKind.BACKBONE_RELAY: _NodeStyle("backbone relay node", "o", 9, "white", "#1f4e9c", 5),
    NodeKind.BSBN: _NodeStyle("BSBN node", "s", 16, "#d62728", "white", 6),
    NodeKind.METRO_ACCESS: _NodeStyle("metro access node", "D", 16, "#1b8a3a", "white", 6),
    NodeKind.USER: _NodeStyle("user node", ".", 3, "#6cc47f", "none", 4),
    NodeKind.GROUND_STATION: _NodeStyle("ground station", "^", 80, "#8e44ad", "black", 8),
    NodeKind.OM_CENTRE: _NodeStyle("O&M centre", "*", 220, "#f2b01e", "black", 9),
}
_LINK_STYLES: dict[LinkCategory, _LineStyle] = {
    LinkCategory.BACKBONE: _LineStyle("backbone fibre link", "#1f4e9c", 1.4, False, 2),
    LinkCategory.BSBN: _LineStyle("BSBN fibre link", "#d62728", 1.6, False, 3),
    LinkCategory.METRO: _LineStyle("metro link", "#2ca02c", 0.4, False, 1),
    LinkCategory.GROUND_STATION: _LineStyle("ground-station fibre link", "#8e44ad", 1.0,
                                            False, 2),
    LinkCategory.OTHER: _LineStyle("other QKD-link", "0.55", 0.8, False, 1),
}
#: A hollow ring around each metro network, so the small metro clusters show at country scale.
_METRO_NETWORK_STYLE = _NodeStyle("metro network", "o", 150, "none", "#1b8a3a", 6)
_SATELLITE_STYLE = _LineStyle("satellite KM-link", "#8e44ad", 0.8, True, 2)
#: The geography's colours: sea, land, China's land, coasts, borders, provinces.
_SEA, _LAND, _HOME_LAND = "#e4eef6", "#f4f2ec", "#fbfaf7"
_COAST, _BORDER, _PROVINCE = "#7f93a5", "#8a8478", "#c4bdb0"
#: The country whose land is drawn lighter and whose provinces are outlined.
_HOME = "China"


def legend_entries(network: Network) -> list[str]:
    """The map's legend labels with counts, e.g. ``"backbone access node (41)"``: links
    first, then nodes; groups the network lacks are left out."""
    return [label for label, _, _ in _line_groups(network)] + [
        label for label, _, _ in _node_groups(network)
    ]


def draw_map(network: Network, path: Path, title: str | None = None) -> Path:
    """Draw ``network`` on longitude/latitude axes and save it as a PNG at ``path``
    (12 x 9 in, 150 dpi); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig, ax = plt.subplots(figsize=(12, 9), dpi=150)
    _geography(ax)
    for label, style, segments in _line_groups(network):
        ax.add_collection(LineCollection(
            segments, colors=style.colour, linewidths=style.width, zorder=style.zorder,
            linestyles="--" if style.dashed else "-", label=label))
    for label, mark, nodes in _node_groups(network):
        ax.scatter([n.lon for n in nodes], [n.lat for n in nodes], s=mark.size,
                   marker=mark.marker, c=mark.colour, edgecolors=mark.edge,
                   linewidths=1.2 if mark is _METRO_NETWORK_STYLE else 0.5,
                   zorder=mark.zorder, label=label)
    _label_cities(ax, network)
    _frame(ax, network, title or network.name)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # no Software stamp: the same network gives the same bytes (the twin report embeds it)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _geography(ax: Axes) -> None:
    """Land, China's provinces, borders and coasts under everything else; they do not
    widen the axes (the nodes set the view)."""
    from matplotlib.collections import LineCollection, PolyCollection

    geo = basemap()
    ax.set_facecolor(_SEA)
    rings = [ring for region in geo.land for ring in region.lines]
    colours = [_HOME_LAND if region.name == _HOME else _LAND
               for region in geo.land for _ in region.lines]
    # holes (lakes) are filled over as land: at this scale they are few and small
    ax.add_collection(PolyCollection(rings, facecolors=colours, edgecolors="none",
                                     zorder=0.1), autolim=False)
    lines = [line for region in geo.provinces for line in region.lines]
    ax.add_collection(LineCollection(lines, colors=_PROVINCE, linewidths=0.4, zorder=0.2),
                      autolim=False)
    ax.add_collection(LineCollection(geo.borders, colors=_BORDER, linewidths=0.8,
                                     linestyles=(0, (4, 2)), zorder=0.3), autolim=False)
    ax.add_collection(LineCollection(geo.coast, colors=_COAST, linewidths=0.6, zorder=0.3),
                      autolim=False)


def _entry(label: str, count: int) -> str:
    return f"{label} ({count})"


def _node_groups(network: Network) -> list[tuple[str, _NodeStyle, list[Node]]]:
    groups = []
    for kind, style in _NODE_STYLES.items():
        nodes = network.nodes_of(kind)
        if nodes:
            groups.append((_entry(style.label, len(nodes)), style, nodes))
    centres = _metro_centres(network)
    if centres:
        groups.append((_entry(_METRO_NETWORK_STYLE.label, len(centres)), _METRO_NETWORK_STYLE,
                       centres))
    return groups


def _metro_centres(network: Network) -> list[Node]:
    """A stand-in node at the middle of each metro network's metro access nodes."""
    centres = []
    for d in network.domains:
        access = [network.node[n] for n in d.nodes
                  if network.node[n].kind is NodeKind.METRO_ACCESS]
        if d.kind is DomainKind.METRO and access:
            centres.append(Node(d.id, d.name, NodeKind.METRO_ACCESS,
                                sum(n.lat for n in access) / len(access),
                                sum(n.lon for n in access) / len(access)))
    return centres


def _line_groups(network: Network) -> list[tuple[str, _LineStyle, list[Segment]]]:
    by_category: dict[LinkCategory, list[Segment]] = {c: [] for c in LinkCategory}
    for link in network.qkd_links:
        a, b = network.node[link.a], network.node[link.b]
        by_category[link_category(network, link)].append(((a.lon, a.lat), (b.lon, b.lat)))
    groups = [(_entry(_LINK_STYLES[c].label, len(segs)), _LINK_STYLES[c], segs)
              for c, segs in by_category.items() if segs]
    arcs = [_arc(network.node[k.a], network.node[k.b])
            for k in network.km_links if k.kind is KMLinkKind.SATELLITE]
    if arcs:
        groups.append((_entry(_SATELLITE_STYLE.label, len(arcs)), _SATELLITE_STYLE, arcs))
    return groups


def _arc(a: Node, b: Node, bulge: float = 0.15, points: int = 24) -> Segment:
    """A gentle quadratic Bézier arc from ``a`` to ``b`` bowing northwards (or, for a
    north-south pair, eastwards) by ``bulge`` times the chord."""
    if (a.lon, a.lat) > (b.lon, b.lat):
        a, b = b, a
    start, end = np.array([a.lon, a.lat]), np.array([b.lon, b.lat])
    chord = end - start
    normal = np.array([-chord[1], chord[0]])  # left of west-to-east: north
    control = (start + end) / 2 + bulge * normal
    t = np.linspace(0.0, 1.0, points)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    return tuple((float(x), float(y)) for x, y in curve)


def _label_cities(ax: Axes, network: Network) -> None:
    """Small labels for access nodes and ground stations, one per city name."""
    from matplotlib.patheffects import withStroke

    halo = [withStroke(linewidth=1.5, foreground="white")]
    done: set[str] = set()
    for node in network.nodes_of(*_LABELLED_KINDS):
        text = node.city or node.name
        if text in done:
            continue
        done.add(text)
        ax.annotate(text, (node.lon, node.lat), xytext=(5, 3), textcoords="offset points",
                    fontsize=6, color="0.1", zorder=10, path_effects=halo)


def _frame(ax: Axes, network: Network, title: str) -> None:
    """Limits around the nodes, 1° lon = cos(mean lat) × 1° lat, grid, labels, legend."""
    from matplotlib.collections import PathCollection

    lons, lats = _coordinates(network.nodes)
    # Widen the data limits rather than fixing the view, so the aspect can fill the figure.
    ax.update_datalim([(min(lons) - MARGIN_DEG, min(lats) - MARGIN_DEG),
                       (max(lons) + MARGIN_DEG, max(lats) + MARGIN_DEG)])
    ax.margins(0)
    ax.autoscale_view()
    mean_lat = sum(lats) / len(lats)
    ax.set_aspect(1.0 / math.cos(math.radians(mean_lat)), adjustable="datalim")
    ax.grid(True, alpha=0.3, lw=0.5, zorder=0.5)
    ax.set_axisbelow(True)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        legend = ax.legend(loc="lower left", fontsize=7, framealpha=0.9)
        for handle in legend.legend_handles:
            if isinstance(handle, PathCollection):  # keep tiny markers visible in the key
                handle.set_sizes(np.clip(handle.get_sizes(), _KEY_SIZES[0], _KEY_SIZES[1]))


def _coordinates(nodes: Sequence[Node]) -> tuple[list[float], list[float]]:
    if not nodes:
        return [_EMPTY_CENTRE[0]], [_EMPTY_CENTRE[1]]
    return [n.lon for n in nodes], [n.lat for n in nodes]
