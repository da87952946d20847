"""Hostile uploads (issue 11, items 1, 10 and 11): GDAL is handed only what the format implies.

The regression table sends an OGR/GDAL VRT document in every upload format, pointing at a local
file, at another node's restricted data, and at a loopback HTTP server (`/vsicurl/`): each is
refused (422 problem+json) with nothing created, left on disk or fetched. Then GeoPackage SQL,
upload file names, and layer names that would take over a service of the node.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg2
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import ctx_of, items, sign_in_users, tables_like, work_dir_empty
from waiting import wait_for

from layers.formats import PublishError, rasterio_ready
from layers.publish import publish, retire

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Security-Uploads-Pass-1"
MARKER = "GEOPLAT_SECRET_MARKER"


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "secup",
                         {"publisher": ["hangzhou:publisher"], "national": ["national:publisher"]},
                         PASSWORD)


class Counter(http.server.ThreadingHTTPServer):
    hits: list[str]


@pytest.fixture(scope="module")
def loopback():
    """An HTTP server on loopback whose every request is counted (it must see none)."""
    body = f"lon,lat,secret\n120.15,30.25,{MARKER}\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = Counter(("127.0.0.1", 0), Handler)
    server.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def secrets_dir():
    """Files only the host should read: a CSV and a GeoTIFF carrying a marker."""
    import rasterio
    from rasterio.transform import from_origin

    d = Path(tempfile.mkdtemp(prefix="geoplat-secret-"))
    d.chmod(0o755)  # readable by the node processes, whichever user they run as
    (d / "secret.csv").write_text(f"lon,lat,secret\n120.15,30.25,{MARKER}\n", encoding="utf-8")
    with rasterio.Env():
        rasterio_ready()  # Mapnik, imported by the node code, hides rasterio's proj.db
        with rasterio.open(d / "secret.tif", "w", driver="GTiff", width=8, height=8, count=1,
                           dtype="uint8", crs="EPSG:4490",
                           transform=from_origin(120.1, 30.3, 0.01, 0.01)) as dst:
            dst.write(np.full((8, 8), 42, dtype="uint8"), 1)
    for f in d.iterdir():
        f.chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _ogr_vrt(target: str, secrets: Path, federation, server) -> str:
    """An OGR VRT document reading `target`: a local file, another node's data, or a URL."""
    if target == "other node":
        gpkg = Path(federation.resolve(federation.data_dir)) / "zhejiang.gpkg"
        return (f"<OGRVRTDataSource><OGRVRTLayer name=\"contours\"><SrcDataSource>{gpkg}"
                "</SrcDataSource><SrcLayer>contours</SrcLayer></OGRVRTLayer></OGRVRTDataSource>")
    src = (f"CSV:{secrets / 'secret.csv'}" if target == "local file"
           else f"CSV:/vsicurl/http://127.0.0.1:{server.server_port}/secret.csv")
    return ("<OGRVRTDataSource><OGRVRTLayer name=\"secret\">"
            f"<SrcDataSource>{src}</SrcDataSource><LayerSRS>EPSG:4490</LayerSRS>"
            "<GeometryType>wkbPoint</GeometryType>"
            "<GeometryField encoding=\"PointFromColumns\" x=\"lon\" y=\"lat\"/>"
            "</OGRVRTLayer></OGRVRTDataSource>")


def _gdal_vrt(target: str, secrets: Path, federation, server) -> str:
    """A GDAL raster VRT document whose one band reads `target`."""
    if target == "other node":
        src = Path(federation.resolve(federation.data_dir)) / "rasters" / "dem_zhejiang.tif"
    elif target == "local file":
        src = secrets / "secret.tif"
    else:
        src = f"/vsicurl/http://127.0.0.1:{server.server_port}/secret.tif"
    return ('<VRTDataset rasterXSize="8" rasterYSize="8"><SRS>EPSG:4490</SRS>'
            "<GeoTransform>120.1, 0.01, 0, 30.3, 0, -0.01</GeoTransform>"
            '<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{src}</SourceFilename><SourceBand>1</SourceBand>'
            "</SimpleSource></VRTRasterBand></VRTDataset>")


FORMATS = ["geojson", "json", "gpkg", "shp-in-zip", "geojson-in-zip", "gpkg-in-zip", "csv",
           "tif", "tif-in-zip"]
TARGETS = ["local file", "other node", "vsicurl"]


