"""The publishing HTTP API and page: roles of that node, streaming limits, access levels."""

from __future__ import annotations

import asyncio
import io
import json
import re

import geopandas as gpd
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import ctx_of, points_frame, served, sign_in_users
from waiting import wait_for

from layers.formats import PublishError
from layers.web import Upload

PASSWORD = "Publish-Test-Pass-1"


@pytest.fixture(scope="module")
def tokens(main_db, urls) -> dict[str, dict[str, str]]:
    users = {"publisher": ["hangzhou:publisher"], "other_node": ["zhejiang:publisher"],
             "plain": []}
    return sign_in_users(main_db, urls["national"], "pubapi", users, PASSWORD)


@pytest.fixture(scope="module")
def geojson_bytes() -> bytes:
    src = points_frame(6, seed=21)
    gdf = gpd.GeoDataFrame({"code": src.code, "名称": src["名称"]},
                           geometry=list(shapely.points(src.lon, src.lat)), crs="EPSG:4326")
    buf = io.BytesIO()
    pyogrio.write_dataframe(gdf, buf, driver="GeoJSON")
    return buf.getvalue()


def _upload(base, headers, name, data, **fields):
    return requests.post(f"{base}/api/layers", headers=headers, timeout=120,
                         data={"name": name, **fields},
                         files={"file": ("points.geojson", data, "application/geo+json")})


def test_anonymous_401_other_roles_403(urls, tokens, geojson_bytes):
    base = urls["hangzhou"]
    r = _upload(base, {}, "pub_api_denied", geojson_bytes)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    for who in ("plain", "other_node"):
        r = _upload(base, tokens[who], "pub_api_denied", geojson_bytes)
        assert r.status_code == 403, (who, r.text)
        assert "publisher" in r.json()["detail"]
    assert requests.get(f"{base}/api/layers", headers=tokens["plain"], timeout=30).status_code == 403
    assert requests.delete(f"{base}/api/layers/roads", headers=tokens["other_node"],
                           timeout=30).status_code == 403
    assert not served(base, "pub_api_denied")


def test_publish_list_versions_rollback_retire_over_http(urls, tokens, geojson_bytes):
    base, h = urls["hangzhou"], tokens["publisher"]
    r = _upload(base, h, "pub_api_points", geojson_bytes, title="API points", keywords="a, b")
    assert r.status_code == 201, r.text
    layer = r.json()["layers"][0]
    assert layer["feature_count"] == 6 and layer["urls"]["items"].endswith("/pub_api_points/items")
    wait_for(lambda: served(base, "pub_api_points"))
    coll = requests.get(f"{base}/ogc/collections/pub_api_points?f=json", timeout=30).json()
    assert coll["title"] == "API points" and coll["keywords"] == ["a", "b"]
    r = _upload(base, h, "pub_api_points", geojson_bytes)
    assert r.status_code == 201 and r.json()["layers"][0]["version"] == layer["version"] + 1
    listed = requests.get(f"{base}/api/layers", headers=h, timeout=30).json()
    assert any(x["name"] == "pub_api_points" and x["status"] == "published" for x in listed)
    vs = requests.get(f"{base}/api/layers/pub_api_points/versions", headers=h, timeout=30).json()
    assert [v["version"] for v in vs][:2] == [layer["version"] + 1, layer["version"]]
    r = requests.post(f"{base}/api/layers/pub_api_points/rollback", headers=h,
                      json={"version": layer["version"]}, timeout=30)
    assert r.status_code == 200 and r.json()["version"] == layer["version"]
    r = requests.delete(f"{base}/api/layers/pub_api_points", headers=h, timeout=30)
    assert r.status_code == 200
    wait_for(lambda: requests.get(f"{base}/ogc/collections/pub_api_points?f=json",
                                  timeout=30).status_code == 404)
    ev = requests.get(f"{base}/api/layers/pub_api_points", headers=h, timeout=30).json()
    assert ev["status"] == "retired"


def test_changes_are_audited(federation, urls, tokens):
    from services.access import audit
    from services.db import Database

    db = Database(ctx_of(federation, "hangzhou").dsn, maxconn=1)
    events = {(e["event"], e["subject"], e["actor"]) for e in audit.query(db, limit=500)}
    for event in ("layer.publish", "layer.rollback", "layer.retire"):
        assert (event, "pub_api_points", "pubapi_publisher") in events, event


def test_bad_upload_answers_problem_json(urls, tokens):
    base, h = urls["hangzhou"], tokens["publisher"]
    r = requests.post(f"{base}/api/layers", headers=h, timeout=60, data={"name": "pub_api_bad"},
                      files={"file": ("bad.zip", b"PK\x03\x04 not a zip", "application/zip")})
    assert r.status_code == 422 and "not a valid zip archive" in r.json()["detail"]
    r = requests.post(f"{base}/api/layers", headers=h, timeout=60,
                      data={"name": "spatial_ref_sys"},
                      files={"file": ("x.geojson", b'{"type":"FeatureCollection","features":[]}')})
    assert r.status_code == 409 and "system" in r.json()["detail"]
    r = requests.post(f"{base}/api/layers", headers=h, timeout=60, data={"name": "x"})
    assert r.status_code == 415


