"""Routing on the sample network (issue 15): routes equal pgRouting's Dijkstra computed here
over the node's topology table, one-way streets hold for driving and not for walking, a point
in West Lake snaps to the nearest edge and says how far, Tianditu's /drive XML carries what its
clients read, and bad input is refused in each style's form (never a 5xx)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg2
import psycopg2.extras
import pytest
from pyproj import Geod

from nodes import federation as federation_mod
from services.access import rules
from services.access.require import guard_group
from services.maps import topology
from services.maps.routes import PATHS, RoutingRoutes
from services.places.tianditu_shapes import key_refusal

GEOD = Geod(ellps="GRS80")
WEST_LAKE = (120.1445, 30.2445)  # the centre of the sample's lake (data-samples/generate_hangzhou.py)


@pytest.fixture(scope="module")
def hz(federation: Any) -> Iterator[Any]:
    conn = psycopg2.connect(federation_mod.node_dsn(federation, federation.node("hangzhou")))
    conn.autocommit = True
    cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    yield cur
    conn.close()


def api(urls: dict[str, str], node: str = "hangzhou", **params: str) -> httpx.Response:
    return httpx.get(urls[node] + "/api/route", params=params, timeout=60)


def drive(urls: dict[str, str], post: Any, node: str = "hangzhou", **params: str
          ) -> httpx.Response:
    text = post if isinstance(post, str) else json.dumps(post)
    return httpx.get(urls[node] + "/drive", params={"postStr": text, "type": "search", **params},
                     timeout=60)


def ll(p: tuple[float, float]) -> str:
    return f"{p[0]},{p[1]}"


def door_plate(cur: Any, road: str, number: str) -> tuple[float, float]:
    cur.execute("SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM addresses"
                " WHERE road = %s AND number = %s", (road, number))
    row = cur.fetchone()
    assert row is not None, (road, number)
    return row["x"], row["y"]


# --------------------------------------------------------------------------- independent check

def nearest_edge(cur: Any, p: tuple[float, float], flag: str = "drive_main") -> dict[str, Any]:
    """The edge nearest the point by geodesic distance (every edge of the graph's main part:
    no index, no candidate list), with the point's fraction along it."""
    cur.execute(f"SELECT id, name, source, target, cost, reverse_cost,"
                f" ST_LineLocatePoint(geom, pt) AS f,"
                f" ST_Distance(geom::geography, pt::geography) AS d"
                f" FROM geoplat_route_edges, ST_SetSRID(ST_MakePoint(%s, %s), 4490) pt"
                f" WHERE {flag} ORDER BY d, id LIMIT 1", p)
    return cur.fetchone()


