#!/usr/bin/env python3
"""Generate geoplat's SYNTHETIC Hangzhou city sample (hangzhou.gpkg + synthetic image).

Reproducible: fixed seed, numpy/shapely/geopandas (+ rasterio for the GeoTIFF only).
Reads the REAL outputs of build_real.py:
    national.gpkg:counties   (1:4M county units 3301xx -> layer `districts`: the 2023 districts,
                              outside the city proper the real 1999 units, inside it synthetic
                              cells around the invented district centres; see districts_2023)
    zhejiang.gpkg:rivers     (钱塘江 bank lines -> river channel mask)
    zhejiang.gpkg:townships  (real 2023 street names/codes -> 街道便民服务中心 names, and the
                              layer `township_cells` by hangzhou_townships.py)
    rasters/dem_zhejiang.tif (real 30" DEM -> keep the West Lake hills free of buildings)
Everything else (roads, buildings, POIs, addresses, parcels, the image) is invented, and each
feature carries synthetic=true.  Only the POI '杭州市民中心政务服务大厅' has a fixed, exact
position (lon 120.2130, lat 30.2460) that tests rely on.

Rerun:  python data-samples/generate_hangzhou.py      (a few seconds to a minute)
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import geopandas as gpd
import hangzhou_cadastre  # data-samples/hangzhou_cadastre.py: parcel rights, pre-sale projects
import hangzhou_planning  # data-samples/hangzhou_planning.py: plan, basic farmland, red lines
import hangzhou_townships  # data-samples/hangzhou_townships.py: the township cells
import numpy as np
import rasterio
import rasterio.features
import rasterio.shutil
import shapely
import shapely.ops
from rasterio.transform import from_origin
from shapely import affinity
from shapely.geometry import LineString, MultiLineString, Point, Polygon, box

HERE = Path(__file__).resolve().parent
OUT = HERE / "hangzhou.gpkg"
IMG = HERE / "rasters" / "hangzhou_img_synthetic.tif"
CRS = "EPSG:4490"
SEED = 330100
rng = np.random.default_rng(SEED)

EXTENT = (118.34, 29.18, 120.73, 30.57)
CORE = (120.0, 30.15, 120.4, 30.40)
CENTRE = (120.19, 30.27)  # 武林/湖滨 area: density peaks here
TEST_POI = ("杭州市民中心政务服务大厅", 120.2130, 30.2460)

# local metric frame (equirectangular around CENTRE): good to <0.1 % over the core
KX = 111320.0 * math.cos(math.radians(CENTRE[1]))
KY = 110574.0


def to_m(g):
    return shapely.transform(g, lambda c: np.column_stack([(c[:, 0] - CENTRE[0]) * KX,
                                                          (c[:, 1] - CENTRE[1]) * KY]))


def to_deg(g):
    return shapely.transform(g, lambda c: np.column_stack([np.round(c[:, 0] / KX + CENTRE[0], 7),
                                                          np.round(c[:, 1] / KY + CENTRE[1], 7)]))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ inputs (real)
def load_inputs():
    nat = HERE / "national.gpkg"
    zj = HERE / "zhejiang.gpkg"
    counties = gpd.read_file(nat, layer="counties")
    districts = counties[counties["code"].str.startswith("3301")].copy()
    rivers = gpd.read_file(zj, layer="rivers")
    towns = gpd.read_file(zj, layer="townships")
    return districts, rivers, towns


def river_channel(rivers):
    """钱塘江 at 1:4M is two bank lines; use their mid-line buffered to ~1.1 km as the channel."""
    qt = rivers[rivers["name"] == "钱塘江"].geometry
    core = box(CORE[0] - 0.05, CORE[1] - 0.05, CORE[2] + 0.05, CORE[3] + 0.05)
    parts = []
    for g in qt:
        g = g.intersection(core)
        parts.extend(getattr(g, "geoms", [g]))
    parts = sorted([to_m(p) for p in parts if p.length > 0], key=lambda p: -p.length)[:2]
    a, b = parts
    pts = []
    for d in np.arange(0, a.length, 150.0):
        p = a.interpolate(d)
        q = b.interpolate(b.project(p))
        pts.append(((p.x + q.x) / 2, (p.y + q.y) / 2))
    xy = np.array(pts)
    k = 7  # smooth the mid-line
    xy = np.column_stack([np.convolve(np.pad(xy[:, i], k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1),
                                      mode="valid") for i in range(2)])
    centre = LineString(xy)
    return centre, centre.buffer(550, cap_style="flat")


def west_lake():
    """Synthetic outline of 西湖 at its real place (shape approximate, ~6.4 km2)."""
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    r = 1.0 + 0.08 * np.sin(3 * t + 0.4) + 0.05 * np.cos(5 * t)
    cx, cy = to_m(Point(120.1445, 30.2445)).coords[0]
    poly = Polygon(np.column_stack([cx + 1350 * r * np.cos(t), cy + 1600 * r * np.sin(t)]))
    return poly


def hills_mask():
    """Real DEM: cells above 60 m around the core are hills (西湖群山 etc.): no city blocks there."""
    path = HERE / "rasters" / "dem_zhejiang.tif"
    with rasterio.open(path) as ds:
        win = rasterio.windows.from_bounds(*CORE, transform=ds.transform)
        z = ds.read(1, window=win)
        tr = ds.window_transform(win)
    shapes = rasterio.features.shapes((z > 60).astype(np.uint8), mask=(z > 60), transform=tr)
    polys = [shapely.geometry.shape(s) for s, v in shapes if v == 1]
    return to_m(shapely.union_all(polys)).buffer(100).buffer(-100) if polys else Polygon()


# ------------------------------------------------------------------ names
PREFIX = list("文学教天古紫湖德艮望庆凤秋钱江滨之新金丰明春和兴安平康宁华云松柳桂荷梅竹翠青秀"
              "嘉瑞祥丽锦泰盛福禄寿宏远建振启晨阳光月星溪泉岚")
NUMS = "一二三四五六七八九十"


class Namer:
    def __init__(self):
        self.used = set()

    def one(self, suffix="路", series=None, idx=None):
        for _ in range(1000):
            if series is not None:
                name = f"{series}{NUMS[idx % 10]}{suffix}"
            else:
                n = 2 if rng.random() < 0.8 else 3
                name = "".join(rng.choice(PREFIX, n, replace=False)) + suffix
            if name not in self.used:
                self.used.add(name)
                return name
            series = None
        raise RuntimeError("names exhausted")

    def series(self):
        for _ in range(1000):
            s = "".join(rng.choice(PREFIX, 1 if rng.random() < 0.6 else 2, replace=False))
            if all(not u.startswith(s) for u in self.used):
                return s
        return "新"


# ------------------------------------------------------------------ roads
def wobbly_line(p0, p1, amp=40.0, n=24):
    t = np.linspace(0, 1, n)
    x = p0[0] + (p1[0] - p0[0]) * t
    y = p0[1] + (p1[1] - p0[1]) * t
    L = math.hypot(p1[0] - p0[0], p1[1] - p0[1]) or 1
    nx, ny = -(p1[1] - p0[1]) / L, (p1[0] - p0[0]) / L
    ph, k = rng.uniform(0, 2 * np.pi), rng.uniform(1, 3)
    off = amp * np.sin(ph + k * np.pi * t)
    return LineString(np.column_stack([x + nx * off, y + ny * off]))


def grid_lines(spacing, half_w, half_h, angle, jitter):
    """Two families of (almost) parallel lines, rotated by angle (deg), centred at the origin."""
    fam = []
    for axis in (0, 1):
        span = half_w if axis == 0 else half_h
        other = half_h if axis == 0 else half_w
        for i, c in enumerate(np.arange(-span, span + 1, spacing)):
            c = c + rng.uniform(-jitter, jitter)
            if axis == 0:
                ln = wobbly_line((c, -other), (c, other), amp=jitter)
            else:
                ln = wobbly_line((-other, c), (other, c), amp=jitter)
            fam.append((axis, i, affinity.rotate(ln, angle, origin=(0, 0))))
    return fam


def build_roads(core_m, dense, water, namer):
    rows = []

    def add(geom, kind, lanes, name, cut_water=True):
        g = geom.intersection(core_m) if kind != "expressway" else geom
        if cut_water:
            g = g.difference(water)
        if g.is_empty or g.length < 150:
            return
        rows.append({"name": name, "kind": kind, "lanes": int(lanes), "geometry": g})

    # expressways: ring + radials (names modelled on Hangzhou's, alignments invented)
    t = np.linspace(0, 2 * np.pi, 160)
    ring = LineString(np.column_stack([15500 * np.cos(t) + 600 * np.sin(3 * t),
                                       11500 * np.sin(t) + 500 * np.cos(2 * t)]))
    add(ring, "expressway", 8, "绕城高速", cut_water=False)
    radials = [("杭徽高速", 190, 30000), ("杭新景高速", 215, 32000), ("沪杭高速", 40, 32000),
               ("杭甬高速", 345, 26000), ("杭宁高速", 105, 26000), ("机场快速路", 10, 17000)]
    for name, ang, length in radials:
        a = math.radians(ang)
        p0 = (11000 * math.cos(a), 9000 * math.sin(a))
        p1 = (length * math.cos(a), length * math.sin(a) * 0.8)
        add(wobbly_line(p0, p1, amp=400), "expressway", 6, name, cut_water=False)
    for name, p0, p1 in [("中河高架路", (200, -6000), (-300, 8000)),
                         ("上塘高架路", (-2500, 2000), (-4000, 12000)),
                         ("秋石高架路", (3000, -2500), (4500, 9000)),
                         ("德胜快速路", (-9000, 3500), (12000, 2800)),
                         ("之江快速路", (-12000, -6000), (-3000, -4000))]:
        add(wobbly_line(p0, p1, amp=250), "expressway", 6, name, cut_water=False)

    angle = -8.0
    hw, hh = 20000, 15000
    # arterials across the core, secondary in the dense city, local streets in the centre
    for spacing, kind, lanes, region, jit in [(1500, "arterial", 6, core_m, 60),
                                              (500, "secondary", 4, dense, 25),
                                              (250, "local", 2, dense.buffer(-2500), 10)]:
        series = {0: namer.series(), 1: namer.series()}
        for axis, i, ln in grid_lines(spacing, hw, hh, angle, jit):
            g = ln.intersection(region)
            if g.is_empty:
                continue
            if kind == "local":  # break local streets into random pieces
                pieces = []
                for part in getattr(g, "geoms", [g]):
                    L = part.length
                    for s in np.arange(0, L, 250):
                        if rng.random() < 0.65:
                            pieces.append(shapely.ops.substring(part, s, min(L, s + 250)))
                g = MultiLineString(pieces) if pieces else None
                if g is None:
                    continue
            if kind == "arterial" and rng.random() < 0.35:
                name = namer.one("路", series=series[axis], idx=i)
            elif kind == "arterial" and rng.random() < 0.3:
                name = namer.one("大道")
            else:
                name = namer.one("路" if rng.random() < 0.7 else "街")
            add(g, kind, lanes if kind != "secondary" else int(rng.choice([2, 4])), name)
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=None)
    return gdf


# ------------------------------------------------------------------ parcels + buildings
LAND_USE = {  # GB 50137-2011 major classes
    "R": "居住用地", "A": "公共管理与公共服务用地", "B": "商业服务业设施用地",
    "M": "工业用地", "W": "物流仓储用地", "G": "绿地与广场用地",
}


def pick_land_use(d):
    if d < 2500:
        p = {"B": .40, "R": .32, "A": .16, "G": .12}
    elif d < 6000:
        p = {"R": .58, "B": .16, "A": .12, "G": .09, "M": .05}
    else:
        p = {"R": .45, "M": .25, "W": .08, "B": .08, "A": .06, "G": .08}
    k = list(p)
    return rng.choice(k, p=np.array(list(p.values())) / sum(p.values()))


def split_block(block, target=110.0):
    rect = block.minimum_rotated_rectangle
    xy = np.array(rect.exterior.coords)
    e = [np.hypot(*(xy[i + 1] - xy[i])) for i in range(2)]
    i = int(np.argmax(e))
    ang = math.degrees(math.atan2(*(xy[i + 1] - xy[i])[::-1]))
    c = block.centroid
    rb = affinity.rotate(block, -ang, origin=c)
    minx, miny, maxx, maxy = rb.bounds
    nx = max(1, round((maxx - minx) / target))
    ny = 2 if (maxy - miny) > 1.6 * target else 1
    out = []
    xs = np.linspace(minx, maxx, nx + 1)
    ys = np.linspace(miny, maxy, ny + 1)
    for a in range(nx):
        for b in range(ny):
            piece = rb.intersection(box(xs[a], ys[b], xs[a + 1], ys[b + 1]))
            for p in getattr(piece, "geoms", [piece]):
                if p.geom_type == "Polygon" and p.area > 1500:
                    out.append((affinity.rotate(p, ang, origin=c), ang))
    return out


def buildings_for(parcel, ang, lu, d):
    inner = parcel.buffer(-8)
    if inner.is_empty or lu == "G":
        return []
    c = parcel.centroid
    rp = affinity.rotate(inner, -ang, origin=c)
    minx, miny, maxx, maxy = rp.bounds
    out = []
    centre_factor = max(0.2, 1 - d / 9000)
    if lu == "R":
        w, h, _gx, gy = rng.uniform(35, 60), 13, None, 30
        floors = lambda: int(np.clip(rng.normal(6 + 20 * centre_factor, 5), 2, 33))
        use = "residential"
    elif lu == "B":
        w, h, gy = rng.uniform(25, 50), rng.uniform(20, 40), None
        floors = lambda: int(np.clip(rng.normal(8 + 25 * centre_factor, 8), 2, 60))
        use = rng.choice(["commercial", "office", "hotel"], p=[.5, .4, .1])
    elif lu == "A":
        w, h, gy = rng.uniform(25, 45), rng.uniform(15, 25), None
        floors = lambda: int(rng.integers(2, 9))
        use = rng.choice(["public", "education", "hospital"], p=[.4, .4, .2])
    else:  # M, W
        w, h, gy = rng.uniform(50, 100), rng.uniform(25, 50), None
        floors = lambda: int(rng.integers(1, 4))
        use = "industrial" if lu == "M" else "warehouse"
    gap_x = w + rng.uniform(12, 25)
    gap_y = (h + (gy or rng.uniform(15, 25)))
    for x0 in np.arange(minx + 2, maxx - w, gap_x):
        for y0 in np.arange(miny + 2, maxy - h, gap_y):
            bb = box(x0, y0, x0 + w, y0 + h)
            if rp.contains(bb):
                out.append((affinity.rotate(bb, ang, origin=c), floors(), use))
    return out[:6]


# ------------------------------------------------------------------ main
def main():
    districts, rivers, towns = load_inputs()
    core_m = to_m(box(*CORE))
    river_line, river = river_channel(rivers)
    lake = west_lake()
    hills = hills_mask()
    test_pt = to_m(Point(TEST_POI[1], TEST_POI[2]))
    # The 1:4M banks put the channel ~0.5 km too far north at 钱江新城; the real 市民中心 stands
    # on the north bank.  Shift the synthetic channel south until the fixed test POI is on dry
    # land, north of the river, >= 350 m from the water.
    shift = 0.0
    while True:
        ch = affinity.translate(river, 0, -shift)
        cl = affinity.translate(river_line, 0, -shift)
        north = test_pt.y > cl.interpolate(cl.project(test_pt)).y
        if north and test_pt.distance(ch) >= 350:
            break
        shift += 50.0
    river = ch
    log("river channel shifted south by", shift, "m")
    water = shapely.union_all([river, lake])
    nobuild = shapely.union_all([water.buffer(30), hills])
    dense = shapely.Point(0, 0).buffer(1.0)
    dense = affinity.scale(dense, 10000, 7500).intersection(core_m)  # 20 km x 15 km ellipse
    log("water/hills ready; test POI to water:", round(test_pt.distance(water)), "m")

    # district seeds (approximate centres of today's districts; used only to label synthetic features)
    seeds = {"上城区": (120.190, 30.255), "拱墅区": (120.150, 30.320), "西湖区": (120.100, 30.250),
             "滨江区": (120.200, 30.190), "萧山区": (120.270, 30.170), "余杭区": (120.010, 30.300),
             "临平区": (120.300, 30.400), "钱塘区": (120.370, 30.300)}
    seed_names = list(seeds)
    seed_xy = np.array([to_m(Point(*v)).coords[0] for v in seeds.values()])
    dcode = {"上城区": "330102", "拱墅区": "330105", "西湖区": "330106", "滨江区": "330108",
             "萧山区": "330109", "余杭区": "330110", "临平区": "330113", "钱塘区": "330114"}

    def district_of(p):
        return seed_names[int(np.argmin(((seed_xy - [p.x, p.y]) ** 2).sum(1)))]

    namer = Namer()
    roads = build_roads(core_m, dense, water, namer)
    log("roads", len(roads), roads.groupby("kind").size().to_dict())

    # parcels: blocks between arterial/secondary/local roads inside the dense city
    rw = {"expressway": 30, "arterial": 22, "secondary": 13, "local": 8}
    net = roads[roads.intersects(dense)]
    blocks_src = shapely.union_all([*net.geometry.values, dense.exterior])
    blocks = list(shapely.polygonize(shapely.get_parts(shapely.node(blocks_src))).geoms)
    road_area = shapely.union_all([g.buffer(rw[k], cap_style="flat") for g, k in zip(net.geometry, net["kind"])])
    parcels = []
    for blk in blocks:
        if not dense.contains(blk.representative_point()):
            continue
        b = blk.difference(road_area).difference(nobuild)
        for part in getattr(b, "geoms", [b]):
            if part.geom_type != "Polygon" or part.area < 3000:
                continue
            for p, ang in split_block(part):
                parcels.append((p, ang))
    log("parcels raw", len(parcels))
    # keep the ~3500 parcels nearest the centre (slightly ragged edge) -> a contiguous city
    keep = []
    for p, ang in parcels:
        d = p.centroid.distance(Point(0, 0))
        keep.append((p, ang, d, d * rng.uniform(0.9, 1.1)))
    keep = [k[:3] for k in sorted(keep, key=lambda t: t[3])[:3500]]
    prow, brow = [], []
    for n, (p, ang, d) in enumerate(sorted(keep, key=lambda t: (-round(t[0].centroid.y, -2), t[0].centroid.x))):
        lu = pick_land_use(d)
        dist = district_of(p.centroid)
        prow.append({"parcel_no": f"{dcode[dist]}-{n // 100 + 1:03d}-{n % 100 + 1:04d}", "land_use": LAND_USE[lu],
                         "land_use_code": lu, "area_m2": round(p.area, 1), "district": dist, "synthetic": True,
                         "geometry": p, "_ang": ang, "_d": d})
    parcels_gdf = gpd.GeoDataFrame(prow, geometry="geometry")
    for r in prow:
        for bgeom, fl, use in buildings_for(r["geometry"], r["_ang"], r["land_use_code"], r["_d"]):
            brow.append({"floors": fl, "use": str(use), "height_m": round(fl * 3.1, 1), "synthetic": True,
                             "geometry": bgeom, "_parcel": r["parcel_no"]})
    if len(brow) > 4000:
        idx = np.sort(rng.choice(len(brow), 4000, replace=False))
        brow = [brow[i] for i in idx]
    buildings = gpd.GeoDataFrame(brow, geometry="geometry")
    log("parcels", len(parcels_gdf), "buildings", len(buildings))

    # addresses: door plates along named roads inside the dense city (odd left, even right)
    land_tree = shapely.STRtree(parcels_gdf.geometry.values)
    arow = []
    for _, r in roads[roads["kind"] != "expressway"].iterrows():
        g = r.geometry.intersection(dense)
        num = {1: 1, -1: 2}
        for part in getattr(g, "geoms", [g]):
            if part.geom_type != "LineString" or part.length < 60:
                continue
            step = 45 if r["kind"] != "arterial" else 70
            for s in np.arange(20, part.length - 5, step):
                p0 = part.interpolate(s)
                p1 = part.interpolate(min(part.length, s + 1))
                dx, dy = p1.x - p0.x, p1.y - p0.y
                L = math.hypot(dx, dy) or 1
                for side in (1, -1):
                    off = rw[r["kind"]] + 12
                    pt = Point(p0.x - side * dy / L * off, p0.y + side * dx / L * off)
                    hit = land_tree.query(pt, predicate="within")
                    if len(hit):
                        n = num[side]
                        num[side] += 2
                        dist = district_of(pt)
                        arow.append({"road": r["name"], "number": f"{n}号", "door_no": n,
                                         "address": f"浙江省杭州市{dist}{r['name']}{n}号", "district": dist,
                                         "postcode": "310000", "synthetic": True, "geometry": pt})
    addresses = gpd.GeoDataFrame(arow, geometry="geometry")
    if len(addresses) > 4500:
        addresses = addresses.iloc[np.sort(rng.choice(len(addresses), 4500, replace=False))]
    addresses = addresses.reset_index(drop=True)
    log("addresses", len(addresses))
    addr_tree = shapely.STRtree(addresses.geometry.values)

    road_geoms = roads.geometry.values
    road_tree = shapely.STRtree(road_geoms)

    def address_near(pt, dist):
        i = addr_tree.nearest(pt)
        if addresses.geometry.iloc[i].distance(pt) < 250 and addresses.loc[i, "district"] == dist:
            return addresses.loc[i, "address"]
        r = roads.iloc[road_tree.nearest(pt)]  # outside the door-plate area: invent a number
        return f"浙江省杭州市{dist}{r['name']}{int(rng.integers(1, 400))}号"

    # POIs

    def spot_near(xy, spread=1200):
        for _ in range(200):  # prefer a parcel (the built-up area)
            p = Point(xy[0] + rng.normal(0, spread), xy[1] + rng.normal(0, spread))
            if len(land_tree.query(p, predicate="within")):
                return p
        for _ in range(200):  # else any dry spot in the core
            p = Point(xy[0] + rng.normal(0, spread), xy[1] + rng.normal(0, spread))
            if core_m.contains(p) and not nobuild.contains(p):
                return p
        return Point(xy)

    HOURS = {"service_hall": "Mo-Fr 09:00-17:00; Sa 09:00-12:00", "school": "Mo-Fr 07:30-17:00",
             "hospital": "24/7", "park": "05:00-22:00", "police": "24/7", "bank": "Mo-Su 09:00-17:00",
             "supermarket": "Mo-Su 08:00-22:00", "restaurant": "Mo-Su 10:30-21:30",
             "hotel": "24/7", "metro_station": "Mo-Su 06:00-23:00", "library": "Tu-Su 09:00-20:30",
             "post_office": "Mo-Sa 08:30-17:30", "pharmacy": "Mo-Su 08:00-22:00",
             "community_center": "Mo-Fr 08:30-17:00"}
    SERVICES_DISTRICT = "户籍办理;社保医保;不动产登记;公积金;税务;市场主体登记;出入境;公安交管;婚姻登记;残疾人服务"
    SERVICES_STREET = "户籍办理;社保医保;居住证;计划生育;民政救助;老年优待;残疾人服务"
    poi = []

    def add_poi(name, cat, pt, services=None, phone=None, exact_deg=None, district=None):
        dist = district or district_of(pt)
        poi.append({"name": name, "category": cat, "address": address_near(pt, dist), "opening_hours": HOURS[cat],
                        "services": services, "phone": phone or f"0571-0{rng.integers(0, 10**7):07d}",
                        "district": dist, "synthetic": True, "geometry": pt, "_exact": exact_deg})

    # the fixed test POI (exact coordinates are written unchanged)
    add_poi(TEST_POI[0], "service_hall", test_pt, services=SERVICES_DISTRICT + ";企业开办;工程建设项目审批",
            phone="12345", exact_deg=(TEST_POI[1], TEST_POI[2]), district="上城区")
    for dist, xy in zip(seed_names, seed_xy):
        add_poi(f"{dist}政务服务中心", "service_hall", spot_near(xy, 600), services=SERVICES_DISTRICT, phone="12345",
                district=dist)
    urban = towns[towns["county_code"].isin(["330102", "330105", "330106", "330108"])]
    urban = urban[urban["name"].str.endswith("街道")].sort_values("code")
    pick = urban.iloc[np.sort(rng.choice(len(urban), min(16, len(urban)), replace=False))]
    for _, t in pick.iterrows():
        xy = seed_xy[seed_names.index(t["county_name"])] if t["county_name"] in seeds else (0, 0)
        add_poi(f"{t['name']}便民服务中心", "service_hall", spot_near(xy, 1500), services=SERVICES_STREET,
                district=t["county_name"])
    cats = [("school", 50, ["{r}小学", "{r}中学", "{r}幼儿园", "{r}实验学校"]),
            ("hospital", 16, ["{r}社区卫生服务中心", "{n}人民医院", "{r}医院"]),
            ("park", 25, ["{r}公园", "{r}绿地", "{r}口袋公园"]),
            ("police", 14, ["{r}派出所"]), ("bank", 40, ["{b}{r}支行"]),
            ("supermarket", 35, ["{r}超市", "{r}便利店"]), ("restaurant", 60, ["{r}餐厅", "{r}面馆", "{r}茶馆"]),
            ("hotel", 25, ["{r}酒店", "{r}宾馆"]), ("metro_station", 30, ["{r}站"]),
            ("library", 8, ["{r}图书馆分馆"]), ("post_office", 12, ["{r}邮政所"]),
            ("pharmacy", 25, ["{r}大药房"]), ("community_center", 30, ["{r}社区服务站"])]
    banks = ["示例银行", "演示银行", "样例农商银行"]
    used = {p["name"] for p in poi}
    for cat, n, pats in cats:
        for k in range(n):
            for _ in range(50):
                pt = spot_near((0, 0), 3500)
                road = addresses.loc[addr_tree.nearest(pt), "road"]
                stem = road[:-1] if road.endswith(("路", "街")) else road[:-2]
                name = rng.choice(pats).format(r=stem, n=f"杭州市第{NUMS[k % 10]}", b=rng.choice(banks))
                if name not in used:
                    used.add(name)
                    add_poi(name, cat, pt)
                    break
    log("poi", len(poi))

    # ---------------------------------------------------------------- write
    def out(rows_or_gdf, kind):
        g = rows_or_gdf if isinstance(rows_or_gdf, gpd.GeoDataFrame) else gpd.GeoDataFrame(rows_or_gdf)
        g = g[[c for c in g.columns if not c.startswith("_")]].copy()
        g["geometry"] = to_deg(g.geometry.values)
        g["geometry"] = [shapely.make_valid(x) for x in g.geometry.values]
        if kind == "polygon":
            fix = []
            for x in g.geometry.values:
                parts = [p for p in getattr(x, "geoms", [x]) if p.geom_type == "Polygon" and p.area > 0]
                fix.append(max(parts, key=lambda p: p.area) if parts else None)
            g["geometry"] = fix
        elif kind == "multiline":
            g["geometry"] = [MultiLineString([p for p in getattr(x, "geoms", [x]) if p.geom_type == "LineString"])
                             for x in g.geometry.values]
        g = g[g.geometry.notna() & ~g.geometry.is_empty]
        g = gpd.GeoDataFrame(g, geometry="geometry", crs=CRS).reset_index(drop=True)
        if "synthetic" in g:
            g["synthetic"] = g["synthetic"].astype(bool)
        return g

    if OUT.exists():
        OUT.unlink()
    d = districts_2023(districts, seeds, dcode)
    d.to_file(OUT, layer="districts", driver="GPKG", engine="pyogrio")
    roads_deg = out(roads.assign(synthetic=True), "multiline")
    roads_deg["oneway"] = one_way_streets(roads_deg)
    layers = {"districts": d, "roads": roads_deg, "buildings": out(buildings, "polygon"),
              "addresses": out(addresses, "point"), "parcels": out(parcels_gdf, "polygon")}
    poi_g = out(poi, "point")
    poi_g.loc[0, "geometry"] = Point(TEST_POI[1], TEST_POI[2])  # exact, unrounded literal values
    layers["poi"] = poi_g
    for name in ("roads", "buildings", "poi", "addresses", "parcels"):
        layers[name].to_file(OUT, layer=name, driver="GPKG", engine="pyogrio")
    for name, g in layers.items():
        log(f"  hangzhou.gpkg:{name} {len(g)} {g.geom_type.unique().tolist()}")
    hangzhou_townships.main()  # township cells from the districts, POIs and zhejiang points
    hangzhou_cadastre.main()  # parcels' rights, pre-sale projects, survey control points
    hangzhou_planning.main()  # land-use plan, basic farmland, ecological red lines

    render_image(roads, buildings, parcels_gdf, water, hills)


# ------------------------------------------------------------------ one-way streets
ONE_WAY_CENTRE = (120.17, 30.262)  # near the lake shore of 上城区
ONE_WAY_COUNT = 6


def one_way_streets(roads_deg):
    """`oneway` (OSM's values: "yes" = only in the digitised direction, "no"): the few local
    streets nearest the old town are one-way (routing: services/maps/topology.py). Chosen
    after everything else is drawn, so no other feature moves."""
    local = roads_deg[roads_deg["kind"] == "local"]
    d = local.geometry.centroid.distance(Point(*ONE_WAY_CENTRE))
    chosen = set(d.sort_values(kind="stable").index[:ONE_WAY_COUNT])
    return ["yes" if i in chosen else "no" for i in roads_deg.index]


# ------------------------------------------------------------------ districts (2023 names)
# 1999 county units outside the city proper that are 2023 divisions with the same extent
KEPT_1999 = {"330122": ("桐庐县", "330122"), "330127": ("淳安县", "330127"),
             "330182": ("建德市", "330182"), "330183": ("富阳区", "330111"),
             "330185": ("临安区", "330112")}
# 1999 units whose area is today's urban districts: 杭州市市辖区, 萧山市, 余杭市
URBAN_1999 = ("330101", "330181", "330184")


def districts_2023(districts, seeds, dcode):
    """Hangzhou's 2023 districts/counties with real names and codes.

    Outside the city proper the 1999 units are kept (富阳市 -> 富阳区 2014, 临安市 -> 临安区
    2017: renamed, same extent). The city proper (1999: 市辖区 + 萧山市 + 余杭市; 2023: 上城,
    拱墅, 西湖, 滨江, 萧山, 余杭, 临平, 钱塘) is cut into the Voronoi cells of the same invented
    district centres that label the synthetic features (`district_of`), so every feature lies
    in the district its `district`/`address` names; those cells are marked synthetic.
    """
    rows = []
    for _, r in districts.sort_values("code").iterrows():
        if r["code"] in KEPT_1999:
            name, code = KEPT_1999[r["code"]]
            note = "1999 county unit" + ("" if code == r["code"] else f" {r['name']} {r['code']}, renamed")
            rows.append({"name": name, "code": code, "synthetic": False, "boundary": note,
                         "geometry": r.geometry})
    urban = to_m(shapely.union_all(districts[districts["code"].isin(URBAN_1999)].geometry.values))
    pts = {n: to_m(Point(*xy)) for n, xy in seeds.items()}
    cells = shapely.voronoi_polygons(shapely.MultiPoint(list(pts.values())), extend_to=urban)
    for name, pt in pts.items():
        cell = next(c for c in cells.geoms if c.contains(pt))
        part = shapely.make_valid(to_deg(cell.intersection(urban)))
        polys = [g for g in getattr(part, "geoms", [part]) if g.geom_type == "Polygon"]
        rows.append({"name": name, "code": dcode[name], "synthetic": True,
                     "boundary": "synthetic: Voronoi cell of an invented centre within the 1999 "
                                 "units 330101+330181+330184",
                     "geometry": shapely.MultiPolygon(polys)})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    return out.sort_values("code").reset_index(drop=True)


# ------------------------------------------------------------------ synthetic image
def render_image(roads, buildings, parcels, water, hills):
    W, H = 2048, 1280
    res = (CORE[2] - CORE[0]) / W  # square pixels: 0.4 deg x 0.25 deg
    tr = from_origin(CORE[0], CORE[3], res, res)

    def burn(geoms, value=1, all_touched=False):
        geoms = [to_deg(g) for g in geoms if g is not None and not g.is_empty]
        if not geoms:
            return np.zeros((H, W), bool)
        return rasterio.features.rasterize(((g, value) for g in geoms), out_shape=(H, W), transform=tr,
                                           fill=0, all_touched=all_touched, dtype="uint8").astype(bool)

    yy, xx = np.mgrid[0:H, 0:W]
    # low-frequency "terrain/vegetation" noise
    noise = np.zeros((H, W))
    for f, a in [(3, 1.0), (7, 0.5), (17, 0.25), (41, 0.12)]:
        px, py = rng.uniform(0, 2 * np.pi, 2)
        noise += a * np.sin(xx / W * f * 2 * np.pi + px) * np.cos(yy / H * f * 1.3 * np.pi + py)
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    img = np.zeros((3, H, W), float)
    fields = np.array([95, 120, 70])[:, None, None]
    forest = np.array([45, 80, 45])[:, None, None]
    img[:] = fields * (0.8 + 0.4 * noise)
    hill = burn([hills])
    img[:, hill] = (forest * (0.8 + 0.3 * noise))[:, hill]
    colors = {"R": (178, 160, 150), "B": (170, 170, 180), "A": (175, 165, 140), "M": (150, 150, 145),
              "W": (160, 155, 150), "G": (70, 120, 60)}
    for lu, col in colors.items():
        m = burn(parcels.loc[parcels["land_use_code"] == lu, "geometry"].values)
        img[:, m] = (np.array(col)[:, None] * (0.9 + 0.2 * noise[m]))
    m = burn(buildings.geometry.values, all_touched=True)
    shade = rng.uniform(0.85, 1.15, m.sum())
    img[:, m] = np.array([215, 212, 205])[:, None] * shade
    for kind, width, col in [("local", 6, (120, 120, 118)), ("secondary", 11, (110, 110, 108)),
                             ("arterial", 20, (95, 95, 95)), ("expressway", 28, (80, 80, 82))]:
        sel = roads.loc[roads["kind"] == kind, "geometry"].values
        m = burn([g.buffer(width) for g in sel], all_touched=True)
        img[:, m] = np.array(col)[:, None]
    m = burn([water])
    img[:, m] = (np.array([40, 75, 95])[:, None] * (0.9 + 0.2 * noise[m]))
    img += rng.normal(0, 4, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)

    IMG.parent.mkdir(parents=True, exist_ok=True)
    tmp = IMG.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=W, height=H, count=3, dtype="uint8", crs=CRS,
                       transform=tr) as dst:
        dst.write(img)
        dst.update_tags(SYNTHETIC="true", SOURCE="geoplat generate_hangzhou.py (invented imagery)")
    if IMG.exists():
        IMG.unlink()
    rasterio.shutil.copy(tmp, IMG, driver="COG", compress="JPEG", quality=80, blocksize=256)
    tmp.unlink()
    log(f"  {IMG.relative_to(HERE)} {W}x{H} {IMG.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
