"""The gazetteer tables of every node of the shared federation: built from the node's layers at
load time, following publishes and retires, and never empty while rebuilt."""

from __future__ import annotations

import csv
import io
import threading

import geopandas as gpd
import psycopg2
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import points_frame, sign_in_users

from layers.formats import PublishError
from layers.publish import parse_places, publish, retire, rollback
from nodes import federation as federation_mod
from nodes.settings import load_layers
from services.places import divisions, gazetteer

DIVISIONS = divisions.DIVISIONS_CSV
DATA = DIVISIONS.parent
HANGZHOU_DISTRICTS = {"330102", "330105", "330106", "330108", "330109", "330110", "330111",
                      "330112", "330113", "330114", "330122", "330127", "330182"}


def _dsn(federation, node_id: str) -> str:
    return federation_mod.node_dsn(federation, federation.node(node_id))


def _rows(dsn: str, query: str, args: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        conn.close()


def _counts(dsn: str, table: str) -> dict[str, int]:
    return dict(_rows(dsn, f"SELECT kind, count(*) FROM {table} GROUP BY kind"))


def test_divisions_file_has_every_level_and_no_statistics_only_units():
    with DIVISIONS.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    assert kinds == {"province": 31, "city": 333, "county": 2851, "township": 1387}
    by_code = {r["code"]: r for r in rows}
    assert by_code["330100"]["name"] == "杭州市" and by_code["330102"]["parent_code"] == "330100"
    assert by_code["330102001"] == {"code": "330102001", "name": "清波街道", "kind": "township",
                                    "parent_code": "330102"}
    # municipalities: districts directly under the province
    assert by_code["110101"]["parent_code"] == "110000"
    assert not [r for r in rows if r["kind"] == "county" and r["code"][4] == "7"]
    assert all(r["parent_code"] in by_code for r in rows if r["parent_code"])
    assert {r["code"][:2] for r in rows if r["kind"] == "township"} == {"33"}


@pytest.mark.parametrize(("name", "short"), [
    ("杭州市", "杭州"), ("上城区", "上城"), ("内蒙古自治区", "内蒙古"), ("广西壮族自治区", "广西"),
    ("新疆维吾尔自治区", "新疆"), ("延边朝鲜族自治州", "延边"), ("景宁畲族自治县", "景宁"),
    ("清波街道", "清波"), ("城区", "城区"), ("锡林郭勒盟", "锡林郭勒")])
def test_short_names(name, short):
    assert divisions.short_name(name) == short


def test_every_node_has_its_divisions_and_places(federation):
    nat, zj, hz = (_dsn(federation, n) for n in ("national", "zhejiang", "hangzhou"))
    assert _counts(nat, "geoplat_divisions") == {"province": 31, "city": 333, "county": 2851}
    n_places = pyogrio.read_info(DATA / "national.gpkg", layer="places")["features"]
    assert _counts(nat, "geoplat_places") == {"province": 31, "city": 333, "county": 2851,
                                              "place": n_places}
    assert _counts(zj, "geoplat_divisions") == {"province": 1, "city": 11, "county": 90,
                                                "township": 1387}
    hz_div = _counts(hz, "geoplat_divisions")
    assert hz_div == {"province": 1, "city": 1, "county": 13, "township": 196}
    hz_places = _counts(hz, "geoplat_places")
    for layer, kind in (("addresses", "address"), ("poi", "poi")):
        assert hz_places[kind] == pyogrio.read_info(DATA / "hangzhou.gpkg", layer=layer)["features"]
    assert 0 < hz_places["road"] <= pyogrio.read_info(DATA / "hangzhou.gpkg",
                                                      layer="roads")["features"]
    # the registered layers' rows carry their layer (access rules), divisions none (public)
    assert _rows(nat, "SELECT DISTINCT layer FROM geoplat_places WHERE kind = 'place'") == [
        ("places",)]
    assert _rows(hz, "SELECT DISTINCT layer FROM geoplat_places WHERE kind = 'address'") == [
        ("addresses",)]
    assert _rows(hz, "SELECT count(*) FROM geoplat_places WHERE kind IN ('province', 'city',"
                     " 'county', 'township') AND layer IS NOT NULL") == [(0,)]


@pytest.mark.parametrize("node", ["national", "zhejiang", "hangzhou"])
def test_hangzhou_city_with_its_districts(federation, node):
    dsn = _dsn(federation, node)
    [(name, kind, parent, has_bbox)] = _rows(
        dsn, "SELECT name, kind, parent_code, bbox IS NOT NULL FROM geoplat_divisions"
             " WHERE code = '330100'")
    assert (name, kind, parent, has_bbox) == ("杭州市", "city", "330000", True)
    children = {c for (c,) in _rows(dsn, "SELECT code FROM geoplat_divisions"
                                         " WHERE parent_code = '330100'")}
    assert children == HANGZHOU_DISTRICTS
    if node == "national":  # the city's point of the national `cities` layer
        [(x, y)] = _rows(dsn, "SELECT ST_X(centre), ST_Y(centre) FROM geoplat_divisions"
                              " WHERE code = '330100'")
        assert abs(x - 120.15925) < 1e-3 and abs(y - 30.266) < 1e-3


def test_zhejiang_township_with_its_county(federation):
    dsn = _dsn(federation, "zhejiang")
    [row] = _rows(dsn, "SELECT d.name, d.kind, d.parent_code, p.name, p.parent_code"
                       " FROM geoplat_divisions d JOIN geoplat_divisions p ON p.code = d.parent_code"
                       " WHERE d.code = '330102001'")
    assert row == ("清波街道", "township", "330102", "上城区", "330100")
    [chain] = _rows(dsn, "SELECT province_code, city_code, county, county_code, township_code"
                         " FROM geoplat_places WHERE kind = 'township' AND source_id = '330102001'")
    assert chain == ("330000", "330100", "上城区", "330102", "330102001")
    # the 1999 polygon of 萧山市 330181 is today's 萧山区 330109, and says so
    [(note, has)] = _rows(dsn, "SELECT boundary_note, boundary IS NOT NULL FROM geoplat_divisions"
                               " WHERE code = '330109'")
    assert has and "1999" in note and "330181" in note


def test_every_door_plate_agrees_with_its_district(federation):
    """The Hangzhou door plate's county is the district polygon containing it and the district
    its address names."""
    dsn = _dsn(federation, "hangzhou")
    [(total, bad_polygon, bad_text, no_chain)] = _rows(dsn, """
        SELECT count(*),
               count(*) FILTER (WHERE d.code IS DISTINCT FROM p.county_code),
               count(*) FILTER (WHERE position('杭州市' || p.county IN p.address) = 0),
               count(*) FILTER (WHERE p.city_code IS DISTINCT FROM '330100'
                                   OR p.province_code IS DISTINCT FROM '330000')
          FROM geoplat_places p
          LEFT JOIN districts d ON ST_Covers(d.geom, p.geom)
         WHERE p.kind = 'address'""")
    assert total == 4500 and (bad_polygon, bad_text, no_chain) == (0, 0, 0)
    [(total_poi, bad_poi)] = _rows(dsn, """
        SELECT count(*), count(*) FILTER (WHERE d.code IS DISTINCT FROM p.county_code)
          FROM geoplat_places p LEFT JOIN districts d ON ST_Covers(d.geom, p.geom)
         WHERE p.kind = 'poi'""")
    assert total_poi == 395 and bad_poi == 0
    [(number, number_int, road)] = _rows(
        dsn, "SELECT number, number_int, road FROM geoplat_places"
             " WHERE address = '浙江省杭州市上城区宏二路2号'")
    assert (number, number_int, road) == ("2号", 2, "宏二路")
    # a POI's mapped extras (config/layers/hangzhou.yml): what the service-hall pages show
    [(category, phone, extra)] = _rows(dsn, "SELECT category, phone, extra FROM geoplat_places"
                                            " WHERE name = '杭州市民中心政务服务大厅'")
    assert (category, phone) == ("service_hall", "12345")
    assert extra["opening_hours"].startswith("Mo-Fr") and "不动产登记" in extra["services"]


def test_publish_adds_pois_and_retire_removes_them(federation, ctx, tmp_path):
    dsn = _dsn(federation, "hangzhou")
    src = points_frame(12, seed=13, x0=120.16, y0=30.24)
    csv_path = tmp_path / "gz_poi.csv"
    src.to_csv(csv_path, index=False)
    name = "pub_gz_poi"

    def published() -> list[tuple]:
        return _rows(dsn, "SELECT name, kind, county_code FROM geoplat_places WHERE layer = %s"
                          " ORDER BY name", (name,))

    def again(places: str) -> None:
        publish(ctx, csv_path, name, crs="EPSG:4490", places=parse_places(places))

    [res] = publish(ctx, csv_path, name, title="兴趣点", access="registered", crs="EPSG:4490")
    assert res.feature_count == 12
    rows = published()
    assert sorted(r[0] for r in rows) == sorted(src["名称"])
    assert {r[1] for r in rows} == {"poi"} and all(r[2] in HANGZHOU_DISTRICTS for r in rows)
    # a mapping naming a column the data lacks is refused and changes nothing
    with pytest.raises(PublishError) as err:
        again('{"kind": "poi", "name": "x\\"; DROP"}')
    assert err.value.status == 400 and len(published()) == 12
    # the publisher's mapping: place names, or none at all
    again('{"kind": "place", "name": "名称"}')
    assert {r[1] for r in published()} == {"place"}
    again("none")
    assert published() == []
    again("default")
    assert len(published()) == 12
    retire(ctx, name)
    assert published() == []
    # the sample layers are untouched by all this
    assert _counts(dsn, "geoplat_places")["address"] == 4500


def _geojson(names: list[str]) -> bytes:
    src = points_frame(len(names), seed=5, x0=120.17, y0=30.25)
    gdf = gpd.GeoDataFrame({"mc": names, "lb": ["school"] * len(names)},
                           geometry=list(shapely.points(src.lon, src.lat)), crs="EPSG:4490")
    buf = io.BytesIO()
    pyogrio.write_dataframe(gdf, buf, driver="GeoJSON")
    return buf.getvalue()


def test_http_publish_with_a_mapping_then_rollback(federation, urls, main_db, ctx):
    """POST /api/layers with `places`; a rollback brings the earlier version's entries back."""
    dsn, base = _dsn(federation, "hangzhou"), urls["hangzhou"]
    h = sign_in_users(main_db, urls["national"], "gzpub", {"publisher": ["hangzhou:publisher"]},
                      "Gazetteer-Test-Pass-1")["publisher"]
    name = "pub_gz_http"

    def post(data: bytes, places: str) -> requests.Response:
        return requests.post(f"{base}/api/layers", headers=h, timeout=120,
                             data={"name": name, "places": places},
                             files={"file": ("p.geojson", data, "application/geo+json")})

    def entries() -> list[tuple]:
        return _rows(dsn, "SELECT name, kind, category FROM geoplat_places WHERE layer = %s"
                          " ORDER BY name", (name,))

    mapping = '{"kind": "poi", "name": "mc", "category": "lb"}'
    r = post(_geojson(["甲小学", "乙小学"]), '{"kind": "poi", "name": "名称"}')
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem")
    assert "名称" in r.json()["detail"] and entries() == []
    r = post(_geojson(["甲小学", "乙小学"]), '{"kind": "poi", "name": 1; DROP TABLE x}')
    assert r.status_code == 400 and "Traceback" not in r.text and entries() == []
    assert post(_geojson(["甲小学", "乙小学"]), mapping).status_code == 201
    assert entries() == [("乙小学", "poi", "school"), ("甲小学", "poi", "school")]
    assert post(_geojson(["丙中学"]), "").status_code == 201      # keeps the mapping
    assert entries() == [("丙中学", "poi", "school")]
    rollback(ctx, name)
    assert [e[0] for e in entries()] == ["乙小学", "甲小学"]
    retire(ctx, name)
    assert entries() == []


@pytest.mark.parametrize("text", ['{"kind": "poi"}', '{"kind": "sql"}', "[1, 2]",
                                  '{"kind": "poi", "name": "n", "extra": 1}', "x" * 5000])
def test_bad_places_mappings_are_refused(text):
    with pytest.raises(PublishError) as err:
        parse_places(text)
    assert err.value.status == 400


def test_rebuild_never_shows_empty_tables(federation):
    """Readers see the old rows or the new ones while a (forced) rebuild runs."""
    node = federation.node("hangzhou")
    dsn = _dsn(federation, "hangzhou")
    [(before,)] = _rows(dsn, "SELECT count(*) FROM geoplat_places")
    seen: list[int] = []
    done = threading.Event()
    errors: list[Exception] = []

    def rebuild() -> None:
        try:
            gazetteer.build(dsn, node.id, load_layers(federation, node), force=True)
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=rebuild)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        t.start()
        with conn.cursor() as cur:
            while not done.is_set() or len(seen) < 3:
                cur.execute("SELECT count(*) FROM geoplat_places")
                seen.append(cur.fetchone()[0])
                cur.execute("SELECT count(*) FROM geoplat_divisions")
                assert cur.fetchone()[0] > 0
    finally:
        t.join()
        conn.close()
    assert not errors, errors
    assert min(seen) == before and seen[-1] == before


