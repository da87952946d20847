"""Bad input on the place-name routes of a running node (the shared federation): the Tianditu
routes answer Tianditu's error form (HTTP 200 and `status.infocode`, or `status` "404" on the
geocoder, 400 for an unknown queryType-13 category, as Tianditu), /api/places answers RFC 9457
problem+json; never a 5xx, never internals; injection text changes nothing.

The requests are built as client code builds them: the JSON (or Tianditu's single-quoted
pseudo-JSON) put into `postStr`/`ds` unencoded, as in the official examples; httpx percent-
encodes what a URL cannot carry, as a browser does."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests

INTERNALS = ("Traceback", "psycopg", "SELECT ", "geoplat_places", "/work/", ".py\"", "line ")


def get(base: str, path: str, **params: str) -> requests.Response:
    # requests, not httpx: httpx refuses URLs over 64 KB, and 10,000 Han characters are ~90 KB
    return requests.get(base + path, params=params, timeout=60)


def clean(r: requests.Response | httpx.Response) -> Any:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    for word in INTERNALS:
        assert word not in r.text, (word, r.text[:300])
    return r.json()


def post(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False)


LONG = "宏路" * 100 + "x" * 9_800  # 10,000 characters, ~11 KB of URL: reaches the app
SEARCH_CASES = [
    # (postStr, infocode)
    ("{'keyWord':'公园','queryType':1", 2002),                    # malformed
    ("[1,2,3]", 2002),
    (post({"keyWord": "公园", "queryType": 99}), 2004),           # unknown queryType
    (post({"keyWord": "公园", "queryType": 8}), 2004),
    (post({"keyWord": "公园", "queryType": 1, "count": 301}), 2007),  # count over the limit
    (post({"keyWord": "公园", "queryType": 1, "start": 400}), 2007),
    (post({"keyWord": "公园", "queryType": 1, "start": 300, "count": 300}), 2007),
    (post({"keyWord": "公园", "queryType": 3, "pointLonlat": "120.2,30.25",
           "queryRadius": 50_000}), 2006),                       # radius over the limit
    (post({"keyWord": "公园", "queryType": 10,
           "polygon": ",".join(f"{120 + i / 1000},30.2" for i in range(150))}), 2006),
    (post({"keyWord": "公园", "queryType": 2, "mapBound": "120,30,181,31",
           "level": 12}), 2006),                                 # out of range
    (post({"keyWord": "公园", "queryType": 3, "pointLonlat": "abc,def",
           "queryRadius": 100}), 2005),
    (post({"keyWord": LONG, "queryType": 1}), 2001),             # 10,000 characters
    (post({"keyWord": "公园\u0000", "queryType": 1}), 2001),     # NUL
    (post({"keyWord": "公园", "queryType": 12}), 2003),          # specify missing
    (post({"queryType": 1}), 2003),
]


@pytest.mark.parametrize("path", ["/v2/search", "/search"])
@pytest.mark.parametrize(("post_str", "infocode"), SEARCH_CASES)
def test_search_bad_input(urls: dict[str, str], path: str, post_str: str, infocode: int) -> None:
    if path == "/search" and infocode == 2003 and "queryType\": 12" in post_str:
        infocode = 2004  # the legacy service has no queryType 12
    r = get(urls["hangzhou"], path, postStr=post_str, type="query")
    assert r.status_code == 200, r.text[:300]
    body = clean(r)
    assert body["status"]["infocode"] == infocode, body
    assert isinstance(body["status"]["cndesc"], str) and body["status"]["cndesc"]


def test_search_without_postStr_and_bad_type(urls: dict[str, str]) -> None:
    assert clean(get(urls["hangzhou"], "/v2/search", type="query"))["status"]["infocode"] == 2003
    r = get(urls["hangzhou"], "/v2/search", postStr=post({"keyWord": "a"}), type="drop")
    assert clean(r)["status"]["infocode"] == 2004


def test_unknown_category_is_http_400_as_tianditu(urls: dict[str, str]) -> None:
    r = get(urls["hangzhou"], "/v2/search", type="query",
            postStr=post({"queryType": 13, "dataTypes": "公园,没有这类", "specify": "156330100"}))
    assert r.status_code == 400
    assert clean(r)["status"]["infocode"] == 2004


@pytest.mark.parametrize(("params", "infocode"), [
    ({"ds": "{\"keyWord\":"}, 2002),
    ({"ds": post({"keyWord": LONG})}, 2001),
    ({"ds": post({"keyWord": "宏二路\u0000"})}, 2001),
    ({"ds": post({})}, 2003),
    ({}, 2003),
    ({"postStr": "{'lon':116.37304,'lat':", "type": "geocode"}, 2002),
    ({"postStr": "{'lon':190,'lat':39.9,'ver':1}", "type": "geocode"}, 2006),
    ({"postStr": "{'lon':'x','lat':39.9,'ver':1}", "type": "geocode"}, 2005),
    ({"postStr": "{'lat':39.9,'ver':1}", "type": "geocode"}, 2003),
    ({"postStr": "{'lon':120.2,'lat':30.2,'ver':1}", "type": "other"}, 2004),
])
def test_geocoder_bad_input(urls: dict[str, str], params: dict[str, str], infocode: int) -> None:
    r = get(urls["hangzhou"], "/geocoder", **params)
    assert r.status_code == 200
    body = clean(r)
    assert body["status"] == "404" and body["infocode"] == infocode and body["msg"], body


@pytest.mark.parametrize(("path", "params", "infocode"), [
    ("/v2/administrative", {"childLevel": "1"}, 2003),
    ("/v2/administrative", {"keyword": "杭州", "childLevel": "9"}, 2004),
    ("/v2/administrative", {"keyword": "杭州", "extensions": "maybe"}, 2004),
    ("/v2/administrative", {"keyword": LONG}, 2001),
    ("/v2/administrative", {"keyword": "杭州\u0000"}, 2001),
    ("/administrative", {"postStr": "{\"searchWord\":"}, 2002),
    ("/administrative", {"postStr": post({"searchWord": "杭州", "searchType": "7"})}, 2004),
    ("/administrative", {"postStr": post({"searchType": "1"})}, 2003),
    ("/administrative", {"postStr": post({"searchWord": "杭州", "needPolygon": "perhaps"})},
     2004),
])
def test_administrative_bad_input(urls: dict[str, str], path: str, params: dict[str, str],
                                  infocode: int) -> None:
    r = get(urls["hangzhou"], path, **params)
    assert r.status_code == 200
    body = clean(r)
    assert body["infocode"] == infocode, body
    if path == "/v2/administrative":
        assert body["status"] != 200 and body["message"]
    else:
        assert body["returncode"] != "100" and body["msg"]


@pytest.mark.parametrize(("path", "params", "infocode"), [
    ("/api/places/geocode", {}, 2003),
    ("/api/places/geocode", {"address": LONG}, 2001),
    # NUL: the node's InputGuard (services/web/guards.py) refuses and audits it first
    ("/api/places/geocode", {"address": "宏二路\u0000"}, None),
    ("/api/places/geocode", {"address": "宏二路\u001b[2J"}, 2001),
    ("/api/places/geocode", {"address": "宏二路", "crs": "EPSG:3857"}, 2004),
    ("/api/places/reverse", {"lon": "120.2"}, 2003),
    ("/api/places/reverse", {"lon": "abc", "lat": "30"}, 2005),
    ("/api/places/reverse", {"lon": "200", "lat": "30"}, 2006),
    ("/api/places/search", {}, 2003),
    ("/api/places/search", {"q": "公园", "limit": "1000"}, 2006),
    ("/api/places/search", {"q": "公园", "offset": "-5"}, 2007),
    ("/api/places/search", {"q": "公园", "near": "120.2,30.25", "radius": "999999"}, 2006),
    ("/api/places/search", {"q": "公园", "bbox": "1,2,3"}, 2005),
    ("/api/places/search", {"q": "公园", "category": "casino"}, 2004),
    ("/api/places/search", {"q": LONG}, 2001),
    ("/api/places/suggest", {}, 2003),
    ("/api/places/suggest", {"q": "宏", "limit": "0"}, 2006),
    ("/api/places/admin/330100", {"children": "7"}, 2006),
    ("/api/places/admin/330100", {"geometry": "perhaps"}, 2004),
    ("/api/places/admin/%E5%AE%8F%01", {}, 2001),  # control character in the path
])
def test_api_bad_input(urls: dict[str, str], path: str, params: dict[str, str],
                       infocode: int | None) -> None:
    r = get(urls["hangzhou"], path, **params)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = clean(r)
    assert body["status"] == 400 and body.get("infocode") == infocode and body["detail"], body


def test_bad_key_answers_as_tianditu_and_as_problem(urls: dict[str, str]) -> None:
    base = urls["hangzhou"]
    r = httpx.get(base + "/geocoder", params={"ds": post({"keyWord": "宏二路2号"}),
                                              "tk": "0123456789abcdef0123456789abcdef"},
                  timeout=60)
    assert r.status_code == 403
    body = clean(r)
    # Tianditu's own body for an unknown key (its gateway's, quoted by public client code)
    assert body["msg"] == "非法Key" and body["code"] == 1 and body["resolve"] and body["detail"]
    r = httpx.get(base + "/v2/search", params={"postStr": post({"keyWord": "a"}), "type": "query",
                                               "tk": "not a key!"}, timeout=60)
    assert r.status_code == 403 and clean(r)["code"] == 1
    r = httpx.get(base + "/api/places/geocode",
                  params={"address": "宏二路2号", "tk": "0123456789abcdef0123456789abcdef"},
                  timeout=60)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    # a bad bearer token is refused before any parsing, in each route's own form
    r = httpx.get(base + "/v2/administrative", params={"keyword": "杭州"},
                  headers={"Authorization": "Bearer nonsense"}, timeout=60)
    assert r.status_code == 401 and clean(r)["code"] == 401


def test_openapi_document_is_public_and_linked(urls: dict[str, str]) -> None:
    base = urls["hangzhou"]
    doc = httpx.get(base + "/api/places/openapi", timeout=60)
    assert doc.status_code == 200
    spec = doc.json()
    assert spec["openapi"].startswith("3.") and spec["servers"][0]["url"] == base
    assert set(spec["paths"]) == {"/api/places/geocode", "/api/places/reverse",
                                  "/api/places/search", "/api/places/suggest",
                                  "/api/places/admin/{code}"}
    landing = httpx.get(base + "/", headers={"Accept": "application/json"}, timeout=60).json()
    assert base + "/api/places/openapi" in {link["href"] for link in landing["links"]}


@pytest.mark.parametrize("path", ["/v2/search", "/geocoder", "/api/places/search"])
def test_a_query_string_beyond_every_limit(urls: dict[str, str], path: str) -> None:
    # 10,000 Han characters are ~90 KB percent-encoded, over the 64 KB of request line the
    # node's nginx takes: its JSON 414 with Tianditu's infocode, still no 5xx
    r = get(urls["hangzhou"], path, type="query", ds=post({"keyWord": "宏" * 10_000}),
            q="宏" * 10_000, postStr=post({"keyWord": "宏" * 10_000, "queryType": 1}))
    assert r.status_code == 414
    body = clean(r)
    assert body["status"]["infocode"] == 2001 and body["code"] == 414
