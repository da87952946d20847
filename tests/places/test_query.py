"""The places query layer (services.places.query.Places) over the gazetteer that
services.places.gazetteer built for the Hangzhou node of the shared test federation, copied into
a private database (tests/support/sample_gazetteer.py) so that tests may change and grow it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pyogrio
import pytest
import sample_gazetteer
from place_variants import variants
from pyproj import Geod
from waiting import wait_for

from nodes import federation as federation_mod
from nodes.postgres import Cluster, ensure_database, ensure_postgis
from services.db import Database
from services.places import search as search_mod
from services.places.errors import PlacesInputError
from services.places.query import Places
from services.places.text import normalise

SAMPLES = Path(__file__).resolve().parents[2] / "data-samples"
ALL = frozenset({"addresses", "roads", "poi", "places"})
GEOD = Geod(ellps="GRS80")      # CGCS2000's ellipsoid (EPSG:4490)
DISTRICT_CODES = {"上城区": "330102", "拱墅区": "330105", "西湖区": "330106"}


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def _private_copy(pg_cluster: Cluster, federation: Any, name: str,
                  extra: list[tuple] | None = None) -> str:
    ensure_database(pg_cluster.dsn(), name)
    url = pg_cluster.dsn(name)
    ensure_postgis(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        sample_gazetteer.copy_from(
            federation_mod.node_dsn(federation, federation.node("hangzhou")), cur, extra)
    conn.close()
    return url


@pytest.fixture(scope="module")
def places(pg_cluster: Cluster, federation: Any) -> Iterator[Places]:
    db = Database(_private_copy(pg_cluster, federation, "geoplat_places_query"), maxconn=2)
    yield Places(db, "hangzhou")
    db.close()


@pytest.fixture(scope="module")
def samples() -> dict[str, list[dict[str, Any]]]:
    def read(layer: str) -> Any:
        return pyogrio.read_dataframe(SAMPLES / "hangzhou.gpkg", layer=layer,
                                      fid_as_index=True)
    addresses = [{"address": r.address, "road": r.road, "number": r.number,
                  "district": r.district, "lon": r.geometry.x, "lat": r.geometry.y, "fid": i}
                 for i, r in read("addresses").iterrows()]
    pois = [{"name": r["name"], "address": r.address, "lon": r.geometry.x, "lat": r.geometry.y,
             "fid": i} for i, r in read("poi").iterrows()]
    roads = [{"name": r["name"], "wkt": r.geometry.wkt} for _, r in read("roads").iterrows()]
    return {"addresses": addresses, "pois": pois, "roads": roads}


def test_known_addresses_to_their_door_plate(places: Places, samples: dict) -> None:
    rows = random.Random(3).sample(samples["addresses"], 40)
    for row in rows:
        g = places.geocode(row["address"], visible=ALL)
        assert g.level == "address" and g.best is not None, row["address"]
        assert g.best.address == row["address"] and g.best.score == 100
        assert _metres((g.best.lon, g.best.lat), (row["lon"], row["lat"])) < 1.0
        assert g.best.admin.county_code == DISTRICT_CODES[row["district"]]


def test_variants_right_door_plate_first(places: Places, samples: dict) -> None:
    drawn = variants(samples["addresses"], 1200, seed=13, pois=samples["pois"],
                     roads=samples["roads"])
    right: Counter[str] = Counter()
    forms: Counter[str] = Counter()
    misses = []
    for text, expected in drawn:
        best = places.geocode(text, visible=ALL).best
        forms[expected["form"]] += 1
        if expected["kind"] == "address":
            ok = best is not None and best.address == expected["address"]
        elif expected["kind"] == "poi":
            ok = best is not None and best.name == expected["name"]
        else:
            ok = best is not None and _metres((best.lon, best.lat),
                                              (expected["lon"], expected["lat"])) < 1.0
        right[expected["form"]] += ok
        if not ok:
            misses.append((text, best and best.name))
    share = sum(right.values()) / len(drawn)
    assert len(forms) == 8 and share >= 0.95, (share, right, misses[:20])
    assert all(right[f] / forms[f] >= 0.8 for f in forms), (right, forms)


def test_nearest_number_and_fuzzy_road_score_lower(places: Places) -> None:
    exact = places.geocode("上城区宏二路2号", visible=ALL)
    near = places.geocode("上城区宏二路999号", visible=ALL)
    assert exact.best is not None and exact.best.score == 100
    assert near.best is not None and near.best.road == "宏二路"
    assert (near.best.score or 0) < 90


def test_levels(places: Places) -> None:
    for text, level, code in (("浙江", "province", "330000"), ("杭州", "city", "330100"),
                              ("西湖区", "county", "330106"),
                              ("清波街道", "township", "330102001")):
        g = places.geocode(text, visible=ALL)
        assert g.level == level, text
        assert g.best is not None and code in g.best.id
    g = places.geocode("宏二路与宏六路交叉口", visible=ALL)     # they do not meet
    assert g.level == "road" and g.best is not None and g.best.name == "宏二路"
    assert (g.best.score or 100) < 60
    g = places.geocode("市民中心", visible=ALL)
    assert g.level == "poi" and g.best is not None and g.best.name == "杭州市民中心政务服务大厅"


def test_reverse_of_door_plates(places: Places, samples: dict) -> None:
    for row in random.Random(5).sample(samples["addresses"], 30):
        r = places.reverse(row["lon"], row["lat"], visible=ALL)
        assert r.formatted_address == row["address"]
        assert r.admin.county_code == DISTRICT_CODES[row["district"]]
        # the township whose (synthetic) cell holds the plate (tests/places/test_townships.py)
        assert r.admin.township_code and r.admin.township_code[:6] == r.admin.county_code
        assert r.address is not None and r.address.distance_m is not None
        assert r.address.distance_m < 0.01
        assert r.road is not None and r.road.distance_m is not None


def test_reverse_township_is_the_one_holding_the_point(places: Places) -> None:
    """Not the township of the nearest door plate: points just across a township's edge from
    a plate (within 50 m of it, in the next township of its district)."""
    found = places.db.all("""
        SELECT p.township_code AS plate_town, t.code, ST_X(q.g) AS x, ST_Y(q.g) AS y
          FROM geoplat_places p
          JOIN geoplat_divisions t ON t.kind = 'township' AND t.parent_code = p.county_code
           AND t.code <> p.township_code AND ST_DWithin(t.boundary, p.geom, 0.0003)
         CROSS JOIN LATERAL (SELECT ST_PointOnSurface(ST_Intersection(t.boundary, ST_SetSRID(
                ST_Buffer(p.geom::geography, 50)::geometry, 4490))) AS g) q
         WHERE p.kind = 'address' AND NOT ST_IsEmpty(q.g) ORDER BY p.id LIMIT 20""")
    assert len(found) >= 10
    across = 0
    for row in found:
        r = places.reverse(row["x"], row["y"], visible=ALL)
        assert (r.admin.township_code, r.admin.county_code) == (row["code"], row["code"][:6])
        assert r.address is not None
        across += r.address.admin.township_code == row["plate_town"] != row["code"]
    assert across >= 5     # the nearest door plate was in the other township


def test_reverse_distances_on_the_ellipsoid(places: Places) -> None:
    x, y = 120.1516409 + 0.0008, 30.257205 + 0.0005
    r = places.reverse(x, y, visible=ALL, max_distance_m=500)
    assert r.address is not None and r.address.distance_m is not None
    assert abs(r.address.distance_m - _metres((x, y), (r.address.lon, r.address.lat))) < 0.5
    far = places.reverse(121.9, 29.0, visible=ALL, max_distance_m=100)   # the sea
    assert far.address is None and far.road is None and far.poi is None


def test_nearby_sorted_by_distance_equal_to_geod(places: Places) -> None:
    centre = (120.1516409, 30.257205)
    res = places.search(None, visible=ALL, near=centre, radius_m=800, limit=50)
    assert res.total >= len(res.places) >= 20
    dists = [p.distance_m or 0.0 for p in res.places]
    assert dists == sorted(dists)
    for p in res.places:
        assert p.distance_m is not None and p.distance_m <= 800
        assert abs(p.distance_m - _metres(centre, (p.lon, p.lat))) < 0.5
    second = places.search(None, visible=ALL, near=centre, radius_m=800, limit=50, offset=50)
    assert not {p.id for p in res.places} & {p.id for p in second.places}


def test_search_filters(places: Places) -> None:
    hospitals = places.search(None, visible=ALL, categories=["hospital"], limit=300,
                              statistics=True)
    assert hospitals.total == 16 and all(p.category == "hospital" for p in hospitals.places)
    assert sum(a.count for a in hospitals.statistics) == 16
    in_area = places.search("医院", visible=ALL, admin="156330102")
    by_name = places.search("医院", visible=ALL, admin="上城区")
    assert in_area.total == by_name.total > 0
    assert all(p.admin.county_code == "330102" for p in in_area.places)
    box = (120.14, 30.24, 120.16, 30.27)
    boxed = places.search("路", visible=ALL, bbox=box, limit=100)
    assert boxed.total > 0
    assert all(box[0] <= p.lon <= box[2] and box[1] <= p.lat <= box[3] for p in boxed.places)
    ring = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]
    assert places.search("路", visible=ALL, polygon=ring, limit=100).total == boxed.total
    only = places.search("西湖", visible=ALL, kinds=("county",))
    assert [p.name for p in only.places] == ["西湖区"]


def test_admin_lookup(places: Places) -> None:
    [hz] = places.admin("杭州", children=1)
    assert hz.code == "330100" and [p.code for p in hz.parents] == ["330000"]
    assert "330102" in {c.code for c in hz.children}
    assert places.admin("156330100")[0].code == "330100"
    [sc] = places.admin("330102", children=1)
    assert "330102001" in {c.code for c in sc.children}
    # Hangzhou's node has the outlines of its districts (the city: their union), not the
    # province's (the national node has those)
    [city] = places.admin("杭州市", geometry=True)
    assert city.boundary_wkt is not None and city.boundary_wkt.startswith("MULTIPOLYGON")
    [zj] = places.admin("浙江省", geometry=True)
    assert zj.boundary_wkt is None and zj.boundary_note
    assert places.admin("杭洲市")[0].code == "330100"       # one wrong character
    assert places.admin("990000") == [] and places.admin("不存在的地方") == []
    # the country (also Tianditu's 156000000 as its code 000000): this node's provinces
    for keyword in ("中国", "000000"):
        [country] = places.admin(keyword, children=1)
        assert country.kind == "country" and [c.code for c in country.children] == ["330000"]


def test_suggest_prefix_and_pinyin(places: Places) -> None:
    assert places.suggest("市民", visible=ALL)[0].name == "杭州市民中心政务服务大厅"
    assert "杭州市民中心政务服务大厅" in {p.name for p in places.suggest("hzsmzx", visible=ALL)}
    assert places.suggest("杭", visible=ALL, limit=3)[0].name == "杭州市"


def test_visible_layers_only(places: Places) -> None:
    none: frozenset[str] = frozenset()
    g = places.geocode("浙江省杭州市上城区宏二路2号", visible=none)
    assert g.best is None or g.best.layer is None
    assert all(p.layer is None for p in places.search("宏二路", visible=none, limit=50).places)
    assert all(p.layer is None for p in places.suggest("宏二", visible=none))
    r = places.reverse(120.1516409, 30.257205, visible=none)
    assert r.address is None and r.road is None and r.poi is None
    assert places.reverse(120.1516409, 30.257205, visible=frozenset({"addresses"})).address


def test_a_rebuild_is_seen_without_a_restart(places: Places) -> None:
    """The road dictionary follows the table (a rebuild by services.places.gazetteer)."""
    assert places.geocode("上城区测试新路7号", visible=ALL).level != "address"
    rows = [sample_gazetteer.row(kind=k, name=n, road="测试新路", road_norm="测试新路",
                                 number=num, number_int=7 if num else None, layer=layer,
                                 address="浙江省杭州市上城区测试新路7号" if num else None,
                                 source_id="t", geom="POINT(120.17 30.25)",
                                 shape="LINESTRING(120.16 30.25, 120.18 30.25)" if not num else None,
                                 county="上城区", county_code="330102")
            for k, n, num, layer in (("road", "测试新路", None, "roads"),
                                     ("address", "测试新路7号", "7号", "addresses"))]
    cols = ", ".join(sample_gazetteer.COLUMNS)
    values = ", ".join(["%s"] * (len(sample_gazetteer.COLUMNS) - 2))
    try:
        with places.db.cursor() as cur:
            for r in rows:
                cur.execute(f"INSERT INTO geoplat_places ({cols}) VALUES ({values},"
                            " ST_GeomFromText(%s, 4490), ST_GeomFromText(%s, 4490))", r)
        best = wait_for(lambda: (b := places.geocode("上城区测试新路7号", visible=ALL).best)
                        and b.kind == "address" and b, timeout=20,
                        message="the new door plate is geocoded")
        assert best.address == "浙江省杭州市上城区测试新路7号"
    finally:
        places.db.execute("DELETE FROM geoplat_places WHERE source_id = 't'")


LONG = "杭" * 201


@pytest.mark.parametrize(("call", "code"), [
    (lambda p: p.geocode("", visible=ALL), 2003),
    (lambda p: p.geocode(LONG, visible=ALL), 2001),
    (lambda p: p.geocode("杭州\x00", visible=ALL), 2001),
    (lambda p: p.geocode(None, visible=ALL), 2003),
    (lambda p: p.geocode(5, visible=ALL), 2001),
    (lambda p: p.search("x" * 10_000, visible=ALL), 2001),
    (lambda p: p.search("杭州", visible=ALL, limit=301), 2007),
    (lambda p: p.search("杭州", visible=ALL, offset=10_001), 2007),
    (lambda p: p.search("杭州", visible=ALL, limit=0), 2007),
    (lambda p: p.search(None, visible=ALL, near=(120.1, 30.2), radius_m=50_001), 2006),
    (lambda p: p.search(None, visible=ALL, near=(190.0, 30.2), radius_m=100), 2005),
    (lambda p: p.search(None, visible=ALL, near=(float("nan"), 30.2)), 2005),
    (lambda p: p.search(None, visible=ALL, radius_m=100), 2003),
    (lambda p: p.search(None, visible=ALL,
                        polygon=[(120 + i / 1000, 30 + (i % 2) / 100) for i in range(101)]), 2006),
    (lambda p: p.search(None, visible=ALL, polygon=[(120.0, 30.0), (120.1, 30.0)]), 2001),
    (lambda p: p.search(None, visible=ALL, bbox=(120.2, 30.0, 120.1, 30.1)), 2005),
    (lambda p: p.search(None, visible=ALL, kinds=("nonsense",)), 2004),
    (lambda p: p.search(None, visible=ALL), 2003),
    (lambda p: p.reverse(120.0, 91.0, visible=ALL), 2005),
    (lambda p: p.reverse(120.0, 30.0, visible=ALL, max_distance_m=60_000), 2006),
    (lambda p: p.admin("杭州", children=9), 2004),
    (lambda p: p.suggest("", visible=ALL), 2003),
    (lambda p: p.suggest("杭", visible=ALL, limit=101), 2007),
    (lambda p: p.geocode("杭州", visible=ALL, limit=21), 2007),
])
def test_bad_input_is_refused_with_its_infocode(places: Places, call: Any, code: int) -> None:
    with pytest.raises(PlacesInputError) as e:
        call(places)
    assert e.value.infocode == code and e.value.status == 400


INJECTIONS = ["'; DROP TABLE geoplat_places; --", "1' OR '1'='1", "%", "_", "\\", "%%%%",
              "杭州' UNION SELECT version() --", "name_norm LIKE '%'", "); DELETE FROM x; (",
              "\u202e杭州", "𠀀𠀁", "<script>alert(1)</script>", "${jndi:ldap://x}"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_text_is_only_text(places: Places, text: str) -> None:
    before = places.db.one("SELECT count(*) AS n FROM geoplat_places")
    for call in (lambda: places.geocode(text, visible=ALL),
                 lambda: places.search(text, visible=ALL),
                 lambda: places.suggest(text, visible=ALL),
                 lambda: places.admin(text, children=1)):
        try:
            call()
        except PlacesInputError:
            pass
    assert places.search("%", visible=ALL).total == 0       # % is no wildcard
    assert places.db.one("SELECT count(*) AS n FROM geoplat_places") == before


# -- 1-2 character queries from the index, on >= 100k rows -----------------------------------

@pytest.fixture(scope="module")
def big(pg_cluster: Cluster, federation: Any) -> Iterator[Places]:
    rng = random.Random(100)
    pool = "东南西北中上下前后左右金木水火土山河湖海江天地人和平安康宁春夏秋冬花草松竹梅兰菊"
    extra = []
    for i in range(100_000):
        road = "".join(rng.choice(pool) for _ in range(2)) + rng.choice("路街")
        number = f"{rng.randint(1, 400)}号"
        extra.append(sample_gazetteer.row(
            kind="address", name=road + number, address="浙江省杭州市" + road + number,
            address_norm=normalise("浙江省杭州市" + road + number), road=road,
            road_norm=road, number=number, number_int=int(number[:-1]), layer="addresses",
            source_id=f"gen{i}", geom=f"POINT({119 + rng.random() * 2} {29 + rng.random() * 2})",
            shape=None, city="杭州市", city_code="330100"))
    db = Database(_private_copy(pg_cluster, federation, "geoplat_places_big", extra), maxconn=2)
    yield Places(db, "big")
    db.close()


def _plan(places: Places, sql: str, args: dict) -> str:
    return "\n".join(r["QUERY PLAN"] for r in places.db.all("EXPLAIN " + sql, args))


@pytest.mark.parametrize("q", ["西湖", "杭", "湖", "市民"])
def test_short_queries_use_the_index(big: Places, q: str) -> None:
    n = big.db.one("SELECT count(*) AS n FROM geoplat_places")
    assert n is not None and n["n"] >= 100_000
    body, order, args = search_mod.search_statement(normalise(q), sorted(ALL))
    for sql in (f"SELECT p.id {body} ORDER BY {order} LIMIT 10", f"SELECT count(*) {body}",
                search_mod.suggest_statement(normalise(q), sorted(ALL), 10)[0]):
        a = {**args, **search_mod.suggest_statement(normalise(q), sorted(ALL), 10)[1]}
        plan = _plan(big, sql, a)
        assert "Seq Scan on geoplat_places" not in plan, plan
        assert "geoplat_places_grams" in plan, plan
    res = big.search(q, visible=ALL, limit=5)
    assert all(q in p.name for p in res.places)
    assert big.suggest(q, visible=ALL, limit=5)


def test_big_geocode_still_finds_the_sample(big: Places) -> None:
    g = big.geocode("上城区宏二路2号", visible=ALL)
    assert g.best is not None and g.best.address == "浙江省杭州市上城区宏二路2号"