def test_node_roles_reach_only_their_own_gazetteer(federation):
    """Each node's role owns its gazetteer tables; nothing is granted to PUBLIC, and another
    node's role can neither read nor write them."""
    nat, hz = _dsn(federation, "national"), _dsn(federation, "hangzhou")
    grants = _rows(nat, "SELECT DISTINCT grantee FROM information_schema.role_table_grants"
                        " WHERE table_name IN ('geoplat_places', 'geoplat_divisions',"
                        " 'geoplat_places_build')")
    owner = _rows(nat, "SELECT current_user")[0][0]
    assert {g for (g,) in grants} == {owner}
    # the Hangzhou role's credentials on the national database: refused at connect
    hz_role = psycopg2.extensions.parse_dsn(hz)
    nat_db = psycopg2.extensions.parse_dsn(nat)["dbname"]
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**{**hz_role, "dbname": nat_db}).close()


@pytest.mark.parametrize(("area_code", "scope"), [
    ("330000", "33"), ("330100", "3301"), ("330102", "330102"), (None, None)])
def test_area_code_as_scope(area_code, scope):
    assert gazetteer.area_scope(area_code) == scope


def test_default_mapping_of_published_layers():
    m = gazetteer.default_mapping({"名称": "attr_1", "category": "category"}, "Point")
    assert m is not None and (m.kind, m.name, m.category, m.address) == ("poi", "名称",
                                                                         "category", None)
    assert gazetteer.default_mapping({"name": "name"}, "MultiPolygon") is None
    assert gazetteer.default_mapping({"code": "code"}, "Point") is None
