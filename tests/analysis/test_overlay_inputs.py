"""`overlay`'s input area from a feature by id or from an uploaded file (issue 17), on the
shared federation's Hangzhou node: the same result as the geometry itself; a feature of a
layer the caller may not see answers as a missing one; hostile uploads (a VRT or URL posing as
GeoJSON, a zip climbing out of its directory) answer 400 with no job and no file written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import requests
from analysis_uploads import (
    GEOJSON,
    geopackage,
    qualified,
    shapefile_zip,
    traversal_zip,
    vrt_document,
    vrt_in_zip,
)
from publish_helpers import sign_in_users
from shapely.geometry import mapping, shape
from test_processes import AREA, execute, job_id_of, wait_status

from nodes.pygeoapi_config import node_dir
from services.analysis.queue import results_dir

PASSWORD = "Overlay-Inputs-Pass-1"
BASE = {"layers": ["parcels"], "group_by": "land_use"}


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "ovinputs", {"alice": []}, PASSWORD)


@pytest.fixture(scope="module")
def by_geometry(hz, people) -> dict:
    r = execute(hz, "overlay", {**BASE, "geometry": mapping(AREA)}, people["alice"])
    assert r.status_code == 200, r.text
    return r.json()


def same_classes(got: dict, want: dict, rel: float = 1e-6) -> None:
    a = {(c["layer"], c["value"]): c for c in got["classes"]}
    b = {(c["layer"], c["value"]): c for c in want["classes"]}
    assert set(a) == set(b) and len(a) >= 2
    for k, c in b.items():
        assert a[k]["count"] == c["count"], (k, a[k], c)
        assert abs(a[k]["area_m2"] - c["area_m2"]) <= rel * c["area_m2"] + 1e-3, (k, a[k], c)
    assert abs(got["input_area_m2"] - want["input_area_m2"]) <= rel * want["input_area_m2"]


def township_of(hz: str, code: str) -> dict:
    x, y = AREA.centroid.x, AREA.centroid.y
    r = requests.get(f"{hz}/ogc/collections/township_cells/items?f=json&limit=100&"
                     f"bbox={x - 0.01},{y - 0.01},{x + 0.01},{y + 0.01}", timeout=30)
    r.raise_for_status()
    found = [f for f in r.json()["features"] if f["properties"]["code"] == code]
    assert len(found) == 1
    return found[0]


def test_a_feature_by_id_gives_the_same_result_as_its_geometry(hz, people) -> None:
    cell = township_of(hz, "330102015")  # 彭埠街道: many parcels
    inputs = {**BASE, "feature": {"layer": "township_cells", "id": cell["id"]}}
    r = execute(hz, "overlay", inputs, people["alice"])
    assert r.status_code == 200, r.text
    direct = execute(hz, "overlay", {**BASE, "geometry": cell["geometry"]}, people["alice"])
    assert direct.status_code == 200, direct.text
    same_classes(r.json(), direct.json())
    # async: the same
    jid = job_id_of(execute(hz, "overlay", inputs, people["alice"], async_=True))
    assert wait_status(hz, jid, people["alice"], ("successful", "failed"))["status"] == \
        "successful"
    res = requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["alice"],
                       timeout=30)
    assert res.json()["classes"] == r.json()["classes"]


def test_a_feature_of_an_invisible_layer_answers_as_a_missing_one(hz, people) -> None:
    answers = [execute(hz, "overlay", {**BASE, "feature": {"layer": layer, "id": 1}},
                       people["alice"]) for layer in ("control_points", "control_pointz")]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json()["description"].replace("control_points", "X") == \
        answers[1].json()["description"].replace("control_pointz", "X")
    r = execute(hz, "overlay", {**BASE, "feature": {"layer": "township_cells", "id": 99999999}},
                people["alice"])
    assert r.status_code == 400 and "no feature" in r.json()["description"], r.text


@pytest.mark.parametrize("make", [lambda: shapefile_zip([AREA], "EPSG:4549"),
                                  lambda: geopackage([AREA])], ids=["shp-zip-gk", "gpkg"])
def test_an_uploaded_file_gives_the_same_result(hz, people, by_geometry, make) -> None:
    r = execute(hz, "overlay", {**BASE, "upload": make()}, people["alice"])
    assert r.status_code == 200, r.text
    same_classes(r.json(), by_geometry)
    feats = r.json()["intersections"]["features"]
    assert all(AREA.buffer(1e-7).contains(shape(f["geometry"])) for f in feats)


def test_hostile_uploads_are_refused_and_nothing_is_written(hz, people, federation) -> None:
    alice = people["alice"]
    out = results_dir(node_dir(federation, federation.node("hangzhou")))
    files_before = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    jobs_before = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=alice,
                               timeout=10).json()["jobs"]
    escaped = "geoplat-escaped-overlay"
    cases = [
        (qualified(vrt_document("/etc/passwd"), GEOJSON), "not GeoJSON"),
        (qualified(vrt_document("/vsicurl/http://127.0.0.1:9/x.csv"), GEOJSON), "not GeoJSON"),
        (vrt_in_zip("/etc/passwd"), "not a Shapefile"),
        (traversal_zip(escaped, AREA), "unsafe entry"),
        ({"value": "e30=", "mediaType": "text/xml"}, "not accepted"),
    ]
    for upload, why in cases:
        for async_ in (False, True):
            r = execute(hz, "overlay", {**BASE, "upload": upload}, alice, async_=async_)
            assert r.status_code == 400, (why, r.status_code, r.text)
            body = r.json()
            assert body["type"] == "InvalidParameterValue" and why in body["description"], body
            assert "/tmp" not in body["description"]
    jobs_after = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=alice,
                              timeout=10).json()["jobs"]
    assert jobs_after == jobs_before
    assert (sorted(p.name for p in out.rglob("*")) if out.exists() else []) == files_before
    tmp = Path(tempfile.gettempdir())
    assert not list(tmp.glob(f"{escaped}*")) and not list(tmp.parent.glob(f"{escaped}*"))
