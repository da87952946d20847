"""Bad input: a clear error naming the problem, and everything left as it was."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pyogrio
import pytest
import shapely
from publish_helpers import items, points_frame, tables_like, work_dir_empty
from waiting import wait_for

from geoplat_settings import PublishSettings
from layers.formats import PublishError
from layers.publish import publish, versions

NAME = "pub_bad_target"


@pytest.fixture(scope="module")
def shapefile_parts(tmp_path_factory):
    """The parts of a small valid EPSG:4490 shapefile: {suffix: bytes}."""
    import geopandas as gpd

    d = tmp_path_factory.mktemp("shp")
    src = points_frame(8, seed=11)
    gdf = gpd.GeoDataFrame(src[["code"]], geometry=list(shapely.points(src.lon, src.lat)),
                           crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, d / "good.shp")
    return {p.suffix: p.read_bytes() for p in d.glob("good.*")}


@pytest.fixture(scope="module")
def published(ctx, urls, shapefile_parts, tmp_path_factory):
    d = tmp_path_factory.mktemp("v1")
    z = d / "good.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for suffix, data in shapefile_parts.items():
            zf.writestr("good" + suffix, data)
    [res] = publish(ctx, z, NAME)
    wait_for(lambda: len(items(urls["hangzhou"], NAME)) == 8)
    return res


def _zip(path, entries: dict[str, bytes], infos: list[zipfile.ZipInfo] = ()):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for info in infos:
            zf.writestr(info, b"good.shp")
    return path


def _unchanged(ctx, urls, published) -> None:
    v = versions(ctx, NAME)
    assert [x["version"] for x in v if x["current"]] == [published.version]
    assert tables_like(ctx.dsn, NAME + "__v%") == [f"{NAME}__v{published.version}"]
    assert not tables_like(ctx.dsn, "%staging%")
    assert work_dir_empty(ctx)
    assert not ctx.raster_dir.exists() or not list(ctx.raster_dir.glob(NAME + "*"))
    assert len(items(urls["hangzhou"], NAME)) == 8


def _case(kind, tmp_path, shp):
    """(file, kwargs, settings override, expected message) for one bad input."""
    if kind == "corrupted zip":
        p = tmp_path / "bad.zip"
        p.write_bytes(b"PK\x03\x04" + b"\x00garbage" * 50)
        return p, {}, None, "not a valid zip archive"
    if kind == "truncated zip":
        good = _zip(tmp_path / "g.zip", {"good" + s: d for s, d in shp.items()})
        p = tmp_path / "trunc.zip"
        p.write_bytes(good.read_bytes()[:-200])
        return p, {}, None, "not a valid zip archive"
    if kind == "zip bomb ratio":
        return (_zip(tmp_path / "bomb.zip", {"good.shp": b"\0" * (20 << 20)}), {}, None,
                "compression ratio")
    if kind == "zip bomb size":
        import os

        return (_zip(tmp_path / "big.zip", {"good.shp": os.urandom(3 << 20)}), {},
                PublishSettings(max_unpacked_mb=1), "over the limit")
    if kind == "dot-dot entry":
        return (_zip(tmp_path / "dd.zip", {"../evil.shp": shp[".shp"]}), {}, None, "'..'")
    if kind == "absolute entry":
        return (_zip(tmp_path / "abs.zip", {"/tmp/evil.shp": shp[".shp"]}), {}, None,
                "absolute path")
    if kind == "symlink entry":
        info = zipfile.ZipInfo("link.shp")
        info.external_attr = (0o120777 << 16)
        info.create_system = 3
        return (_zip(tmp_path / "ln.zip", {"good" + s: d for s, d in shp.items()}, [info]), {},
                None, "symbolic link")
    if kind == "missing prj":
        return (_zip(tmp_path / "noprj.zip", {"good" + s: d for s, d in shp.items() if s != ".prj"}),
                {}, None, "declares no CRS")
    if kind == "unknown crs":
        return (_zip(tmp_path / "unk.zip", {"good" + s: d for s, d in shp.items() if s != ".prj"}),
                {"crs": "EPSG:999999"}, None, "unknown CRS")
    if kind == "empty file":
        p = tmp_path / "empty.geojson"
        p.write_bytes(b"")
        return p, {}, None, "empty"
    if kind == "zero features":
        p = tmp_path / "none.geojson"
        p.write_text('{"type": "FeatureCollection", "features": []}')
        return p, {}, None, "zero features"
    if kind == "not georeferenced":
        import numpy as np
        import rasterio

        p = tmp_path / "plain.tif"
        with rasterio.open(p, "w", driver="GTiff", width=16, height=16, count=1,
                           dtype="uint8") as dst:
            dst.write(np.ones((16, 16), dtype="uint8"), 1)
        return p, {}, None, "not georeferenced"
    if kind == "over size limit":
        p = _zip(tmp_path / "ok.zip", {"good" + s: d for s, d in shp.items()})
        return p, {}, PublishSettings(max_upload_mb=0.0001), "over the limit"
    if kind == "unsupported type":
        p = tmp_path / "notes.txt"
        p.write_text("hello")
        return p, {}, None, "unsupported file type"
    raise AssertionError(kind)


KINDS = ["corrupted zip", "truncated zip", "zip bomb ratio", "zip bomb size", "dot-dot entry",
         "absolute entry", "symlink entry", "missing prj", "unknown crs", "empty file",
         "zero features", "not georeferenced", "over size limit", "unsupported type"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_file_changes_nothing(kind, ctx, urls, published, shapefile_parts, tmp_path):
    path, kwargs, limits, message = _case(kind, tmp_path, shapefile_parts)
    use = dataclasses.replace(ctx, settings=limits) if limits else ctx
    with pytest.raises(PublishError) as err:
        publish(use, path, NAME, **kwargs)
    assert message in err.value.message, err.value.message
    _unchanged(ctx, urls, published)


@pytest.mark.parametrize("name,message", [
    ("spatial_ref_sys", "system name"), ("geoplat_layers", "system name"),
    ("auth", "system name"), ("roads", "configured layer"), ("Bad-Name", "not a valid identifier"),
    ("1abc", "not a valid identifier"), ("a__b", "not a valid identifier"),
    ("x" * 60, "not a valid identifier"), ("pg_class", "system name")])
def test_bad_layer_name(name, message, ctx, shapefile_parts, tmp_path):
    p = _zip(tmp_path / "ok.zip", {"good" + s: d for s, d in shapefile_parts.items()})
    with pytest.raises(PublishError, match=message):
        publish(ctx, p, name)
    assert work_dir_empty(ctx)


def test_name_of_an_existing_table_is_refused(ctx, shapefile_parts, tmp_path):
    import psycopg2

    conn = psycopg2.connect(ctx.dsn)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS pub_somebody_elses (id int)")
    conn.close()
    p = _zip(tmp_path / "ok.zip", {"good" + s: d for s, d in shapefile_parts.items()})
    with pytest.raises(PublishError, match="collides with an existing table"):
        publish(ctx, p, "pub_somebody_elses")


def test_zip_slip_writes_nothing_outside(ctx, tmp_path):
    """The unsafe entry is refused before anything is unpacked."""
    z = tmp_path / "slip.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.txt", b"x")
        zf.writestr("../../slipped.txt", b"evil")
    with pytest.raises(PublishError, match="unsafe entry"):
        publish(ctx, z, "pub_slip")
    assert not (ctx.work_root.parent / "slipped.txt").exists()
    assert not (ctx.work_root / "slipped.txt").exists()
    assert work_dir_empty(ctx)


def test_lying_zip_header_is_caught_while_unpacking(tmp_path):
    """An entry whose header claims a small size is stopped by what really comes out."""
    from layers.formats import safe_unzip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\0" * (4 << 20))
    data = bytearray(buf.getvalue())
    # patch the uncompressed size (local header offset 22, central directory +24) to 10 bytes
    data[22:26] = (10).to_bytes(4, "little")
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    z = tmp_path / "liar.zip"
    z.write_bytes(bytes(data))
    with pytest.raises(PublishError):
        safe_unzip(z, tmp_path / "out", PublishSettings(max_zip_ratio=50))
