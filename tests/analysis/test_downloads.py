"""Downloads from OGC API Features (issue 17): `/ogc/collections/{id}/items?f=gpkg|shp|csv|kml|
fgb` with bbox, filter (CQL2 text), crs; the same features and attributes as `?f=json` for the
same caller; WKT for every geometry in CSV; a restricted attribute never written; an invisible
layer answered as the JSON items are; over the node's download limit (3,000 in the test
federation: tests/support/federations.py) a 413 problem+json naming the process `extract`."""

from __future__ import annotations

from urllib.parse import quote

import pyogrio
import pytest
import requests
import shapely
from extract_support import api_features, read_layer, same_attributes, unzip
from publish_helpers import sign_in_users
from pyproj import Transformer
from shapely import wkt as shapely_wkt

PASSWORD = "Downloads-Test-Pass-1"
BBOX = (120.2085, 30.2420, 120.2180, 30.2500)
B = ",".join(map(str, BBOX))


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "downloads",
                         {"alice": [], "admin": ["hangzhou:admin"]}, PASSWORD)


def download(hz: str, layer: str, query: str, headers: dict | None = None
             ) -> requests.Response:
    return requests.get(f"{hz}/ogc/collections/{layer}/items?{query}", headers=headers or {},
                        timeout=60)


MEDIA = {"gpkg": "application/geopackage+sqlite3", "shp": "application/zip",
         "csv": "text/csv", "kml": "application/vnd.google-earth.kml+xml",
         "fgb": "application/flatgeobuf"}


def test_each_format_has_the_features_of_the_json_items(hz, tmp_path) -> None:
    for layer in ("parcels", "roads", "poi"):
        expected = api_features(hz, layer, {}, BBOX)
        assert expected, layer
        for fmt, media in MEDIA.items():
            r = download(hz, layer, f"f={fmt}&bbox={B}")
            assert r.status_code == 200, (layer, fmt, r.text[:300])
            assert r.headers["content-type"].startswith(media), (fmt, r.headers)
            ext = "zip" if fmt == "shp" else fmt
            assert f'filename="{layer}.{ext}"' in r.headers["content-disposition"]
            d = tmp_path / f"{layer}-{fmt}"
            d.mkdir()
            if fmt == "shp":
                names = unzip(r.content, d)
                assert {f"{layer}{s}" for s in (".shp", ".shx", ".dbf", ".prj", ".cpg")} <= \
                    set(names), names
                path = d / f"{layer}.shp"
            else:
                path = d / f"{layer}.{fmt}"
                path.write_bytes(r.content)
            got = read_layer(path)
            if fmt == "kml":
                got = {k: {("name" if c == "Name" else c): v for c, v in row.items()}
                       for k, row in got.items()}
            same_attributes(got, expected, truncate=10 * (fmt == "shp"))
            if fmt in ("gpkg", "fgb"):  # the geometries too (CRS84 by default)
                for fid, props in expected.items():
                    assert got[fid]["__geom"].equals_exact(props["__geom"], 1e-8), (fmt, fid)


def test_csv_has_wkt_for_polygons_and_lines(hz) -> None:
    for layer, kind in (("parcels", "MULTIPOLYGON"), ("roads", "MULTILINESTRING"),
                        ("poi", "POINT")):
        r = download(hz, layer, f"f=csv&bbox={B}")
        assert r.status_code == 200, r.text
        lines = r.content.decode("utf-8").splitlines()
        assert lines[0].startswith("WKT,fid,"), lines[0]
        import csv
        rows = list(csv.reader(lines))[1:]
        assert rows and all(row[0].startswith(kind) for row in rows), (layer, rows[0][:2])
        g = shapely_wkt.loads(rows[0][0])
        assert g.is_valid and not g.is_empty


def test_filter_and_crs(hz, tmp_path) -> None:
    everything = api_features(hz, "parcels", {}, BBOX)
    use = next(iter(everything.values()))["land_use"]
    cql = quote(f"land_use = '{use}'")
    expected = api_features(hz, "parcels", {}, BBOX, extra=f"&filter={cql}")
    assert 0 < len(expected) < len(everything)
    r = download(hz, "parcels", f"f=gpkg&bbox={B}&filter={cql}&"
                 "crs=http://www.opengis.net/def/crs/EPSG/0/4549")
    assert r.status_code == 200, r.text
    path = tmp_path / "f.gpkg"
    path.write_bytes(r.content)
    assert pyogrio.read_info(path)["crs"] == "EPSG:4549"
    got = read_layer(path)
    same_attributes(got, expected)
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)
    for fid, props in expected.items():
        x, y = shapely.get_coordinates(props["__geom"])[0]
        gx, gy = shapely.get_coordinates(got[fid]["__geom"])[0]
        ex, ey = to_gk.transform(x, y)
        assert abs(gx - ex) < 0.01 and abs(gy - ey) < 0.01, (fid, gx, ex, gy, ey)
    bad = download(hz, "parcels", f"f=gpkg&bbox={B}&filter={quote('land_use = ')}")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(
        "application/problem+json"), bad.text
    bad = download(hz, "parcels", f"f=gpkg&bbox={B}&crs=EPSG:2385")
    assert bad.status_code == 400 and "crs" in bad.json()["detail"], bad.text


def test_restricted_attributes_are_never_written(hz, people, tmp_path) -> None:
    for who, headers in (("anonymous", {}), ("alice", people["alice"]),
                         ("admin", people["admin"])):
        json_props = api_features(hz, "parcels", headers, BBOX)
        r = download(hz, "parcels", f"f=gpkg&bbox={B}", headers)
        assert r.status_code == 200, (who, r.text)
        path = tmp_path / f"{who}.gpkg"
        path.write_bytes(r.content)
        got = read_layer(path)
        same_attributes(got, json_props)
        row = next(iter(got.values()))
        assert ("right_holder" in row) == (who == "admin"), (who, sorted(row))
        assert ("right_holder" in next(iter(json_props.values()))) == (who == "admin")
        if who != "admin":  # filtering by it is refused as for the JSON items
            j = download(hz, "parcels", f"f=json&bbox={B}&right_holder=x", headers)
            f = download(hz, "parcels", f"f=csv&bbox={B}&right_holder=x", headers)
            assert j.status_code == f.status_code == 403, (j.text, f.text)
            assert f.json()["detail"] == j.json()["detail"]


def test_an_invisible_layer_answers_as_the_json_items(hz) -> None:
    for layer in ("control_points", "no_such_layer"):
        j = download(hz, layer, f"f=json&bbox={B}")
        for fmt in ("gpkg", "csv"):
            f = download(hz, layer, f"f={fmt}&bbox={B}")
            assert f.status_code == j.status_code and f.status_code in (401, 403, 404), \
                (layer, fmt, f.status_code, j.status_code)
            assert f.content == j.content, (layer, fmt)


def test_over_the_limit_is_a_413_naming_extract(hz) -> None:
    r = download(hz, "parcels", "f=gpkg")  # 3,500 parcels, the limit is 3,000
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 413 and body["process"] == "extract" and body["limit"] == 3000
    assert "extract" in body["detail"]
    assert any(link["href"] == f"{hz}/ogc/processes/extract" for link in body["links"])
    assert requests.get(body["links"][0]["href"] + "?f=json", timeout=10).status_code == 200
    # a `limit` within it answers that many
    r = download(hz, "parcels", "f=csv&limit=5")
    assert r.status_code == 200 and len(r.content.decode().splitlines()) == 6
