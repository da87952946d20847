"""A node whose policy reviews publishes (`registry.review_published`): a published layer is
served at once, but its registry records wait for a node admin before they reach the catalogue
and the parent nodes; a later publish keeps the decision."""

from __future__ import annotations

import dataclasses
import json
import shutil

import geopandas as gpd
import psycopg2
import pytest
import requests
import shapely
from publish_helpers import ctx_of, points_frame, served
from sso_client import bearer, login_pkce
from waiting import wait_for

from layers.publish import publish, retire
from nodes import federation as federation_mod
from services.sso import accounts

NAME = "pub_review"
RID = f"hangzhou:features:{NAME}"
PASSWORD = "Review-Test-Pass-1"


@pytest.fixture(scope="module")
def reviewing_ctx(federation, tmp_path_factory):
    """Hangzhou's publishing context, with the review policy on (a copy of its node.json)."""
    ctx = ctx_of(federation, "hangzhou")
    d = tmp_path_factory.mktemp("hangzhou-review")
    meta = json.loads((ctx.node_dir / "node.json").read_text(encoding="utf-8"))
    meta["registry"]["settings"]["review_published"] = True
    (d / "node.json").write_text(json.dumps(meta), encoding="utf-8")
    shutil.copy(ctx.node_dir / "pygeoapi.yml", d / "pygeoapi.yml")
    return dataclasses.replace(ctx, node_dir=d)


def _status(dsn: str, rid: str) -> str | None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM registry.services WHERE id = %s", (rid,))
            row = cur.fetchone()
            cur.execute("SELECT count(*) FROM registry.outbox WHERE record_id = %s", (rid,))
            assert row is None or row[0] in ("approved", "retired") or cur.fetchone()[0] == 0, \
                "an undecided record was queued for the parent"
            return row[0] if row else None
    finally:
        conn.close()


def _in_catalogue(base: str) -> int:
    r = requests.get(f"{base}/ogc/collections/catalogue/items?f=json&q={NAME}", timeout=30)
    r.raise_for_status()
    return sum(1 for f in r.json()["features"] if f["id"] == RID)


def test_published_layer_waits_for_review(federation, urls, main_db, reviewing_ctx, tmp_path):
    hz = urls["hangzhou"]
    national_dsn = federation_mod.node_dsn(federation, federation.node("national"))
    src = points_frame(5, seed=33)
    path = tmp_path / "halls.geojson"
    gpd.GeoDataFrame({"code": src.code}, geometry=list(shapely.points(src.lon, src.lat)),
                     crs="EPSG:4326").to_file(path, driver="GeoJSON")
    accounts.create(main_db, "review_admin", PASSWORD, roles=["hangzhou:admin"])
    admin = bearer(login_pkce(urls["national"], "review_admin", PASSWORD))
    try:
        publish(reviewing_ctx, path, NAME, title="服务大厅 (review)")
        wait_for(lambda: served(hz, NAME))  # the layer itself is served at once
        assert _status(reviewing_ctx.dsn, RID) == "pending"
        assert _in_catalogue(hz) == 0
        listed = requests.get(f"{hz}/registry/api/services?status=pending", headers=admin,
                              timeout=30)
        assert listed.status_code == 200 and RID in {r["id"] for r in listed.json()["services"]}

        r = requests.post(f"{hz}/registry/api/services/{RID}/approve", timeout=30)
        assert r.status_code == 401
        r = requests.post(f"{hz}/registry/api/services/{RID}/approve", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        assert _in_catalogue(hz) == 1
        wait_for(lambda: _status(national_dsn, RID) == "approved", timeout=30)  # went upward
        assert requests.post(f"{hz}/registry/api/services/{RID}/approve", headers=admin,
                             timeout=30).status_code == 404  # decided already

        publish(reviewing_ctx, path, NAME, title="服务大厅 (review, v2)")  # keeps the decision
        assert _status(reviewing_ctx.dsn, RID) == "approved"
    finally:
        retire(reviewing_ctx, NAME, purge=True)
    assert _status(reviewing_ctx.dsn, RID) == "retired"
