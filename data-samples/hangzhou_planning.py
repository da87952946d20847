#!/usr/bin/env python3
"""Write the SYNTHETIC planning and protection layers of Hangzhou (hangzhou.gpkg).

Everything written here is invented (seed 330100017) and flagged `synthetic`; it is made to be
consistent with the other synthetic layers of hangzhou.gpkg (the parcels, West Lake, the hills of
the real DEM) so that the analysis processes (issue 17) have something real to compute on:

- `landuse_plan` (土地利用规划): units of a land-use plan 2021-2035 over the core of Hangzhou
  (Voronoi cells of random seeds, clipped to the districts), each with a GB/T 21010-2017 class:
  first-level code and name (`class_code`, `class_name`: 01 耕地, 03 林地, 07 住宅用地 ...) and
  second-level code and name (`plan_code`, `plan_name`: 0101 水田, 0301 乔木林地, 0701 城镇住宅用地
  ...). A unit over the parcels takes the class of the parcels' dominant GB/T 21010 use (by
  area); over West Lake or the Qiantang channel a water class; on the hills of the DEM (> 60 m)
  forest, bamboo or tea; elsewhere near the centre future urban land, further out farmland,
  orchards, rural homesteads and some industry.
- `basic_farmland` (永久基本农田): protection patches inside the plan's cultivated-land units
  (01 耕地), never over a parcel: patch code, name, district, land class, quality grade (耕地质量等别
  1-10), area in mu and the year of the 2022 delineation.
- `eco_redline` (生态保护红线): the plan's forest, tea and water units dissolved into red-line areas
  (the one holding the West Lake hills is 西湖群山生态保护红线), with code, name, leading function,
  area in mu and approval year.

Areas (`area_mu`) are on the CGCS2000 ellipsoid (1 亩 = 666.67 m²).

    python data-samples/hangzhou_planning.py      (run by generate_hangzhou.py too; seconds)
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import Geod
from shapely.geometry import MultiPoint, MultiPolygon, Point, box

HERE = Path(__file__).resolve().parent
HANGZHOU = HERE / "hangzhou.gpkg"
DEM = HERE / "rasters" / "dem_zhejiang.tif"
CRS = "EPSG:4490"
SEED = 330100017
EXTENT = (120.02, 30.16, 120.38, 30.40)  # the core of generate_hangzhou.py, a little inside
CENTRE = (120.19, 30.27)
SEEDS = 900  # plan units
GEOD = Geod(a=6378137.0, f=1 / 298.257222101)  # CGCS2000
M2_PER_MU = 10000.0 / 15.0
KX, KY = 96_200.0, 110_574.0  # metres per degree here

CLASS_1 = {"01": "耕地", "02": "园地", "03": "林地", "05": "商业服务业用地", "06": "工矿仓储用地",
           "07": "住宅用地", "08": "公共管理与公共服务用地", "11": "水域及水利设施用地"}
CLASS_2 = {"0101": "水田", "0102": "水浇地", "0103": "旱地", "0201": "果园", "0202": "茶园",
           "0301": "乔木林地", "0302": "竹林地", "0305": "灌木林地", "0501": "零售商业用地",
           "0505": "商务金融用地", "0601": "工业用地", "0604": "仓储用地", "0701": "城镇住宅用地",
           "0702": "农村宅基地", "0801": "机关团体用地", "0803": "教育用地", "0810": "公园与绿地",
           "1101": "河流水面", "1102": "湖泊水面", "1104": "坑塘水面"}
HILLS = [("0301", .70), ("0302", .18), ("0202", .08), ("0305", .04)]
NEAR = [("0701", .55), ("0505", .12), ("0803", .10), ("0810", .13), ("0601", .10)]  # future urban
RURAL = [("0101", .48), ("0103", .14), ("0102", .06), ("0201", .06), ("0702", .12),
         ("0601", .08), ("1104", .06)]
FUNCTIONS = ["水源涵养", "生物多样性维护", "水土保持"]


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def area_mu(g: shapely.Geometry) -> float:
    return round(abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0]) / M2_PER_MU, 2)


def _pick(rng: np.random.Generator, options: list[tuple[str, float]]) -> str:
    w = np.array([o[1] for o in options])
    return options[int(rng.choice(len(options), p=w / w.sum()))][0]


def _polygonal(g: shapely.Geometry) -> MultiPolygon:
    parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and not p.is_empty]
    parts = [q for p in parts for q in getattr(p, "geoms", [p])]
    return MultiPolygon(parts)


def _deg(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.set_precision(g, 1e-7)


def hills(rng_bounds: tuple[float, float, float, float]) -> shapely.Geometry:
    """Cells of the real DEM above 60 m (the West Lake hills, 西湖群山, and others)."""
    import rasterio
    import rasterio.features
    import rasterio.windows

    with rasterio.open(DEM) as ds:
        win = rasterio.windows.from_bounds(*rng_bounds, transform=ds.transform)
        z = ds.read(1, window=win)
        tr = ds.window_transform(win)
    shapes = rasterio.features.shapes((z > 60).astype(np.uint8), mask=(z > 60), transform=tr)
    return shapely.union_all([shapely.geometry.shape(s) for s, v in shapes if v == 1])


def water() -> tuple[shapely.Geometry, shapely.Geometry]:
    """West Lake and the Qiantang channel as generate_hangzhou.py draws them (degrees)."""
    import generate_hangzhou as gh

    lake = gh.to_deg(gh.west_lake())
    _, rivers, _ = gh.load_inputs()
    line, channel = gh.river_channel(rivers)
    test = gh.to_m(Point(gh.TEST_POI[1], gh.TEST_POI[2]))
    shift = 0.0  # as generate_hangzhou.main: the channel south of the fixed test POI
    while True:
        ch = shapely.affinity.translate(channel, 0, -shift)
        cl = shapely.affinity.translate(line, 0, -shift)
        if test.y > cl.interpolate(cl.project(test)).y and test.distance(ch) >= 350:
            break
        shift += 50.0
    return lake, gh.to_deg(ch)


def _share(cell: shapely.Geometry, g: shapely.Geometry) -> float:
    return float(cell.intersection(g).area / cell.area)


def plan_units(rng: np.random.Generator, districts: gpd.GeoDataFrame,
               parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    frame = box(*EXTENT)
    xs = rng.uniform(EXTENT[0], EXTENT[2], SEEDS)
    ys = rng.uniform(EXTENT[1], EXTENT[3], SEEDS)
    cells = shapely.voronoi_polygons(MultiPoint(np.column_stack([xs, ys])), extend_to=frame)
    land = shapely.union_all(districts.geometry.values).intersection(frame)
    lake, channel = water()
    high = hills(EXTENT)
    built = parcels.sindex
    rows = []
    for cell in cells.geoms:
        cell = cell.intersection(land)
        if cell.is_empty or cell.area < 1e-6:
            continue
        c = cell.representative_point()
        district = districts[districts.contains(c)]
        if district.empty:
            continue
        hits = parcels.iloc[built.query(cell, predicate="intersects")]
        covered = {}
        for code, g in zip(hits["gbt21010_code"], hits.geometry):
            covered[code] = covered.get(code, 0.0) + cell.intersection(g).area
        if sum(covered.values()) > 0.25 * cell.area:
            code = max(covered, key=lambda k: covered[k])
        elif _share(cell, lake) > .5:
            code = "1102"
        elif _share(cell, channel) > .5:
            code = "1101"
        elif _share(cell, high) > .5:
            code = _pick(rng, HILLS)
        elif np.hypot((c.x - CENTRE[0]) * KX, (c.y - CENTRE[1]) * KY) < 9000:
            code = _pick(rng, NEAR)
        else:
            code = _pick(rng, RURAL)
        if code not in CLASS_2:  # a parcel class the plan names by its first-level class
            code = {"05": "0501", "06": "0601", "08": "0801"}.get(code[:2], "0701")
        rows.append({"plan_code": code, "plan_name": CLASS_2[code], "class_code": code[:2],
                     "class_name": CLASS_1[code[:2]], "district": district.iloc[0]["name"],
                     "district_code": district.iloc[0]["code"], "geometry": _deg(cell)})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    gdf = gdf.sort_values(["district_code", "plan_code"], kind="stable").reset_index(drop=True)
    gdf.insert(0, "unit_no", [f"{d}GH{i + 1:04d}" for i, d in enumerate(gdf["district_code"])])
    gdf["area_mu"] = [area_mu(g) for g in gdf.geometry]
    gdf["plan_period"] = "2021-2035"
    gdf["approved_year"] = 2024
    gdf["synthetic"] = True
    gdf["geometry"] = [_polygonal(g) for g in gdf.geometry]
    return gdf


def basic_farmland(rng: np.random.Generator, plan: gpd.GeoDataFrame,
                   parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    built = shapely.union_all(parcels.geometry.values).buffer(0.0005)  # ~50 m off the parcels
    rows = []
    for _, u in plan[plan["class_code"] == "01"].iterrows():
        if rng.random() > .8:
            continue  # not every cultivated unit is permanent basic farmland
        g = u.geometry.difference(built).buffer(-0.0003).buffer(0.0001)  # inside the unit
        g = _polygonal(_deg(g.simplify(0.00005)))
        if g.is_empty or area_mu(g) < 30:
            continue
        n = len(rows) + 1
        rows.append({"jbnt_code": f"{u['district_code']}JBNT{n:04d}",
                     "name": f"{u['district']}永久基本农田保护图斑{n:04d}",
                     "district": u["district"], "district_code": u["district_code"],
                     "land_class": u["plan_name"], "quality_grade": int(rng.integers(3, 8)),
                     "area_mu": area_mu(g), "approved_year": 2022, "synthetic": True,
                     "geometry": g})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def eco_redline(rng: np.random.Generator, plan: gpd.GeoDataFrame,
                parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    keep = plan[plan["class_code"].isin(["03", "11"]) | (plan["plan_code"] == "0202")]
    built = shapely.union_all(parcels.geometry.values)
    merged = shapely.union_all(keep.geometry.values).buffer(0.0002).buffer(-0.0002)
    merged = merged.difference(built)
    parts = sorted((p for p in getattr(merged, "geoms", [merged]) if p.geom_type == "Polygon"),
                   key=lambda p: (-p.area, p.centroid.x))
    west_hills = box(120.08, 30.19, 120.145, 30.26)  # 西湖群山, west and south of the lake
    rows = []
    for p in parts:
        g = _polygonal(_deg(p.simplify(0.00005)))
        if g.is_empty or area_mu(g) < 500:
            continue
        c = g.representative_point()
        district = plan[plan.contains(c)]
        dname = district.iloc[0]["district"] if not district.empty else "杭州市"
        n = len(rows) + 1
        west_lake = g.intersects(west_hills) and not any("西湖群山" in r["name"] for r in rows)
        name = "西湖群山生态保护红线" if west_lake else f"{dname}山地丘陵生态保护红线{n:02d}"
        rows.append({"redline_code": f"ST3301-{n:03d}", "name": name, "district": dname,
                     "function": "生物多样性维护" if west_lake else str(rng.choice(FUNCTIONS)),
                     "area_mu": area_mu(g), "approved_year": 2022, "authority": "浙江省人民政府",
                     "synthetic": True, "geometry": g})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def main() -> None:
    rng = np.random.default_rng(SEED)
    sys.path.insert(0, str(HERE))
    districts = pyogrio.read_dataframe(HANGZHOU, layer="districts")
    parcels = pyogrio.read_dataframe(HANGZHOU, layer="parcels")
    plan = plan_units(rng, districts, parcels)
    farmland = basic_farmland(rng, plan, parcels)
    redline = eco_redline(rng, plan, parcels)
    for name, gdf in (("landuse_plan", plan), ("basic_farmland", farmland),
                      ("eco_redline", redline)):
        pyogrio.write_dataframe(gdf, HANGZHOU, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"}, promote_to_multi=True)
        log(name, len(gdf), "features,", round(gdf["area_mu"].sum() / 1500, 1), "km²")


if __name__ == "__main__":
    main()
