"""`slope` and `statistics-by-division` on the shared federation (issue 17).

`slope` on Hangzhou's DEM (the Zhejiang 30" DEM) and on the national DEM: the class areas and
the area without data sum to the input's geodesic area within 0.5 %; async gives the same.
`statistics-by-division` of Hangzhou's parcels per township within an area, and of its roads
per district, equal an independent computation over the features API (shapely +
pyproj.Geod) within 0.01 %; bad input answers 400 and creates no job."""

from __future__ import annotations

from collections import defaultdict

import pytest
import requests
import shapely
from publish_helpers import sign_in_users
from shapely.geometry import Polygon, box, mapping, shape
from test_processes import GEOD, execute, job_id_of, wait_status
from waiting import wait_for

PASSWORD = "Slope-Divisions-Pass-1"
HILLS = Polygon([(120.08, 30.18), (120.165, 30.175), (120.17, 30.26), (120.09, 30.265)])
SICHUAN = box(102.2, 30.0, 102.6, 30.4)  # the edge of the Tibetan plateau: steep
AREA = Polygon([(120.2050, 30.2400), (120.2200, 30.2390), (120.2230, 30.2520),
                (120.2060, 30.2530)])


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "slopediv", {"alice": []}, PASSWORD)


def geodesic_area(g) -> float:
    """m² by pyproj.Geod (counter-clockwise shells, clockwise holes)."""
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0])


def features(base: str, layer: str, bbox: tuple[float, float, float, float]) -> list[dict]:
    r = requests.get(f"{base}/ogc/collections/{layer}/items?f=json&limit=1000&"
                     f"bbox={','.join(map(str, bbox))}", timeout=60)
    r.raise_for_status()
    feats = r.json()["features"]
    assert len(feats) < 1000
    return feats


def check_sum(result: dict, geom, dem: str) -> None:
    total = geodesic_area(geom)
    summed = sum(c["area_m2"] for c in result["classes"]) + result["nodata"]["area_m2"]
    assert abs(summed - total) / total < 5e-3, (summed, total)
    assert abs(result["input_area_m2"] - total) / total < 1e-6
    assert [c["range"] for c in result["classes"]] == ["≤2°", "2°–6°", "6°–15°", "15°–25°",
                                                      ">25°"]
    assert result["dem"]["name"] == dem
    e = result["elevation"]
    assert e["min"] <= e["mean"] <= e["max"]


def test_slope_on_hangzhou_sync_and_async(urls, people) -> None:
    hz = urls["hangzhou"]
    r = execute(hz, "slope", {"geometry": mapping(HILLS)}, people["alice"])
    assert r.status_code == 200, r.text
    sync = r.json()
    check_sum(sync, HILLS, "dem_zhejiang")
    assert sync["nodata"]["area_m2"] == 0 and sync["classes"][1]["area_m2"] > 0
    assert 0 < sync["elevation"]["min"] < 50 < sync["elevation"]["max"] < 1000
    r = execute(hz, "slope", {"geometry": mapping(HILLS)}, people["alice"], async_=True)
    jid = job_id_of(r)
    seen: list[str] = []

    def done() -> bool:
        j = wait_status(hz, jid, people["alice"], ("running", "successful", "failed"))
        seen.append(j["message"])
        return j["status"] in ("successful", "failed")

    wait_for(done, 60, "async slope", interval=0.1)
    res = requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["alice"],
                       timeout=30)
    assert res.status_code == 200, (seen, res.text)
    assert res.json() == sync


def test_slope_on_the_national_dem(urls, people) -> None:
    r = execute(urls["national"], "slope", {"geometry": mapping(SICHUAN)}, people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    check_sum(out, SICHUAN, "dem_china")
    assert out["elevation"]["max"] > 3000
    assert sum(c["share"] for c in out["classes"][2:]) > 0.3  # mostly over 6°


def independent(hz: str, layer: str, level_layer: str, area, field: str | None
                ) -> dict[str, dict]:
    """code -> count, area, length and the field's sum/min/max by shapely + pyproj.Geod."""
    divs = features(hz, level_layer, area.bounds)
    feats = [(shape(f["geometry"]), f["properties"]) for f in features(hz, layer, area.bounds)]
    out: dict[str, dict] = {}
    for d in divs:
        zone = shape(d["geometry"]).intersection(area)
        if geodesic_area(zone) <= 0:
            continue
        row: dict = defaultdict(float)
        values = []
        for g, props in feats:
            parts = shapely.get_parts(g.intersection(zone))
            a = sum(geodesic_area(p) for p in parts if p.geom_type == "Polygon")
            length = sum(GEOD.geometry_length(p) for p in parts if p.geom_type == "LineString")
            if a <= 0 and length <= 0:
                continue
            row["count"] += 1
            row["area_m2"] += a
            row["length_m"] += length
            if field:
                values.append(float(props[field]))
        if values:
            row.update({"sum": sum(values), "min": min(values), "max": max(values)})
        out[d["properties"]["code"]] = dict(row)
    return out


def close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-9)


