"""Original attribute names as titles in OGC API queryables and schema (issue 6).

Published layers store safe column names; the originals (from `geoplat_layer_versions.columns`
or, for configured layers, `geoplat_layers.columns`) must show as `title` in
`/collections/{id}/queryables` and `/schema`, follow a republish or rollback, and leave the
features' property names (the safe ones) as they were.
"""

from __future__ import annotations

import json

import pandas as pd
import psycopg2
import pyogrio
import requests
import shapely
from owslib.ogcapi.features import Features
from publish_helpers import items, points_frame, read_gdal, scalar, served, zip_dir
from waiting import wait_for

from layers.publish import publish, rollback

NAME_GBK = "pub_titles_gbk"
NAME_JSON = "pub_titles_json"


def _gdf(df: pd.DataFrame, geoms, crs: str = "EPSG:4490"):
    import geopandas as gpd

    return gpd.GeoDataFrame(df, geometry=list(geoms), crs=crs)


def _queryables(base: str, name: str) -> dict:
    r = requests.get(f"{base}/ogc/collections/{name}/queryables?f=json", timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/schema+json")
    return r.json()["properties"]


def _schema(base: str, name: str) -> dict:
    r = requests.get(f"{base}/ogc/collections/{name}/schema?f=json", timeout=10)
    assert r.status_code == 200, r.text[:300]
    return r.json()["properties"]


def _current_columns(dsn: str, name: str) -> dict[str, str]:
    """{safe column: original name} of the version being served."""
    return dict(scalar(dsn, "SELECT v.columns FROM geoplat_published p JOIN geoplat_layer_versions"
                            " v ON v.name = p.name AND v.version = p.current_version"
                            " WHERE p.name = %s", (name,)))


def _titles(props: dict) -> dict[str, str]:
    return {k: v.get("title") for k, v in props.items() if k not in ("geometry", "fid")}


def test_gbk_shapefile_chinese_names_are_titles(ctx, base, tmp_path):
    """GBK shapefile (no .cpg) with Chinese field names: safe names served, originals as titles."""
    src = points_frame(8, seed=11)
    df = pd.DataFrame({"地块名称": src["名称"], "面积": src["area"], "code": src["code"]})
    shp = tmp_path / "parcels.shp"
    pyogrio.write_dataframe(_gdf(df, shapely.points(src.lon, src.lat)), shp, encoding="GBK")
    for cpg in tmp_path.glob("parcels.cpg"):
        cpg.unlink()
    assert "地块名称".encode("gbk") in (tmp_path / "parcels.dbf").read_bytes()
    z = zip_dir(sorted(tmp_path.glob("parcels.*")), tmp_path / "parcels.zip")
    publish(ctx, z, NAME_GBK, title="地块 titles")
    wait_for(lambda: served(base, NAME_GBK))

    columns = _current_columns(ctx.dsn, NAME_GBK)
    assert sorted(columns.values()) == sorted(["地块名称", "面积", "code"])
    by_title = {v: k for k, v in columns.items()}
    assert by_title["地块名称"] != "地块名称" and by_title["地块名称"].isascii()

    props = _queryables(base, NAME_GBK)
    assert _titles(props) == columns
    assert props[by_title["地块名称"]] == {"title": "地块名称", "type": "string"}
    assert props[by_title["面积"]]["type"] == "number"
    assert props["fid"]["title"] == "fid" and props["fid"]["x-ogc-role"] == "id"

    schema = _schema(base, NAME_GBK)
    assert _titles(schema) == columns
    assert schema[by_title["面积"]]["type"] == "number"

    # features keep the safe names, with the GBK text decoded
    feats = sorted(items(base, NAME_GBK), key=lambda f: f["properties"][by_title["code"]])
    assert set(feats[0]["properties"]) == set(columns)
    assert [f["properties"][by_title["地块名称"]] for f in feats] == list(src["名称"])

    # clients that are not ours: OWSLib reads the titles, GDAL reads the features
    q = Features(f"{base}/ogc").collection_queryables(NAME_GBK)
    assert q["properties"][by_title["地块名称"]]["title"] == "地块名称"
    back = read_gdal(base, NAME_GBK).sort_values(by_title["code"]).reset_index(drop=True)
    assert list(back[by_title["地块名称"]]) == list(src["名称"])


def test_sanitised_names_follow_republish_and_rollback(ctx, base, tmp_path):
    """Names needing sanitising get their originals as titles; a new version's titles follow."""
    pts = shapely.points([120.11, 120.12, 120.13], [30.21, 30.22, 30.23])
    first = pd.DataFrame({"Area (m²)": [1.5, 2.5, 3.5], "1st": ["a", "b", "c"],
                          "select": [1, 2, 3], "名称": ["甲", "乙", "丙"]})
    path = tmp_path / "v1.geojson"
    pyogrio.write_dataframe(_gdf(first, pts), path)
    publish(ctx, path, NAME_JSON, title="Sanitised names")
    wait_for(lambda: served(base, NAME_JSON))

    v1 = _current_columns(ctx.dsn, NAME_JSON)
    assert sorted(v1.values()) == sorted(first.columns)
    assert all(k != v for k, v in v1.items() if v in ("Area (m²)", "名称"))
    props = _queryables(base, NAME_JSON)
    assert _titles(props) == v1
    safe_area = next(k for k, v in v1.items() if v == "Area (m²)")
    assert props[safe_area] == {"title": "Area (m²)", "type": "number"}
    feats = items(base, NAME_JSON)
    assert len(feats) == 3 and all(set(f["properties"]) == set(v1) for f in feats)
    assert sorted(f["properties"][safe_area] for f in feats) == [1.5, 2.5, 3.5]

    # republish with other columns: the Reloader swaps the API within a second or so
    second = pd.DataFrame({"Höhe (m)": [10.0, 20.0, 30.0], "类型 Type": ["x", "y", "z"]})
    path2 = tmp_path / "v2.geojson"
    pyogrio.write_dataframe(_gdf(second, pts), path2)
    publish(ctx, path2, NAME_JSON)
    v2 = _current_columns(ctx.dsn, NAME_JSON)
    assert sorted(v2.values()) == sorted(second.columns)
    wait_for(lambda: _titles(_queryables(base, NAME_JSON)) == v2, timeout=10)
    assert _titles(_schema(base, NAME_JSON)) == v2
    assert all(set(f["properties"]) == set(v2) for f in items(base, NAME_JSON))

    rollback(ctx, NAME_JSON)
    wait_for(lambda: _titles(_queryables(base, NAME_JSON)) == v1, timeout=10)


def test_restricted_layer_titles_stay_hidden(ctx, base, tmp_path):
    """Titles add nothing to what an anonymous caller learns about a restricted layer."""
    df = pd.DataFrame({"秘密字段": ["s"]})
    path = tmp_path / "secret.geojson"
    pyogrio.write_dataframe(_gdf(df, shapely.points([120.1], [30.2])), path)
    publish(ctx, path, "pub_titles_secret", access="restricted")
    for suffix in ("queryables?f=json", "schema?f=json"):
        r = requests.get(f"{base}/ogc/collections/pub_titles_secret/{suffix}", timeout=10)
        assert r.status_code in (401, 403, 404), (suffix, r.status_code)
        assert "秘密字段" not in r.text


def test_configured_layers_carry_catalogue_titles(ctx, base, federation):
    """Layers loaded from config/layers show `geoplat_layers.columns` as titles.

    The sample files' names are all safe already (title == name), so the generated
    pygeoapi.yml is checked too: it must carry the catalogue's names as the `titles` option.
    """
    import yaml

    from nodes.pygeoapi_config import node_dir

    conn = psycopg2.connect(ctx.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, columns FROM geoplat_layers ORDER BY id")
            catalogue = {r[0]: dict(r[1]) for r in cur.fetchall() if r[1]}
    finally:
        conn.close()
    generated = yaml.safe_load((node_dir(federation, federation.node("hangzhou"))
                                / "pygeoapi.yml").read_text(encoding="utf-8"))
    configured = {k: p for k, r in generated["resources"].items() for p in r.get("providers", [])
                  if p["type"] == "feature" and k in catalogue}
    assert configured
    for layer, feature in configured.items():
        assert feature["titles"] == catalogue[layer], layer
    public = requests.get(f"{base}/ogc/collections?f=json", timeout=10).json()["collections"]
    shown = [c["id"] for c in public if c["id"] in configured]
    assert shown
    for layer in shown:
        titles = _titles(_queryables(base, layer))
        assert titles and titles == {k: v for k, v in catalogue[layer].items() if k in titles}


def test_full_config_passes_pygeoapi_validation(ctx, federation):
    """The `titles` provider option keeps the generated config valid for pygeoapi."""
    from pygeoapi.config import validate_config

    from layers.serving import full_config
    from nodes.pygeoapi_config import node_dir

    config, _ = full_config(node_dir(federation, federation.node("hangzhou")), ctx.dsn)
    assert validate_config(json.loads(json.dumps(config)))
    titled = [p["titles"] for r in config["resources"].values() for p in r.get("providers", [])
              if p.get("type") == "feature" and p.get("titles")]
    assert titled  # configured layers at least; published ones too when run with the others
