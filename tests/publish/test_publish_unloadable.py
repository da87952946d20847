"""A published layer that cannot be loaded any more (its COG deleted by hand) costs only that layer: every other layer keeps being reloaded and new publishes are
served. Before, one bad resource failed every later reload of the node."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import psycopg2
import requests
from publish_helpers import points_frame, served
from waiting import wait_for

from layers.errors import PublishError
from layers.publish import publish, retire


def _storage(dsn: str, name: str) -> str:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT v.storage FROM geoplat_published p JOIN geoplat_layer_versions v"
                        " ON v.name = p.name AND v.version = p.current_version"
                        " WHERE p.name = %s", (name,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def _geotiff(path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from nodes.providers.coverage import proj_env

    with proj_env(), rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1,
                                   dtype="float32", crs="EPSG:4490",
                                   transform=from_origin(120.1, 30.3, 0.001, 0.001)) as dst:
        dst.write(np.ones((32, 32), dtype="float32"), 1)


def test_a_layer_whose_file_is_gone_does_not_stop_the_others(ctx, base, tmp_path):
    tif, csv = tmp_path / "dem.tif", tmp_path / "pts.csv"
    _geotiff(tif)
    points_frame(10, seed=7).to_csv(csv, index=False)
    publish(ctx, tif, "pub_gone_dem", emap=False)
    wait_for(lambda: served(base, "pub_gone_dem"), 60, "the raster served")
    try:
        storage = _storage(ctx.dsn, "pub_gone_dem")
        assert storage.startswith("file:")
        os.unlink(storage[5:])  # the operator deletes the file by hand
        publish(ctx, csv, "pub_after_gone", crs="EPSG:4490")
        wait_for(lambda: served(base, "pub_after_gone"), 60, "a later publish is served")
        # the broken layer is left out (logged), not served half-working
        wait_for(lambda: requests.get(f"{base}/ogc/collections/pub_gone_dem?f=json",
                                      timeout=10).status_code == 404, 30, "broken layer left out")
        # configured layers are untouched
        assert requests.get(f"{base}/ogc/collections/buildings?f=json",
                            timeout=10).status_code == 200
    finally:
        for name in ("pub_after_gone", "pub_gone_dem"):
            with contextlib.suppress(PublishError):  # not published when the test failed early
                retire(ctx, name, purge=True)


def test_publishing_again_serves_a_layer_left_out(ctx, base, tmp_path):
    """The way back for the operator: a new version of the broken layer is served."""
    tif = tmp_path / "dem.tif"
    _geotiff(tif)
    publish(ctx, tif, "pub_gone_again", emap=False)
    wait_for(lambda: served(base, "pub_gone_again"), 60, "the raster served")
    try:
        os.unlink(_storage(ctx.dsn, "pub_gone_again")[5:])
        publish(ctx, tif, "pub_gone_again", emap=False)
        wait_for(lambda: requests.get(f"{base}/ogc/collections/pub_gone_again/coverage?f=json",
                                      timeout=30).status_code == 200, 60, "version 2 served")
    finally:
        retire(ctx, "pub_gone_again", purge=True)
