"""Versions: atomic republish under a reader loop, rollback, cache invalidation, locking, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg2
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import items, points_frame, tables_like, work_dir_empty
from waiting import wait_for

from layers.formats import PublishError
from layers.publish import LayerLock, publish, rollback, versions
from nodes.pygeoapi_config import node_dir
from tiles.seed import tile_range

NAME = "pub_ver_loop"
ROOT = Path(__file__).resolve().parents[2]
INTERRUPTIBLE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
                 " sys.argv[0] = 'geoplat'; runpy.run_module('nodes.cli', run_name='__main__')")


def _gpkg(path: Path, n: int, tag: str, seed: int, x0: float = 120.10) -> Path:
    src = points_frame(n, seed=seed, x0=x0)
    gdf = gpd.GeoDataFrame({"code": src.code, "ver": [tag] * n},
                           geometry=list(shapely.points(src.lon, src.lat)), crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, path, layer="pts")
    return path


def _snapshot(base: str) -> list[tuple]:
    return sorted((f["id"], tuple(sorted(f["properties"].items())),
                   tuple(f["geometry"]["coordinates"])) for f in items(base, NAME))


def test_republish_reader_sees_old_or_new_then_rollback_restores(ctx, urls, tmp_path):
    base = urls["hangzhou"]
    [v1] = publish(ctx, _gpkg(tmp_path / "v1.gpkg", 30, "v1", 1), NAME)
    wait_for(lambda: len(items(base, NAME)) == 30)
    before = _snapshot(base)

    seen: list[str] = []
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                r = s.get(f"{base}/ogc/collections/{NAME}/items?f=json&limit=1000", timeout=30)
                if r.status_code != 200:
                    problems.append(f"status {r.status_code}")
                    continue
                feats = r.json()["features"]
                vers = {f["properties"]["ver"] for f in feats}
                expected = {"v1": 30, "v2": 45}
                if len(vers) != 1 or len(feats) != expected.get(next(iter(vers)), -1):
                    problems.append(f"mix: {vers} {len(feats)}")
                    continue
                seen.append(vers.pop())

    t = threading.Thread(target=reader)
    t.start()
    try:
        wait_for(lambda: len(seen) >= 2 or problems, 30, "the reader reads v1")
        [v2] = publish(ctx, _gpkg(tmp_path / "v2.gpkg", 45, "v2", 2, x0=120.12), NAME)
        assert v2.version == v1.version + 1
        wait_for(lambda: seen[-10:] == ["v2"] * 10, timeout=20)
    finally:
        stop.set()
        t.join()
    assert not problems, problems[:5]
    assert seen[0] == "v1" and seen[-1] == "v2"
    # (workers swap independently, within a poll interval: old and new may alternate briefly)

    out = rollback(ctx, NAME)
    assert out["version"] == v1.version
    wait_for(lambda: _snapshot(base) == before, timeout=15)
    vs = versions(ctx, NAME)
    assert [v["version"] for v in vs if v["current"]] == [v1.version]
    assert {v["version"] for v in vs} >= {v1.version, v2.version}
    assert work_dir_empty(ctx)


def test_cached_tiles_in_the_bbox_are_invalidated_only_there(ctx, urls, federation, tmp_path):
    base = urls["hangzhou"]
    ndir = node_dir(federation, federation.node("hangzhou"))
    z = 12
    inside_box = (120.30, 30.30, 120.32, 30.32)
    x_in, y_in, _, _ = tile_range("c", inside_box, z)
    x_out, y_out, _, _ = tile_range("c", (119.30, 29.60, 119.31, 29.61), z)
    cached = {}
    for key, (x, y) in {"in": (x_in, y_in), "out": (x_out, y_out)}.items():
        r = requests.get(f"{base}/wmts/vec/c/{z:02d}/{x}/{y}.png", timeout=60)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
        files = [p for p in (ndir / "cache").rglob(f"{y}.png") if p.parent.name == str(x)
                 and p.parent.parent.name in (str(z), f"{z:02d}")]
        assert files, f"tile {key} not cached"
        cached[key] = files
    mtimes = {str(p): p.stat().st_mtime_ns for p in cached["out"]}
    src = tmp_path / "box.geojson"
    gdf = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(*inside_box)], crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, src)
    publish(ctx, src, "pub_tile_box")
    assert not any(p.exists() for p in cached["in"]), "cached tile inside the bbox survived"
    assert all(p.exists() and p.stat().st_mtime_ns == mtimes[str(p)] for p in cached["out"])
    r = requests.get(f"{base}/wmts/vec/c/{z:02d}/{x_in}/{y_in}.png", timeout=60)
    assert r.status_code == 200 and any(p.exists() for p in cached["in"])  # rendered anew


def test_second_concurrent_publish_is_refused(ctx, tmp_path):
    path = _gpkg(tmp_path / "c.gpkg", 5, "c", 3)
    with LayerLock(ctx.dsn, "pub_ver_lock"):
        with pytest.raises(PublishError, match="being published") as err:
            publish(ctx, path, "pub_ver_lock")
        assert err.value.status == 409
    [res] = publish(ctx, path, "pub_ver_lock")  # free again
    assert res.feature_count == 5
    assert work_dir_empty(ctx)


def test_ctrl_c_during_load_leaves_previous_version_and_no_debris(ctx, urls, federation, tmp_path):
    base = urls["hangzhou"]
    name = "pub_ver_sigint"
    [v1] = publish(ctx, _gpkg(tmp_path / "small.gpkg", 10, "v1", 4), name)
    wait_for(lambda: len(items(base, name)) == 10)
    big = tmp_path / "big.gpkg"
    n = 250_000
    rng = np.random.default_rng(5)
    gdf = gpd.GeoDataFrame({"code": np.arange(n), "ver": ["v2"] * n},
                           geometry=list(shapely.points(120 + rng.random(n) * 0.3,
                                                        30 + rng.random(n) * 0.3)),
                           crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, big, layer="pts")
    config = Path(federation.config_dir) / "federation.yml"
    # Ctrl-C as in a terminal: a suite started in the background (`cmd &`, nohup) inherits
    # SIGINT ignored and Python keeps it so; the CLI gets Python's own handler back first
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, "--config", str(config), "layers",
                             "publish", str(big), "--node", "hangzhou", "--name", name],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def copying() -> bool:
        conn = psycopg2.connect(ctx.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                            " 'geoplat-publish' AND query LIKE 'COPY%%'")
                return cur.fetchone()[0] > 0
        finally:
            conn.close()

    try:
        wait_for(lambda: copying() or proc.poll() is not None, timeout=60, interval=0.05)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    wait_for(lambda: not copying(), timeout=10)
    assert tables_like(ctx.dsn, name + "__v%") == [f"{name}__v{v1.version}"]
    assert [v["version"] for v in versions(ctx, name)] == [v1.version]
    assert len(items(base, name)) == 10
    assert work_dir_empty(ctx)
