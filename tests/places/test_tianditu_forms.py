"""Tianditu request parsing and response shapes (services/places/tianditu*.py): pure functions
over the model types, the requests built as public client code builds them."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate
from pyproj import Geod

from services.places import api, tianditu, tianditu_shapes
from services.places.errors import PlacesInputError
from services.places.model import (
    AdminChain,
    AreaCount,
    Division,
    Geocoded,
    Place,
    Reversed,
    SearchResult,
)

ADMIN = AdminChain("浙江省", "330000", "杭州市", "330100", "上城区", "330102",
                   "小营街道", "330102001")
PLATE = Place("hangzhou:1", "address", "宏二路2号", 120.2001, 30.2502, ADMIN,
              address="浙江省杭州市上城区宏二路2号", road="宏二路", number="2号",
              layer="addresses", node="hangzhou", score=98.4)
HALL = Place("hangzhou:7", "poi", "上城区政务服务中心", 120.21, 30.26, ADMIN,
             address="上城区宏六路8号", category="service_hall", phone="12345",
             layer="poi", node="hangzhou", distance_m=1234.0)
ROAD = Place("hangzhou:3", "road", "宏二路", 120.2003, 30.2503, ADMIN)
CITY = Division("330100", "杭州市", "city", "330000", 120.2, 30.25, (118.3, 29.2, 120.7, 30.6),
                children=(Division("330102", "上城区", "county", "330100", 120.19, 30.23, None),),
                parents=(Division("330000", "浙江省", "province", None, 120.1, 29.2, None),),
                boundary_wkt="MULTIPOLYGON(((120 30,121 30,121 31,120 30)))")


def err(fn, *args, **kwargs) -> int:
    with pytest.raises(PlacesInputError) as e:
        fn(*args, **kwargs)
    return e.value.infocode


# --- decoding -------------------------------------------------------------------------------

def test_single_quoted_pseudo_json_of_the_reverse_geocoder() -> None:
    # the official example: postStr={'lon':116.37304,'lat':39.92594,'ver':1}
    post = tianditu.decode("{'lon':116.37304,'lat':39.92594,'ver':1}", "postStr")
    assert tianditu.parse_reverse(post) == (116.37304, 39.92594)
    # DemoMacro's wrapper sends real JSON; string numbers too
    assert tianditu.parse_reverse(tianditu.decode('{"lon":"120.2","lat":"30.25","ver":1}',
                                                  "postStr")) == (120.2, 30.25)


def test_postStr_as_public_client_code_sends_it() -> None:
    # string values, extra fields, spaces in mapBound, and a surplus closing brace
    raw = ('{"yingjiType":0,"sourceType":0,"keyWord":"公园","level":"15","mapBound":'
           '"119.56160545698368, 29.044618600019025,119.70854760613294, 29.11992072753492",'
           '"queryType":"1","start":0,"count":"20","specifyAdminCode":"156330100",'
           '"queryTerminal":10000}}')
    r = tianditu.parse_search(tianditu.decode(raw, "postStr"), legacy=True)
    assert (r.keyword, r.count, r.admin) == ("公园", 20, "330100")
    assert r.bbox == (119.56160545698368, 29.044618600019025, 119.70854760613294,
                      29.11992072753492)
    single = "{'keyWord':'公园','level':'10','mapBound':'115.3,39.3,117.4,40.4'," \
             "'queryType':'1','start':'0','count':'1'}"
    assert tianditu.parse_search(tianditu.decode(single, "postStr"), legacy=True).count == 1
    assert err(tianditu.decode, '{"keyWord":"a"}x', "postStr") == 2002


@pytest.mark.parametrize(("raw", "code"), [
    (None, 2003), ("", 2003), ("{'lon':", 2002), ("[1,2]", 2002), ("{\"a\":1}\x00", 2001),
    ("{" + "x" * 9000 + "}", 2001), ("{'lon':'abc','lat':30}", 2005),
    ("{'lon':200,'lat':30}", 2006), ("{'lon':120,'lat':-91}", 2006), ("{'lat':30}", 2003),
    ("{'lon':'NaN','lat':30}", 2005), ("{'lon':1e999,'lat':30}", 2005),
])
def test_bad_reverse_postStr(raw: str | None, code: int) -> None:
    assert err(lambda: tianditu.parse_reverse(tianditu.decode(raw, "postStr"))) == code


def test_geocode_ds() -> None:
    assert tianditu.parse_geocode(tianditu.decode('{"keyWord":"上城区宏二路2号"}', "ds")) == \
        "上城区宏二路2号"
    assert err(tianditu.parse_geocode, {"keyWord": "宏" * 10_000}) == 2001
    assert err(tianditu.parse_geocode, {"keyWord": "宏\x00"}) == 2001
    assert err(tianditu.parse_geocode, {}) == 2003
    assert err(tianditu.parse_geocode, {"keyWord": ["a"]}) == 2001
    # injection text is only text: it parses, the query layer binds it as a parameter
    assert tianditu.parse_geocode({"keyWord": "'; DROP TABLE geoplat_places; --"}).startswith("'")


# --- search requests ------------------------------------------------------------------------

def search(post: dict, legacy: bool = False) -> tianditu.SearchRequest:
    return tianditu.parse_search(tianditu.decode(json.dumps(post, ensure_ascii=False),
                                                 "postStr"), legacy=legacy)


def test_every_query_type() -> None:
    r = search({"keyWord": "公园", "level": 12, "mapBound": "120,30,121,31", "queryType": 1,
                "start": 0, "count": 10})
    assert (r.query_type, r.bbox, r.count, r.start, r.kinds) == (1, (120, 30, 121, 31), 10, 0,
                                                                   None)
    assert search({"keyWord": "公园", "mapBound": "120,30,121,31", "level": 12,
                   "queryType": 2}).bbox == (120, 30, 121, 31)
    r = search({"keyWord": "咖啡", "pointLonlat": "120.2,30.25", "queryRadius": "1000",
                "queryType": 3})
    assert (r.near, r.radius_m) == ((120.2, 30.25), 1000.0)
    assert search({"keyWord": "西湖", "queryType": 7}).kinds == tianditu.PLACE_NAME_KINDS
    r = search({"keyWord": "学校", "queryType": 10,
                "polygon": "120.1,30.2,120.3,30.2,120.3,30.3,120.1,30.3,120.1,30.2"})
    assert r.polygon is not None and len(r.polygon) == 5 and r.polygon[0] == r.polygon[-1]
    r = search({"keyWord": "医院", "queryType": 12, "specify": "156330102"})
    assert (r.admin, r.statistics) == ("330102", False)
    assert search({"keyWord": "医院", "queryType": 12, "specify": "156330000"}).statistics
    assert not search({"keyWord": "医院", "queryType": 12, "specify": "156110000"}).statistics
    assert search({"keyWord": "医院", "queryType": 12, "specify": "杭州"}).admin == "杭州"
    r = search({"queryType": 13, "specify": "156330100", "mapBound": "73,3,135,54",
                "dataTypes": "公园,190202"})
    assert r.data_types == (("公园", ("park",)), ("190202", ("police",)))
    assert r.query_args(["park"])["categories"] == ["park"]
    assert search({"keyWord": "学校", "queryType": 14, "specify": "156330100"}).statistics
    # the legacy /search: every value a string, specifyAdminCode
    r = search({"keyWord": "公园", "mapBound": "120,30,121,31", "level": "12",
                "queryType": "1", "start": "0", "count": "20",
                "specifyAdminCode": "156330100"}, legacy=True)
    assert (r.legacy, r.count, r.admin) == (True, 20, "330100")


@pytest.mark.parametrize(("post", "code"), [
    ({"keyWord": "a", "queryType": 99}, 2004),
    ({"keyWord": "a", "queryType": "x"}, 2001),
    ({"keyWord": "a", "queryType": 12}, 2003),  # specify missing
    ({"queryType": 1}, 2003),
    ({"keyWord": "a", "queryType": 1, "count": 301}, 2007),
    ({"keyWord": "a", "queryType": 1, "count": 0}, 2007),
    ({"keyWord": "a", "queryType": 1, "start": 301}, 2007),
    ({"keyWord": "a", "queryType": 1, "start": 300, "count": 300}, 2007),
    ({"keyWord": "a", "queryType": 1, "show": 3}, 2004),
    ({"keyWord": "a", "queryType": 2}, 2003),
    ({"keyWord": "a", "queryType": 2, "mapBound": "1,2,3"}, 2005),
    ({"keyWord": "a", "queryType": 2, "mapBound": "120,30,190,31"}, 2006),
    ({"keyWord": "a", "queryType": 3, "pointLonlat": "120,30", "queryRadius": 10001}, 2006),
    ({"keyWord": "a", "queryType": 3, "pointLonlat": "120,30", "queryRadius": -1}, 2006),
    ({"keyWord": "a", "queryType": 3, "queryRadius": 100}, 2003),
    ({"keyWord": "a", "queryType": 3, "pointLonlat": "abc", "queryRadius": 100}, 2005),
    ({"keyWord": "a", "queryType": 10,
      "polygon": ",".join(f"120.{i:02d},30" for i in range(21))}, 2006),
    ({"keyWord": "a", "queryType": 10, "polygon": "120,30,121,30"}, 2001),
    ({"keyWord": "a", "queryType": 13, "dataTypes": "法院"}, 2004),
    ({"keyWord": "a", "queryType": 13}, 2003),
    ({"keyWord": "x" * 10_000, "queryType": 1}, 2001),
    ({"keyWord": "宏二路\x00", "queryType": 1}, 2001),
])
def test_bad_search(post: dict, code: int) -> None:
    assert err(search, post) == code


def test_legacy_search_has_no_v2_only_types() -> None:
    assert err(search, {"keyWord": "a", "queryType": 12, "specify": "156330100"},
               legacy=True) == 2004


def test_admin_requests() -> None:
    r = tianditu.parse_admin_v2("156330100", "1", "true")
    assert (r.keyword, r.children, r.geometry, r.by_code) == ("330100", 1, True, True)
    assert tianditu.parse_admin_v2("杭州", None, None).keyword == "杭州"
    assert err(tianditu.parse_admin_v2, "杭州", "4", None) == 2004
    assert err(tianditu.parse_admin_v2, "杭州", None, "yes") == 2004
    assert err(tianditu.parse_admin_v2, None, None, None) == 2003
    r = tianditu.parse_admin_v1({"searchWord": "北京", "searchType": "1", "needSubInfo": "true",
                                 "needAll": "false", "needPolygon": True, "needPre": "true"})
    assert (r.keyword, r.children, r.geometry, r.parents) == ("北京", 1, True, True)
    assert err(tianditu.parse_admin_v1, {"searchWord": "北京", "searchType": "2"}) == 2004
    assert err(tianditu.parse_admin_v1, {"searchWord": "北京", "searchType": "0"}) == 2001


# --- response shapes ------------------------------------------------------------------------

def test_geocoder_shape() -> None:
    body = tianditu_shapes.geocode(Geocoded(PLATE, "address", (PLATE,)), "宏二路2号")
    assert body["status"] == "0" and body["msg"] == "ok"
    loc = body["location"]
    assert loc == {"score": 98, "level": "门址", "lon": "120.2001", "lat": "30.2502",
                   "keyWord": "宏二路2号"}
    assert isinstance(loc["lon"], str) and isinstance(body["status"], str)
    assert tianditu_shapes.geocode(Geocoded(None, None), "x")["status"] == "101"
    assert "partial" not in body
    late = tianditu_shapes.geocode(Geocoded(None, None, partial=("hangzhou",)), "x")
    assert late["partial"] == ["hangzhou"]


def test_reverse_shape() -> None:
    r = Reversed(120.2002, 30.2502, "浙江省杭州市上城区宏二路2号", ADMIN, PLATE, ROAD, HALL)
    body = tianditu_shapes.reverse(r)
    assert body["status"] == "0"
    res = body["result"]
    assert res["location"] == {"lon": 120.2002, "lat": 30.2502}
    c = res["addressComponent"]
    assert (c["province_code"], c["city_code"], c["county_code"], c["town_code"]) == (
        "156330000", "156330100", "156330102", "156330102001")
    assert c["county"] == "上城区" and c["road"] == "宏二路" and c["poi"] == "上城区政务服务中心"
    assert c["address"] == "宏二路2号"
    for key in ("address", "road", "poi"):
        assert c[f"{key}_distance"] == c[f"{key}_distince"]
        assert isinstance(c[f"{key}_distance"], int)
    geod = Geod(ellps="GRS80")
    assert c["address_distance"] == round(geod.inv(120.2002, 30.2502, 120.2001, 30.2502)[2])
    assert c["address_position"] == "东"  # the point lies east of the door plate
    assert c["poi_distance"] == 1234


def test_search_pois_shape() -> None:
    req = search({"keyWord": "政务", "pointLonlat": "120.2,30.25", "queryRadius": 5000,
                  "queryType": 3})
    body = tianditu_shapes.search(SearchResult((HALL,), 1), req)
    assert body["resultType"] == 1 and body["count"] == "1" and body["keyWord"] == "政务"
    assert body["status"] == {"infocode": 1000, "cndesc": "服务正常"}
    p = body["pois"][0]
    assert p["lonlat"] == "120.21,30.26" and p["distance"] == "1.2km"
    assert (p["provinceCode"], p["cityCode"], p["countyCode"]) == (
        "156330000", "156330100", "156330102")
    assert (p["typeCode"], p["poiType"], p["phone"]) == ("190100", "101", "12345")
    legacy = search({"keyWord": "政务", "queryType": "1"}, legacy=True)
    assert tianditu_shapes.search(SearchResult((HALL,), 1), legacy)["pois"][0]["lonlat"] == \
        "120.21 30.26"
    assert tianditu_shapes.distance_text(799.4) == "799m"


def test_statistics_area_and_grouped_shapes() -> None:
    req = search({"keyWord": "学校", "queryType": 14, "specify": "156330100"})
    stats = (AreaCount("上城区", "330102", 12, 120.19, 30.23, True),
             AreaCount("西湖区", "330106", 30, 120.13, 30.26, True))
    body = tianditu_shapes.search(SearchResult((), 42, statistics=stats), req)
    assert body["resultType"] == 2
    s = body["statistics"]
    assert (s["count"], s["adminCount"]) == (42, 2)
    assert s["priorityCitys"][0] == {"name": "西湖区", "count": 30, "lonlat": "120.13,30.26",
                                     "ename": "", "adminCode": 156330106}
    assert s["allAdmins"][0]["adminCode"] == "156330102" and s["allAdmins"][0]["isleaf"]
    area = tianditu_shapes.search(SearchResult((), 0, area=CITY),
                                  search({"keyWord": "杭州", "queryType": 1}))
    assert area["resultType"] == 3
    assert area["area"] == {"name": "杭州市", "bound": "118.3,29.2,120.7,30.6",
                            "lonlat": "120.2,30.25", "adminCode": 156330100, "level": 10}
    req = search({"queryType": 13, "dataTypes": "公园,派出所", "specify": "156330100"})
    g = tianditu_shapes.grouped({"公园": SearchResult((), 0), "派出所": SearchResult((HALL,), 1)},
                                req)
    assert set(g) == {"公园", "派出所"} and "status" not in g
    assert g["派出所"]["resultType"] == 1 and g["派出所"]["count"] == "1"


def test_administrative_shapes() -> None:
    v2 = tianditu_shapes.admin_v2([CITY], geometry=True)
    assert v2["status"] == 200 and v2["message"] == "成功"
    d = v2["data"]["district"][0]
    assert (d["gb"], d["pgb"], d["level"], d["center"]) == (
        "156330100", "156330000", 3, {"lng": 120.2, "lat": 30.25})
    assert d["boundary"].startswith("MULTIPOLYGON")
    assert d["children"][0]["gb"] == "156330102" and d["children"][0]["level"] == 2
    assert "boundary" not in tianditu_shapes.admin_v2([CITY], geometry=False)["data"][
        "district"][0]
    city_place = Place("national:9", "city", "杭州市", 120.2, 30.25,
                       AdminChain("浙江省", "330000", "杭州市", "330100"))
    one = tianditu_shapes.admin_v2_suggestions([city_place, city_place, PLATE])
    assert one["data"] == {"suggestion": [{"name": "杭州市", "gb": "156330100"}], "district": []}
    v1 = tianditu_shapes.admin_v1([CITY], geometry=True, parents=True)
    assert v1["returncode"] == "100"
    item = v1["data"][0]
    assert item["lnt"] == 120.2 and item["lat"] == 30.25 and item["cityCode"] == "156330100"
    assert item["points"][0]["region"].split(",")[0] == "120 30"
    assert item["parents"]["province"]["name"] == "浙江省"
    assert item["child"][0]["name"] == "上城区"


def test_key_refusal_form() -> None:
    class Refused:
        status, title, detail = 403, "Invalid key", "This API key is unknown or revoked."

    resp = tianditu_shapes.key_refusal(Refused())
    assert resp.status_code == 403
    assert json.loads(bytes(resp.body)) == {"msg": "非法Key", "resolve": "请到API控制台重新申请Key",
                                           "code": 1,
                                           "detail": "This API key is unknown or revoked."}

    class Elsewhere:
        status, title, detail = 403, "Key not allowed here", "bound to other origins"

    body = json.loads(bytes(tianditu_shapes.key_refusal(Elsewhere()).body))
    assert body["msg"] == "域名不匹配" and body["code"] == 7


# --- our JSON API ---------------------------------------------------------------------------

def test_api_search_args_and_features() -> None:
    args = api.search_args({"q": "政务", "near": "120.2,30.25", "radius": "3000",
                            "category": "service_hall,hospital", "limit": "5", "offset": "5"})
    assert (args["near"], args["radius_m"], args["categories"], args["limit"],
            args["offset"]) == ((120.2, 30.25), 3000.0, ["service_hall", "hospital"], 5, 5)
    for bad, code in [({"q": "a", "limit": "101"}, 2006), ({"q": "a", "offset": "-1"}, 2007),
                      ({"q": "a", "limit": "x"}, 2001),
                      ({"q": "a", "radius": "10"}, 2003), ({}, 2003),
                      ({"q": "a", "bbox": "1,2,3"}, 2005), ({"q": "a", "category": "x"}, 2004),
                      ({"q": "a", "near": "120,30", "radius": "10001"}, 2006),
                      ({"q": "a" * 101}, 2001), ({"q": "a\x00"}, 2001)]:
        assert err(api.search_args, bad) == code, bad
    f = api.place_feature(PLATE, api.CRS84)
    assert f["geometry"]["coordinates"] == [120.2001, 30.2502]
    assert api.place_feature(PLATE, api.CRS4490)["geometry"]["coordinates"] == [30.2502,
                                                                                120.2001]
    assert f["properties"]["admin"]["county_code"] == "330102"
    links = api.page_links("http://h/api/places/search", {"q": "a"}, 10, 10, 35)
    assert {link["rel"] for link in links} == {"self", "next", "prev"}
    assert err(api.crs_of, {"crs": "EPSG:3857"}) == 2004
    swapped = api.division_feature(CITY, api.CRS4490)["geometry"]["coordinates"][0][0][0]
    assert list(swapped) == [30.0, 120.0]


def test_openapi_document_is_valid_openapi() -> None:
    doc = api.openapi("http://127.0.0.1:8200")
    validate(doc)  # openapi-spec-validator: raises on an invalid document
    params = {p["name"] for p in doc["paths"]["/api/places/search"]["get"]["parameters"]}
    assert {"q", "bbox", "near", "radius", "admin", "category", "limit", "offset",
            "crs"} <= params
