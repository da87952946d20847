"""/api/annotations (issue 16) on the shared federation's Hangzhou node, over real HTTP with the
users' real tokens: a user's own annotations only (another user's id is 404 for every method,
and nothing changes); shared links read-only for anyone; bad input 400 problem+json; anonymous
401; the node's cookie needs same-origin JSON (CSRF); hostile texts escaped in KML, which
xml.etree and GDAL both read back with the right names and coordinates."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pyogrio
import pytest
from publish_helpers import sign_in_users

PASSWORD = "Annotation-Api-Pass-1"
HOSTILE = '<img src=x onerror="window.hacked=1">标注 & ]]> "q"'
KML = "{http://www.opengis.net/kml/2.2}"
POINT = {"type": "Point", "coordinates": [120.2130, 30.2460]}
LINE = {"type": "LineString", "coordinates": [[120.15, 30.25], [120.17, 30.26], [120.19, 30.25]]}
POLYGON = {"type": "Polygon", "coordinates": [[[120.1, 30.2], [120.2, 30.2], [120.2, 30.3],
                                               [120.1, 30.3], [120.1, 30.2]]]}


def doc(geometry: Any, title: str = "t", note: str = "") -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"title": title, "note": note}}


@pytest.fixture(scope="module")
def users(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "annapi", {"a": [], "b": [], "c": []},
                         PASSWORD)


@pytest.fixture(scope="module")
def demo_keys(federation) -> dict[str, str]:
    """The demo developer `geoplat up` made: its server and browser keys."""
    from services.provision import demo_file

    return json.loads(demo_file(federation).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def api(urls) -> Any:
    with httpx.Client(base_url=urls["hangzhou"], timeout=60) as client:
        yield client


def create(api: Any, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/api/annotations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()


def test_anonymous_callers_and_keys_are_refused(api, demo_keys) -> None:
    for method, path in (("GET", "/api/annotations"), ("POST", "/api/annotations"),
                         ("GET", "/api/annotations/" + "0" * 32),
                         ("DELETE", "/api/annotations/" + "0" * 32),
                         ("POST", "/api/annotations/" + "0" * 32 + "/share")):
        for params in ({}, {"tk": demo_keys["server_key"]}):
            r = api.request(method, path, params=params,
                            json=doc(POINT) if method == "POST" else None)
            assert r.status_code == 401, (method, path, params, r.text)
            assert r.headers["content-type"] == "application/problem+json"


def test_a_user_sees_changes_and_shares_only_their_own(api, users) -> None:
    a, b = users["a"], users["b"]
    made = [create(api, a, doc(g, f"A {g['type']}", "note\nsecond line"))
            for g in (POINT, LINE, POLYGON)]
    point = made[0]
    assert point["geometry"] == POINT and point["properties"]["share"] is None
    mine = api.get("/api/annotations", headers=a).json()
    assert {f["id"] for f in made} <= {f["id"] for f in mine["features"]}
    assert api.get("/api/annotations", headers=b).json()["features"] == []

    # B touching A's annotation: 404 like an unknown id, for every method; nothing changes
    path = f"/api/annotations/{point['id']}"
    assert api.get(path, headers=b).status_code == 404
    assert api.put(path, headers=b, json=doc(LINE, "B was here")).status_code == 404
    assert api.delete(path, headers=b).status_code == 404
    assert api.post(path + "/share", headers=b).status_code == 404
    unknown = api.get("/api/annotations/" + "f" * 32, headers=b)
    assert unknown.status_code == 404 and unknown.json() == api.get(path, headers=b).json()
    assert api.get(path, headers=a).json() == point

    # A edits: a PUT changes what it names and keeps the rest
    edited = api.put(path, headers=a, json={"type": "Feature", "properties": {"title": "新"}})
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["properties"]["title"] == "新" and body["properties"]["note"] == "note\nsecond line"
    assert body["geometry"] == POINT
    moved = api.put(path, headers=a, json={"type": "Feature", "geometry": {
        "type": "Point", "coordinates": [120.3, 30.3]}}).json()
    assert moved["geometry"]["coordinates"] == [120.3, 30.3] and moved["properties"]["title"] == "新"

    # sharing: an unguessable token; the link is read-only and names no share token
    shared = api.post(path + "/share", headers=a).json()
    token = shared["properties"]["share"]
    assert isinstance(token, str) and len(token) == 32
    again = api.post(path + "/share", headers=a).json()
    assert again["properties"]["share"] == token  # sharing twice keeps the link
    seen = api.get(f"/api/annotations/shared/{token}")  # anyone, no credentials
    assert seen.status_code == 200
    props = seen.json()["properties"]
    assert props["title"] == "新" and props["owner"] == "annapi_a" and "share" not in props
    assert api.put(f"/api/annotations/shared/{token}", json=doc(POINT)).status_code == 405
    assert api.get(f"/api/annotations/shared/{token[:-1]}x").status_code == 404
    assert api.get("/api/annotations/shared/<script>").status_code == 404
    # B still lists nothing and cannot edit through the shared id
    assert api.get("/api/annotations", headers=b).json()["features"] == []
    assert api.put(path, headers=b, json=doc(POINT, "B")).status_code == 404
    assert api.delete(path + "/share", headers=a).json()["properties"]["share"] is None
    assert api.get(f"/api/annotations/shared/{token}").status_code == 404

    assert api.delete(path, headers=a).status_code == 204
    assert api.get(path, headers=a).status_code == 404
    assert api.delete(path, headers=a).status_code == 404


BAD_GEOMETRIES = {
    "multipoint": {"type": "MultiPoint", "coordinates": [[120, 30]]},
    "collection": {"type": "GeometryCollection", "geometries": []},
    "no geometry": None,
    "bow tie": {"type": "Polygon", "coordinates": [[[120.1, 30.1], [120.2, 30.2], [120.2, 30.1],
                                                    [120.1, 30.2], [120.1, 30.1]]]},
    "open ring": {"type": "Polygon", "coordinates": [[[120.1, 30.1], [120.2, 30.1],
                                                      [120.2, 30.2], [120.1, 30.2]]]},
    "short ring": {"type": "Polygon", "coordinates": [[[120.1, 30.1], [120.2, 30.1],
                                                       [120.1, 30.1]]]},
    "one-point line": {"type": "LineString", "coordinates": [[120.1, 30.1], [120.1, 30.1]]},
    "outside China": {"type": "Point", "coordinates": [2.35, 48.85]},
    "lat lon swapped": {"type": "Point", "coordinates": [30.25, 120.21]},
    "strings": {"type": "Point", "coordinates": ["120", "30"]},
    "booleans": {"type": "Point", "coordinates": [True, False]},
    "four numbers": {"type": "Point", "coordinates": [120, 30, 0, 1]},
    "nested wrong": {"type": "LineString", "coordinates": [120, 30]},
    "too many positions": {"type": "LineString", "coordinates": [
        [120 + i * 1e-5, 30.0] for i in range(5001)]},
}


@pytest.mark.parametrize("name", sorted(BAD_GEOMETRIES))
def test_bad_geometries_are_400(api, users, name) -> None:
    r = api.post("/api/annotations", headers=users["c"], json=doc(BAD_GEOMETRIES[name]))
    assert r.status_code == 400, (name, r.text)
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 400 and problem["member"] == "geometry"


def test_bad_bodies_and_texts_are_refused(api, users) -> None:
    c = users["c"]
    nan = json.dumps(doc({"type": "Point", "coordinates": [math.nan, 30.0]}))
    for body, status in (
            (doc(POINT, ""), 400), (doc(POINT, "   "), 400), (doc(POINT, "x" * 201), 400),
            (doc(POINT, "line\nbreak"), 400), (doc(POINT, "bell\x07"), 400),
            (doc(POINT, "t", "n" * 4001), 400), ({**doc(POINT), "properties": [1]}, 400),
            ({"geometry": POINT, "title": "not a feature"}, 400), ([1, 2], 400),
            ({**doc(POINT), "properties": {"title": 5}}, 400)):
        r = api.post("/api/annotations", headers=c, json=body)
        assert r.status_code == status, (body if len(str(body)) < 200 else "long", r.text)
        assert r.headers["content-type"] == "application/problem+json"
    for content, ctype, status in ((nan, "application/json", 400),
                                   ("{not json", "application/json", 400),
                                   (json.dumps(doc(POINT)), "text/plain", 415),
                                   ("[" * 10 + " " * (600 * 1024), "application/json", 413)):
        r = api.post("/api/annotations", headers={**c, "Content-Type": ctype}, content=content)
        assert r.status_code == status, (ctype, status, r.text[:200])
    assert api.get("/api/annotations", headers=c, params={"f": "shp"}).status_code == 400
    assert api.put("/api/annotations/" + "0" * 32, headers=c,
                   json={"type": "Feature", "properties": {}}).status_code == 400
    assert api.get("/api/annotations", headers=c).json()["features"] == []  # nothing was kept


def test_cookie_changes_need_this_origin(api, users, urls) -> None:
    token = users["c"]["Authorization"].split()[1]
    cookie = {"Cookie": f"geoplat_at_hangzhou={token}"}
    r = api.post("/api/annotations", headers={**cookie, "Origin": "http://evil.example"},
                 json=doc(POINT, "forged"))
    assert r.status_code == 403 and r.json()["title"] == "CSRF check failed"
    ok = api.post("/api/annotations", headers={**cookie, "Origin": urls["hangzhou"]},
                  json=doc(POINT, "own page"))
    assert ok.status_code == 201, ok.text
    gone = api.delete(f"/api/annotations/{ok.json()['id']}",
                      headers={**cookie, "Origin": "http://evil.example"})
    assert gone.status_code == 403
    assert api.delete(f"/api/annotations/{ok.json()['id']}", headers={
        **cookie, "Origin": urls["hangzhou"], "Content-Type": "application/json"}
    ).status_code == 204


def test_kml_and_geojson_exports_escape_and_read_back(api, users, tmp_path) -> None:
    a = users["a"]
    line = create(api, a, doc(LINE, HOSTILE, "<b>note</b> & <![CDATA[x]]>"))
    polygon = create(api, a, doc(POLYGON, "面 polygon"))
    r = api.get("/api/annotations", headers=a, params={"f": "kml"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.google-earth.kml+xml")
    assert "attachment" in r.headers["content-disposition"]
    assert b"<img" not in r.content and b"&lt;img src=x" in r.content
    root = ET.fromstring(r.content)
    marks = {m.findtext(f"{KML}name"): m for m in root.iter(f"{KML}Placemark")}
    assert HOSTILE in marks and "面 polygon" in marks
    assert marks[HOSTILE].findtext(f"{KML}description") == "<b>note</b> & <![CDATA[x]]>"
    coords = marks[HOSTILE].findtext(f"{KML}LineString/{KML}coordinates")
    assert [[float(v) for v in p.split(",")] for p in coords.split()] == LINE["coordinates"]
    ring = marks["面 polygon"].findtext(
        f"{KML}Polygon/{KML}outerBoundaryIs/{KML}LinearRing/{KML}coordinates")
    assert [[float(v) for v in p.split(",")] for p in ring.split()] == POLYGON["coordinates"][0]

    # GDAL's own KML reader agrees on names and geometries
    path = tmp_path / "annotations.kml"
    path.write_bytes(r.content)
    frame = pyogrio.read_dataframe(path)
    by_name = dict(zip(frame["Name"], frame.geometry, strict=True))
    assert [c[:2] for c in by_name[HOSTILE].coords] == [tuple(p) for p in LINE["coordinates"]]
    assert [c[:2] for c in by_name["面 polygon"].exterior.coords] == [
        tuple(p) for p in POLYGON["coordinates"][0]]

    one = api.get(f"/api/annotations/{line['id']}", headers=a, params={"f": "kml"})
    assert one.status_code == 200 and ET.fromstring(one.content).findtext(
        f"{KML}Document/{KML}Placemark/{KML}name") == HOSTILE
    gj = api.get("/api/annotations", headers=a, params={"f": "geojson"})
    assert "attachment" in gj.headers["content-disposition"]
    assert {f["id"] for f in gj.json()["features"]} >= {line["id"], polygon["id"]}
    shared = api.post(f"/api/annotations/{polygon['id']}/share", headers=a).json()
    kml = api.get(f"/api/annotations/shared/{shared['properties']['share']}", params={"f": "kml"})
    assert kml.status_code == 200 and [m.findtext(f"{KML}name") for m in ET.fromstring(
        kml.content).iter(f"{KML}Placemark")] == ["面 polygon"]


def test_a_user_keeps_at_most_the_limit(api, main_db, urls) -> None:
    from services.annotations.model import MAX_PER_USER

    d = sign_in_users(main_db, urls["national"], "annlimit", {"d": []}, PASSWORD)["d"]
    for i in range(MAX_PER_USER):
        r = api.post("/api/annotations", headers=d, json=doc(POINT, f"n{i}"))
        assert r.status_code == 201, (i, r.text)
    over = api.post("/api/annotations", headers=d, json=doc(POINT, "one too many"))
    assert over.status_code == 409 and over.headers["content-type"] == "application/problem+json"
    assert len(api.get("/api/annotations", headers=d).json()["features"]) == MAX_PER_USER


def test_openapi_describes_the_routes(api) -> None:
    r = api.get("/api/annotations/openapi")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert set(paths) == {"/api/annotations", "/api/annotations/{annotation_id}",
                          "/api/annotations/{annotation_id}/share",
                          "/api/annotations/shared/{token}"}
    links = api.get("/").json()["links"]
    assert any(link["href"].endswith("/api/annotations/openapi") for link in links)


def test_annotations_are_kept_at_the_node_they_were_made_on(api, users, urls) -> None:
    a = users["a"]
    here = create(api, a, doc(POINT, "kept at Hangzhou"))
    zj = httpx.get(urls["zhejiang"] + "/api/annotations", headers=a, timeout=60)
    assert zj.status_code == 200
    assert here["id"] not in {f["id"] for f in zj.json()["features"]}
    assert httpx.get(f"{urls['zhejiang']}/api/annotations/{here['id']}", headers=a,
                     timeout=60).status_code == 404
