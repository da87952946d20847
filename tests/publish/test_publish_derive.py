"""A new version of a published layer made in SQL from its current one (layers/publish.py
`derive`, the path supply applies change-sets through): served, versioned, rolled back."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from psycopg2 import sql
from publish_helpers import items, points_frame
from waiting import wait_for

from layers.formats import PublishError
from layers.publish import derive, publish, rollback, versions

NAME = "pub_derive"


def _gpkg(path: Path, n: int) -> Path:
    src = points_frame(n, seed=7)
    gdf = gpd.GeoDataFrame({"code": src.code, "label": [f"p{i}" for i in range(n)]},
                           geometry=list(shapely.points(src.lon, src.lat)), crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, path, layer="pts")
    return path


def _labels(base: str) -> dict[int, str]:
    return {f["id"]: f["properties"]["label"] for f in items(base, NAME)}


@pytest.fixture(scope="module")
def v1(ctx, urls, tmp_path_factory):
    [v1] = publish(ctx, _gpkg(tmp_path_factory.mktemp("derive") / "v1.gpkg", 12), NAME)
    wait_for(lambda: len(items(urls["hangzhou"], NAME)) == 12)
    return v1


def test_derive_serves_a_new_version_and_rollback_restores_the_old(ctx, urls, v1):
    base = urls["hangzhou"]
    before = _labels(base)
    gone, renamed = sorted(before)[:2]

    def change(cur, table):
        t = sql.Identifier(table)
        cur.execute(sql.SQL("DELETE FROM {} WHERE fid = %s").format(t), (gone,))
        cur.execute(sql.SQL("UPDATE {} SET label = 'renamed' WHERE fid = %s").format(t),
                    (renamed,))
        return {"delete": 1, "update": 1}

    result, answer = derive(ctx, NAME, change, source="test change", actor="tester")
    assert answer == {"delete": 1, "update": 1}
    assert (result.version, result.feature_count) == (v1.version + 1, 11)
    after = _labels(base)  # served at once: derive waits for the workers
    assert set(after) == set(before) - {gone}
    assert after[renamed] == "renamed"
    assert {k: v for k, v in after.items() if k != renamed} == \
        {k: v for k, v in before.items() if k not in (gone, renamed)}
    rows = versions(ctx, NAME)
    assert [(r["version"], r["feature_count"], r["current"]) for r in rows[:2]] == \
        [(v1.version + 1, 11, True), (v1.version, 12, False)]
    assert rows[0]["source"] == "test change" and rows[0]["published_by"] == "tester"

    rollback(ctx, NAME)
    assert _labels(base) == before


def test_a_failing_change_changes_nothing(ctx, urls, v1):
    base = urls["hangzhou"]
    name_versions = [r["version"] for r in versions(ctx, NAME)]
    current = next(r["version"] for r in versions(ctx, NAME) if r["current"])
    served = _labels(base)

    def change(cur, table):
        cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        raise RuntimeError("the change went wrong")

    with pytest.raises(RuntimeError, match="went wrong"):
        derive(ctx, NAME, change, source="bad")
    assert [r["version"] for r in versions(ctx, NAME)] == name_versions
    assert next(r["version"] for r in versions(ctx, NAME) if r["current"]) == current
    assert _labels(base) == served

    def empty(cur, table):
        cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))

    with pytest.raises(PublishError, match="leaves no feature"):
        derive(ctx, NAME, empty, source="empty")
    assert [r["version"] for r in versions(ctx, NAME)] == name_versions
    with pytest.raises(PublishError, match="no published layer"):
        derive(ctx, "pub_derive_missing", empty, source="x")
