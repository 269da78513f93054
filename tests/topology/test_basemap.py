"""The shipped basemap: small, from Natural Earth, China's outline around its cities and its
provinces in place."""

from __future__ import annotations

import json
from importlib import resources

from qkdnet.topology.basemap import BASEMAP_FILE, Line, basemap, basemap_text


def _inside(point: tuple[float, float], ring: Line) -> bool:
    """Even-odd rule."""
    x, y = point
    inside = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def _in_region(point: tuple[float, float], rings: tuple[Line, ...]) -> bool:
    return sum(_inside(point, r) for r in rings) % 2 == 1


def test_the_file_is_small_and_says_where_it_comes_from() -> None:
    """Well under 1 MB, a GeoJSON FeatureCollection naming Natural Earth as its source."""
    size = (resources.files("qkdnet.topology") / "data" / BASEMAP_FILE).stat().st_size
    assert 100_000 < size < 500_000
    collection = json.loads(basemap_text())
    assert collection["type"] == "FeatureCollection"
    assert "Natural Earth" in collection["source"]


def test_china_holds_its_cities_and_the_sea_does_not() -> None:
    """Beijing, Urumqi and Haikou lie on China's land; a point of the Yellow Sea does not."""
    china = [r for r in basemap().land if r.name == "China"]
    assert len(china) == 1
    for city in ((116.40, 39.90), (87.62, 43.83), (110.35, 20.02)):
        assert _in_region(city, china[0].lines), city
    assert not _in_region((123.0, 35.0), china[0].lines)


def test_provinces_are_china_first_level_divisions_in_place() -> None:
    """About 31 provinces; Hubei's outline holds Wuhan, Guangdong's holds Shenzhen."""
    provinces = {r.name: r for r in basemap().provinces}
    assert 30 <= len(provinces) <= 34
    assert _in_region((114.31, 30.59), provinces["Hubei"].lines)
    assert _in_region((114.06, 22.54), provinces["Guangdong"].lines)
    assert not _in_region((114.31, 30.59), provinces["Guangdong"].lines)


def test_coasts_and_borders_are_lines_in_view() -> None:
    """Coastlines and land borders are there, every point within the box around China."""
    geo = basemap()
    assert len(geo.coast) > 50 and len(geo.borders) > 10
    for line in geo.coast + geo.borders:
        assert all(50 < x < 160 and -5 < y < 66 for x, y in line)
