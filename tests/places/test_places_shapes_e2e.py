"""The place-name routes end to end on the shared federation: every Tianditu request form built
as public client code builds it (the JSON put unencoded into `ds`/`postStr`, the reverse
geocoder's single-quoted pseudo-JSON, the legacy search's string values), response shapes
checked field by field, answers checked against the sample data (hangzhou.gpkg) with
pyproj.Geod; and /api/places as GeoJSON. The door plates (`addresses`) are `registered`: an
anonymous caller never gets them, a signed-in user does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pyogrio
import pytest
from pyproj import Geod
from sso_client import bearer, login_pkce

ROOT = Path(__file__).resolve().parents[2]
GEOD = Geod(ellps="GRS80")
PASSWORD = "places-shapes-password-1"


@pytest.fixture(scope="module")
def plates() -> Any:
    return pyogrio.read_dataframe(ROOT / "data-samples" / "hangzhou.gpkg", layer="addresses")


@pytest.fixture(scope="module")
def token(urls: dict[str, str], main_db: Any) -> dict[str, str]:
    from services.sso import accounts

    accounts.create(main_db, "places_shapes_user", PASSWORD, roles=["developer"])
    return bearer(login_pkce(urls["national"], "places_shapes_user", PASSWORD))


def tdt(base: str, path: str, headers: dict[str, str] | None = None, **params: str) -> Any:
    r = httpx.get(base + path, params=params, headers=headers, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def test_geocoder_finds_the_door_plate(urls: dict[str, str], plates: Any,
                                       token: dict[str, str]) -> None:
    row = plates.iloc[0]
    body = tdt(urls["hangzhou"], "/geocoder", token, ds=dumps({"keyWord": row["address"]}))
    assert body["status"] == "0" and body["msg"] == "ok"
    loc = body["location"]
    assert set(loc) == {"score", "level", "lon", "lat", "keyWord"}
    assert isinstance(loc["lon"], str) and isinstance(loc["lat"], str)
    assert loc["level"] == "门址" and loc["keyWord"] == row["address"]
    assert metres((float(loc["lon"]), float(loc["lat"])), (row.geometry.x, row.geometry.y)) < 1


def test_door_plates_are_registered_only(urls: dict[str, str], plates: Any,
                                         token: dict[str, str]) -> None:
    row = plates.iloc[0]
    anon = tdt(urls["hangzhou"], "/geocoder", ds=dumps({"keyWord": row["address"]}))
    assert anon["status"] != "0" or anon["location"]["level"] != "门址"
    post = f"{{'lon':{row.geometry.x},'lat':{row.geometry.y},'ver':1}}"
    anon_r = tdt(urls["hangzhou"], "/geocoder", postStr=post, type="geocode")
    assert row["number"] not in anon_r["result"]["addressComponent"]["address"]
    api = httpx.get(urls["hangzhou"] + "/api/places/geocode",
                    params={"address": row["address"]}, timeout=60).json()
    assert all(f["properties"]["layer"] != "addresses" for f in api["features"])
    signed = httpx.get(urls["hangzhou"] + "/api/places/geocode",
                       params={"address": row["address"]}, headers=token, timeout=60).json()
    assert signed["features"][0]["properties"]["layer"] == "addresses"


def test_reverse_geocoder_gives_the_plate_and_its_district(urls: dict[str, str], plates: Any,
                                                           token: dict[str, str]) -> None:
    row = plates.iloc[0]
    x, y = row.geometry.x, row.geometry.y
    body = tdt(urls["hangzhou"], "/geocoder", token,
               postStr=f"{{'lon':{x},'lat':{y},'ver':1}}", type="geocode")
    assert body["status"] == "0"
    res = body["result"]
    assert res["location"] == {"lon": x, "lat": y}
    assert row["road"] + row["number"] in res["formatted_address"]
    c = res["addressComponent"]
    assert c["county"] == row["district"] == "上城区" and c["county_code"] == "156330102"
    assert c["city_code"] == "156330100" and c["province_code"] == "156330000"
    assert c["nation"] == "中国"
    assert c["address"].startswith(row["road"] + row["number"])
    for key in ("address", "road", "poi"):
        assert c[f"{key}_distance"] == c[f"{key}_distince"]
    assert c["address_distance"] <= 1
    # its township (the synthetic cells of data-samples/hangzhou.gpkg `township_cells`)
    assert re.fullmatch(r"156330102\d{3}", c["town_code"]) and c["town"].endswith("街道")


def test_nearby_search_sorted_with_correct_distances(urls: dict[str, str]) -> None:
    centre = (120.213, 30.246)  # 杭州市民中心政务服务大厅 (hangzhou.gpkg poi)
    post = dumps({"keyWord": "服务", "level": 12, "queryRadius": 5000,
                  "pointLonlat": f"{centre[0]},{centre[1]}", "queryType": 3,
                  "start": 0, "count": 20})
    body = tdt(urls["hangzhou"], "/v2/search", postStr=post, type="query")
    assert body["resultType"] == 1 and body["status"] == {"infocode": 1000, "cndesc": "服务正常"}
    assert isinstance(body["count"], str) and int(body["count"]) >= len(body["pois"]) > 1
    seen = []
    for p in body["pois"]:
        lon, lat = map(float, p["lonlat"].split(","))
        d = metres(centre, (lon, lat))
        assert d <= 5000 + 1
        m = re.fullmatch(r"(\d+)m|(\d+\.\d)km", p["distance"])
        assert m, p["distance"]
        shown = float(m.group(1)) if m.group(1) else float(m.group(2)) * 1000
        assert abs(shown - d) <= (1 if m.group(1) else 50), (p, d)
        assert p["provinceCode"] == "156330000" and p["poiType"] == "101"
        seen.append(d)
    assert seen == sorted(seen)


def test_search_forms(urls: dict[str, str]) -> None:
    hz = urls["hangzhou"]
    bound = "120.0,30.1,120.4,30.4"
    v2 = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "公园", "level": 12, "mapBound": bound, "queryType": 2, "start": 0,
         "count": 5}))
    assert v2["resultType"] == 1 and len(v2["pois"]) <= 5
    for p in v2["pois"]:
        lon, lat = map(float, p["lonlat"].split(","))
        assert 120.0 <= lon <= 120.4 and 30.1 <= lat <= 30.4
    legacy = tdt(hz, "/search", type="query", postStr=dumps(
        {"keyWord": "公园", "level": "12", "mapBound": bound, "queryType": "1", "start": "0",
         "count": "5"}))
    assert legacy["pois"] and all(" " in p["lonlat"] for p in legacy["pois"])
    page2 = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "公园", "mapBound": bound, "queryType": 1, "start": 5, "count": 5}))
    assert not {p["hotPointID"] for p in page2["pois"]} & {p["hotPointID"] for p in v2["pois"]}
    area = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "医院", "queryType": 12, "specify": "156330102", "count": 10}))
    assert area["resultType"] == 1
    assert all(p["countyCode"] == "156330102" for p in area["pois"])
    one = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"queryType": 13, "specify": "156330100", "mapBound": "73,3,135,54",
         "dataTypes": "公园", "count": 5}))
    assert one["resultType"] == 1 and all(p["typeName"] == "公园" for p in one["pois"])
    grouped = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"queryType": 13, "specify": "156330100", "mapBound": "73,3,135,54",
         "dataTypes": "公园,派出所", "count": 5}))
    assert set(grouped) == {"公园", "派出所"} and "status" not in grouped
    assert grouped["派出所"]["resultType"] == 1 and grouped["派出所"]["pois"]
    stats = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "学校", "queryType": 14, "specify": "156330100"}))
    assert stats["resultType"] == 2
    s = stats["statistics"]
    assert s["adminCount"] == len(s["allAdmins"]) > 0
    assert all(isinstance(c["adminCode"], int) for c in s["priorityCitys"])
    places_only = tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "上城", "queryType": 7}))
    assert places_only["status"]["infocode"] == 1000


def test_administrative_v2_and_legacy(urls: dict[str, str]) -> None:
    body = tdt(urls["national"], "/v2/administrative", keyword="杭州", childLevel="1",
               extensions="false")
    assert body["status"] == 200 and body["message"] == "成功"
    d = body["data"]["district"][0]
    assert (d["gb"], d["pgb"], d["name"], d["level"]) == ("156330100", "156330000", "杭州市", 3)
    assert set(d["center"]) == {"lng", "lat"} and "boundary" not in d
    assert {c["gb"] for c in d["children"]} >= {"156330102", "156330106"}
    assert all(c["level"] == 2 for c in d["children"])
    assert tdt(urls["national"], "/v2/administrative", keyword="156330100")["data"][
        "district"][0]["name"] == "杭州市"
    one = tdt(urls["national"], "/v2/administrative", keyword="杭")
    assert one["data"]["district"] == [] and one["data"]["suggestion"]
    legacy = tdt(urls["national"], "/administrative", postStr=dumps(
        {"searchWord": "杭州", "searchType": "1", "needSubInfo": "true", "needAll": "false",
         "needPolygon": "false", "needPre": "true"}))
    assert legacy["returncode"] == "100"
    item = legacy["data"][0]
    assert item["cityCode"] == "156330100" and isinstance(item["lnt"], float)
    assert item["child"] and item["parents"]["province"]["name"] == "浙江省"


def test_api_places_geojson(urls: dict[str, str], plates: Any, token: dict[str, str]) -> None:
    hz = urls["hangzhou"]
    row = plates.iloc[0]
    g = httpx.get(hz + "/api/places/geocode", params={"address": row["address"]},
                  headers=token, timeout=60)
    assert g.status_code == 200 and g.headers["content-type"].startswith("application/geo+json")
    fc = g.json()
    assert fc["type"] == "FeatureCollection" and fc["partial"] == []
    best = fc["features"][0]
    assert best["properties"]["best"] and best["properties"]["match_level"] == "address"
    lon, lat = best["geometry"]["coordinates"]
    assert metres((lon, lat), (row.geometry.x, row.geometry.y)) < 1
    g4490 = httpx.get(hz + "/api/places/geocode", headers=token, timeout=60, params={
        "address": row["address"], "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"})
    assert g4490.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    assert g4490.json()["features"][0]["geometry"]["coordinates"] == [lat, lon]
    s = httpx.get(hz + "/api/places/search", timeout=60,
                  params={"q": "公园", "limit": "3"}).json()
    assert s["numberReturned"] == len(s["features"]) <= 3 and s["numberMatched"] >= 3
    nxt = next(link["href"] for link in s["links"] if link["rel"] == "next")
    s2 = httpx.get(nxt, timeout=60).json()
    assert {f["id"] for f in s2["features"]}.isdisjoint({f["id"] for f in s["features"]})
    r = httpx.get(hz + "/api/places/reverse", headers=token, timeout=60,
                  params={"lon": str(row.geometry.x), "lat": str(row.geometry.y)}).json()
    assert r["admin"]["county_code"] == "330102"
    assert row["road"] + row["number"] in r["formatted_address"]
    a = httpx.get(urls["national"] + "/api/places/admin/330100", timeout=60,
                  params={"children": "1"}).json()
    props = a["features"][0]["properties"]
    assert props["code"] == "330100" and props["children"]
    sug = httpx.get(hz + "/api/places/suggest", params={"q": "宏"}, timeout=60).json()
    assert sug["type"] == "FeatureCollection"


INJECTIONS = ["'; DROP TABLE geoplat_places; --", "宏二路' OR '1'='1", "1) UNION SELECT 1--",
              "name LIKE '%' OR 1=1", "INTERSECTS(geom, POLYGON((0 0,1 0,1 1,0 0)))",
              "%_%\\", "宏二路2号'); SELECT pg_sleep(5); --"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_text_is_only_text(urls: dict[str, str], text: str) -> None:
    hz = urls["hangzhou"]
    g = tdt(hz, "/geocoder", ds=dumps({"keyWord": text}))
    assert g["status"] in ("0", "101")
    s = tdt(hz, "/v2/search", type="query", postStr=dumps({"keyWord": text, "queryType": 1}))
    assert s["status"]["infocode"] == 1000
    a = tdt(hz, "/v2/administrative", keyword=text[:50])
    assert a["status"] == 200
    r = httpx.get(hz + "/api/places/search", params={"q": text}, timeout=60)
    assert r.status_code == 200
    # nothing changed: the gazetteer still answers
    assert int(tdt(hz, "/v2/search", type="query", postStr=dumps(
        {"keyWord": "公园", "queryType": 1}))["count"]) > 0