def _payload(fmt: str, target: str, d: Path, secrets: Path, federation, server) -> Path:
    """The VRT document of `target` delivered as an upload of format `fmt`."""
    raster = fmt.startswith("tif")
    doc = (_gdal_vrt if raster else _ogr_vrt)(target, secrets, federation, server).encode()
    inner = {"shp-in-zip": "evil.shp", "geojson-in-zip": "evil.geojson",
             "gpkg-in-zip": "evil.gpkg", "tif-in-zip": "evil.tif"}.get(fmt)
    if inner is None:
        p = d / f"evil.{fmt}"
        p.write_bytes(doc)
        return p
    p = d / "evil.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(inner, doc)
        if fmt == "shp-in-zip":  # the sidecars a shapefile brings, all lies too
            zf.writestr("evil.dbf", doc)
            zf.writestr("evil.shx", doc)
            zf.writestr("evil.prj", 'GEOGCS["CGCS2000"]')
    return p


def _nothing_created(ctx, name: str) -> None:
    assert tables_like(ctx.dsn, name + "%") == []
    conn = psycopg2.connect(ctx.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_published')")
            if cur.fetchone()[0] is not None:
                cur.execute("SELECT count(*) FROM geoplat_published WHERE name = %s", (name,))
                assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM geoplat_layers WHERE id = %s", (name,))
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
    assert work_dir_empty(ctx)
    assert not list(ctx.node_dir.rglob(f"{name}*")), "a file of the refused layer was left"


def _case_name(fmt: str, target: str, via: str) -> str:
    return f"sec_{via}_{fmt}_{target}".replace("-", "_").replace(" ", "_")


# --- item 1: the regression table -----------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_vrt_upload_refused_over_http(fmt, target, ctx, urls, tokens, loopback, secrets_dir,
                                      federation, tmp_path):
    name = _case_name(fmt, target, "api")
    src = _payload(fmt, target, tmp_path, secrets_dir, federation, loopback)
    before = len(loopback.hits)
    r = requests.post(f"{urls['hangzhou']}/api/layers", headers=tokens["publisher"], timeout=120,
                      data={"name": name, "crs": "EPSG:4490"},
                      files={"file": (src.name, src.read_bytes(), "application/octet-stream")})
    assert r.status_code == 422, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert MARKER not in r.text and "contours" not in r.json()["detail"]
    assert len(loopback.hits) == before, loopback.hits
    _nothing_created(ctx, name)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_vrt_upload_refused_by_publish(fmt, target, ctx, loopback, secrets_dir, federation,
                                       tmp_path):
    name = _case_name(fmt, target, "fn")
    src = _payload(fmt, target, tmp_path, secrets_dir, federation, loopback)
    before = len(loopback.hits)
    with pytest.raises(PublishError) as err:
        publish(ctx, src, name, crs="EPSG:4490")
    assert err.value.status == 422, err.value.message
    assert MARKER not in err.value.message
    assert len(loopback.hits) == before, loopback.hits
    _nothing_created(ctx, name)


