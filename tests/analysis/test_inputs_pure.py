"""The input area of a process from an upload (issue 17), without a node: GeoJSON, a zipped
Shapefile and a GeoPackage (in a Gauss-Krüger CRS: reprojected to EPSG:4490) give the polygon
back; hostile files are refused with the reason and leave nothing on disk."""

from __future__ import annotations

import base64
import io
import tempfile
import zipfile
from pathlib import Path

import pytest
import shapely
from analysis_uploads import (
    GEOJSON,
    GPKG,
    ZIP,
    geojson_upload,
    geopackage,
    qualified,
    shapefile_zip,
    traversal_zip,
    vrt_document,
    vrt_in_zip,
)
from shapely.geometry import Point, Polygon, box, mapping

from services.analysis import inputs, processes
from services.analysis.caller import Caller
from services.analysis.compute import GEOD, InputError, Limits

AREA = Polygon([(120.2085, 30.2425), (120.2175, 30.2420), (120.2180, 30.2490),
                (120.2120, 30.2500), (120.2080, 30.2470), (120.2085, 30.2425)])
CTX = processes.Context("", Limits(), Caller("tester"))


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("geoplat-analysis-upload-*")}


def area_of(g) -> float:
    return abs(GEOD.geometry_area_perimeter(g)[0])


@pytest.mark.parametrize("make", [
    lambda: geojson_upload(AREA),
    lambda: shapefile_zip([AREA]),
    lambda: shapefile_zip([AREA], "EPSG:4549"),  # CGCS2000 / 3-degree GK CM 120E
    lambda: geopackage([AREA], "EPSG:4549"),
    lambda: geopackage([AREA]),
], ids=["geojson", "shp-zip", "shp-zip-gk", "gpkg-gk", "gpkg"])
def test_an_upload_gives_its_polygon_in_4490(make) -> None:
    before = leftovers()
    got = inputs.input_area({"upload": make()}, CTX)
    assert got.geom_type in ("Polygon", "MultiPolygon")
    assert shapely.hausdorff_distance(got, AREA) < 1e-7
    assert abs(area_of(got) - area_of(AREA)) / area_of(AREA) < 1e-7
    assert leftovers() == before


def test_the_area_is_the_union_of_the_polygons() -> None:
    a, b = box(120.20, 30.24, 120.21, 30.25), box(120.205, 30.245, 120.215, 30.255)
    got = inputs.input_area({"upload": shapefile_zip([a, b])}, CTX)
    assert abs(area_of(got) - area_of(a.union(b))) / area_of(a.union(b)) < 1e-9


def _zip(entries: dict[str, bytes]) -> dict[str, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return qualified(buf.getvalue(), ZIP)


def _no_prj() -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(shapefile_zip([AREA])["value"]))) as zf:
        return _zip({i.filename: zf.read(i) for i in zf.infolist()
                     if not i.filename.endswith(".prj")})


@pytest.mark.parametrize("upload,why", [
    (qualified(vrt_document("/etc/passwd"), GEOJSON), "not GeoJSON"),
    (qualified(vrt_document("/vsicurl/http://127.0.0.1:9/x.csv"), GEOJSON), "not GeoJSON"),
    (qualified(vrt_document("/etc/passwd"), GPKG), "not a GeoPackage"),
    (vrt_in_zip("/etc/passwd"), "not a Shapefile"),
    (traversal_zip("geoplat-escaped", AREA), "unsafe entry"),
    (_zip({"a.geojson": geojson_upload(AREA)["value"].encode()}), "must hold one Shapefile"),
    (_no_prj(), "no CRS"),
    (geojson_upload(Point(120.2, 30.2)), "no polygons"),
    ({"value": "not base64!", "mediaType": GEOJSON}, "not valid base64"),
    ({"value": "", "mediaType": GEOJSON}, "empty"),
    ({"value": "e30=", "mediaType": "application/xml"}, "not accepted"),
    ({"value": "e30=", "mediaType": GEOJSON, "encoding": "binary"}, "base64"),
    ("a string", "is required"),
], ids=["vrt-as-geojson", "vsicurl-as-geojson", "vrt-as-gpkg", "vrt-in-zip", "zip-traversal",
        "zip-without-shp", "shp-without-prj", "points", "bad-base64", "empty", "media-type",
        "encoding", "not-an-object"])
def test_hostile_or_bad_uploads_are_refused_and_nothing_is_left(upload, why: str) -> None:
    before = leftovers()
    escaped = Path(tempfile.gettempdir()).parent / "geoplat-escaped.shp"
    with pytest.raises(InputError) as exc:
        inputs.input_area({"upload": upload}, CTX)
    assert why in exc.value.message and exc.value.http_status_code == 400, exc.value.message
    assert tempfile.gettempdir() not in exc.value.message  # no path of the node
    assert leftovers() == before
    assert not escaped.exists() and not (Path(tempfile.gettempdir()) / escaped.name).exists()


def test_an_upload_over_the_limit_is_refused_before_decoding() -> None:
    small = processes.Context("", Limits(), Caller("tester"), max_upload_bytes=200)
    with pytest.raises(InputError) as exc:
        inputs.input_area({"upload": shapefile_zip([AREA])}, small)
    assert "limit of 200 bytes" in exc.value.message


def test_exactly_one_input_area() -> None:
    for data in ({}, {"geometry": mapping(AREA), "upload": geojson_upload(AREA)}):
        with pytest.raises(InputError) as exc:
            inputs.input_area(data, CTX)
        assert "exactly one of geometry, feature or upload" in exc.value.message
