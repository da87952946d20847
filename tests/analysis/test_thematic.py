"""Issue 17: the synthetic planning layers of Hangzhou, and `join-statistics` (a table of
statistics joined to the divisions, published as a thematic layer with graduated classes).

On the shared federation's Hangzhou node; every wait polls (tests/support/waiting.py)."""

from __future__ import annotations

import base64
import csv
import io
import zipfile

import numpy as np
import pytest
import requests
import shapely
from PIL import Image
from publish_helpers import sign_in_users
from shapely.geometry import box, shape
from test_processes import GEOD, execute, job_id_of, wait_status

from services.analysis import thematic

PASSWORD = "Thematic-Test-Pass-1"
XLSX = thematic.XLSX_TYPE
# invented statistics of Hangzhou's 13 districts (常住人口 in 10,000, GDP in 100 million yuan)
POPULATION = {"330102": ("上城区", 132.5), "330105": ("拱墅区", 118.0), "330106": ("西湖区", 119.8),
              "330108": ("滨江区", 54.6), "330109": ("萧山区", 210.1), "330110": ("余杭区", 139.7),
              "330111": ("富阳区", 84.8), "330112": ("临安区", 65.0), "330113": ("临平区", 118.9),
              "330114": ("钱塘区", 80.1), "330122": ("桐庐县", 45.9), "330127": ("淳安县", 32.9),
              "330182": ("建德市", 44.3)}


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "thematic",
                         {"alice": [], "pub": ["hangzhou:publisher"]}, PASSWORD)


def table(rows: list[list[object]], encoding: str = "utf-8") -> dict[str, str]:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return {"mediaType": "text/csv",
            "value": base64.b64encode(out.getvalue().encode(encoding)).decode()}


def county_rows() -> list[list[object]]:
    """Keys in every form the process takes; three rows that match nothing; two bad values."""
    key = {"330102": "330102", "330105": "330105000000", "330106": "西湖区", "330108": "滨江",
           "330109": "杭州市萧山区"}
    rows: list[list[object]] = [["区县", "常住人口", "GDP"]]
    for code, (name, pop) in POPULATION.items():
        gdp = {"330122": "=1+1", "330127": "n/a"}.get(code, f"{pop * 19.7:,.1f}")
        rows.append([key.get(code, code), pop, gdp])
    rows += [["330199", 1, 1], ["火星区", 2, 2], ["3301", 3, 3]]
    return rows


JOIN = {"key": "区县", "level": "county", "fields": ["常住人口", "GDP"]}


