"""OGC API Features on every node, read by clients that are not ours (OWSLib, GDAL via pyogrio)."""

from __future__ import annotations

import json
from pathlib import Path

import pyogrio
import pytest
import requests
from owslib.ogcapi.features import Features
from pyproj import Transformer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data-samples"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"

# The fixed synthetic POI of the Hangzhou information base (see data-samples/SOURCES.md).
HALL_NAME = "杭州市民中心政务服务大厅"
HALL_LONLAT = (120.2130, 30.2460)


def source_point(gpkg: str, layer: str, name: str) -> tuple[float, float]:
    """A named point as stored in the sample file: the truth the service must reproduce."""
    df = pyogrio.read_dataframe(DATA / gpkg, layer=layer, where=f"name = '{name}'")
    assert len(df) == 1, f"{name} not unique in {gpkg}:{layer}"
    return df.geometry.iloc[0].x, df.geometry.iloc[0].y


def items(base: str, collection: str, **params) -> requests.Response:
    return requests.get(f"{base}/ogc/collections/{collection}/items", params=params, timeout=30)


def one(base: str, collection: str, **params) -> dict:
    r = items(base, collection, **params)
    assert r.status_code == 200, r.text[:300]
    feats = r.json()["features"]
    assert len(feats) == 1, [f["properties"].get("name") for f in feats]
    return feats[0]


KNOWN = [  # node, collection, name, where its true position comes from
    ("hangzhou", "poi", HALL_NAME, None),
    ("national", "cities", "杭州", ("national.gpkg", "cities")),
]


@pytest.mark.parametrize("node, collection, name, source", KNOWN)
def test_known_feature_in_each_crs(urls, node, collection, name, source) -> None:
    lon, lat = HALL_LONLAT if source is None else source_point(*source, name)
    base = urls[node]
    f = one(base, collection, name=name)
    assert f["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-6)
    assert f["properties"]["name"] == name

    r = items(base, collection, name=name, crs=EPSG.format(4490))
    assert r.headers["Content-Crs"] == f"<{EPSG.format(4490)}>"
    # EPSG:4490 defines latitude first
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-6)

    r = items(base, collection, name=name, crs=EPSG.format(4326))
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-6)

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    r = items(base, collection, name=name, crs=EPSG.format(3857))
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([x, y], abs=0.01)


def test_item_by_id_matches_listing(urls) -> None:
    f = one(urls["hangzhou"], "poi", name=HALL_NAME)
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/poi/items/{f['id']}", timeout=30)
    assert r.status_code == 200
    item = r.json()
    assert item["id"] == f["id"]
    assert item["geometry"]["coordinates"] == pytest.approx(list(HALL_LONLAT), abs=1e-6)
    assert item["properties"]["category"] == "service_hall"
    assert item["properties"]["opening_hours"] and item["properties"]["services"]


def test_bbox_crs84_and_4490_select_the_same_features(urls) -> None:
    base = urls["hangzhou"]
    lon, lat = HALL_LONLAT
    box = (lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)
    a = items(base, "poi", bbox=",".join(map(str, box)), limit=1000).json()
    b = items(base, "poi", bbox=",".join(map(str, (box[1], box[0], box[3], box[2]))),
              **{"bbox-crs": EPSG.format(4490)}, limit=1000).json()
    ids_a = sorted(f["id"] for f in a["features"])
    ids_b = sorted(f["id"] for f in b["features"])
    assert ids_a and ids_a == ids_b
    assert any(f["properties"]["name"] == HALL_NAME for f in a["features"])
    for f in a["features"]:
        x, y = f["geometry"]["coordinates"]
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
    # a box elsewhere in Hangzhou's extent does not contain the hall
    far = items(base, "poi", bbox="119.0,29.3,119.1,29.4", limit=1000).json()
    assert HALL_NAME not in [f["properties"]["name"] for f in far["features"]]


def test_bbox_in_web_mercator(urls) -> None:
    lon, lat = HALL_LONLAT
    tr = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = tr.transform(lon - 0.005, lat - 0.005)
    x1, y1 = tr.transform(lon + 0.005, lat + 0.005)
    r = items(urls["hangzhou"], "poi", bbox=f"{x0},{y0},{x1},{y1}",
              **{"bbox-crs": EPSG.format(3857)}, limit=100)
    assert r.status_code == 200
    assert HALL_NAME in [f["properties"]["name"] for f in r.json()["features"]]


def test_owslib_reads_every_node(urls) -> None:
    for node, collection in [("national", "provinces"), ("zhejiang", "counties"),
                             ("hangzhou", "poi")]:
        api = Features(f"{urls[node]}/ogc")
        ids = [c["id"] for c in api.collections()["collections"]]
        assert collection in ids
        fc = api.collection_items(collection, limit=5)
        assert fc["numberReturned"] == 5 and len(fc["features"]) == 5
    fc = Features(f"{urls['hangzhou']}/ogc").collection_items("poi", name=HALL_NAME)
    assert fc["features"][0]["geometry"]["coordinates"] == pytest.approx(list(HALL_LONLAT), abs=1e-6)


