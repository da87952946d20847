"""The process `extract` (数据提取, issue 17): layers × an area → GeoPackage, zipped Shapefile
(UTF-8 or GBK, with its .cpg), GeoJSON, CSV (WKT), KML, DXF; in EPSG:4490 or a Gauss-Krüger
zone; only the attributes the caller may read; result files only for their job's creator.

On the shared federation's Hangzhou node; every file is read back with GDAL (pyogrio) and
compared with OGC API Features for the same caller and area."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import requests
import shapely
from extract_support import api_features, read_layer, same_attributes, unzip
from publish_helpers import sign_in_users
from pyproj import Transformer
from shapely.geometry import Polygon, mapping
from test_processes import execute, job, job_id_of
from waiting import wait_for

from nodes.pygeoapi_config import node_dir

PASSWORD = "Extract-Test-Pass-1"
AREA = Polygon([(120.2085, 30.2425), (120.2175, 30.2420), (120.2180, 30.2490),
                (120.2120, 30.2500), (120.2080, 30.2470), (120.2085, 30.2425)])
BBOX = AREA.bounds
LAYERS = ["parcels", "roads"]


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "extract",
                         {"alice": [], "bob": [], "admin": ["hangzhou:admin"]}, PASSWORD)


@pytest.fixture(scope="module")
def expected(hz, people) -> dict[str, dict[int, dict]]:
    """What the features API gives alice for the area, per layer."""
    return {layer: api_features(hz, layer, people["alice"], BBOX, AREA) for layer in LAYERS}


def extract(hz: str, headers: dict, **inputs) -> dict:
    r = execute(hz, "extract", {"layers": LAYERS, "geometry": mapping(AREA), **inputs}, headers)
    assert r.status_code == 200, r.text
    return r.json()


def fetch(href: str, headers: dict) -> requests.Response:
    r = requests.get(href, headers=headers, timeout=60)
    assert r.status_code == 200, (href, r.status_code, r.text[:300])
    return r


def test_each_format_opens_in_gdal_with_the_features_of_the_api(hz, people, expected,
                                                                 tmp_path) -> None:
    counts = {layer: len(feats) for layer, feats in expected.items()}
    assert counts["parcels"] >= 3 and counts["roads"] >= 1, counts
    for fmt in ("gpkg", "shp", "geojson", "csv", "kml", "dxf"):
        res = extract(hz, people["alice"], format=fmt)
        assert res["crs"] == ("EPSG:4326" if fmt == "kml" else "EPSG:4490")
        assert res["selection"] == "intersects"
        assert {x["id"]: x["features"] for x in res["layers"]} == counts, (fmt, res["layers"])
        [f] = res["files"]
        r = fetch(f["href"], people["alice"])
        assert len(r.content) == f["size"] and r.headers["content-type"].startswith(
            f["type"].split(";")[0])
        assert f'filename="{f["name"]}"' in r.headers["content-disposition"]
        d = tmp_path / fmt
        d.mkdir()
        if fmt == "gpkg":
            path = d / f["name"]
            path.write_bytes(r.content)
            assert sorted(x[0] for x in pyogrio.list_layers(path)) == LAYERS
            for layer in LAYERS:
                same_attributes(read_layer(path, layer), expected[layer])
            continue
        names = unzip(r.content, d)
        ext = {"shp": ".shp", "geojson": ".geojson", "csv": ".csv", "kml": ".kml",
               "dxf": ".dxf"}[fmt]
        assert [n for n in names if n.endswith(ext)] == [f"{x}{ext}" for x in LAYERS], names
        if fmt == "shp":
            assert {f"parcels{s}" for s in (".shp", ".shx", ".dbf", ".prj", ".cpg")} <= set(names)
            assert (d / "parcels.cpg").read_text() == "UTF-8"
        for layer in LAYERS:
            path = d / f"{layer}{ext}"
            if fmt == "dxf":  # geometry only: an entity per part of each feature
                parts = sum(shapely.get_num_geometries(f["__geom"])
                            for f in expected[layer].values())
                assert len(pyogrio.read_dataframe(path)) == parts, layer
                continue
            got = read_layer(path)
            if fmt == "kml":  # the attribute `name` is KML's <name>, read back as `Name`
                got = {k: {("name" if c == "Name" else c): v for c, v in row.items()}
                       for k, row in got.items()}
            same_attributes(got, expected[layer], truncate=10 * (fmt == "shp"))
        if fmt == "csv":
            wkt = (d / "parcels.csv").read_text(encoding="utf-8").splitlines()[1]
            assert wkt.startswith('"MULTIPOLYGON ((('), wkt[:80]


def test_shapefile_in_gbk_round_trips_chinese_attributes(hz, people, expected, tmp_path) -> None:
    res = extract(hz, people["alice"], layers=["parcels"], format="shp", encoding="GBK")
    assert res["encoding"] == "GBK"
    names = unzip(fetch(res["files"][0]["href"], people["alice"]).content, tmp_path)
    assert "parcels.cpg" in names and (tmp_path / "parcels.cpg").read_text() == "GBK"
    got = read_layer(tmp_path / "parcels.shp", encoding="GBK")
    same_attributes(got, expected["parcels"], truncate=10)
    uses = {v["land_use"] for v in got.values()}
    assert any("\u4e00" <= ch <= "\u9fff" for u in uses for ch in u), uses
    # the bytes in the .dbf are GBK, not UTF-8
    dbf = (tmp_path / "parcels.dbf").read_bytes()
    some = next(u for u in uses if any("\u4e00" <= ch <= "\u9fff" for ch in u))
    assert some.encode("gbk") in dbf and some.encode("utf-8") not in dbf


def test_a_gauss_krueger_crs_gives_metres_of_its_zone(hz, people, expected, tmp_path) -> None:
    res = extract(hz, people["alice"], layers=["parcels"], format="gpkg", crs="auto",
                  clip=True)
    assert res["crs"] == "EPSG:4549" and res["selection"] == "clip"  # CM 120°E
    path = tmp_path / "gk.gpkg"
    path.write_bytes(fetch(res["files"][0]["href"], people["alice"]).content)
    assert pyogrio.read_info(path)["crs"] == "EPSG:4549"
    got = read_layer(path)
    assert set(got) == set(expected["parcels"])
    to_gk = Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)
    for fid, props in expected["parcels"].items():
        clipped = AREA.intersection(props["__geom"])
        want = shapely.transform(clipped, lambda c: np.column_stack(
            to_gk.transform(c[:, 0], c[:, 1])))
        g = got[fid]["__geom"]
        assert 400_000 < g.centroid.x < 600_000 and 3_300_000 < g.centroid.y < 3_400_000
        assert g.symmetric_difference(want).area < 0.01 * max(want.area, 1), fid
    # another zone by name, and a CRS that is not offered
    assert extract(hz, people["alice"], layers=["roads"], format="geojson",
                   crs="EPSG:4550")["crs"] == "EPSG:4550"
    r = execute(hz, "extract", {"layers": ["roads"], "bbox": list(BBOX), "crs": "EPSG:2385"},
                people["alice"])
    assert r.status_code == 400 and "not offered" in r.json()["description"], r.text


def test_a_restricted_attribute_is_left_out(hz, people, tmp_path) -> None:
    rows = {}
    for who in ("alice", "admin"):
        res = extract(hz, people[who], layers=["parcels"], format="gpkg")
        path = tmp_path / f"{who}.gpkg"
        path.write_bytes(fetch(res["files"][0]["href"], people[who]).content)
        rows[who] = next(iter(read_layer(path).values()))
        assert ("right_holder" in res["layers"][0]["attributes"]) == (who == "admin")
    assert "right_holder" not in rows["alice"] and "right_type" not in rows["alice"]
    assert "right_holder" in rows["admin"] and "land_use" in rows["alice"]


def test_files_are_their_creators_and_the_job_reports_progress(hz, people) -> None:
    r = execute(hz, "extract", {"layers": ["buildings"], "bbox": list(BBOX), "format": "shp",
                                "test_delay": 0.3}, people["alice"], async_=True)
    jid = job_id_of(r)
    seen = []

    def finished() -> bool:
        j = job(hz, jid, people["alice"])
        seen.append((j["status"], j["progress"], j["message"]))
        return j["status"] in ("successful", "failed")

    wait_for(finished, 90, "async extract finished", interval=0.1)
    assert seen[-1][0] == "successful", seen[-1]
    assert any(s[0] == "running" and "writing buildings" in s[2] for s in seen), seen
    res = requests.get(f"{hz}/ogc/jobs/{jid}/results?f=json", headers=people["alice"],
                       timeout=30).json()
    [f] = res["files"]
    assert f["href"] == f"{hz}/ogc/jobs/{jid}/results/files/{f['name']}"
    assert fetch(f["href"], people["alice"]).content[:2] == b"PK"
    assert fetch(f["href"], people["admin"]).status_code == 200  # the node's admin may
    bob = requests.get(f["href"], headers=people["bob"], timeout=10)
    assert bob.status_code == 404, bob.text
    assert bob.headers["content-type"].startswith("application/problem+json")
    assert requests.get(f["href"], timeout=10).status_code == 401  # anonymous
    base = f"{hz}/ogc/jobs/{jid}/results/files/"
    for name in ("..%2F..%2Fnode.json", ".owner", "%2e%2e", "nope.zip"):
        assert requests.get(base + name, headers=people["alice"],
                            timeout=10).status_code == 404, name
    assert requests.get(f"{hz}/ogc/jobs/{jid}/results/files/../../../node.json",
                        headers=people["alice"], timeout=10).status_code == 404
    # dismissed: the file is gone for everyone
    assert requests.delete(f"{hz}/ogc/jobs/{jid}", headers=people["alice"],
                           timeout=10).status_code == 200
    assert requests.get(f["href"], headers=people["alice"], timeout=10).status_code == 404


def test_bad_extract_input_is_refused(hz, people) -> None:
    cases = [
        ({"layers": ["parcels"]}, "geometry or bbox"),
        ({"layers": ["parcels"], "bbox": list(BBOX), "geometry": mapping(AREA)},
         "geometry or bbox"),
        ({"layers": ["parcels"], "bbox": [1, 2, 3]}, "bbox"),
        ({"layers": ["parcels"], "bbox": list(BBOX), "format": "xlsx"}, "format"),
        ({"layers": ["parcels"], "bbox": list(BBOX), "format": "kml", "crs": "EPSG:4549"},
         "KML"),
        ({"layers": ["parcels"], "bbox": list(BBOX), "encoding": "latin-1"}, "encoding"),
        ({"layers": ["parcels"], "bbox": list(BBOX), "clip": "yes"}, "clip"),
        ({"layers": [], "bbox": list(BBOX)}, "layers"),
    ]
    for inputs, why in cases:
        r = execute(hz, "extract", inputs, people["bob"])
        assert r.status_code == 400 and why in r.json()["description"], (inputs, r.text)
    refused = execute(hz, "extract", {"layers": ["control_points"], "bbox": list(BBOX)},
                      people["alice"])
    missing = execute(hz, "extract", {"layers": ["control_pointz"], "bbox": list(BBOX)},
                      people["alice"])
    assert refused.status_code == missing.status_code == 400
    assert refused.json()["description"].replace("control_points", "X") == \
        missing.json()["description"].replace("control_pointz", "X")


def test_results_live_in_the_jobs_directory(hz, people, federation) -> None:
    res = extract(hz, people["alice"], layers=["poi"], format="geojson")
    d = Path(node_dir(federation, federation.node("hangzhou"))) / "analysis" / "results"
    assert (d / res["job"] / res["files"][0]["name"]).is_file()
