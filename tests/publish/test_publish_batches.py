"""Large files are read and loaded in batches: same rows, types and report as one read."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import psycopg2
import pyogrio
import pytest
import shapely
from publish_helpers import scalar

from layers import formats
from layers.publish import publish, retire


def _rows(dsn: str, table: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT to_jsonb(t) - 'geom', ST_AsText(geom), GeometryType(geom)"
                        f' FROM "{table}" t ORDER BY fid')
            return cur.fetchall()
    finally:
        conn.close()


def test_batched_load_matches_one_read(ctx, tmp_path, monkeypatch):
    n = 40
    rng = np.random.default_rng(7)
    x, y = 120.2 + rng.random(n) * 0.1, 30.2 + rng.random(n) * 0.1
    geoms = [shapely.box(a, b, a + 0.001, b + 0.001) for a, b in zip(x, y, strict=True)]
    geoms[5] = shapely.Polygon([(120.2, 30.2), (120.21, 30.21), (120.21, 30.2), (120.2, 30.21)])
    geoms[13] = shapely.Polygon()  # empty: dropped and reported
    gdf = gpd.GeoDataFrame({
        "code": np.arange(n, dtype="int64"),
        "value": np.where(np.arange(n) % 9 == 0, np.nan, rng.random(n).round(3)),
        "名称": [None if i % 11 == 0 else f"地块{i}" for i in range(n)],
        "flag": np.arange(n) % 2 == 0,
    }, geometry=geoms, crs="EPSG:4490")
    src = tmp_path / "parcels.gpkg"
    pyogrio.write_dataframe(gdf, src, layer="parcels")

    [whole] = publish(ctx, src, "pub_batch_whole")
    monkeypatch.setattr(formats, "BATCH_ROWS", 6)
    seen = []
    [batched] = publish(ctx, src, "pub_batch_parts",
                        progress=lambda stage, done, total: seen.append((stage, done, total)))
    try:
        assert batched.feature_count == whole.feature_count == n - 1
        assert batched.report == whole.report
        assert batched.report["repaired"] == 1 and batched.report["dropped_empty"] == 1
        rows = _rows(ctx.dsn, "pub_batch_parts")
        assert rows == _rows(ctx.dsn, "pub_batch_whole")
        assert len(rows) == n - 1 and {r[2] for r in rows} == {"MULTIPOLYGON"}
        assert any(v is None for v in rows[0][0].values())  # NULLs survive the binary COPY
        assert len({type(v) for r in rows for v in r[0].values() if v is not None}) >= 4
        loading = [d for s, d, _ in seen if s == "loading" and d]
        assert len(loading) >= 6, "progress is not reported per batch"
        assert batched.bbox == whole.bbox
    finally:
        retire(ctx, "pub_batch_whole", purge=True)
        retire(ctx, "pub_batch_parts", purge=True)


def _column_type(dsn: str, name: str) -> str:
    return scalar(dsn, "SELECT g.type FROM geometry_columns g JOIN geoplat_published p ON"
                       " g.f_table_name = p.name || '__v' || p.current_version WHERE p.name = %s",
                  (name,))


def test_large_file_keeps_its_declared_type_unless_a_feature_is_multi_part(ctx, tmp_path,
                                                                            monkeypatch):
    """A large layer declared Polygon is stored as Polygon; when a feature in a later batch is
    multi-part after repair, the load starts again as MultiPolygon (nothing half-loaded)."""
    monkeypatch.setattr(formats, "BATCH_ROWS", 10)
    n = 35
    polys = [shapely.box(120 + i * 0.01, 30, 120.005 + i * 0.01, 30.005) for i in range(n)]
    clean = tmp_path / "clean.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"code": np.arange(n)}, geometry=polys,
                                             crs="EPSG:4490"), clean, layer="a")
    polys[27] = shapely.Polygon([(120, 30), (120.01, 30.01), (120.01, 30), (120, 30.01)])
    bowtie = tmp_path / "bowtie.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"code": np.arange(n)}, geometry=polys,
                                             crs="EPSG:4490"), bowtie, layer="a")
    far = tmp_path / "far.gpkg"
    polys[27] = shapely.box(400, 30, 401, 31)  # not longitude/latitude: refused by its batch
    pyogrio.write_dataframe(gpd.GeoDataFrame({"code": np.arange(n)}, geometry=polys,
                                             crs="EPSG:4490"), far, layer="a")
    seen = []
    try:
        [r] = publish(ctx, clean, "pub_batch_type")
        assert r.feature_count == n and _column_type(ctx.dsn, "pub_batch_type") == "POLYGON"
        [r] = publish(ctx, bowtie, "pub_batch_type",
                      progress=lambda stage, done, total: seen.append((stage, done)))
        assert r.feature_count == n and r.report["repaired"] == 1
        assert _column_type(ctx.dsn, "pub_batch_type") == "MULTIPOLYGON"
        loading = [d for s, d in seen if s == "loading"]
        assert 0 in loading[1:], "the load did not start again"
        rows = _rows(ctx.dsn, "pub_batch_type")
        assert len(rows) == n and {r[2] for r in rows} == {"MULTIPOLYGON"}
        with pytest.raises(formats.PublishError) as err:
            publish(ctx, far, "pub_batch_type")
        assert "-180..180" in err.value.message and "database" not in err.value.message
        assert _column_type(ctx.dsn, "pub_batch_type") == "MULTIPOLYGON"  # previous version
    finally:
        retire(ctx, "pub_batch_type", purge=True)