def test_gdal_oapif_reads_with_correct_coordinates(urls) -> None:
    df = pyogrio.read_dataframe(f"OAPIF:{urls['hangzhou']}/ogc", layer="poi",
                                where=f"name = '{HALL_NAME}'")
    assert len(df) == 1
    pt = df.geometry.iloc[0]
    assert (pt.x, pt.y) == pytest.approx(HALL_LONLAT, abs=1e-6)
    provinces = pyogrio.read_dataframe(f"OAPIF:{urls['national']}/ogc", layer="provinces")
    assert len(provinces) == pyogrio.read_info(DATA / "national.gpkg", layer="provinces")["features"]
    zj = provinces[provinces["name"] == "浙江省"]
    assert len(zj) == 1 and zj.geometry.iloc[0].contains(
        __import__("shapely").geometry.Point(*HALL_LONLAT))


def test_cql_text_and_json(urls) -> None:
    base = urls["hangzhou"]
    r = items(base, "poi", filter="category = 'service_hall'", limit=1000)
    assert r.status_code == 200
    halls = r.json()["features"]
    assert len(halls) >= 12 and all(f["properties"]["category"] == "service_hall" for f in halls)

    lon, lat = HALL_LONLAT
    poly = {"type": "Polygon", "coordinates": [[[lon - .002, lat - .002], [lon + .002, lat - .002],
                                                [lon + .002, lat + .002], [lon - .002, lat + .002],
                                                [lon - .002, lat - .002]]]}
    body = {"op": "and", "args": [
        {"op": "s_intersects", "args": [{"property": "geom"}, poly]},
        {"op": "=", "args": [{"property": "category"}, "service_hall"]}]}
    r = requests.post(f"{base}/ogc/collections/poi/items", data=json.dumps(body),
                      headers={"Content-Type": "application/query-cql-json"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert [f["properties"]["name"] for f in r.json()["features"]] == [HALL_NAME]

    wkt = f"POLYGON(({lon-.002} {lat-.002},{lon+.002} {lat-.002},{lon+.002} {lat+.002},{lon-.002} {lat+.002},{lon-.002} {lat-.002}))"
    r = items(base, "poi", filter=f"INTERSECTS(geom, {wkt}) AND category = 'service_hall'")
    assert r.status_code == 200, r.text[:300]
    assert [f["properties"]["name"] for f in r.json()["features"]] == [HALL_NAME]


def test_paging_is_stable_and_counts(urls) -> None:
    base = urls["national"]
    first = items(base, "cities", limit=10, offset=0).json()
    second = items(base, "cities", limit=10, offset=10).json()
    ids1 = [f["id"] for f in first["features"]]
    ids2 = [f["id"] for f in second["features"]]
    assert len(ids1) == 10 and len(ids2) == 10 and not set(ids1) & set(ids2)
    n = pyogrio.read_info(DATA / "national.gpkg", layer="cities")["features"]
    assert first["numberMatched"] == n


BAD = [
    ("bbox", {"bbox": "1,2,3"}),
    ("bbox", {"bbox": "121,30,120,31"}),
    ("bbox", {"bbox": "a,b,c,d"}),
    ("limit", {"limit": "100000"}),
    ("limit", {"limit": "-5"}),
    ("crs", {"crs": "http://www.opengis.net/def/crs/EPSG/0/99999"}),
    ("bbox-crs", {"bbox": "1,2,3,4", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/2000"}),
    ("filter", {"filter": "name = = 'x'"}),
    ("filter", {"filter": "nosuchcolumn = 1"}),
    ("filter", {"filter": "name = 'x'; DROP TABLE poi; --"}),
    ("filter", {"filter": "name = 'x' OR 1=1) UNION SELECT * FROM pg_user --"}),
    ("sortby", {"sortby": "name;DROP TABLE poi"}),
    ("sortby", {"sortby": "nosuchcolumn"}),
    ("properties", {"properties": "name,(select 1)"}),
    ("offset", {"offset": "x"}),
]


@pytest.mark.parametrize("what, params", BAD, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BAD)])
def test_bad_requests_are_4xx_and_harmless(urls, what, params) -> None:
    base = urls["hangzhou"]
    r = items(base, "poi", **params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    text = r.text.lower()
    for leak in ("select ", "traceback", "psycopg2", "/work/", "postgresql://", "sqlalchemy"):
        assert leak not in text, f"{leak!r} leaked: {r.text[:300]}"


@pytest.mark.parametrize("ident", ["1;DROP TABLE poi", "' OR 1=1 --", "99999999999999999999999",
                                   "-1", "%00"])
def test_bad_item_ids_are_404(urls, ident) -> None:
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/poi/items/{ident}", timeout=30)
    assert r.status_code in (400, 404), (r.status_code, r.text[:300])


def test_unknown_collection_is_404(urls) -> None:
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/nosuch/items", timeout=30)
    assert r.status_code == 404


def test_tables_survive_the_attacks(urls) -> None:
    # runs after the injection tests in file order: the layer is still complete
    r = items(urls["hangzhou"], "poi", limit=1)
    assert r.status_code == 200
    n = pyogrio.read_info(DATA / "hangzhou.gpkg", layer="poi")["features"]
    assert r.json()["numberMatched"] == n


def test_writes_and_admin_api_are_closed(urls) -> None:
    base = urls["hangzhou"]
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.2, 30.2]},
               "properties": {"name": "intruder"}}
    r = requests.post(f"{base}/ogc/collections/poi/items", json=feature, timeout=30)
    assert r.status_code in (405, 415)
    r = requests.delete(f"{base}/ogc/collections/poi/items/1", timeout=30)
    assert r.status_code == 405
    for method in ("get", "put", "patch"):
        r = getattr(requests, method)(f"{base}/ogc/admin/config", timeout=30)
        assert r.status_code in (403, 405)
    assert items(base, "poi", name="intruder").json()["features"] == []