def dijkstra_cost(cur: Any, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Driving seconds from a to b: each end joins its nearest edge at its projection, and
    pgr_dijkstra over the whole topology table joins the edges' vertices."""
    s, t = nearest_edge(cur, a), nearest_edge(cur, b)
    # leaving a: to the edge's source against its direction, or to its target along it
    leave = {s["source"]: s["reverse_cost"] * s["f"] if s["reverse_cost"] >= 0 else None,
             s["target"]: s["cost"] * (1 - s["f"]) if s["cost"] >= 0 else None}
    reach = {t["source"]: t["cost"] * t["f"] if t["cost"] >= 0 else None,
             t["target"]: t["reverse_cost"] * (1 - t["f"]) if t["reverse_cost"] >= 0 else None}
    cur.execute("SELECT start_vid, end_vid, agg_cost FROM pgr_dijkstra("
                "'SELECT id, source, target, cost, reverse_cost FROM geoplat_route_edges',"
                " %s::bigint[], %s::bigint[], directed => true) WHERE edge = -1",
                (list(leave), list(reach)))
    between = {(r["start_vid"], r["end_vid"]): r["agg_cost"] for r in cur.fetchall()}
    best = float("inf")
    if s["id"] == t["id"]:  # both on one edge: straight along it, if its direction allows
        along = s["cost"] if t["f"] >= s["f"] else s["reverse_cost"]
        if along >= 0:
            best = along * abs(t["f"] - s["f"])
    for u, cu in leave.items():
        for v, cv in reach.items():
            d = 0.0 if u == v else between.get((u, v))
            if cu is not None and cv is not None and d is not None:
                best = min(best, cu + d + cv)
    return best


# --------------------------------------------------------------------------- tests

def test_every_routing_route_has_its_rule() -> None:
    routes = guard_group(rules.ROUTING, RoutingRoutes(None).routes())  # type: ignore[arg-type]
    kinds = {str(getattr(r, "path", "")): r.requirement for r in routes}  # type: ignore[attr-defined]
    assert set(kinds) == set(PATHS) == set(rules.ROUTING)
    assert kinds["/api/route"].kind == "search" and kinds["/api/route"].refusal is None
    assert kinds["/drive"].kind == "search" and kinds["/drive"].refusal is key_refusal
    assert rules.GROUPS["routing"] is rules.ROUTING


def test_topology_is_built_from_the_roads(federation: Any, hz: Any) -> None:
    hz.execute("SELECT figures FROM geoplat_route_build")
    figures = hz.fetchone()["figures"]
    assert figures["layers"] == ["roads"] and figures["edges"] > 5000
    hz.execute("SELECT count(*) AS n, count(*) FILTER (WHERE oneway = 1) AS one,"
               " count(*) FILTER (WHERE walk_cost < 0) AS closed,"
               " count(*) FILTER (WHERE kind = 'expressway') AS expressways,"
               " count(DISTINCT source) AS sources FROM geoplat_route_edges")
    row = hz.fetchone()
    assert row["n"] == figures["edges"] and row["one"] > 20
    assert row["closed"] == row["expressways"] > 0  # pedestrians stay off expressways
    # noded: crossing roads share a vertex (an arterial meets the grid of streets it crosses)
    hz.execute("SELECT count(*) AS n FROM (SELECT v FROM (SELECT source v FROM geoplat_route_edges"
               " UNION ALL SELECT target FROM geoplat_route_edges) x GROUP BY v"
               " HAVING count(*) >= 4) j")
    assert hz.fetchone()["n"] > 1000
    # the same inputs again: nothing is written
    node = federation.node("hangzhou")
    res = topology.build(federation_mod.node_dsn(federation, node), node.id,
                         federation_mod.load_layers(federation, node))
    assert res.unchanged


def test_publish_hook_rebuilds_from_the_served_layers(ctx: Any, hz: Any) -> None:
    """Every publish, rollback and retire calls the hook (layers/publish.py after_change); it
    rebuilds from the node's runtime layers: the same inputs here, so nothing is rewritten."""
    from services.publish_hooks import HOOKS, routing_hook

    assert HOOKS.refresh_routing is routing_hook
    hz.execute("SELECT built_at, checksum FROM geoplat_route_build")
    before = hz.fetchone()
    routing_hook(ctx)
    hz.execute("SELECT built_at, checksum FROM geoplat_route_build")
    assert hz.fetchone() == before


def test_route_between_door_plates_equals_pgr_dijkstra(urls: dict[str, str], hz: Any) -> None:
    for (ra, na), (rb, nb) in [(("宏二路", "2号"), ("寿湖路", "43号")),
                               (("寿湖路", "17号"), ("宏二路", "8号"))]:
        a, b = door_plate(hz, ra, na), door_plate(hz, rb, nb)
        r = api(urls, **{"from": ll(a), "to": ll(b), "mode": "drive"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        body = r.json()
        want = dijkstra_cost(hz, a, b)
        assert body["duration"] == pytest.approx(want, abs=0.06), (body["duration"], want)
        line = body["features"][0]
        assert line["geometry"]["type"] == "LineString" and len(line["geometry"]["coordinates"]) > 2
        assert line["properties"]["duration"] == body["duration"]
        # the line's own length is the distance announced (same ellipsoid)
        xs, ys = zip(*line["geometry"]["coordinates"], strict=True)
        assert GEOD.line_length(xs, ys) == pytest.approx(body["distance"], rel=0.01)
        steps = body["steps"]
        assert steps[0]["turn"] == "depart" and steps[-1]["turn"] == "arrive"
        assert steps[0]["road"] and all(s["instruction"] for s in steps)
        assert sum(s["distance"] for s in steps) == pytest.approx(body["distance"], abs=1)
        assert sum(s["duration"] for s in steps) == pytest.approx(body["duration"], abs=1)
        assert {s["turn"] for s in steps[1:-1]} <= {"straight", "slight_left", "left",
                                                    "sharp_left", "slight_right", "right",
                                                    "sharp_right", "uturn"}
        for end, p in (("from", a), ("to", b)):
            snap = body["snap"][end]
            e = nearest_edge(hz, p)
            assert snap["distance"] == pytest.approx(e["d"], abs=0.2)
            assert snap["requested"] == [p[0], p[1]]


def _one_way_edge(hz: Any) -> dict[str, Any]:
    hz.execute("SELECT id, name, length_m, ST_X(ST_LineInterpolatePoint(geom, 0.3)) AS ax,"
               " ST_Y(ST_LineInterpolatePoint(geom, 0.3)) AS ay,"
               " ST_X(ST_LineInterpolatePoint(geom, 0.7)) AS bx,"
               " ST_Y(ST_LineInterpolatePoint(geom, 0.7)) AS by"
               " FROM geoplat_route_edges WHERE oneway = 1 AND drive_main AND walk_main"
               " AND length_m > 150 ORDER BY id LIMIT 1")
    e = hz.fetchone()
    assert e is not None
    return e


def test_one_way_street_is_respected_by_driving_not_walking(urls: dict[str, str],
                                                            hz: Any) -> None:
    e = _one_way_edge(hz)
    a, b = (e["ax"], e["ay"]), (e["bx"], e["by"])
    along = 0.4 * e["length_m"]
    ab = api(urls, **{"from": ll(a), "to": ll(b)}).json()
    ba = api(urls, **{"from": ll(b), "to": ll(a)}).json()
    assert ab["distance"] == pytest.approx(along, rel=0.02)
    assert [s["road"] for s in ab["steps"]] == [e["name"], e["name"]]
    # against the one-way: round the block
    assert ba["distance"] > along + 100, (ba["distance"], along)
    assert len(ba["steps"]) > 3
    assert ba["duration"] == pytest.approx(dijkstra_cost(hz, b, a), abs=0.06)
    walk_ab = api(urls, **{"from": ll(a), "to": ll(b), "mode": "walk"}).json()
    walk_ba = api(urls, **{"from": ll(b), "to": ll(a), "mode": "walk"}).json()
    assert walk_ab["distance"] == pytest.approx(along, rel=0.02)
    assert walk_ba["distance"] == pytest.approx(along, rel=0.02)
    # walking speed: 5 km/h
    assert walk_ba["duration"] == pytest.approx(walk_ba["distance"] / (5 / 3.6), rel=0.01)
    assert walk_ba["mode"] == "walk" and ab["mode"] == "drive"


def test_point_in_west_lake_snaps_to_the_nearest_edge(urls: dict[str, str], hz: Any) -> None:
    hz.execute("SELECT count(*) AS n FROM geoplat_route_edges"
               " WHERE ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4490)"
               "::geography, 300)", WEST_LAKE)
    assert hz.fetchone()["n"] == 0  # open water: no road within 300 m
    town = door_plate(hz, "寿湖路", "43号")
    body = api(urls, **{"from": ll(WEST_LAKE), "to": ll(town)}).json()
    snap = body["snap"]["from"]
    e = nearest_edge(hz, WEST_LAKE)
    assert snap["distance"] > 300
    assert snap["distance"] == pytest.approx(e["d"], abs=0.5)
    assert body["features"][1]["properties"]["snap_distance"] == snap["distance"]
    # at the projection on that edge, not at one of its vertices
    hz.execute("SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4490)"
               "::geography) AS on_edge, ST_Distance(ST_StartPoint(geom)::geography,"
               " ST_SetSRID(ST_MakePoint(%s, %s), 4490)::geography) AS to_start,"
               " ST_Distance(ST_EndPoint(geom)::geography,"
               " ST_SetSRID(ST_MakePoint(%s, %s), 4490)::geography) AS to_end"
               " FROM geoplat_route_edges WHERE id = %s",
               (*snap["location"], *snap["location"], *snap["location"], e["id"]))
    row = hz.fetchone()
    assert row["on_edge"] < 0.05
    if 0.01 < e["f"] < 0.99:
        assert min(row["to_start"], row["to_end"]) > 0.5
    assert body["features"][0]["geometry"]["coordinates"][0] == pytest.approx(snap["location"],
                                                                              abs=1e-6)


def _text(el: ET.Element, path: str) -> str:
    found = el.find(path)
    assert found is not None, path
    return found.text or ""


def test_drive_xml_parses_with_the_fields_clients_read(urls: dict[str, str], hz: Any) -> None:
    a, b = door_plate(hz, "宏二路", "2号"), door_plate(hz, "寿湖路", "43号")
    r = drive(urls, {"orig": ll(a), "dest": ll(b), "style": "0"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "result" and root.get("orig") == ll(a) and root.get("dest") == ll(b)
    assert root.get("mid") == ""
    assert _text(root, "parameters/style") == "0"
    routes = root.find("routes")
    assert routes is not None
    items = routes.findall("item")
    assert int(routes.get("count", "-1")) == len(items) > 2
    for i, item in enumerate(items):
        assert item.get("id") == str(i)
        assert [c.tag for c in item] == ["strguide", "signage", "streetName", "nextStreetName",
                                         "tollStatus", "turnlatlon"]
        lon, lat = map(float, _text(item, "turnlatlon").split(","))
        assert 119 < lon < 121 and 30 < lat < 31
        assert _text(item, "tollStatus") in ("0", "1", "2")
    assert _text(items[0], "streetName") == nearest_edge(hz, a)["name"]
    assert _text(items[0], "strguide").startswith("从")
    simple = root.findall("simple/item")
    assert simple
    for item in simple:
        pts = _text(item, "streetLatLon")
        assert pts.endswith(";")  # clients drop the empty last element
        assert all(len(p.split(",")) == 2 for p in pts.rstrip(";").split(";"))
        assert int(_text(item, "streetDistance")) >= 0
        for tag in ("streetNames", "lastStreetName", "linkStreetName", "segmentNumber"):
            assert item.find(tag) is not None
    ours = api(urls, **{"from": ll(a), "to": ll(b)}).json()
    assert float(_text(root, "distance")) == pytest.approx(ours["distance"] / 1000, abs=0.001)
    assert int(_text(root, "duration")) == round(ours["duration"])
    line = [tuple(map(float, p.split(","))) for p in _text(root, "routelatlon").split(";") if p]
    assert len(line) == len(ours["features"][0]["geometry"]["coordinates"])
    assert line[0] == pytest.approx(tuple(ours["snap"]["from"]["location"]), abs=1e-6)
    cx, _cy = map(float, _text(root, "mapinfo/center").split(","))
    assert min(a[0], b[0]) - 0.01 < cx < max(a[0], b[0]) + 0.01
    assert 1 <= int(_text(root, "mapinfo/scale")) <= 18
    # a via point and the other styles
    mid = door_plate(hz, "寿湖路", "17号")
    via = ET.fromstring(drive(urls, {"orig": ll(a), "dest": ll(b), "mid": ll(mid),
                                     "style": "0"}).content)
    assert via.get("mid") == ll(mid)
    assert int(_text(via, "duration")) >= int(_text(root, "duration"))
    walk = ET.fromstring(drive(urls, f"{{'orig':'{ll(a)}','dest':'{ll(b)}','style':'3'}}").content)
    walked = api(urls, **{"from": ll(a), "to": ll(b), "mode": "walk"}).json()
    assert float(_text(walk, "distance")) == pytest.approx(walked["distance"] / 1000, abs=0.001)
    for style in ("1", "2"):
        other = ET.fromstring(drive(urls, {"orig": ll(a), "dest": ll(b), "style": style}).content)
        assert int(other.find("routes").get("count", "0")) > 0  # type: ignore[union-attr]
    shortest = ET.fromstring(drive(urls, {"orig": ll(a), "dest": ll(b), "style": "1"}).content)
    assert float(_text(shortest, "distance")) <= float(_text(root, "distance")) + 0.001


HZ_A, HZ_B = "120.1516,30.2572", "120.1634,30.2682"
API_CASES = [
    ({"to": HZ_B}, 400, 2003),
    ({"from": HZ_A}, 400, 2003),
    ({"from": "120.15", "to": HZ_B}, 400, 2005),
    ({"from": "abc,def", "to": HZ_B}, 400, 2005),
    ({"from": "200,30", "to": HZ_B}, 400, 2005),
    ({"from": "120.15,95", "to": HZ_B}, 400, 2005),
    ({"from": "nan,30", "to": HZ_B}, 400, 2005),
    ({"from": "1e999,30", "to": HZ_B}, 400, 2005),
    ({"from": "120.1,30.2); DROP TABLE geoplat_route_edges; --", "to": HZ_B}, 400, 2005),
    ({"from": "1" * 5000 + ",30", "to": HZ_B}, 400, 2005),
    ({"from": HZ_A, "to": HZ_B, "mode": "fly"}, 400, 2004),
    ({"from": "116.39,39.91", "to": HZ_B}, 422, 2006),     # Beijing: outside the node
    ({"from": "118.5,29.3", "to": HZ_B}, 422, 3001),       # in the extent, 5 km from any road
]


@pytest.mark.parametrize(("params", "status", "infocode"), API_CASES)
def test_api_route_bad_input(urls: dict[str, str], params: dict[str, str], status: int,
                             infocode: int) -> None:
    r = api(urls, **params)
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["infocode"] == infocode and body["detail"]
    assert "DROP" not in r.text and "Traceback" not in r.text


def test_node_without_roads_answers_no_route(urls: dict[str, str]) -> None:
    r = api(urls, "national", **{"from": "116.39,39.91", "to": "116.40,39.92"})
    assert r.status_code == 422 and r.json()["infocode"] == 3001
    x = ET.fromstring(drive(urls, {"orig": "116.39,39.91", "dest": "116.40,39.92"},
                            "national").content)
    assert _text(x, "status/infocode") == "3001"


DRIVE_CASES = [
    (None, 2003),
    ("", 2003),
    ("{not json", 2002),
    ("[1, 2]", 2002),
    ({"dest": HZ_B}, 2003),
    ({"orig": HZ_A}, 2003),
    ({"orig": "120.15", "dest": HZ_B}, 2005),
    ({"orig": "x,y", "dest": HZ_B}, 2005),
    ({"orig": "120.15,99", "dest": HZ_B}, 2005),
    ({"orig": HZ_A, "dest": HZ_B, "style": "7"}, 2004),
    ({"orig": HZ_A, "dest": HZ_B, "mid": ";".join([HZ_A] * 11)}, 2006),
    ({"orig": HZ_A, "dest": HZ_B, "mid": "a,b"}, 2005),
    ({"orig": "116.39,39.91", "dest": HZ_B}, 2006),
    ({"orig": "118.5,29.3", "dest": HZ_B}, 3001),
    ("x" * 5000, 2006),
    ({"orig": "<x>&\u0001", "dest": HZ_B}, 2005),
]


@pytest.mark.parametrize(("post", "infocode"), DRIVE_CASES)
def test_drive_bad_input(urls: dict[str, str], post: Any, infocode: int) -> None:
    params = {"type": "search"} if post is None else {
        "postStr": post if isinstance(post, str) else json.dumps(post), "type": "search"}
    r = httpx.get(urls["hangzhou"] + "/drive", params=params, timeout=60)
    assert r.status_code == 200, r.text[:300]
    root = ET.fromstring(r.content)  # well-formed, whatever was sent
    assert _text(root, "status/infocode") == str(infocode)
    assert _text(root, "status/cndesc")
    assert root.find("routes").get("count") == "0"  # type: ignore[union-attr]
    assert "<x>" not in r.text


def test_drive_wrong_type_and_bad_key(urls: dict[str, str]) -> None:
    r = drive(urls, {"orig": HZ_A, "dest": HZ_B}, type="query")
    assert _text(ET.fromstring(r.content), "status/infocode") == "2004"
    r = drive(urls, {"orig": HZ_A, "dest": HZ_B}, tk="0123456789abcdef0123456789abcdef")
    assert r.status_code == 403 and r.json()["msg"] == "非法Key" and r.json()["code"] == 1
    r = api(urls, **{"from": HZ_A, "to": HZ_B, "tk": "0123456789abcdef0123456789abcdef"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
