"""Service items and the nearest offices (issue 15) on the shared federation's Hangzhou node:
the sample catalogue is loaded at node load with every service hall and community centre
linked; item search finds what citizens type; /api/halls/nearest ranks the offices of an item
by route time (each equal to /api/route's duration) and says which are open (a clock given
with `at`); catalogue uploads are refused naming the bad row, or replace it atomically."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import psycopg2
import psycopg2.extras
import pytest
from publish_helpers import sign_in_users

from nodes import federation as federation_mod
from services.access import rules
from services.access.require import guard_group
from services.maps.hours import Hours
from services.maps.item_routes import PATHS, ItemRoutes

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "Halls-Test-Pass-1"
ROOT_ITEMS = Path(__file__).resolve().parents[2] / "data-samples" / "service_items.csv"


@pytest.fixture(scope="module")
def hz(federation: Any) -> Iterator[Any]:
    conn = psycopg2.connect(federation_mod.node_dsn(federation, federation.node("hangzhou")))
    conn.autocommit = True
    cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    yield cur
    conn.close()


@pytest.fixture(scope="module")
def heads(main_db: Any, urls: dict[str, str]) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "halls",
                         {"publisher": ["hangzhou:publisher"], "reader": []}, PASSWORD)


def get(urls: dict[str, str], path: str, **params: str) -> httpx.Response:
    return httpx.get(urls["hangzhou"] + path, params=params, timeout=60)


def door_plate(cur: Any, road: str, number: str) -> tuple[float, float]:
    cur.execute("SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM addresses"
                " WHERE road = %s AND number = %s", (road, number))
    row = cur.fetchone()
    assert row is not None
    return row["x"], row["y"]


def version(cur: Any) -> tuple[int, int, int]:
    cur.execute("SELECT (SELECT max(version) FROM geoplat_items_versions) AS v,"
                " (SELECT count(*) FROM geoplat_items) AS i,"
                " (SELECT count(*) FROM geoplat_office_items) AS l")
    r = cur.fetchone()
    return r["v"], r["i"], r["l"]


def test_every_items_route_has_its_rule() -> None:
    routes = guard_group(rules.ITEMS, ItemRoutes(None).routes())  # type: ignore[arg-type]
    kinds = {str(getattr(r, "path", "")): r.requirement for r in routes}  # type: ignore[attr-defined]
    assert set(kinds) == set(PATHS) == set(rules.ITEMS)
    assert kinds["/api/items/catalogue"].kind == "publisher"
    assert {kinds[p].kind for p in PATHS if p != "/api/items/catalogue"} == {"search"}


def test_sample_catalogue_links_every_hall_and_community_centre(hz: Any) -> None:
    hz.execute("SELECT count(*) AS n, count(DISTINCT department) AS d FROM geoplat_items")
    row = hz.fetchone()
    assert row["n"] >= 150 and row["d"] >= 10
    hz.execute("SELECT p.source_id::bigint AS fid FROM geoplat_places p WHERE p.layer = 'poi'"
               " AND p.category IN ('service_hall', 'community_center') ORDER BY 1")
    halls = [r["fid"] for r in hz.fetchall()]
    hz.execute("SELECT DISTINCT office_id FROM geoplat_office_items ORDER BY 1")
    assert len(halls) == 55 and [r["office_id"] for r in hz.fetchall()] == halls
    hz.execute("SELECT code FROM geoplat_office_items GROUP BY code HAVING count(*) = 2")
    assert len(hz.fetchall()) >= 1
    hz.execute("SELECT source FROM geoplat_items_versions ORDER BY version LIMIT 1")
    assert hz.fetchone()["source"] == "sample"


@pytest.mark.parametrize(("q", "first", "within"), [
    ("办身份证", "居民身份证首次申领", 1),
    ("不动产", "不动产", 5),
    ("不动产登记", "不动产", 5),
    ("bdcdj", "不动产", 5),
    ("公积金提取", "住房公积金提取", 4),
    ("結婚登記", "结婚登记", 1),    # traditional characters
])
def test_item_search(urls: dict[str, str], q: str, first: str, within: int) -> None:
    r = get(urls, "/api/items", q=q)
    assert r.status_code == 200, r.text
    names = [i["name"] for i in r.json()["items"]]
    assert names and all(first in n for n in names[:within]), names[:within + 2]


def test_item_search_finds_nothing_for_unrelated_text(urls: dict[str, str]) -> None:
    assert get(urls, "/api/items", q="量子计算机").json()["items"] == []


def test_item_with_its_offices(urls: dict[str, str]) -> None:
    body = get(urls, "/api/items/GASF001").json()
    assert body["name"] == "居民身份证首次申领" and "居民户口簿" in body["materials"]
    assert body["legal_days"] >= body["promised_days"] > 0 and body["flags"]["nearby"] is True
    assert len(body["offices"]) == 25 and all(o["location"] for o in body["offices"])
    assert get(urls, "/api/items/NOPE01").status_code == 404


def _two_office_item(hz: Any) -> str:
    hz.execute("SELECT code FROM geoplat_office_items GROUP BY code HAVING count(*) = 2"
               " ORDER BY code LIMIT 1")
    return hz.fetchone()["code"]


def test_item_only_two_offices_handle_ranks_them_by_route_time(urls: dict[str, str],
                                                               hz: Any) -> None:
    code = _two_office_item(hz)
    hz.execute("SELECT office_id FROM geoplat_office_items WHERE code = %s ORDER BY 1", (code,))
    offices = [r["office_id"] for r in hz.fetchall()]
    for road, number in (("宏二路", "2号"), ("寿湖路", "43号")):
        user = door_plate(hz, road, number)
        for mode in ("drive", "walk"):
            r = get(urls, "/api/halls/nearest", item=code, lon=str(user[0]), lat=str(user[1]),
                    mode=mode)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/geo+json")
            body = r.json()
            feats = body["features"]
            assert sorted(f["id"] for f in feats) == offices and body["candidates"] == 2
            durations = [f["properties"]["duration"] for f in feats]
            assert durations == sorted(durations)
            for f in feats:
                lon, lat = f["geometry"]["coordinates"]
                route = get(urls, "/api/route", mode=mode, **{"from": f"{user[0]},{user[1]}",
                                                               "to": f"{lon},{lat}"}).json()
                assert f["properties"]["duration"] == pytest.approx(route["duration"], abs=0.5)
                assert f["properties"]["distance"] == pytest.approx(route["distance"], rel=0.01,
                                                                    abs=2)
                assert f["properties"]["windows"] and f["properties"]["phone"]


def test_open_now_flips_across_a_closing_time(urls: dict[str, str], hz: Any) -> None:
    code = _two_office_item(hz)
    user = door_plate(hz, "宏二路", "2号")
    hz.execute("SELECT o.office_id, o.opening_hours FROM geoplat_offices o"
               " JOIN geoplat_office_items l USING (office_id) WHERE l.code = %s", (code,))
    assert all("Mo-Fr 09:00-17:00" in r["opening_hours"] or "Mo-Fr 08:45-17:00"
               in r["opening_hours"] for r in hz.fetchall())

    def states(at: str) -> list[dict[str, Any]]:
        r = get(urls, "/api/halls/nearest", item=code, lon=str(user[0]), lat=str(user[1]),
                at=at)
        assert r.status_code == 200, r.text
        return [f["properties"] for f in r.json()["features"]]

    before = states("2026-12-01T16:59:30+08:00")  # a Tuesday
    assert all(p["open_now"] for p in before)
    assert {p["closes_at"] for p in before} == {"2026-12-01T17:00:00+08:00"}
    after = states("2026-12-01T09:00:30Z")  # 17:00:30 in Shanghai
    assert not any(p["open_now"] for p in after)
    for p in after:  # tomorrow at the time its hours open on weekdays
        start = re.search(r"Mo-Fr (\d\d:\d\d)", p["opening_hours"])
        assert start and p["opens_at"] == f"2026-12-02T{start.group(1)}:00+08:00"
    assert all("已休息" in p["status"] for p in after)
    # a configured holiday (National Day, a Thursday): closed all day
    holiday = states("2026-10-01T10:00:00")
    assert not any(p["open_now"] for p in holiday)


def test_hours_with_an_injected_clock() -> None:
    t = [dt.datetime(2026, 12, 1, 16, 59, tzinfo=SHANGHAI)]
    h = Hours([dt.date(2026, 12, 2)], clock=lambda: t[0])
    st = h.status("Mo-Fr 09:00-17:00")
    assert st.open and st.next_change == dt.datetime(2026, 12, 1, 17, 0, tzinfo=SHANGHAI)
    t[0] = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # 17:00 in Shanghai
    st = h.status("Mo-Fr 09:00-17:00")
    assert not st.open  # and the next day is a holiday: opens on the 3rd
    assert st.next_change == dt.datetime(2026, 12, 3, 9, 0, tzinfo=SHANGHAI)


def test_make_up_working_days_keep_weekday_hours() -> None:
    """调休上班日: Sunday 2026-01-04 is a working day (the 2026 notice), after a holiday
    (Jan 1-3): an office open Mo-Fr opens with the hours of its last regular working day
    (Wednesday Dec 31), a Sunday later it is closed again."""
    hours = "Mo-Fr 09:00-12:00,13:30-17:00; Sa 09:00-12:00"
    holidays = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    h = Hours(holidays, workdays=[dt.date(2026, 1, 4)])
    at = dt.datetime(2026, 1, 4, 10, 0, tzinfo=SHANGHAI)
    st = h.status(hours, at)
    assert st.open and st.next_change == dt.datetime(2026, 1, 4, 12, 0, tzinfo=SHANGHAI)
    noon = h.status(hours, at.replace(hour=12, minute=30))
    assert not noon.open and noon.next_change == at.replace(hour=13, minute=30)
    assert not h.status(hours, at + dt.timedelta(days=7)).open  # Sunday Jan 11: closed
    assert not Hours(holidays).status(hours, at).open  # without the workday: a Sunday
    assert not h.status("Sa 09:00-12:00", at).open  # closed on its last working day: closed


def test_open_now_lists_closed_offices_after_open_ones(urls: dict[str, str], hz: Any) -> None:
    """Saturday 10:00: district centres (Sa 09:00-12:00) are open, street centres closed."""
    user = door_plate(hz, "宏二路", "2号")
    common = {"item": "GASF001", "lon": str(user[0]), "lat": str(user[1]), "limit": "50",
              "at": "2026-12-05T10:00:00+08:00"}
    plain = get(urls, "/api/halls/nearest", **common).json()["features"]
    ranked = get(urls, "/api/halls/nearest", open_now="true", **common).json()["features"]
    assert len(plain) == len(ranked) == 25
    is_open = [f["properties"]["open_now"] for f in ranked]
    assert True in is_open and False in is_open
    assert is_open == sorted(is_open, reverse=True)  # every open one before every closed one
    for group in (True, False):  # each group by route time
        d = [f["properties"]["duration"] for f in ranked if f["properties"]["open_now"] is group]
        assert d == sorted(d)
    assert [f["properties"]["open_now"] for f in plain] != is_open  # it did reorder
    assert [f["properties"]["rank"] for f in ranked] == list(range(1, 26))


BAD = [
    ({}, 400, "item"),
    ({"item": "x;drop"}, 400, "item"),
    ({"item": "NOPE01", "lon": "120.2", "lat": "30.25"}, 400, "item"),
    ({"item": "GASF001", "lat": "30.25"}, 400, "lon"),
    ({"item": "GASF001", "lon": "abc", "lat": "30.25"}, 400, "lon"),
    ({"item": "GASF001", "lon": "nan", "lat": "30.25"}, 400, None),
    ({"item": "GASF001", "lon": "120.2", "lat": "95"}, 400, None),
    ({"item": "GASF001", "lon": "116.4", "lat": "39.9"}, 422, None),   # outside the node
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "mode": "fly"}, 400, "mode"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "limit": "0"}, 400, "limit"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "limit": "51"}, 400, "limit"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "open_now": "maybe"}, 400, "open_now"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "at": "tomorrow"}, 400, "at"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "at": "0001-01-01T00:00+14:00"}, 400,
     "at"),
    ({"item": "GASF001", "lon": "120.2", "lat": "30.25", "at": "9999-12-31T23:59-12:00"}, 400,
     "at"),
    ({"item": "GASF001", "lon": "1" * 40, "lat": "30.25"}, 400, "lon"),
]


@pytest.mark.parametrize(("params", "status", "param"), BAD)
def test_bad_input_is_a_problem(urls: dict[str, str], params: dict[str, str], status: int,
                                param: str | None) -> None:
    r = get(urls, "/api/halls/nearest", **params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if param:
        assert body.get("param") == param
    assert "Traceback" not in r.text and "SELECT" not in r.text


def test_bad_search_input(urls: dict[str, str]) -> None:
    for params in ({"q": "x" * 201}, {"q": "a", "limit": "-1"}, {"q": "a", "limit": "1000"}):
        r = get(urls, "/api/items", **params)
        assert r.status_code == 400 and r.headers["content-type"].startswith(
            "application/problem+json")
    assert get(urls, "/api/items/x'or'1").status_code == 400


# --------------------------------------------------------------------------- uploads

def _items_csv(change: dict[int, dict[str, str]] | None = None) -> bytes:
    rows = list(csv.DictReader(ROOT_ITEMS.open(encoding="utf-8")))
    for i, cols in (change or {}).items():
        rows[i].update(cols)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def _xml_bomb() -> bytes:
    """An XLSX whose sheet expands an entity a billion times (refused: defusedxml)."""
    wb = openpyxl.Workbook()
    wb.active.title = "items"
    wb.active.append(["code", "name"])
    buf = io.BytesIO()
    wb.save(buf)
    dtd = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY lol0 "lol">'
           + "".join(f'<!ENTITY lol{i + 1} "{f"&lol{i};" * 10}">' for i in range(9)) + "]>")
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = (dtd + data.decode().replace("<t>name</t>", "<t>&lol9;</t>")).encode()
            dst.writestr(info, data)
    return out.getvalue()


def _upload(urls: dict[str, str], headers: dict[str, str], name: str, data: bytes
            ) -> httpx.Response:
    return httpx.post(urls["hangzhou"] + "/api/items/catalogue", headers=headers, timeout=60,
                      files={"file": (name, data, "text/csv")})


def test_upload_needs_a_publisher(urls: dict[str, str], heads: dict[str, Any], hz: Any) -> None:
    before = version(hz)
    assert _upload(urls, {}, "items.csv", _items_csv()).status_code == 401
    assert _upload(urls, heads["reader"], "items.csv", _items_csv()).status_code == 403
    assert version(hz) == before


@pytest.mark.parametrize(("change", "row", "column"), [
    ({4: {"legal_days": "abc"}}, 6, "legal_days"),
    ({9: {"code": "GAHJ001"}}, 11, "code"),                      # a duplicate code
    ({20: {"promised_days": "90", "legal_days": "60"}}, 22, "promised_days"),
    ({30: {"online_url": "javascript:alert(1)"}}, 32, "online_url"),
    ({40: {"nearby": "maybe"}}, 42, "nearby"),
    ({50: {"name": ""}}, 52, "name"),
])
def test_a_bad_row_is_refused_naming_it(urls: dict[str, str], heads: dict[str, Any], hz: Any,
                                        change: dict[int, dict[str, str]], row: int,
                                        column: str) -> None:
    before = version(hz)
    r = _upload(urls, heads["publisher"], "items.csv", _items_csv(change))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["row"] == row and body["column"] == column
    assert f"row {row}" in body["detail"]
    assert version(hz) == before
    hz.execute("SELECT ok, detail FROM auth.audit WHERE event = 'items.publish'"
               " ORDER BY id DESC LIMIT 1")
    last = hz.fetchone()
    assert last["ok"] is False and f"row {row}" in str(last["detail"])


def test_files_are_opened_only_as_what_they_claim(urls: dict[str, str], heads: dict[str, Any],
                                                  hz: Any) -> None:
    before = version(hz)
    buf = io.BytesIO()
    openpyxl.Workbook().save(buf)
    for name, data, status in (("items.csv", buf.getvalue(), 415),
                               ("items.xlsx", _items_csv(), 415),
                               ("items.txt", _items_csv(), 415),
                               ("items.csv", "code,name\n".encode("utf-16"), 415),
                               ("items.csv", b"a,b\n1,2\n", 400),
                               ("items.csv", b'code,name\n"' + b"x" * 200_000 + b'",y\n', 400),
                               ("items.xlsx", _xml_bomb(), 415)):
        r = _upload(urls, heads["publisher"], name, data)
        assert r.status_code == status, (name, r.text)
    assert version(hz) == before


def test_a_good_file_replaces_the_catalogue(urls: dict[str, str], heads: dict[str, Any],
                                            hz: Any) -> None:
    v0, n0, l0 = version(hz)
    r = _upload(urls, heads["publisher"], "items.csv",
                _items_csv({0: {"name": "新生儿出生登记（一件事）", "aliases": "出生一件事"}}))
    assert r.status_code == 201, r.text
    assert r.json()["version"] == v0 + 1 and version(hz) == (v0 + 1, n0, l0)
    found = get(urls, "/api/items", q="出生一件事").json()["items"]
    assert found and found[0]["name"] == "新生儿出生登记（一件事）"
    # items dropped that offices still handle: refused, nothing changes
    rows = _items_csv().decode().splitlines()
    r = _upload(urls, heads["publisher"], "items.csv", "\n".join(rows[:-1]).encode())
    assert r.status_code == 400 and "upload the offices too" in r.json()["detail"]
    assert version(hz)[0] == v0 + 1
    # an XLSX workbook with the sample items back: the original catalogue again
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "items"
    for line in csv.reader(io.StringIO(_items_csv().decode())):
        ws.append(line)
    buf = io.BytesIO()
    wb.save(buf)
    r = _upload(urls, heads["publisher"], "items.xlsx", buf.getvalue())
    assert r.status_code == 201, r.text
    assert version(hz) == (v0 + 2, n0, l0)
    assert get(urls, "/api/items/GAHJ001").json()["name"] == "出生登记"
    versions = httpx.get(urls["hangzhou"] + "/api/items/catalogue", headers=heads["publisher"],
                         timeout=30).json()["versions"]
    assert [v["version"] for v in versions[:2]] == [v0 + 2, v0 + 1]
    assert versions[0]["actor"] == "halls_publisher" and versions[0]["source"] == "items.xlsx"


def test_a_keys_search_quota_counts_the_item_routes(urls: dict[str, str], main_db: Any,
                                                    hz: Any) -> None:
    from services.access import apikeys
    from services.sso import accounts

    user = accounts.create(main_db, "halls_quota_dev", "halls-quota-password-1",
                           roles=["developer"])
    key, _ = apikeys.create_key(main_db, "test", user.id, "halls quota", "server",
                                ["127.0.0.0/8"], quotas={"search": 3}, actor="test")
    user_at = door_plate(hz, "宏二路", "2号")
    assert get(urls, "/api/items", q="公积金", tk=key).status_code == 200
    assert get(urls, "/api/items/GASF001", tk=key).status_code == 200
    assert get(urls, "/api/halls/nearest", item="GASF001", lon=str(user_at[0]),
               lat=str(user_at[1]), tk=key).status_code == 200
    over = get(urls, "/api/halls/nearest", item="GASF001", lon=str(user_at[0]),
               lat=str(user_at[1]), tk=key)
    assert over.status_code == 429 and "quota" in over.json()["detail"]
    assert over.headers["content-type"].startswith("application/problem+json")