def test_restricted_layer_enforced_on_every_surface(urls, tokens, geojson_bytes):
    base, h = urls["hangzhou"], tokens["publisher"]
    r = _upload(base, h, "pub_api_secret", geojson_bytes, access="restricted")
    assert r.status_code == 201, r.text
    wait_for(lambda: served(base, "pub_api_secret", h))
    for path in ("", "/items?f=json", "/tiles/WebMercatorQuad/10/420/854?f=mvt"):
        assert requests.get(f"{base}/ogc/collections/pub_api_secret{path}",
                            timeout=30).status_code == 401
        assert requests.get(f"{base}/ogc/collections/pub_api_secret{path}",
                            headers=tokens["plain"], timeout=30).status_code == 403
    names = [c["id"] for c in requests.get(f"{base}/ogc/collections?f=json",
                                           timeout=30).json()["collections"]]
    assert "pub_api_secret" not in names
    assert "pub_api_secret" not in requests.get(f"{base}/ogc/openapi?f=json", timeout=30).text
    names = [c["id"] for c in requests.get(f"{base}/ogc/collections?f=json", headers=h,
                                           timeout=30).json()["collections"]]
    assert "pub_api_secret" in names


def test_upload_page_needs_publisher_and_csrf(urls, tokens, geojson_bytes):
    base = urls["hangzhou"]
    assert requests.get(f"{base}/publish", timeout=30).status_code == 401
    assert requests.get(f"{base}/publish", headers=tokens["plain"], timeout=30).status_code == 403
    # a browser session: the node cookie instead of a bearer header
    token = tokens["publisher"]["Authorization"].split(" ", 1)[1]
    s = requests.Session()
    s.cookies.set("geoplat_at_hangzhou", token)
    page = s.get(f"{base}/publish", timeout=30)
    assert page.status_code == 200 and 'type="file"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    files = {"file": ("p.geojson", geojson_bytes)}
    r = s.post(f"{base}/api/layers", data={"name": "pub_api_form"}, files=files, timeout=60)
    assert r.status_code == 403 and "CSRF" in r.json()["title"]
    r = s.post(f"{base}/api/layers", data={"name": "pub_api_form", "csrf_token": csrf},
               files=files, timeout=60)
    assert r.status_code == 201, r.text


def test_upload_stream_refused_as_soon_as_it_passes_the_limit(tmp_path):
    """The limit is enforced while streaming: reading stops at the first chunk over it."""
    from starlette.requests import Request

    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    chunks = [head] + [b"x" * 65536] * 64  # 4 MiB announced as a stream
    sent = {"n": 0}

    async def receive():
        i = sent["n"]
        sent["n"] += 1
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/api/layers", "query_string": b"",
             "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())]}
    up = Upload(tmp_path / "up", limit=200_000)
    with pytest.raises(PublishError) as err:
        asyncio.run(up.read(Request(scope, receive)))
    assert err.value.status == 413
    assert sent["n"] < 10  # stopped early, did not read the whole body
    assert up.file is not None and up.file.stat().st_size <= 200_000
    json.dumps(err.value.message)


def test_published_layer_is_registered(federation, urls, tokens, geojson_bytes):
    """The registry hook (issue 5) records the layer with its access level, when present."""
    pytest.importorskip("services.registry.local")
    import psycopg2
    base, h = urls["hangzhou"], tokens["publisher"]
    r = _upload(base, h, "pub_api_registered", geojson_bytes, access="registered")
    assert r.status_code == 201, r.text
    conn = psycopg2.connect(ctx_of(federation, "hangzhou").dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT access FROM registry.services WHERE layer_id = %s",
                        ("pub_api_registered",))
            assert [row[0] for row in cur.fetchall()] == ["registered"]
    finally:
        conn.close()


def test_large_upload_through_the_front_door(federation, urls, tokens, tmp_path):
    """A file over nginx's general body limit (10 MB) streams through to the app and loads in
    batches (GDAL's Arrow stream, more than one batch)."""
    import numpy as np

    from layers import formats
    from layers.publish import retire

    n = 45_000
    assert n > formats.BATCH_ROWS
    rng = np.random.default_rng(11)
    x, y = 120.0 + rng.random(n) * 0.5, 30.0 + rng.random(n) * 0.5
    ang = np.linspace(0, 2 * np.pi, 17)[:-1]
    rings = np.stack([x[:, None] + 0.001 * np.cos(ang), y[:, None] + 0.001 * np.sin(ang)], axis=-1)
    polys = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    gdf = gpd.GeoDataFrame({"code": np.arange(n), "名称": [f"宗地{i}" for i in range(n)]},
                           geometry=polys, crs="EPSG:4490")
    src = tmp_path / "parcels.gpkg"
    pyogrio.write_dataframe(gdf, src, layer="parcels")
    assert src.stat().st_size > 10 * 1024 * 1024

    base, h = urls["hangzhou"], tokens["publisher"]
    try:
        with open(src, "rb") as f:
            r = requests.post(f"{base}/api/layers", headers=h, timeout=300,
                              data={"name": "pub_api_large"},
                              files={"file": ("parcels.gpkg", f, "application/geopackage+sqlite3")})
        assert r.status_code == 201, r.text[:500]
        assert r.json()["layers"][0]["feature_count"] == n
        got = requests.get(f"{base}/ogc/collections/pub_api_large/items/{n}?f=json", timeout=30).json()
        assert got["properties"]["attr_2"] == f"宗地{n - 1}" or f"宗地{n - 1}" in got["properties"].values()
        geom = shapely.geometry.shape(got["geometry"])
        assert geom.equals_exact(polys[n - 1], 1e-9)  # a Polygon layer stays Polygon
    finally:
        retire(ctx_of(federation, "hangzhou"), "pub_api_large", purge=True)