@pytest.mark.parametrize("fmt", ["geojson", "tif-in-zip"])
def test_vrt_upload_refused_by_the_cli(fmt, ctx, loopback, secrets_dir, federation, tmp_path):
    config = Path(federation.config_dir) / "federation.yml"
    for target in TARGETS:
        name = _case_name(fmt, target, "cli")
        src = _payload(fmt, target, tmp_path, secrets_dir, federation, loopback)
        before = len(loopback.hits)
        done = subprocess.run(
            [sys.executable, "-m", "nodes.cli", "--config", str(config), "layers", "publish",
             str(src), "--node", "hangzhou", "--name", name, "--crs", "EPSG:4490"],
            check=False, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "refused" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(loopback.hits) == before, loopback.hits
        _nothing_created(ctx, name)


def test_vrt_refusal_names_the_format(ctx, loopback, secrets_dir, federation, tmp_path):
    src = _payload("geojson", "local file", tmp_path, secrets_dir, federation, loopback)
    with pytest.raises(PublishError, match="not GeoJSON"):
        publish(ctx, src, "sec_fn_message")
    src = _payload("tif", "local file", tmp_path, secrets_dir, federation, loopback)
    with pytest.raises(PublishError, match="not a GeoTIFF"):
        publish(ctx, src, "sec_fn_message")


def _hits_of(server, fn) -> int:
    """How many requests `fn` made to `server` (whether or not it raised)."""
    before = len(server.hits)
    try:
        fn()
    except Exception:  # noqa: BLE001, S110 - GDAL raising is fine; only the requests count
        pass
    return len(server.hits) - before


def test_vector_fence_blocks_network_even_for_a_named_url(loopback):
    """Second fence: inside the upload-read context GDAL reaches no URL, whatever it is given
    (each URL differs: GDAL caches what it learnt of one)."""
    from layers.fence import vector_fence

    url = f"CSV:/vsicurl/http://127.0.0.1:{loopback.server_port}/secret%d.csv"
    assert _hits_of(loopback, lambda: pyogrio.read_dataframe(url % 1)) > 0  # no fence: fetched

    def fenced():
        with vector_fence():
            pyogrio.read_dataframe(url % 2)

    assert _hits_of(loopback, fenced) == 0
    assert pyogrio.get_gdal_config_option("CPL_VSIL_CURL_ALLOWED_EXTENSIONS") is None  # restored
    assert _hits_of(loopback, lambda: pyogrio.read_dataframe(url % 3)) > 0


def test_raster_env_blocks_network(loopback):
    import rasterio

    from layers.fence import raster_env

    url = f"/vsicurl/http://127.0.0.1:{loopback.server_port}/raster%d.tif"
    assert _hits_of(loopback, lambda: rasterio.open(url % 1).close()) > 0

    def fenced():
        with raster_env():
            rasterio.open(url % 2).close()

    assert _hits_of(loopback, fenced) == 0


def test_coverage_provider_serves_only_geotiff(secrets_dir, tmp_path):
    """A VRT put where a published COG should be is not served (it would read other files)."""
    from pygeoapi.provider.base import ProviderConnectionError

    from nodes.providers.coverage import COGProvider

    vrt = tmp_path / "sec_cov__v1.tif"
    vrt.write_text(_gdal_vrt("local file", secrets_dir, None, None), encoding="utf-8")
    with pytest.raises(ProviderConnectionError):
        COGProvider({"name": "nodes.providers.coverage.COGProvider", "type": "coverage",
                     "data": str(vrt), "format": {"name": "GTiff", "mimetype": "image/tiff"}})


def test_genuine_files_still_publish_after_the_fence(ctx, urls, tmp_path):
    """GeoJSON, GeoPackage, zipped Shapefile and GeoTIFF (reprojected: the node's own
    WarpedVRT) still publish with the drivers pinned."""
    import rasterio
    from rasterio.transform import from_origin

    gdf = gpd.GeoDataFrame({"code": [1, 2]}, crs="EPSG:4490",
                           geometry=[shapely.Point(120.15, 30.25), shapely.Point(120.16, 30.26)])
    gj = tmp_path / "ok.geojson"
    pyogrio.write_dataframe(gdf, gj, driver="GeoJSON")
    gp = tmp_path / "ok.gpkg"
    pyogrio.write_dataframe(gdf, gp, layer="pts")
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    pyogrio.write_dataframe(gdf, shp_dir / "ok.shp")
    sz = tmp_path / "ok.zip"
    with zipfile.ZipFile(sz, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    tif = tmp_path / "ok.tif"
    with rasterio.Env():
        rasterio_ready()
        with rasterio.open(tif, "w", driver="GTiff", width=16, height=16, count=1,
                           dtype="uint8", crs="EPSG:3857",
                           transform=from_origin(13375000, 3530000, 100, 100)) as dst:
            dst.write(np.arange(256, dtype="uint8").reshape(16, 16), 1)
    names = []
    try:
        for i, path in enumerate((gj, gp, sz)):
            [res] = publish(ctx, path, f"sec_ok_{i}")
            names.append(res.name)
            assert res.feature_count == 2
            wait_for(lambda n=res.name: len(items(urls["hangzhou"], n)) == 2)
        [res] = publish(ctx, tif, "sec_ok_raster")
        names.append(res.name)
        assert res.kind == "raster" and 120.1 < res.bbox[0] < 120.2
        r = wait_for(lambda: requests.get(f"{urls['hangzhou']}/ogc/collections/sec_ok_raster/"
                                          "coverage?f=json", timeout=30))
        assert r.status_code == 200, r.text[:300]
    finally:
        for n in names:
            retire(ctx, n, purge=True)


# --- GeoPackage SQL -------------------------------------------------------------------------

def _gpkg_with(path: Path, sql: list[str], view: str | None = None) -> Path:
    """A valid GeoPackage (layer `pts`), then `sql` run on it; `view` registered as a layer."""
    gdf = gpd.GeoDataFrame({"a": [1, 2]}, crs="EPSG:4490",
                           geometry=[shapely.Point(120.15, 30.25), shapely.Point(120.16, 30.26)])
    pyogrio.write_dataframe(gdf, path, layer="pts")
    conn = sqlite3.connect(path)
    for stmt in sql:
        conn.execute(stmt)
    if view:
        conn.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
                     "VALUES (?, 'features', ?, 4490)", (view, view))
        conn.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', 4490, 0, 0)",
                     (view,))
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("expr", [
    "load_extension('/tmp/geoplat-no-such-extension')",
    "ogr_geocode('Hangzhou')",
    f"ogr_version() || '{MARKER}'",
    "sqlite_version()",
])
def test_gpkg_view_layers_are_refused(expr, ctx, tmp_path):
    p = _gpkg_with(tmp_path / "view.gpkg", [
        f"CREATE VIEW v_sql AS SELECT fid, geom, a, {expr} AS x FROM pts"], view="v_sql")
    with pytest.raises(PublishError) as err:
        publish(ctx, p, "sec_gpkg_view", layer="v_sql")
    assert err.value.status == 422 and "view" in err.value.message, err.value.message
    _nothing_created(ctx, "sec_gpkg_view")