def test_parcels_per_township_equal_an_independent_computation(urls, people) -> None:
    hz = urls["hangzhou"]
    inputs = {"layer": "parcels", "level": "township", "field": "area_m2",
              "area": mapping(AREA)}
    r = execute(hz, "statistics-by-division", inputs, people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["division_layer"] == "township_cells" and out["field"] == "area_m2"
    rows = {row["code"]: row for row in out["rows"]}
    expected = independent(hz, "parcels", "township_cells", AREA, "area_m2")
    assert set(rows) == set(expected) and len(rows) >= 3
    counted = [c for c, e in expected.items() if e.get("count")]
    assert len(counted) >= 2
    for code in counted:
        got, want = rows[code], expected[code]
        assert got["name"].endswith(("街道", "镇", "乡")) and len(code) == 9
        assert got["count"] == want["count"], (code, got, want)
        assert close(got["area_m2"], want["area_m2"]), (code, got, want)
        assert close(got["area_ha"], want["area_m2"] / 1e4)
        assert close(got["area_mu"], want["area_m2"] * 0.0015)
        assert close(got["sum"], want["sum"], 1e-9) and got["min"] == pytest.approx(want["min"])
        assert got["max"] == pytest.approx(want["max"])
        assert close(got["mean"], want["sum"] / want["count"], 1e-9)
    # the choropleth layer: one feature per row, the division within the area, the statistics
    feats = out["choropleth"]["features"]
    assert [f["properties"] for f in feats] == out["rows"]
    for f in feats:
        g = shape(f["geometry"])
        assert g.geom_type == "MultiPolygon" and AREA.buffer(1e-9).contains(g)
    total = sum(e.get("area_m2", 0) for e in expected.values())
    assert close(out["totals"]["area_m2"], total)


def test_roads_per_district_have_their_length(urls, people) -> None:
    hz = urls["hangzhou"]
    r = execute(hz, "statistics-by-division", {"layer": "roads", "field": "lanes"},
                people["alice"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["level"] == "county" and out["division_layer"] == "districts"
    assert len(out["rows"]) == 13 and all(len(row["code"]) == 6 for row in out["rows"])
    assert all(row["area_m2"] == 0 for row in out["rows"])
    rows = {row["code"]: row for row in out["rows"] if row["count"]}
    assert len(rows) >= 2
    city = box(120.10, 30.20, 120.26, 30.32)  # the districts there, clipped independently
    expected = independent(hz, "roads", "districts", city, "lanes")
    r2 = execute(hz, "statistics-by-division", {"layer": "roads", "field": "lanes",
                                                "area": mapping(city)}, people["alice"])
    got = {row["code"]: row for row in r2.json()["rows"]}
    checked = 0
    for code, want in expected.items():
        if want.get("count"):
            assert got[code]["count"] == want["count"]
            assert close(got[code]["length_m"], want["length_m"]), (code, got[code], want)
            assert close(got[code]["sum"], want["sum"], 1e-9)
            checked += 1
    assert checked >= 2


def test_bad_division_input_is_refused_and_no_job_is_made(urls, people) -> None:
    hz, zj, nat = urls["hangzhou"], urls["zhejiang"], urls["national"]
    alice = people["alice"]
    before = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=alice, timeout=10).json()
    bowtie = {"type": "Polygon", "coordinates": [[[120.20, 30.24], [120.21, 30.25],
                                                  [120.21, 30.24], [120.20, 30.25],
                                                  [120.20, 30.24]]]}
    base = {"layer": "parcels", "level": "township"}
    cases = [
        (hz, {**base, "field": "parcel_no"}, "not numeric"),
        (hz, {**base, "field": "right_holder"}, "grant"),  # a restricted attribute
        (hz, {**base, "field": "no_such"}, "no attribute"),
        (hz, {**base, "level": "village"}, "level: one of"),
        (hz, {**base, "area": bowtie}, "Self-intersection"),
        (hz, {**base, "layer": "nope"}, "no layer"),
        (zj, {"layer": "rivers", "level": "township"}, "no township boundaries"),  # points
        (nat, {"layer": "provinces", "level": "township"}, "no township boundaries"),
        (nat, {"geometry": {"type": "Point", "coordinates": [102, 30]}}, "Polygon"),
    ]
    for url, inputs, why in cases:
        process = "slope" if "geometry" in inputs else "statistics-by-division"
        for async_ in (False, True):
            r = execute(url, process, inputs, alice, async_=async_)
            assert r.status_code == 400, (url, inputs, r.status_code, r.text)
            body = r.json()
            assert body["type"] == "InvalidParameterValue" and why in body["description"], body
    refused = execute(hz, "statistics-by-division", {**base, "layer": "control_points"}, alice)
    missing = execute(hz, "statistics-by-division", {**base, "layer": "control_pointz"}, alice)
    assert refused.status_code == missing.status_code == 400
    assert refused.json()["description"].replace("control_points", "X") == \
        missing.json()["description"].replace("control_pointz", "X")
    after = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=alice, timeout=10).json()
    assert after["jobs"] == before["jobs"]
