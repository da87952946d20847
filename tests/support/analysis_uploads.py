"""Uploads for the analysis processes' `upload` input (issue 17): a polygon as GeoJSON, zipped
Shapefile or GeoPackage (optionally in another CRS), and hostile files, as qualified values."""

from __future__ import annotations

import base64
import io
import json
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

GEOJSON, ZIP, GPKG = "application/geo+json", "application/zip", "application/geopackage+sqlite3"


def qualified(raw: bytes, media: str) -> dict[str, str]:
    return {"value": base64.b64encode(raw).decode("ascii"), "mediaType": media}


def geojson_upload(geom: BaseGeometry) -> dict[str, str]:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "红线"}, "geometry": mapping(geom)}]}
    return qualified(json.dumps(doc).encode(), GEOJSON)


def _frame(geoms: list[BaseGeometry], crs: str) -> gpd.GeoDataFrame:
    df = gpd.GeoDataFrame({"name": [f"part {i}" for i in range(len(geoms))]},
                          geometry=list(geoms), crs="EPSG:4490")
    return df.to_crs(crs)


def shapefile_zip(geoms: list[BaseGeometry], crs: str = "EPSG:4490") -> dict[str, str]:
    """The polygons as a zipped Shapefile (.shp, .shx, .dbf, .prj, .cpg) in `crs`."""
    with tempfile.TemporaryDirectory() as d:
        shp = Path(d) / "area.shp"
        _frame(geoms, crs).to_file(shp, driver="ESRI Shapefile", encoding="UTF-8")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(d).iterdir()):
                zf.write(f, f.name)
        return qualified(buf.getvalue(), ZIP)


def geopackage(geoms: list[BaseGeometry], crs: str = "EPSG:4490") -> dict[str, str]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "area.gpkg"
        _frame(geoms, crs).to_file(path, driver="GPKG", layer="area")
        return qualified(path.read_bytes(), GPKG)


def vrt_document(source: str) -> bytes:
    """An OGR VRT reading `source` (a CSV path or a /vsicurl/ URL)."""
    return ("<OGRVRTDataSource><OGRVRTLayer name=\"secret\">"
            f"<SrcDataSource>CSV:{source}</SrcDataSource><LayerSRS>EPSG:4490</LayerSRS>"
            "<GeometryType>wkbPoint</GeometryType>"
            "<GeometryField encoding=\"PointFromColumns\" x=\"lon\" y=\"lat\"/>"
            "</OGRVRTLayer></OGRVRTDataSource>").encode()


def traversal_zip(name: str, geom: BaseGeometry) -> dict[str, str]:
    """A zipped Shapefile whose entries climb out of the unpacking directory (`../../name`)."""
    inner = base64.b64decode(shapefile_zip([geom])["value"])
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(inner)) as src, zipfile.ZipFile(buf, "w") as zf:
        for info in src.infolist():
            ext = info.filename.rsplit(".", 1)[1]
            zf.writestr(f"../../{name}.{ext}", src.read(info))
    return qualified(buf.getvalue(), ZIP)


def vrt_in_zip(source: str) -> dict[str, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for ext in ("shp", "shx", "dbf"):
            zf.writestr(f"evil.{ext}", vrt_document(source))
        zf.writestr("evil.prj", 'GEOGCS["CGCS2000"]')
    return qualified(buf.getvalue(), ZIP)