def test_gpkg_virtual_table_layer_is_refused(ctx, secrets_dir, tmp_path):
    """A virtual table naming a module that opens other files (GDAL's VirtualOGR)."""
    p = _gpkg_with(tmp_path / "vt.gpkg", [
        "PRAGMA writable_schema=ON",
        ("INSERT INTO sqlite_master VALUES ('table', 'vt', 'vt', 0, 'CREATE VIRTUAL TABLE vt "
        f"USING VirtualOGR(''{secrets_dir / 'secret.csv'}'')')"),
        ("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
        "VALUES ('vt', 'attributes', 'vt')")])
    with pytest.raises(PublishError, match="virtual table") as err:
        publish(ctx, p, "sec_gpkg_vt", layer="vt")
    assert err.value.status == 422 and MARKER not in err.value.message
    _nothing_created(ctx, "sec_gpkg_vt")


def test_gpkg_is_read_without_running_or_changing_anything(ctx, urls, tmp_path):
    """Triggers never fire (read-only, immutable open): the file is byte for byte the same."""
    p = _gpkg_with(tmp_path / "trig.gpkg", [
        "CREATE TABLE hits (t text)",
        "CREATE TRIGGER t_ins AFTER INSERT ON pts BEGIN INSERT INTO hits VALUES ('x'); END",
        "CREATE TRIGGER t_upd AFTER UPDATE ON pts BEGIN INSERT INTO hits VALUES ('x'); END",
        "CREATE TRIGGER t_del AFTER DELETE ON pts BEGIN INSERT INTO hits VALUES ('x'); END"])
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    [res] = publish(ctx, p, "sec_gpkg_trig", layer="pts")
    try:
        assert res.feature_count == 2
        assert hashlib.sha256(p.read_bytes()).hexdigest() == digest
        assert not list(tmp_path.glob("trig.gpkg-*")), "a -wal/-shm/-journal was written"
    finally:
        retire(ctx, res.name, purge=True)


def test_sqlite_that_is_not_a_geopackage_is_refused(ctx, tmp_path):
    p = tmp_path / "plain.gpkg"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE t (x int)")
    conn.commit()
    conn.close()
    with pytest.raises(PublishError, match="not a GeoPackage"):
        publish(ctx, p, "sec_gpkg_plain")


# --- item 10: upload file names -------------------------------------------------------------

def _raw_upload(base: str, headers: dict, name: str, filename: bytes) -> requests.Response:
    """A multipart body built by hand: the file name's bytes go out exactly as given."""
    boundary = "geoplatsecboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"").encode()
    body += filename + (b"\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                        b'{"type": "FeatureCollection", "features": []}\r\n'
                        + f"--{boundary}--\r\n".encode())
    return requests.post(f"{base}/api/layers", data=body, timeout=60, headers={
        **headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})


FILENAMES = {"dot-dot": b"..", "dot": b".", "too long": b"a" * 300 + b".geojson",
             "NUL": b"a\x00b.geojson", "invalid UTF-8": b"\xff\xfe\xc3(.geojson",
             "control": b"a\x07b.geojson", "empty after path": b"dir/"}


@pytest.mark.parametrize("kind", list(FILENAMES))
def test_bad_upload_filename_400_and_audited(kind, ctx, urls, tokens):
    name = "sec_fname_" + kind.replace(" ", "_").replace("-", "_").lower()
    r = _raw_upload(urls["hangzhou"], tokens["publisher"], name, FILENAMES[kind])
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "file name" in r.json()["detail"]
    _nothing_created(ctx, name)
    rows = _audited(ctx, name)
    assert rows and "file name" in json.dumps(rows[-1][1]), rows