def pixel(hz: str, layer: str, lon: float, lat: float) -> np.ndarray:
    r = requests.get(f"{hz}/wms", params={
        "SERVICE": "WMS", "VERSION": "1.1.1", "REQUEST": "GetMap", "LAYERS": layer, "STYLES": "",
        "SRS": "EPSG:4490", "BBOX": f"{lon - .002},{lat - .002},{lon + .002},{lat + .002}",
        "WIDTH": 64, "HEIGHT": 64, "FORMAT": "image/png", "TRANSPARENT": "TRUE"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[32, 32]


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def close(px: np.ndarray, colour: str) -> bool:
    return bool(px[3] > 200 and np.abs(px[:3].astype(int) - rgb(colour)).max() <= 8)


# --- sample data ------------------------------------------------------------------------------

def test_planning_layers_are_served_and_computed_on(hz, people) -> None:
    cols = {c["id"] for c in requests.get(f"{hz}/ogc/collections?f=json",
                                          timeout=30).json()["collections"]}
    assert {"landuse_plan", "basic_farmland"} <= cols and "eco_redline" not in cols
    assert requests.get(f"{hz}/ogc/collections/eco_redline?f=json",
                        timeout=10).status_code in (401, 403, 404)
    red = requests.get(f"{hz}/ogc/collections/eco_redline/items?f=json&limit=50",
                       headers=people["alice"], timeout=30)
    assert red.status_code == 200, red.text
    names = {f["properties"]["name"] for f in red.json()["features"]}
    assert "西湖群山生态保护红线" in names
    for lid, attrs in (("landuse_plan", {"plan_code", "plan_name", "class_code", "class_name",
                                         "area_mu", "approved_year"}),
                       ("basic_farmland", {"jbnt_code", "name", "area_mu", "approved_year"})):
        feats = requests.get(f"{hz}/ogc/collections/{lid}/items?f=json&limit=20",
                             timeout=30).json()["features"]
        assert feats and all(f["properties"]["synthetic"] is True for f in feats)
        assert attrs <= set(feats[0]["properties"]), feats[0]["properties"]
    # the plan's units tile the core: an overlay by first-level class covers the whole input
    area = box(120.13, 30.20, 120.16, 30.23)
    r = execute(hz, "overlay", {"geometry": shapely.geometry.mapping(area),
                                "layers": ["landuse_plan"], "group_by": "class_name"},
                people["alice"])
    assert r.status_code == 200, r.text
    classes = r.json()["classes"]
    assert len(classes) >= 2 and abs(sum(c["share"] for c in classes) - 1) < 1e-3, classes
    # WMS classes by GB/T 21010 first-level class: West Lake is water (11), blue
    assert close(pixel(hz, "landuse_plan", 120.1445, 30.2445), "#9ec7ea")
    farm = requests.get(f"{hz}/ogc/collections/basic_farmland/items?f=json&limit=1",
                        timeout=30).json()["features"][0]
    p = shape(farm["geometry"]).representative_point()
    assert close(pixel(hz, "basic_farmland", p.x, p.y), "#f6e27a")


# --- join-statistics ----------------------------------------------------------------------------

def test_join_reports_matched_unmatched_and_bad_values(hz, people) -> None:
    r = execute(hz, "join-statistics", {**JOIN, "table": table(county_rows(), "gbk")},
                people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["divisions_layer"] == "districts"
    assert out["summary"] == {"rows": 16, "matched": 13, "unmatched": 3, "problems": 2}
    got = {m["code"]: m for m in out["matched"]}
    assert set(got) == set(POPULATION)
    for code, (name, pop) in POPULATION.items():
        assert got[code]["name"] == name and got[code]["values"]["常住人口"] == pop
    assert got["330102"]["values"]["GDP"] == pytest.approx(132.5 * 19.7, abs=0.06)
    unmatched = {u["key"]: u["reason"] for u in out["unmatched"]}
    assert set(unmatched) == {"330199", "火星区", "3301"}
    assert "no county with code 330199" in unmatched["330199"]
    assert "6 digits" in unmatched["3301"] and "no county named" in unmatched["火星区"]
    bad = {(p["key"], p["field"]): p for p in out["problems"]}
    assert bad[("330122", "GDP")]["value"] == "=1+1"  # kept as text, never evaluated
    assert bad[("330122", "GDP")]["reason"] == "not a number"
    assert bad[("330127", "GDP")]["reason"] == "no value"
    assert got["330122"]["values"]["GDP"] is None
    # the CSV it writes: a formula-looking text is prefixed with ', numbers stay numbers
    written = list(csv.reader(io.StringIO(out["table_csv"])))
    assert written[0][:5] == ["row", "区县", "division_code", "division_name", "match"]
    tonglu = next(r for r in written if r[2] == "330122")
    assert tonglu[6] == "'=1+1" and tonglu[5] == "45.9"
    assert not any(c.startswith(("=", "+", "@")) for row in written for c in row)
    # choropleth-ready: the matched divisions with their values, in longitude/latitude
    feats = out["choropleth"]["features"]
    assert {f["properties"]["division_code"] for f in feats} == set(POPULATION)
    xihu = next(f for f in feats if f["properties"]["division_code"] == "330106")
    assert shape(xihu["geometry"]).contains(shapely.Point(120.10, 30.25))
    assert xihu["properties"]["常住人口"] == 119.8
    area = abs(GEOD.geometry_area_perimeter(shape(xihu["geometry"]))[0])
    assert 50e6 < area < 1000e6


def test_duplicate_divisions_are_refused_and_nothing_is_written(hz, people) -> None:
    before = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["alice"],
                          timeout=10).json()["jobs"]
    rows = [["code", "pop"], ["330102", 1], ["上城区", 2], ["330106", 3], ["330106000000", 4],
            ["330108", 5]]
    for async_ in (False, True):
        r = execute(hz, "join-statistics", {"key": "code", "level": "county", "fields": ["pop"],
                                            "table": table(rows)}, people["alice"],
                    async_=async_)
        assert r.status_code == 400, r.text
        d = r.json()["description"]
        assert "330102 (rows 2, 3)" in d and "330106 (rows 4, 5)" in d and "330108" not in d, d
    cases = [
        ({"key": "nope"}, "no column 'nope'"),
        ({"level": "city"}, "level"),
        ({"fields": ["code"]}, "key column"),
        ({"table": {"mediaType": "text/csv", "value": "%%%"}}, "base64"),
        ({"table": {"mediaType": "application/pdf", "value": "AAAA"}}, "mediaType"),
        ({"table": {"mediaType": XLSX, "value": table(rows)["value"]}}, "not a workbook"),
    ]
    base = {"key": "code", "level": "county", "fields": ["pop"], "table": table(rows[:2])}
    for change, why in cases:
        r = execute(hz, "join-statistics", {**base, **change}, people["alice"])
        assert r.status_code == 400 and why in r.json()["description"], (change, r.text)
    after = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["alice"],
                         timeout=10).json()["jobs"]
    assert after == before


def xlsx(rows: list[list[object]], extra: dict[str, bytes] | None = None) -> dict[str, str]:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "统计"
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    if extra:
        with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as z:
            for name, data in extra.items():
                z.writestr(name, data)
    return {"mediaType": XLSX, "value": base64.b64encode(buf.getvalue()).decode()}


def test_xlsx_townships_and_hostile_workbooks(hz, people) -> None:
    rows: list[list[object]] = [["乡镇代码", "乡镇", "户数"], [330106002, "北山街道", 1200],
                                [330106004000, "西溪街道", 1350.5], [None, "灵隐", 900],
                                [330106999, "虚构镇", 1], [330106005, "x", "=SUM(1,2)"],
                                [330106007, "y", "@cmd"]]
    r = execute(hz, "join-statistics", {"key": "乡镇代码", "level": "township",
                                        "fields": ["户数"], "table": xlsx(rows)},
                people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["divisions_layer"] == "township_cells"
    got = {m["code"]: m["values"]["户数"] for m in out["matched"]}
    assert got["330106002"] == 1200 and got["330106004"] == 1350.5
    assert got["330106005"] is None  # a formula: openpyxl reads values only, there is none
    assert {u["key"] for u in out["unmatched"]} >= {"330106999"}
    bad = {p["value"]: p["reason"] for p in out["problems"]}
    assert bad.get("@cmd") == "not a number"
    assert "'@cmd" in out["table_csv"]
    # by name: 灵隐 is 灵隐街道 without its suffix
    r = execute(hz, "join-statistics", {"key": "乡镇", "level": "township", "fields": ["户数"],
                                        "table": xlsx(rows)}, people["alice"])
    assert r.status_code == 200, r.text
    by_name = {m["name"]: m for m in r.json()["matched"]}
    assert "灵隐街道" in by_name and "北山街道" in by_name
    # a workbook with macros, and one that unpacks to too much, are refused
    for extra, why in (({"xl/vbaProject.bin": b"\x00" * 64}, "macros"),
                       ({"xl/media/big.bin": b"\x00" * (thematic.MAX_XLSX_UNPACKED + 1)},
                        "unpacks")):
        r = execute(hz, "join-statistics", {"key": "乡镇代码", "level": "township",
                                            "fields": ["户数"], "table": xlsx(rows, extra)},
                    people["alice"])
        assert r.status_code == 400 and why in r.json()["description"], r.text


# --- a thematic layer -------------------------------------------------------------------------

def test_publish_a_thematic_layer_with_graduated_classes(hz, people) -> None:
    rows = [["code", "pop"]] + [[c, p] for c, (_, p) in POPULATION.items()] + [["330199", 9]]
    inputs = {"key": "code", "level": "county", "fields": ["pop"],
              "table": table(rows, "utf-8-sig"),
              "publish": {"layer": "thematic_population", "title": "常住人口 Population",
                          "field": "pop", "classes": 5, "scheme": "quantiles"}}
    # a user without the publishing role is refused before anything runs or is written
    for async_ in (False, True):
        r = execute(hz, "join-statistics", inputs, people["alice"], async_=async_)
        assert r.status_code == 403, r.text
        assert "publisher or admin role" in r.json()["description"]
    assert requests.get(f"{hz}/ogc/collections/thematic_population?f=json",
                        timeout=10).status_code == 404
    try:
        check_published(hz, people, inputs)
    finally:  # the layer covers Hangzhou on the e-map: gone for the tests that follow
        requests.delete(f"{hz}/api/layers/thematic_population?purge=1", headers=people["pub"],
                        timeout=60)
    assert requests.get(f"{hz}/ogc/collections/thematic_population?f=json",
                        timeout=10).status_code == 404


def check_published(hz: str, people: dict, inputs: dict) -> None:
    # a publisher: as a job on the queue
    r = execute(hz, "join-statistics", inputs, people["pub"], async_=True)
    jid = job_id_of(r)
    done = wait_status(hz, jid, people["pub"], ("successful", "failed"), 120)
    assert done["status"] == "successful", done
    res = requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["pub"], timeout=30)
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["summary"]["matched"] == 13 and out["unmatched"][0]["key"] == "330199"
    assert out["published"]["layer"] == "thematic_population"
    cls = out["classes"]
    assert cls["k"] == 5 and len(cls["breaks"]) == 5 and cls["breaks"][-1] == 210.1
    assert sum(c["count"] for c in cls["classes"]) == 13
    # the features carry their class number: 1 for the lowest value, 5 for the highest
    feats = requests.get(f"{hz}/ogc/collections/thematic_population/items?f=json&limit=100",
                         timeout=30).json()["features"]
    by_code = {f["properties"]["division_code"]: f for f in feats}
    assert set(by_code) == set(POPULATION)
    assert by_code["330127"]["properties"]["class_no"] == 1  # 淳安县, 32.9
    assert by_code["330109"]["properties"]["class_no"] == 5  # 萧山区, 210.1
    for f in feats:  # the class holds the value
        c = cls["classes"][f["properties"]["class_no"] - 1]
        assert c["min"] <= f["properties"]["pop"] <= c["max"]
    # WMS GetMap draws the classes: the lowest and the highest district differ in colour
    low = shape(by_code["330127"]["geometry"]).representative_point()
    high = shape(by_code["330109"]["geometry"]).representative_point()
    px_low, px_high = pixel(hz, "thematic_population", low.x, low.y), \
        pixel(hz, "thematic_population", high.x, high.y)
    assert close(px_low, cls["classes"][0]["colour"]), px_low
    assert close(px_high, cls["classes"][4]["colour"]), px_high
    assert np.abs(px_low[:3].astype(int) - px_high[:3].astype(int)).max() > 60


def test_classes_by_quantiles_and_natural_breaks() -> None:
    values = [1.0, 1.1, 1.2, 5.0, 5.1, 5.2, 9.0, 9.1, 9.2]
    yb, bins, k = thematic.classify(values, 3, "natural_breaks")
    assert k == 3 and yb == [1, 1, 1, 2, 2, 2, 3, 3, 3] and bins == [1.2, 5.2, 9.2]
    yb, bins, k = thematic.classify(values, 3, "quantiles")
    assert k == 3 and sorted(set(yb)) == [1, 2, 3] and bins[-1] == 9.2
    yb, bins, k = thematic.classify([2.0, 2.0, 3.0], 5, "quantiles")  # fewer values than classes
    assert k == 2 and yb == [1, 1, 2]
    colours, style = thematic.class_style(5)
    assert colours[0] == "#ffffb2" and colours[-1] == "#bd0026"
    assert [r["value"] for r in style["rules"]] == [1, 2, 3, 4, 5]
