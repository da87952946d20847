"""Publishing with progress in the response stream (NDJSON), a client that goes away cancelling
the publish like Ctrl-C, and publish paths tested end to end: `--emap` through the CLI and the
API, and a published GeoTIFF on the Tianditu-style route of a node that requires keys (`tk`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import geopandas as gpd
import httpx
import numpy as np
import pyogrio
import pytest
import requests
import shapely
import yaml
from owslib.wms import WebMapService
from publish_helpers import ctx_of, sign_in_users, tables_like, work_dir_empty
from sso_client import bearer, login_pkce
from waiting import wait_for

from layers import publish as pub
from layers.web import NDJSON, ClientGone, ProgressStream
from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from services.access import apikeys, audit
from services.db import Database
from services.sso import accounts

PASSWORD = "Progress-Test-Pass-1"
ROOT = Path(__file__).resolve().parents[2]
STREAM = {"Accept": NDJSON}


@pytest.fixture(scope="module")
def tokens(main_db, urls) -> dict[str, dict[str, str]]:
    users = {"publisher": ["hangzhou:publisher"], "plain": []}
    return sign_in_users(main_db, urls["national"], "progress", users, PASSWORD)


def points_gpkg(path: Path, n: int, seed: int = 1) -> Path:
    """`n` points near Hangzhou; dyadic coordinates so that a zip of the file stays small."""
    rng = np.random.default_rng(seed)
    x = 120.0 + rng.integers(0, 4096, n) / 8192.0
    y = 30.0 + rng.integers(0, 4096, n) / 8192.0
    gdf = gpd.GeoDataFrame({"code": np.arange(n, dtype="int64")},
                           geometry=shapely.points(x, y), crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, path, layer="pts", SPATIAL_INDEX="NO")
    return path


def post(base: str, headers: dict, name: str, path: Path, **fields) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(f"{base}/api/layers", headers=headers, timeout=300,
                             data={"name": name, **fields}, files={"file": (path.name, fh)})


def stream_lines(r: requests.Response) -> list[dict]:
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith(NDJSON)
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def matched(base: str, name: str) -> int:
    r = requests.get(f"{base}/ogc/collections/{name}/items?f=json&limit=1", timeout=30)
    r.raise_for_status()
    return r.json()["numberMatched"]


def current_version(ctx, name: str) -> int:
    return next(v["version"] for v in pub.versions(ctx, name) if v["current"])


# --- the progress stream -----------------------------------------------------------------------

def test_progress_lines_are_throttled_but_keep_first_and_last():
    """Unit: 2,000 loading calls in a burst become a few lines; first, last and stages kept."""
    async def main() -> list[dict]:
        stream = ProgressStream()

        def work() -> None:
            stream.progress("reading")
            for done in range(2001):
                stream.progress("loading", done, 2000 if done < 1999 else 2001)
            stream.progress("loading", 2001, 2001)
            stream.progress("loading", 0, 10)  # loaded again from the start (e.g. as Multi)
            stream.progress("loading", 10, 10)
            stream.progress("swapping")
            stream.finish({"result": {"layers": []}})

        t = threading.Thread(target=work)
        t.start()
        lines = [json.loads(x) async for x in stream.lines()]
        await anyio.to_thread.run_sync(t.join)
        return lines

    lines = anyio.run(main)
    stages = [x.get("stage") for x in lines]
    assert stages[0] == "reading" and stages[-2:] == ["swapping", None]
    loading = [x for x in lines if x.get("stage") == "loading"]
    assert loading[0]["done"] == 0 and {"stage": "loading", "done": 2001, "total": 2001} in loading
    assert loading[-2:] == [{"stage": "loading", "done": 0, "total": 10},
                            {"stage": "loading", "done": 10, "total": 10}]
    assert len(loading) < 50, len(loading)
    assert lines[-1] == {"result": {"layers": []}}

    async def gone() -> None:
        stream = ProgressStream()
        await stream.receive.aclose()  # the response went away
        with pytest.raises(ClientGone):
            await anyio.to_thread.run_sync(stream.progress, "reading")

    anyio.run(gone)


def test_stream_shows_loading_progress_then_the_result(urls, tokens, tmp_path):
    base, name = urls["hangzhou"], "prog_stream60k"
    src = points_gpkg(tmp_path / "points60k.gpkg", 60_000)
    t0 = time.monotonic()
    r = post(base, {**tokens["publisher"], **STREAM}, name, src, title="60k")
    lines = stream_lines(r)
    assert lines[0] == {"stage": "reading"}
    loading = [x for x in lines if x.get("stage") == "loading"]
    assert len(loading) >= 2  # batches of 25,000; lines closer than 0.1 s are merged
    dones = [x["done"] for x in loading]
    assert dones == sorted(dones) and dones[0] == 0
    assert loading[-1]["done"] == loading[-1]["total"] == 60_000
    assert len(loading) <= (time.monotonic() - t0) * 10 + 2
    assert {"stage": "swapping"} in lines
    assert set(lines[-1]) == {"result"}
    [layer] = lines[-1]["result"]["layers"]
    assert layer["name"] == name and layer["feature_count"] == 60_000
    assert layer["urls"]["items"].endswith(f"/{name}/items")
    assert matched(base, name) == 60_000
    # the form field asks for the stream too
    r = post(base, tokens["publisher"], name, src, progress="ndjson")
    assert stream_lines(r)[-1]["result"]["layers"][0]["version"] == layer["version"] + 1


def test_error_after_streaming_began_is_the_last_line(urls, tokens, ctx, tmp_path):
    base, name = urls["hangzhou"], "prog_stream_err"
    good = points_gpkg(tmp_path / "good.gpkg", 40)
    assert post(base, tokens["publisher"], name, good).status_code == 201
    version = current_version(ctx, name)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    bad_crs = tmp_path / "bad_crs.gpkg"
    points_gpkg(bad_crs, 5)
    for src, fields, status in ((empty, {}, 422), (bad_crs, {"crs": "EPSG:999999"}, 422)):
        lines = stream_lines(post(base, {**tokens["publisher"], **STREAM}, name, src, **fields))
        assert set(lines[-1]) == {"error"}, lines
        err = lines[-1]["error"]
        assert err["status"] == status and err["type"] == "about:blank" and err["title"]
        assert err["detail"] and "Traceback" not in err["detail"] and str(tmp_path) not in err["detail"]
        assert not any("result" in x for x in lines)
    assert current_version(ctx, name) == version and matched(base, name) == 40
    assert work_dir_empty(ctx)


def test_client_going_away_cancels_the_publish_without_debris(federation, urls, tokens, ctx,
                                                              tmp_path):
    base, name = urls["hangzhou"], "prog_gone"
    small = points_gpkg(tmp_path / "small.gpkg", 30)
    assert post(base, tokens["publisher"], name, small).status_code == 201
    version = current_version(ctx, name)
    gpkg = points_gpkg(tmp_path / "big.gpkg", 400_000, seed=5)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(gpkg, "big.gpkg")  # 4.5 MB instead of 17: a quicker upload
    db = Database(ctx.dsn, maxconn=1)
    before = max(e["id"] for e in audit.query(db, event="layer.publish", limit=5))

    seen = []
    with httpx.Client(timeout=120) as client, open(big, "rb") as fh, client.stream(
            "POST", f"{base}/api/layers", headers={**tokens["publisher"], **STREAM},
            data={"name": name}, files={"file": ("big.zip", fh)}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            seen.append(json.loads(line))
            if seen[-1].get("stage") == "loading":
                break  # leaving the block closes the connection mid-load
    assert seen[-1]["stage"] == "loading" and seen[-1]["total"] == 400_000

    def failed() -> dict | None:
        for e in audit.query(db, event="layer.publish", limit=20):
            if e["id"] > before and e["subject"] == name:
                return e
        return None

    event = wait_for(failed, timeout=30)
    assert event["ok"] is False and event["actor"] == "progress_publisher", event
    # the COPY was aborted from its data source (the progress callback); the audit names the
    # client going away, not the cancelled statement psycopg2 reports
    assert "disconnected" in event["detail"]["error"], event
    assert tables_like(ctx.dsn, f"{name}__v%") == [f"{name}__v{version}"]
    wait_for(lambda: work_dir_empty(ctx), timeout=10)
    assert current_version(ctx, name) == version and matched(base, name) == 30
    r = post(base, tokens["publisher"], name, small)  # the layer's lock was released
    assert r.status_code == 201, r.text
    assert r.json()["layers"][0]["version"] == version + 1


def test_refusals_before_the_stream_keep_their_status(urls, tokens, tmp_path):
    base, src = urls["hangzhou"], points_gpkg(tmp_path / "p.gpkg", 5)
    r = post(base, STREAM, "prog_refused", src)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    r = post(base, {**tokens["plain"], **STREAM}, "prog_refused", src)
    assert r.status_code == 403 and r.json()["status"] == 403
    with open(src, "rb") as fh:
        r = requests.post(f"{base}/api/layers", headers={**tokens["publisher"], **STREAM},
                          files={"file": ("p.gpkg", fh)}, timeout=60)
    assert r.status_code == 400 and "name" in r.json()["detail"]
    for name, fields in (("Bad-Name", {}), ("prog_refused", {"access": "everyone"}),
                         ("prog_refused", {"access": "restricted", "emap": "true"})):
        r = post(base, {**tokens["publisher"], **STREAM}, name, src, **fields)
        assert r.status_code == 400, (name, fields, r.text[:200])
        assert r.headers["content-type"].startswith("application/problem+json")
    # a browser session without the form's CSRF token
    token = tokens["publisher"]["Authorization"].split(" ", 1)[1]
    with open(src, "rb") as fh:
        r = requests.post(f"{base}/api/layers", headers=STREAM, timeout=60,
                          cookies={"geoplat_at_hangzhou": token},
                          data={"name": "prog_refused"}, files={"file": ("p.gpkg", fh)})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert requests.get(f"{base}/ogc/collections/prog_refused?f=json", timeout=30).status_code == 404


# --- e-map through the CLI and the API ---------------------------------------------------------

def test_emap_through_the_cli_and_the_api(federation, urls, tokens, ctx, tmp_path):
    base = urls["hangzhou"]
    src = points_gpkg(tmp_path / "emap.gpkg", 25)
    config = Path(federation.config_dir) / "federation.yml"
    done = subprocess.run(
        [sys.executable, "-m", "nodes.cli", "--config", str(config), "layers", "publish",
         str(src), "--node", "hangzhou", "--name", "prog_cli_emap", "--emap", "--json"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)[0]["name"] == "prog_cli_emap"
    r = post(base, tokens["publisher"], "prog_api_emap", src, emap="true")
    assert r.status_code == 201, r.text
    try:
        wms = WebMapService(f"{base}/wms", version="1.1.1", timeout=60)
        assert {"prog_cli_emap", "prog_api_emap"} <= set(wms.contents)
        assert "EPSG:4490" in wms.contents["prog_api_emap"].crsOptions
    finally:
        for name in ("prog_cli_emap", "prog_api_emap"):
            pub.retire(ctx, name, purge=True)
    assert not {"prog_cli_emap", "prog_api_emap"} & set(
        WebMapService(f"{base}/wms", version="1.1.1", timeout=60).contents)


# --- a node that requires keys: published GeoTIFF on the Tianditu route, upload limit ----------

@pytest.fixture(scope="module")
def keyed(tmp_path_factory, pg_cluster, make_federation, federation) -> Iterator[dict]:
    """The main node alone, with `public_requires_key` on and a small upload limit.

    Its database is its own (`make_federation`); what it publishes is purged at the end.
    """
    base = tmp_path_factory.mktemp("progress_keyed")
    path = make_federation(base, pg_cluster, require_keys=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for node in raw["nodes"]:
        if node["id"] == "national":
            node["publish"] = {**(node.get("publish") or {}), "max_upload_mb": 0.25}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    settings = settings_mod.load(path)
    main = settings.node("national")
    assert main.auth.public_requires_key
    procs, _ = supervisor.up(settings, only=["national"], echo=lambda *a: None)
    try:
        db = Database(federation_mod.node_dsn(settings, main), maxconn=1)
        user = accounts.create(db, "progress_keyed_dev", PASSWORD, roles=["developer"])
        key, _ = apikeys.create_key(db, "test", user.id, "progress", "server", ["127.0.0.0/8"],
                                    actor="test")
        accounts.create(db, "progress_nat_pub", PASSWORD, roles=["national:publisher"])
        token = bearer(login_pkce(main.base_url, "progress_nat_pub", PASSWORD))
        yield {"base": main.base_url, "key": key, "ctx": ctx_of(settings, "national"),
               "publisher": token}
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)


def test_published_geotiff_on_the_tianditu_route_needs_tk(keyed, tmp_path):
    import rasterio
    from rasterio.transform import from_bounds

    from nodes.providers.coverage import proj_env
    from tiles.seed import tile_range

    base, name, ctx = keyed["base"], "prog_tk_dom", keyed["ctx"]
    bounds = (116.30, 39.90, 116.36, 39.96)
    h = w = 200
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx % 256, yy % 256, (xx + yy) // 2 % 256]).astype("uint8")
    src = tmp_path / "dom.tif"
    with proj_env(), rasterio.open(src, "w", driver="GTiff", width=w, height=h, count=3,
                                   dtype="uint8", crs="EPSG:4490",
                                   transform=from_bounds(*bounds, w, h)) as dst:
        dst.write(rgb)
    pub.publish(ctx, src, name, title="影像 DOM")
    try:
        z = 14
        x, y, _, _ = tile_range("c", (116.33, 39.93, 116.3301, 39.9301), z)
        params = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": name,
                  "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "tiles",
                  "TILEMATRIX": str(z), "TILEROW": str(y), "TILECOL": str(x)}
        url = f"{base}/{name}_c/wmts"
        def tile() -> requests.Response | None:
            r = requests.get(url, params={**params, "tk": keyed["key"]}, timeout=60)
            return r if r.status_code == 200 else None

        # the workers' tile services pick the layer up by themselves (seen lagging publish()
        # by a second or two on this node's first publish)
        ok = wait_for(tile, timeout=30)
        assert ok.headers["content-type"].startswith("image/")
        from io import BytesIO

        from PIL import Image

        px = np.asarray(Image.open(BytesIO(ok.content)).convert("RGBA"))
        assert px[..., 3].min() > 0 and px[..., :3].std() > 10, "tile over the raster is blank"
        for params_ in (params, {**params, "tk": "0" * 32}):
            r = requests.get(url, params=params_, timeout=60)
            assert 400 <= r.status_code < 500 and "ExceptionReport" in r.text, r.status_code
            assert not r.headers["content-type"].startswith("image/")
    finally:
        pub.retire(ctx, name, purge=True)


def test_upload_over_the_limit_is_413_problem_json_with_a_stream_asked(keyed, tmp_path):
    src = points_gpkg(tmp_path / "big.gpkg", 20_000)  # ~0.9 MB, limit 0.25 MB
    assert src.stat().st_size > 0.25 * 1024 * 1024
    r = post(keyed["base"], {**keyed["publisher"], **STREAM}, "prog_too_big", src)
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 413
    assert work_dir_empty(keyed["ctx"])
