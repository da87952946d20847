"""OGC API Processes on the node's RQ queue (issue 17, part 1): buffer and overlay, sync and
async with progress, cancel, a killed worker, jobs per caller, layer rights, OWSLib.

On the shared federation's Hangzhou node (its pool: managed Redis, one RQ worker); every wait
polls (tests/support/waiting.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import requests
import shapely
from publish_helpers import sign_in_users
from pyproj import Geod
from shapely.geometry import Polygon, box, shape
from waiting import wait_for

from nodes import supervisor

PASSWORD = "Analysis-Test-Pass-1"
GEOD = Geod(a=6378137.0, f=1 / 298.257222101)
HALL = (120.2130, 30.2460)
AREA = Polygon([(120.2085, 30.2425), (120.2175, 30.2420), (120.2180, 30.2490),
                (120.2120, 30.2500), (120.2080, 30.2470), (120.2085, 30.2425)])
POINT = {"type": "Point", "coordinates": list(HALL)}


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "analysis",
                         {"alice": [], "bob": [], "admin": ["hangzhou:admin"]}, PASSWORD)


def execute(hz: str, process: str, inputs: dict, headers: dict, *, async_: bool = False
            ) -> requests.Response:
    h = {**headers, **({"Prefer": "respond-async"} if async_ else {})}
    return requests.post(f"{hz}/ogc/processes/{process}/execution", json={"inputs": inputs},
                         headers=h, timeout=60)


def job(hz: str, job_id: str, headers: dict) -> dict:
    r = requests.get(f"{hz}/ogc/jobs/{job_id}?f=json", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def job_id_of(r: requests.Response) -> str:
    assert r.status_code == 201, r.text
    return r.headers["Location"].rstrip("/").rsplit("/", 1)[1]


def wait_status(hz: str, job_id: str, headers: dict, statuses: tuple[str, ...],
                timeout: float = 60) -> dict:
    return wait_for(lambda: (j := job(hz, job_id, headers))["status"] in statuses and j,
                    timeout, f"job {job_id} {'/'.join(statuses)}", interval=0.1)


def geoplat_status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli", "--config", str(config), "status"],
                          capture_output=True, text=True, timeout=60, check=False)


def workers(federation) -> list[dict]:
    return supervisor.analysis_workers(federation, federation.node("hangzhou")) or []


def worker_idle(hz: str, headers: dict) -> bool:
    """A quick job completes: the queue has a free worker."""
    r = execute(hz, "buffer", {"geometry": POINT, "distance": 10}, headers, async_=True)
    jid = job_id_of(r)
    return wait_status(hz, jid, headers, ("successful",), 30)["status"] == "successful"


def independent_overlay(hz: str) -> dict[str, float]:
    """land_use -> intersected area (m²) by shapely + pyproj.Geod over the features API."""
    minx, miny, maxx, maxy = AREA.bounds
    r = requests.get(f"{hz}/ogc/collections/parcels/items?f=json&limit=1000&"
                     f"bbox={minx},{miny},{maxx},{maxy}", timeout=30)
    r.raise_for_status()
    feats = r.json()["features"]
    assert 0 < len(feats) < 1000
    out: dict[str, float] = defaultdict(float)
    for f in feats:
        part = AREA.intersection(shape(f["geometry"]))
        a = sum(abs(GEOD.polygon_area_perimeter(*p.exterior.xy)[0]) -
                sum(abs(GEOD.polygon_area_perimeter(*r.xy)[0]) for r in p.interiors)
                for p in getattr(part, "geoms", [part]) if p.geom_type == "Polygon")
        if a > 0:
            out[f["properties"]["land_use"]] += a
    return dict(out)


OVERLAY = {"geometry": shapely.geometry.mapping(AREA), "layers": ["parcels"],
           "group_by": "land_use"}


def test_processes_are_listed(hz) -> None:
    r = requests.get(f"{hz}/ogc/processes?f=json", timeout=10)
    assert r.status_code == 200, r.text
    ids = {p["id"] for p in r.json()["processes"]}
    assert {"buffer", "overlay"} <= ids
    d = requests.get(f"{hz}/ogc/processes/overlay?f=json", timeout=10).json()
    assert "async-execute" in d["jobControlOptions"] and "group_by" in d["inputs"]
    paths = requests.get(f"{hz}/ogc/openapi?f=json", timeout=30).json()["paths"]
    assert {"/processes/buffer/execution", "/processes/overlay/execution",
            "/jobs/{jobId}", "/jobs/{jobId}/results"} <= set(paths), sorted(paths)


def test_buffer_of_a_point_is_1000_m_on_the_ground(hz, people) -> None:
    r = execute(hz, "buffer", {"geometry": POINT, "distance": 1000}, people["alice"])
    assert r.status_code == 200, r.text
    feat = r.json()["features"][0]
    assert feat["properties"]["projection"] == "EPSG:4549"  # CM 120°E
    ring = shapely.get_coordinates(shape(feat["geometry"]))
    assert len(ring) > 32
    for x, y in ring:
        assert abs(GEOD.inv(HALL[0], HALL[1], x, y)[2] - 1000) <= 0.5


def test_overlay_sync_and_async_equal_an_independent_computation(hz, people) -> None:
    expected = independent_overlay(hz)
    r = execute(hz, "overlay", OVERLAY, people["alice"])
    assert r.status_code == 200, r.text
    sync = r.json()
    got = {c["value"]: c for c in sync["classes"]}
    assert set(got) == set(expected) and len(got) >= 2
    total = abs(GEOD.geometry_area_perimeter(AREA)[0])
    assert abs(sync["input_area_m2"] - total) / total < 1e-4
    for value, area in expected.items():
        c = got[value]
        assert abs(c["area_m2"] - area) / area < 1e-4, (value, c, area)
        assert abs(c["area_ha"] - area / 1e4) / (area / 1e4) < 1e-4
        assert abs(c["area_mu"] - area * 0.0015) / (area * 0.0015) < 1e-4
        assert abs(c["share"] - area / total) < 1e-6
        assert c["count"] >= 1
    feats = sync["intersections"]["features"]
    assert sum(c["count"] for c in got.values()) == len(feats)
    assert all(AREA.buffer(1e-9).contains(shape(f["geometry"])) for f in feats)

    # async, slowed down so that progress is seen: the same result
    r = execute(hz, "overlay", {**OVERLAY, "test_delay": 0.05}, people["alice"], async_=True)
    jid = job_id_of(r)
    assert r.headers.get("Preference-Applied") == "respond-async"
    seen: list[tuple[str, int, str]] = []

    def finished() -> bool:
        j = job(hz, jid, people["alice"])
        seen.append((j["status"], j["progress"], j["message"]))
        return j["status"] in ("successful", "failed")

    wait_for(finished, 90, "async overlay finished", interval=0.1)
    assert seen[-1][0] == "successful", seen[-1]
    running = [s for s in seen if s[0] == "running" and 5 < s[1] < 100]
    assert running and any("intersecting" in s[2] for s in running), seen
    res = requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["alice"], timeout=30)
    assert res.status_code == 200, res.text
    assert res.json()["classes"] == sync["classes"]


def test_bad_input_is_refused_and_nothing_is_written(hz, people) -> None:
    before = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["bob"],
                          timeout=10).json()["jobs"]
    bowtie = {"type": "Polygon", "coordinates": [[[120.20, 30.24], [120.21, 30.25],
                                                  [120.21, 30.24], [120.20, 30.25],
                                                  [120.20, 30.24]]]}
    cases = [
        ("overlay", {**OVERLAY, "geometry": bowtie}, "Self-intersection"),
        ("overlay", {**OVERLAY, "geometry": POINT}, "Polygon"),
        ("overlay", {**OVERLAY, "geometry": shapely.geometry.mapping(box(100, 20, 125, 40))},
         "limit"),
        ("overlay", {**OVERLAY, "group_by": "no_such_field"}, "no attribute"),
        ("overlay", {**OVERLAY, "group_by": "right_holder"}, "grant"),  # restricted attribute
        ("overlay", {**OVERLAY, "layers": "nope"}, "no layer"),
        ("buffer", {"geometry": POINT, "distance": -5}, "distance"),
        ("buffer", {"geometry": POINT, "distance": "x"}, "distance"),
        ("buffer", {"geometry": {"type": "Point", "coordinates": [500, 30]}, "distance": 5},
         "longitude"),
        ("buffer", {"geometry": {"type": "Point"}, "distance": 5}, "GeoJSON"),
    ]
    for process, inputs, why in cases:
        for async_ in (False, True):
            r = execute(hz, process, inputs, people["bob"], async_=async_)
            assert r.status_code == 400, (process, inputs, r.status_code, r.text)
            body = r.json()
            assert body["type"] == "InvalidParameterValue" and why in body["description"], body
    after = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["bob"],
                         timeout=10).json()["jobs"]
    assert after == before  # no job was created


def test_a_restricted_layer_answers_as_a_missing_one(hz, people) -> None:
    refused = execute(hz, "overlay", {**OVERLAY, "layers": ["control_points"],
                                      "group_by": "name"}, people["alice"])
    missing = execute(hz, "overlay", {**OVERLAY, "layers": ["control_pointz"],
                                      "group_by": "name"}, people["alice"])
    assert refused.status_code == missing.status_code == 400
    assert refused.json()["description"].replace("control_points", "X") == \
        missing.json()["description"].replace("control_pointz", "X")
    # the node's admin may read it: its points are counted by grade
    admin = execute(hz, "overlay", {**OVERLAY, "geometry": shapely.geometry.mapping(
        box(120.0, 30.1, 120.4, 30.4)), "layers": ["control_points"], "group_by": "grade"},
        people["admin"])
    assert admin.status_code == 200, admin.text
    assert sum(c["count"] for c in admin.json()["classes"]) >= 1
    assert all(c["area_m2"] == 0 for c in admin.json()["classes"])
    # anonymous callers run nothing and see no jobs
    for r in (execute(hz, "buffer", {"geometry": POINT, "distance": 5}, {}),
              requests.get(f"{hz}/ogc/jobs?f=json", timeout=10)):
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


def test_jobs_belong_to_their_creator(hz, people) -> None:
    r = execute(hz, "buffer", {"geometry": POINT, "distance": 50}, people["alice"], async_=True)
    jid = job_id_of(r)
    wait_status(hz, jid, people["alice"], ("successful",))
    for path in (f"/ogc/jobs/{jid}?f=json", f"/ogc/jobs/{jid}/results?f=json"):
        assert requests.get(hz + path, headers=people["bob"], timeout=10).status_code == 404
    assert requests.delete(f"{hz}/ogc/jobs/{jid}", headers=people["bob"],
                           timeout=10).status_code == 404
    mine = {j["jobID"] for j in requests.get(f"{hz}/ogc/jobs?f=json&limit=1000",
                                             headers=people["alice"], timeout=10).json()["jobs"]}
    bobs = {j["jobID"] for j in requests.get(f"{hz}/ogc/jobs?f=json&limit=1000",
                                             headers=people["bob"], timeout=10).json()["jobs"]}
    admins = {j["jobID"] for j in requests.get(f"{hz}/ogc/jobs?f=json&limit=1000",
                                               headers=people["admin"], timeout=10).json()["jobs"]}
    assert jid in mine and jid not in bobs and jid in admins
    assert requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["admin"],
                        timeout=10).status_code == 200


def test_cancel_stops_a_long_job_and_frees_its_worker(hz, people) -> None:
    r = execute(hz, "buffer", {"geometry": POINT, "distance": 100, "test_delay": 6},
                people["alice"], async_=True)
    jid = job_id_of(r)
    wait_status(hz, jid, people["alice"], ("running",))
    d = requests.delete(f"{hz}/ogc/jobs/{jid}", headers=people["alice"], timeout=10)
    assert d.status_code == 200 and d.json()["status"] == "dismissed", d.text
    assert job(hz, jid, people["alice"])["status"] == "dismissed"
    # one worker: a new job completes long before the cancelled one would have (5 x 6 s)
    assert worker_idle(hz, people["alice"])
    assert job(hz, jid, people["alice"])["status"] == "dismissed"
    assert requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["alice"],
                        timeout=10).status_code != 200


def test_a_killed_worker_fails_its_job_and_is_restarted(hz, people, federation) -> None:
    up = wait_for(lambda: [w for w in workers(federation) if w["state"] == "up"], 30,
                  "an analysis worker is up")
    assert len(up) == 1
    r = execute(hz, "buffer", {"geometry": POINT, "distance": 100, "test_delay": 6},
                people["alice"], async_=True)
    jid = job_id_of(r)
    wait_status(hz, jid, people["alice"], ("running",))
    os.kill(up[0]["pid"], signal.SIGKILL)
    failed = wait_status(hz, jid, people["alice"], ("failed", "successful"), 30)
    assert failed["status"] == "failed" and "killed by SIGKILL" in failed["message"], failed
    assert workers(federation)[0]["state"] == "down"  # the pool saw it die
    config = Path(federation.config_dir) / "federation.yml"
    status = geoplat_status(config)
    after = workers(federation)
    if after[0]["state"] == "down":  # still down after the CLI ran: the CLI saw it down
        assert status.returncode == 1 and "down     analysis worker 0" in status.stdout, \
            status.stdout
    back = wait_for(lambda: [w for w in workers(federation) if w["state"] == "up"], 60,
                    "the worker restarted")
    assert back[0]["pid"] != up[0]["pid"] and back[0]["restarts"] >= 1
    assert "killed by SIGKILL" in (back[0]["last_exit"] or "")
    assert worker_idle(hz, people["alice"])
    status = geoplat_status(config)
    assert "up       analysis worker 0" in status.stdout, status.stdout


def test_owslib_lists_and_runs_a_process(hz, people) -> None:
    from owslib.ogcapi.processes import Processes

    client = Processes(hz + "/ogc/", headers=dict(people["alice"]))
    try:
        assert {"buffer", "overlay"} <= {p["id"] for p in client.processes()}
        assert client.process("buffer")["id"] == "buffer"
        out = client.execute("buffer", {"geometry": POINT, "distance": 250})
        feat = out["outputs"][0]["features"][0]
        x, y = shapely.get_coordinates(shape(feat["geometry"]))[0]
        assert abs(GEOD.inv(HALL[0], HALL[1], x, y)[2] - 250) <= 0.5
    finally:  # OWSLib keeps its headers in a module global
        client.headers.pop("Authorization", None)
        client.headers.pop("Prefer", None)


def test_an_execution_body_over_the_limit_is_refused_before_pygeoapi(hz, people) -> None:
    """analysis.max_upload_mb (16) as base64, plus 1 MiB: a larger body is refused with 413
    (problem+json) whether it says its length or comes chunked; nothing is created."""
    before = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["bob"],
                          timeout=10).json()["jobs"]
    limit = int(16 * (1 << 20) * 4 / 3) + (1 << 20)
    pad = "x" * (limit + 10)
    body = json.dumps({"inputs": {"geometry": POINT, "distance": 5, "pad": pad}}).encode()
    url = f"{hz}/ogc/processes/buffer/execution"
    headers = {**people["bob"], "Content-Type": "application/json"}
    sized = requests.post(url, data=body, headers=headers, timeout=60)

    def chunks():
        for i in range(0, len(body), 1 << 20):
            yield body[i:i + (1 << 20)]

    chunked = requests.post(url, data=chunks(), headers=headers, timeout=60)
    for r in (sized, chunked):
        assert r.status_code == 413, (r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/problem+json"), r.headers
        assert str(limit) in r.json()["detail"], r.text
    after = requests.get(f"{hz}/ogc/jobs?f=json&limit=1000", headers=people["bob"],
                         timeout=10).json()["jobs"]
    assert after == before  # no job was created
    small = requests.post(url, data=json.dumps({"inputs": {"geometry": POINT, "distance": 5}}),
                          headers=headers, timeout=60)
    assert small.status_code == 200, small.text  # a body under the limit still runs
