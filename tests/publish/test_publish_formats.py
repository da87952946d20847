"""Publishing each accepted format, read back with real clients (GDAL OAPIF, OWSLib)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import (
    items,
    points_frame,
    read_gdal,
    served,
    tables_like,
    work_dir_empty,
    zip_dir,
)
from pyproj import Transformer
from waiting import wait_for

from layers.publish import publish, retire, versions


def _gdf(df: pd.DataFrame, geoms, crs: str):
    import geopandas as gpd

    return gpd.GeoDataFrame(df, geometry=list(geoms), crs=crs)


def test_gbk_shapefile_in_gauss_kruger_4549(ctx, base, tmp_path):
    """Zipped shapefile, GBK attributes without .cpg, projected CGCS2000 3-degree GK zone."""
    src = points_frame(25, seed=3)
    tr = Transformer.from_crs(4490, 4549, always_xy=True)
    x, y = tr.transform(src.lon.to_numpy(), src.lat.to_numpy())
    gdf = _gdf(src[["名称", "code", "area"]], shapely.points(x, y), "EPSG:4549")
    shp = tmp_path / "poi.shp"
    pyogrio.write_dataframe(gdf, shp, encoding="GBK")
    for cpg in tmp_path.glob("poi.cpg"):
        cpg.unlink()  # make the reader detect GBK itself
    raw = (tmp_path / "poi.dbf").read_bytes()
    assert "西湖".encode("gbk") in raw  # the file really is GBK
    z = zip_dir(sorted(tmp_path.glob("poi.*")), tmp_path / "poi.zip")
    [res] = publish(ctx, z, "pub_gbk_poi", title="兴趣点 POI", keywords=["poi"])
    assert res.feature_count == 25 and res.version >= 1
    wait_for(lambda: served(base, "pub_gbk_poi"))
    back = read_gdal(base, "pub_gbk_poi").sort_values("code").reset_index(drop=True)
    assert list(back["code"]) == list(src["code"])
    names = [c for c in back.columns if c.startswith("attr_")]
    assert names, back.columns
    assert list(back[names[0]]) == list(src["名称"])
    np.testing.assert_allclose(back.geometry.x, src.lon, atol=1e-6)
    np.testing.assert_allclose(back.geometry.y, src.lat, atol=1e-6)
    np.testing.assert_allclose(back["area"], src["area"], atol=1e-9)
    v = versions(ctx, "pub_gbk_poi")[0]
    assert v["source_crs"] == "EPSG:4549" and v["current"]
    assert work_dir_empty(ctx)


def test_geojson_4326_repairs_and_drops(ctx, base, tmp_path):
    """GeoJSON (EPSG:4326): a self-intersecting polygon is repaired, an empty one dropped."""
    good = [shapely.box(120.1 + i * 0.01, 30.2, 120.105 + i * 0.01, 30.205) for i in range(5)]
    bowtie = shapely.Polygon([(120.2, 30.2), (120.21, 30.21), (120.21, 30.2), (120.2, 30.21)])
    geoms = [*good, bowtie, shapely.Polygon()]
    df = pd.DataFrame({"name": [f"p{i}" for i in range(7)], "value": range(7)})
    path = tmp_path / "parcels.geojson"
    pyogrio.write_dataframe(_gdf(df, geoms, "EPSG:4326"), path)
    [res] = publish(ctx, path, "pub_geojson_plots", title="Plots")
    assert res.feature_count == 6
    assert res.report["repaired"] == 1 and res.report["repaired_examples"]
    assert res.report["dropped_empty"] == 1
    wait_for(lambda: served(base, "pub_geojson_plots"))
    feats = {f["properties"]["name"]: f for f in items(base, "pub_geojson_plots")}
    assert set(feats) == {f"p{i}" for i in range(6)}
    for i, g in enumerate(good):
        got = shapely.geometry.shape(feats[f"p{i}"]["geometry"])
        assert got.equals_exact(shapely.MultiPolygon([g]), tolerance=1e-6) or \
            got.normalize().equals_exact(shapely.MultiPolygon([g]).normalize(), tolerance=1e-6)
    assert shapely.geometry.shape(feats["p5"]["geometry"]).is_valid


def test_geopackage_one_layer_and_all_layers(ctx, base, tmp_path):
    path = tmp_path / "two.gpkg"
    src = points_frame(10, seed=5)
    pts = _gdf(src[["code"]], shapely.points(src.lon, src.lat), "EPSG:4490")
    lines = _gdf(pd.DataFrame({"kind": ["a", "b"]}),
                 [shapely.LineString([(120.1, 30.2), (120.2, 30.3)]),
                  shapely.LineString([(120.15, 30.2), (120.25, 30.3)])], "EPSG:4490")
    pyogrio.write_dataframe(pts, path, layer="wells")
    pyogrio.write_dataframe(lines, path, layer="pipes")
    from layers.formats import PublishError

    with pytest.raises(PublishError, match="choose one"):
        publish(ctx, path, "pub_gpkg_one")
    [res] = publish(ctx, path, "pub_gpkg_one", layer="wells")
    assert res.feature_count == 10
    out = publish(ctx, path, "pub_gpkg_all", all_layers=True)
    assert sorted(r.name for r in out) == ["pub_gpkg_all_pipes", "pub_gpkg_all_wells"]
    wait_for(lambda: served(base, "pub_gpkg_all_pipes") and served(base, "pub_gpkg_one"))
    back = read_gdal(base, "pub_gpkg_one").sort_values("code")
    np.testing.assert_allclose(back.geometry.x, src.lon, atol=1e-6)
    pipes = items(base, "pub_gpkg_all_pipes")
    assert sorted(f["properties"]["kind"] for f in pipes) == ["a", "b"]


def test_csv_with_chinese_lon_lat_columns(ctx, base, tmp_path):
    src = points_frame(12, seed=7)
    csv = tmp_path / "sites.csv"
    src.rename(columns={"lon": "经度", "lat": "纬度"}).to_csv(csv, index=False, encoding="gb18030")
    from layers.formats import PublishError

    with pytest.raises(PublishError, match="CRS"):
        publish(ctx, csv, "pub_csv_sites")
    [res] = publish(ctx, csv, "pub_csv_sites", crs="EPSG:4490")
    assert res.feature_count == 12
    wait_for(lambda: served(base, "pub_csv_sites"))
    from owslib.ogcapi.features import Features

    fc = Features(base + "/ogc").collection_items("pub_csv_sites", limit=100)
    got = sorted(fc["features"], key=lambda f: f["properties"]["code"])
    assert [f["properties"]["attr_1"] for f in got] == list(src["名称"])
    np.testing.assert_allclose([f["geometry"]["coordinates"][0] for f in got], src.lon, atol=1e-6)
    np.testing.assert_allclose([f["geometry"]["coordinates"][1] for f in got], src.lat, atol=1e-6)


def test_geotiff_becomes_cog_coverage(ctx, base, tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from nodes.providers.coverage import proj_env

    path = tmp_path / "dem.tif"
    data = (np.arange(64 * 64, dtype="float32").reshape(64, 64) / 10)
    with proj_env(), rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32",
                       crs="EPSG:4490", transform=from_origin(120.1, 30.3, 0.001, 0.001)) as dst:
        dst.write(data, 1)
    [res] = publish(ctx, path, "pub_raster_dem", title="DEM")
    assert res.kind == "raster"
    np.testing.assert_allclose(res.bbox, [120.1, 30.236, 120.164, 30.3], atol=1e-3)
    stored = versions(ctx, "pub_raster_dem")[0]
    assert stored["current"]
    cog = ctx.raster_dir / "pub_raster_dem__v1.tif"
    with proj_env(), rasterio.open(cog) as r:
        assert r.crs.to_epsg() == 4490
        assert r.profile.get("tiled") and r.overviews(1) is not None
    wait_for(lambda: served(base, "pub_raster_dem"))
    r = requests.get(f"{base}/ogc/collections/pub_raster_dem/coverage?f=json", timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert not tables_like(ctx.dsn, "pub_raster_dem%")
    # a public GeoTIFF is also a tile layer (layers/emap.py): leave the shared node's tile
    # capabilities as the e-map tests expect them
    retire(ctx, "pub_raster_dem", purge=True)
