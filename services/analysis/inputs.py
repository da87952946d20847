"""The input area of a process: a GeoJSON `geometry`, a `feature` of a layer, or an `upload`.

- `geometry`: GeoJSON in CRS84 / EPSG:4490 (compute.parse_geometry);
- `feature`: `{"layer": L, "id": ID}`, a feature of a layer the caller may see (a layer they
  may not see answers as a missing one);
- `upload`: a file given inline as OGC API Processes' qualified value
  `{"value": base64, "mediaType": ...}`: `application/geo+json`, `application/zip` (a zipped
  Shapefile) or `application/geopackage+sqlite3`. It is opened as the publishing path opens
  uploads (layers/formats.py and layers/fence.py): the zip unpacked by us after checking every
  entry, the file checked for its format's signature and opened only with the GDAL driver its
  media type implies, inside the fence of GDAL options (no network, no SQL of the file's), and
  reprojected to EPSG:4490; the area is the union of its polygons. The file lives in a private
  temporary directory removed before the process answers.
"""

from __future__ import annotations

import base64
import binascii
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import shapely
from psycopg2 import sql
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geoplat_settings import PublishSettings
from layers.archives import find_in_archive, safe_unzip
from layers.errors import PublishError
from layers.formats import read_vector
from services.analysis import compute
from services.analysis.compute import InputError
from services.analysis.processes import Context, visible_layer

MEDIA_TYPES = {"application/geo+json": ".geojson", "application/zip": ".zip",
               "application/geopackage+sqlite3": ".gpkg"}
KEYS = ("geometry", "feature", "upload")
MAX_FEATURES = 10_000  # features in an uploaded file

UPLOAD = {"type": "object", "description": "a file as a qualified value: {\"value\": base64, "
          "\"mediaType\": \"application/geo+json\" | \"application/zip\" (zipped Shapefile) | "
          "\"application/geopackage+sqlite3\"}; the union of its polygons",
          "required": ["value", "mediaType"],
          "properties": {"value": {"type": "string", "contentEncoding": "base64"},
                         "mediaType": {"type": "string", "enum": list(MEDIA_TYPES)}}}
FEATURE = {"type": "object", "description": "a feature of a layer of this node, by id",
           "required": ["layer", "id"],
           "properties": {"layer": {"type": "string"},
                          "id": {"type": ["string", "integer"]}}}


def area_inputs(geojson: Mapping[str, Any]) -> dict[str, Any]:
    """The three alternative inputs of a process description (one of them is required)."""
    return {
        "geometry": {"title": "Input polygon (or give `feature` or `upload`)",
                     "schema": geojson, "minOccurs": 0, "maxOccurs": 1},
        "feature": {"title": "A feature of a layer as the input polygon", "schema": FEATURE,
                    "minOccurs": 0, "maxOccurs": 1},
        "upload": {"title": "An uploaded file as the input polygon", "schema": UPLOAD,
                   "minOccurs": 0, "maxOccurs": 1}}


def input_area(data: Mapping[str, Any], ctx: Context, cur: Any | None = None) -> BaseGeometry:
    """The input polygon of `data` (exactly one of geometry, feature, upload); `cur`: a cursor
    on the node's database (needed for `feature`)."""
    given = [k for k in KEYS if data.get(k) is not None]
    if len(given) != 1:
        raise InputError("geometry: give exactly one of geometry, feature or upload"
                         + (f" (got {', '.join(given)})" if given else ""))
    if given[0] == "geometry":
        return compute.parse_geometry(data["geometry"], ctx.limits, polygonal=True)
    if given[0] == "feature":
        if cur is None:
            raise AssertionError("a feature input needs a database cursor")
        return feature_area(cur, data["feature"], ctx)
    return upload_area(data["upload"], ctx)


def feature_area(cur: Any, ref: Any, ctx: Context) -> BaseGeometry:
    if not isinstance(ref, Mapping):
        raise InputError('feature: {"layer": LAYER, "id": ID} is required')
    info = visible_layer(cur, ref.get("layer"), ctx, "feature")
    fid = ref.get("id")
    key: int | None = None
    if isinstance(fid, int) and not isinstance(fid, bool):
        key = fid
    elif isinstance(fid, str) and fid.strip().lstrip("-").isdigit():
        key = int(fid)
    row = None
    if key is not None and abs(key) < 2 ** 63:
        cur.execute(sql.SQL("SELECT ST_AsBinary(geom) FROM {} WHERE fid = %s").format(
            sql.Identifier(info.id)), (key,))
        row = cur.fetchone()
    if row is None or row[0] is None:
        raise InputError(f"feature: layer {info.id} has no feature {str(fid)[:40]!r}")
    geom = shapely.from_wkb(bytes(row[0]))
    return compute.parse_geometry(mapping(geom), ctx.limits, polygonal=True, name="feature")


def qualified_value(given: Any, name: str, media_types: Collection[str], max_bytes: int
                    ) -> tuple[bytes, str]:
    """The bytes and media type of a file sent as OGC API Processes' qualified value
    `{"value": base64, "mediaType": ...}` (uploads here, tables of join-statistics)."""
    if not isinstance(given, Mapping) or not isinstance(given.get("value"), str):
        raise InputError(f'{name}: {{"value": base64, "mediaType": ...}} is required')
    media = str(given.get("mediaType") or given.get("media_type") or ""
                ).split(";")[0].strip().lower()
    if media not in media_types:
        raise InputError(f"{name}: mediaType {media[:60]!r} is not accepted (one of "
                         f"{', '.join(media_types)})")
    if given.get("encoding", "base64") != "base64":
        raise InputError(f"{name}: the value is base64 (encoding: base64)")
    value = given["value"]
    if len(value) * 3 // 4 > max_bytes:
        raise InputError(f"{name}: over this node's limit of {max_bytes} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{name}: the value is not valid base64") from None
    if not raw:
        raise InputError(f"{name}: the file is empty")
    return raw, media


def upload_area(upload: Any, ctx: Context) -> BaseGeometry:
    """The union of the polygons of an uploaded file, in EPSG:4490."""
    raw, media = qualified_value(upload, "upload", MEDIA_TYPES, ctx.max_upload_bytes)
    work = Path(tempfile.mkdtemp(prefix="geoplat-analysis-upload-"))
    limits = PublishSettings(max_upload_mb=max(ctx.max_upload_bytes / (1 << 20), 0.001),
                             max_unpacked_mb=max(4 * ctx.max_upload_bytes / (1 << 20), 0.001),
                             max_zip_entries=50)
    try:
        path = work / f"upload{MEDIA_TYPES[media]}"
        path.write_bytes(raw)
        try:
            if media == "application/zip":
                found = find_in_archive(safe_unzip(path, work / "unzipped", limits), "upload")
                if found.suffix.lower() != ".shp":
                    raise InputError("upload: a zip archive must hold one Shapefile (.shp with "
                                     f"its .dbf, .shx and .prj), not {found.suffix or 'that'}")
                path = found
            vd = read_vector(path, "upload", None)
        except PublishError as exc:
            raise InputError(str(exc).replace(str(work), "")) from None
        if vd.batches is not None or len(vd.geoms) > MAX_FEATURES:
            raise InputError(f"upload: more than {MAX_FEATURES} features")
        polys = [g for g in vd.geoms if g is not None and g.geom_type in ("Polygon",
                                                                          "MultiPolygon")]
        if not polys:
            raise InputError("upload: the file holds no polygons")
        union = shapely.union_all(polys)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return compute.parse_geometry(mapping(union), ctx.limits, polygonal=True, name="upload")
