"""The geography under the network maps: China's outline and provinces, its neighbours'
coasts and borders, from Natural Earth (public domain), shipped with the package.

``data/basemap.geojson`` (about 300 kB) is made by ``scripts/make_basemap.py`` from Natural
Earth's 1:50m countries (4.1.0) and 1:10m first-level divisions, simplified to about 3 km
and rounded to 0.01°. Natural Earth draws boundaries as controlled on the ground, so its
disputed areas follow its own policy. Nothing is fetched at run time: the O&M console gets
the same file from ``GET /basemap.geojson`` and ``qkdnet topology map`` reads it here.

Coordinates are (longitude, latitude) in degrees, as GeoJSON has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: The file in ``qkdnet/topology/data``.
BASEMAP_FILE = "basemap.geojson"

Line = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Region:
    """A named area (a country's land) or outline (a province): its rings or lines."""

    name: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Basemap:
    """The layers of the basemap, from the bottom up."""

    land: tuple[Region, ...]
    coast: tuple[Line, ...]
    borders: tuple[Line, ...]
    provinces: tuple[Region, ...]


def basemap_text() -> str:
    """The basemap as GeoJSON text (a FeatureCollection; ``properties.layer`` is ``land``,
    ``coast``, ``border`` or ``province``)."""
    return (resources.files("qkdnet.topology") / "data" / BASEMAP_FILE).read_text(
        encoding="utf-8")


@cache
def basemap() -> Basemap:
    """The basemap's layers, read once."""
    collection = json.loads(basemap_text())
    land: list[Region] = []
    coast: list[Line] = []
    borders: list[Line] = []
    provinces: list[Region] = []
    for feature in collection["features"]:
        layer = feature["properties"]["layer"]
        name = feature["properties"].get("name", "")
        lines = _lines(feature["geometry"])
        if layer == "land":
            land.append(Region(name, lines))
        elif layer == "coast":
            coast.extend(lines)
        elif layer == "border":
            borders.extend(lines)
        elif layer == "province":
            provinces.append(Region(name, lines))
    return Basemap(tuple(land), tuple(coast), tuple(borders), tuple(provinces))


def _lines(geometry: dict[str, Any]) -> tuple[Line, ...]:
    """The rings of a (Multi)Polygon or the lines of a (Multi)LineString."""
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "MultiPolygon":
        parts = [ring for polygon in coords for ring in polygon]
    elif kind in ("Polygon", "MultiLineString"):
        parts = coords
    else:  # a LineString
        parts = [coords]
    return tuple(tuple((float(x), float(y)) for x, y in part) for part in parts)