@pytest.mark.parametrize("entry", ["a" * 300 + ".geojson", "dir/" + "b" * 256 + ".geojson",
                                   "bell\x07.geojson"])
def test_bad_archive_entry_name_is_refused(entry, ctx, tmp_path):
    z = tmp_path / "names.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(entry, _small_geojson())
    with pytest.raises(PublishError, match="entry name") as err:
        publish(ctx, z, "sec_zip_entry")
    assert err.value.status == 422
    _nothing_created(ctx, "sec_zip_entry")


@pytest.mark.parametrize("name", ["sec_newline\n", "sec_nul\x00", "sec_tab\t"])
def test_layer_name_with_control_characters_is_refused(name, ctx, tmp_path):
    p = tmp_path / "p.geojson"
    p.write_bytes(_small_geojson())
    with pytest.raises(PublishError, match="not a valid identifier") as err:
        publish(ctx, p, name)
    assert err.value.status == 400
    _nothing_created(ctx, name.rstrip("\n\x00\t"))
    assert _audited(ctx, repr(name)[1:-1]), "the refusal was not recorded"


def _audited(ctx, subject: str) -> list[tuple]:
    """The failed `layer.publish` audit rows of `subject` on the node."""
    conn = psycopg2.connect(ctx.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ok, detail FROM auth.audit WHERE event = 'layer.publish' AND "
                        "subject = %s AND NOT ok", (subject,))
            return cur.fetchall()
    finally:
        conn.close()


# --- item 11: names of the node's services --------------------------------------------------

def _small_geojson() -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"a": 1},
        "geometry": {"type": "Point", "coordinates": [120.15, 30.25]}}]}).encode()


@pytest.mark.parametrize("node,name", [
    ("hangzhou", "catalogue"), ("national", "hall_map"), ("hangzhou", "vec"),
    ("hangzhou", "cta"), ("hangzhou", "sdk"), ("hangzhou", "hall"), ("hangzhou", "cadastre"),
    ("hangzhou", "processes"), ("hangzhou", "jobs"), ("hangzhou", "static"),
    ("hangzhou", "tiles"), ("hangzhou", "wmts"), ("hangzhou", "api"), ("hangzhou", "registry"),
    ("hangzhou", "sso"), ("hangzhou", "places"), ("hangzhou", "health"),
    ("hangzhou", "parcels"), ("national", "catalogue")])
def test_service_names_are_reserved_over_http(node, name, urls, tokens, federation):
    who = "national" if node == "national" else "publisher"
    r = requests.post(f"{urls[node]}/api/layers", headers=tokens[who], timeout=60,
                      data={"name": name},
                      files={"file": ("p.geojson", _small_geojson(), "application/geo+json")})
    assert r.status_code in (400, 409), (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert name in r.json()["detail"]
    if name in ("catalogue", "hall_map"):  # the service itself still answers as before
        c = requests.get(f"{urls[node]}/ogc/collections/catalogue?f=json", timeout=30)
        assert c.status_code == 200 and c.json().get("itemType") == "record", c.text[:300]


def test_composition_id_is_reserved_by_publish(federation, tmp_path):
    p = tmp_path / "p.geojson"
    p.write_bytes(_small_geojson())
    with pytest.raises(PublishError, match="hall_map") as err:
        publish(ctx_of(federation, "national"), p, "hall_map")
    assert err.value.status == 409


def test_service_names_are_reserved_in_the_cli(federation, tmp_path):
    p = tmp_path / "p.geojson"
    p.write_bytes(_small_geojson())
    config = Path(federation.config_dir) / "federation.yml"
    for node, name in (("hangzhou", "catalogue"), ("national", "hall_map")):
        done = subprocess.run(
            [sys.executable, "-m", "nodes.cli", "--config", str(config), "layers", "publish",
             str(p), "--node", node, "--name", name],
            check=False, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"layer name {name!r}" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_reserved_names_follow_the_services_they_protect(federation):
    """The list in layers/publish.py names what the node really serves (no drift)."""
    from geoplat_settings import EMAP_LAYERS
    from layers.publish import RESERVED
    from services.registry.local import CATALOGUE

    assert CATALOGUE in RESERVED and set(EMAP_LAYERS) <= RESERVED
    national = ctx_of(federation, "national")
    # read from the node's generated configs: composition, records collection, tile layers
    assert {"hall_map", "catalogue", *EMAP_LAYERS} <= national.service_names
    assert {"catalogue", "roads", "parcels"} <= ctx_of(federation, "hangzhou").service_names
