"""The process `extract` (数据提取): layers × an area or bbox → files to download.

Features are selected, not cut: every feature of a layer that intersects the area is written
whole (`clip: true` cuts them to the area instead). Only the attributes the caller may read
are written (a restricted attribute without the grant is left out, services/access/fields.py),
and only layers the caller may see are read (another layer: the answer for a missing one).
The rows stream from PostGIS (a server-side cursor, in batches) into GDAL (exports.py), into
`results_dir(node_dir) / <job id> /`; the result lists every file with its size and its link
(`/ogc/jobs/{jobId}/results/files/{name}`, services/analysis/downloads.py), the features per
layer and the CRS.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from psycopg2 import sql
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from services.analysis import compute, exports
from services.analysis.compute import InputError
from services.analysis.processes import COMMON as _COMMON
from services.analysis.processes import GEOJSON as _GEOJSON
from services.analysis.processes import Context, connection, register, visible_layer
from services.analysis.queue import results_dir

GK_ZONES = range(4534, 4555)  # CGCS2000 3-degree Gauss-Krüger zones, CM 75°E..135°E
CRS_OFFERED = (4490, 4326, 3857, *GK_ZONES)
GEOGRAPHIC = (4490, 4326)
OWNER_FILE = ".owner"  # the caller's sub, for a run without a job row
_CRS_URI = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/(\d{4,5})$")
_CRS_CODE = re.compile(r"^(?:EPSG:)?(\d{4,5})$", re.IGNORECASE)
_CRS84 = ("OGC:CRS84", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")

EXTRACT = {**_COMMON, "id": "extract", "title": {"en": "Data extraction", "zh": "数据提取"},
           "description": {"en": "Layers of this node the caller may see, within an area or a "
                                 "bounding box, written to GeoPackage (one table per layer), "
                                 "zipped Shapefile (.shp/.shx/.dbf/.prj/.cpg per layer; "
                                 "UTF-8 or GBK), GeoJSON, CSV (geometry as WKT), KML or DXF "
                                 "(geometry only), in EPSG:4490 or a chosen CRS. Features that "
                                 "intersect the area are selected whole; `clip: true` cuts "
                                 "them to the area. Attributes the caller may not read are "
                                 "left out. The result links each file (its size, the "
                                 "features per layer, the CRS)."},
           "inputs": {
               "layers": {"title": "Layers", "schema": {
                   "type": "array", "items": {"type": "string"}, "minItems": 1,
                   "maxItems": 10}, "minOccurs": 1, "maxOccurs": 1},
               "geometry": {"title": "Area (polygon)", "schema": _GEOJSON,
                            "minOccurs": 0, "maxOccurs": 1},
               "bbox": {"title": "Bounding box [minx, miny, maxx, maxy] (longitude, latitude)",
                        "schema": {"type": "array", "items": {"type": "number"},
                                   "minItems": 4, "maxItems": 4},
                        "minOccurs": 0, "maxOccurs": 1},
               "format": {"title": "File format", "schema": {
                   "type": "string", "enum": ["gpkg", "shp", "geojson", "csv", "kml", "dxf"],
                   "default": "gpkg"}, "minOccurs": 0, "maxOccurs": 1},
               "crs": {"title": "Output CRS", "schema": {
                   "type": "string", "default": "EPSG:4490",
                   "description": "EPSG:4490 (CGCS2000), EPSG:4326, EPSG:3857, a CGCS2000 "
                                  "Gauss-Krüger zone EPSG:4534-4554, or `auto`: the zone of "
                                  "the area's centre"}, "minOccurs": 0, "maxOccurs": 1},
               "encoding": {"title": "Shapefile attribute encoding", "schema": {
                   "type": "string", "enum": ["UTF-8", "GBK"], "default": "UTF-8"},
                   "minOccurs": 0, "maxOccurs": 1},
               "clip": {"title": "Cut features to the area", "schema": {
                   "type": "boolean", "default": False}, "minOccurs": 0, "maxOccurs": 1}},
           "outputs": {"files": {"title": "Files, feature counts and CRS", "schema": {
               "type": "object", "contentMediaType": "application/json"}}},
           "example": {"inputs": {"layers": ["parcels", "roads"],
                                  "bbox": [120.20, 30.24, 120.22, 30.26], "format": "shp",
                                  "crs": "auto", "encoding": "GBK"}}}


# --- inputs ---------------------------------------------------------------------------------

def parse_layers(data: Mapping[str, Any]) -> list[str]:
    layers = data.get("layers")
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, list) or not layers or len(layers) > 10 or \
            not all(isinstance(x, str) and x for x in layers):
        raise InputError("layers: a list of 1 to 10 layer ids is required")
    return list(dict.fromkeys(layers))


def parse_area(data: Mapping[str, Any], ctx: Context) -> BaseGeometry:
    """The area: `geometry` (a polygon) or `bbox` (longitude, latitude), exactly one."""
    has_geom, has_bbox = data.get("geometry") is not None, data.get("bbox") is not None
    if has_geom == has_bbox:
        raise InputError("geometry or bbox: give the area as one of them (a GeoJSON polygon, "
                         "or [minx, miny, maxx, maxy] in longitude, latitude)")
    if has_geom:
        return compute.parse_geometry(data["geometry"], ctx.limits, polygonal=True)
    b = data["bbox"]
    if isinstance(b, str):
        b = b.split(",")
    if not isinstance(b, (list, tuple)) or len(b) != 4:
        raise InputError("bbox: [minx, miny, maxx, maxy] in longitude, latitude")
    nums = [compute.parse_number({"bbox": v}, "bbox", low=-180, high=180) for v in b]
    if not (nums[0] < nums[2] and nums[1] < nums[3]) or abs(nums[1]) > 90 or abs(nums[3]) > 90:
        raise InputError("bbox: [minx, miny, maxx, maxy] with minx < maxx and miny < maxy, "
                         "longitude and latitude in degrees")
    return compute.parse_geometry(mapping(box(*nums)), ctx.limits, polygonal=True, name="bbox")


def parse_format(data: Mapping[str, Any]) -> str:
    fmt = data.get("format", "gpkg")
    offered = [k for k in exports.FORMATS if k != "fgb"]
    if not isinstance(fmt, str) or fmt.lower() not in offered:
        raise InputError(f"format: one of {', '.join(offered)}")
    return fmt.lower()


def crs_code(value: Any) -> int | None:
    """The EPSG code of `EPSG:n`, `n`, an OGC CRS URI or CRS84 (4326); None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    v = value.strip()
    if v in _CRS84:
        return 4326
    m = _CRS_CODE.match(v) or _CRS_URI.match(v)
    return int(m.group(1)) if m else None


def parse_crs(data: Mapping[str, Any], area: BaseGeometry, fmt: str) -> int:
    raw = data.get("crs", "EPSG:4490")
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        code: int | None = compute.gk_zone(area.centroid.x)
    else:
        code = crs_code(raw)
    if code is None or code not in CRS_OFFERED:
        shown = str(raw)[:60]
        raise InputError(f"crs: {shown!r} is not offered: choose EPSG:4490 (CGCS2000, the "
                         "default), EPSG:4326, EPSG:3857, a CGCS2000 3-degree Gauss-Krüger "
                         "zone EPSG:4534-4554, or auto (the zone of the area's centre)")
    if fmt == "kml" and code not in GEOGRAPHIC:
        raise InputError("crs: KML is always longitude, latitude (WGS 84): choose EPSG:4326 "
                         "or EPSG:4490 for format kml")
    return 4326 if fmt == "kml" else code


def parse_encoding(data: Mapping[str, Any]) -> str:
    raw = data.get("encoding", "UTF-8")
    enc = exports.ENCODINGS.get(raw.strip().upper()) if isinstance(raw, str) else None
    if enc is None:
        raise InputError("encoding: UTF-8 (the default) or GBK (for old desktop tools)")
    return enc


def parse_clip(data: Mapping[str, Any]) -> bool:
    clip = data.get("clip", False)
    if not isinstance(clip, bool):
        raise InputError("clip: true or false")
    return clip


# --- the layers -----------------------------------------------------------------------------

def readable_columns(cur: Any, layer: str, ctx: Context) -> list[tuple[str, str]]:
    """(column, type) of `layer` the caller may read: its id `fid` and its attributes, in table
    order, without restricted ones the caller holds no right for."""
    info = visible_layer(cur, layer, ctx)
    held = ctx.caller.rights.get(layer, frozenset())
    hidden = {c for c, level in info.field_rules.items() if level not in held}
    cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                (layer,))
    return [(c, t) for c, t in cur.fetchall()
            if (c == "fid" or c in info.columns) and c not in hidden and c != "geom"]


def geometry_type(cur: Any, layer: str) -> str:
    cur.execute("SELECT type FROM geometry_columns WHERE f_table_schema = 'public' AND "
                "f_table_name = %s AND f_geometry_column = 'geom'", (layer,))
    row = cur.fetchone()
    return exports.ogr_geometry_type(row[0] if row else None)


_DIMENSION = {"Point": 1, "LineString": 2, "Polygon": 3}


def layer_query(layer: str, columns: Sequence[tuple[str, str]], gtype: str, srid: int,
                clip: bool) -> sql.Composed:
    """The rows (WKB in `srid`, *columns) of `layer` intersecting the area (parameters: the
    area's WKT twice, thrice when clipped)."""
    area = sql.SQL("ST_GeomFromText(%s, 4490)")
    g: sql.Composable = sql.SQL("geom")
    base = gtype.removeprefix("Multi")
    if clip and base in _DIMENSION:
        g = sql.SQL("ST_CollectionExtract(ST_Intersection(geom, {a}), {d})").format(
            a=area, d=sql.Literal(_DIMENSION[base]))
    elif clip:
        g = sql.SQL("ST_Intersection(geom, {a})").format(a=area)
    if gtype.startswith("Multi") or (clip and base in _DIMENSION):
        g = sql.SQL("ST_Multi({g})").format(g=g)
    if srid != 4490:
        g = sql.SQL("ST_Transform({g}, {s})").format(g=g, s=sql.Literal(srid))
    cols = sql.SQL("").join(sql.SQL(", ") + sql.SQL(exports.select_expression(c, t)).format(
        sql.Identifier(c)) for c, t in columns)
    return sql.SQL("SELECT ST_AsBinary(g){cols} FROM (SELECT {g} AS g, * FROM {tbl} "
                   "WHERE geom && {a} AND ST_Intersects(geom, {a})) s "
                   "WHERE g IS NOT NULL AND NOT ST_IsEmpty(g) ORDER BY fid").format(
        cols=cols, g=g, tbl=sql.Identifier(layer), a=area)


def output_type(gtype: str, clip: bool) -> str:
    if clip and gtype.removeprefix("Multi") in _DIMENSION:
        return "Multi" + gtype.removeprefix("Multi")
    return gtype


def file_name(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", layer)[:64] or "layer"


def run_directory(ctx: Context) -> tuple[str, Path]:
    """The run's id (its job's; a run without one gets one of its own) and its directory."""
    if ctx.node_dir is None:
        raise InputError("extract runs on a node")
    job_id = ctx.job_id or f"run-{uuid.uuid4().hex}"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", job_id):
        raise InputError("extract: bad job id")
    return job_id, results_dir(ctx.node_dir) / job_id


def file_href(ctx: Context, job_id: str, name: str) -> str:
    return f"{ctx.base_url}/ogc/jobs/{job_id}/results/files/{name}"


# --- the process ----------------------------------------------------------------------------

def _parse(data: Mapping[str, Any], ctx: Context) -> tuple[list[str], BaseGeometry, str, int,
                                                             str, bool]:
    layers = parse_layers(data)
    area = parse_area(data, ctx)
    fmt = parse_format(data)
    return layers, area, fmt, parse_crs(data, area, fmt), parse_encoding(data), parse_clip(data)


def validate_extract(data: Mapping[str, Any], ctx: Context) -> None:
    layers, *_ = _parse(data, ctx)
    with connection(ctx) as conn, conn.cursor() as cur:
        for layer in layers:
            readable_columns(cur, layer, ctx)


def run_extract(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    layers, area, fmt, srid, encoding, clip = _parse(data, ctx)
    delay = compute.test_delay(data, ctx.limits)
    job_id, directory = run_directory(ctx)
    wkt = area.wkt
    with connection(ctx) as conn:
        plans = []
        with conn.cursor() as cur:
            for layer in layers:
                plans.append((layer, readable_columns(cur, layer, ctx), geometry_type(cur, layer)))
        n = len(plans)

        def batches(i: int, layer: str, columns: Sequence[tuple[str, str]], gtype: str
                    ) -> Iterator[list[Any]]:
            ctx.progress(10 + 85 * i // n, f"writing {layer} ({i + 1}/{n})")
            with conn.cursor(name=f"extract_{i}") as cur:  # server-side: streamed
                cur.itersize = exports.BATCH
                params = (wkt,) * (3 if clip else 2)
                cur.execute(layer_query(layer, columns, gtype, srid, clip), params)
                while True:
                    rows = cur.fetchmany(exports.BATCH)
                    if not rows:
                        return
                    if delay:  # tests: a slow job (before and after the batch is written)
                        time.sleep(delay)
                    yield rows
                    if delay:
                        time.sleep(delay)

        data_layers = [exports.LayerData(file_name(layer), columns, output_type(gtype, clip),
                                         batches(i, layer, columns, gtype))
                       for i, (layer, columns, gtype) in enumerate(plans)]

        def progress(name: str, count: int) -> None:
            i = next(k for k, d in enumerate(data_layers) if d.name == name)
            ctx.progress(min(95, 10 + 85 * i // n + 1),
                         f"writing {plans[i][0]} ({i + 1}/{n}): {count} features")

        directory.mkdir(parents=True, exist_ok=True)
        (directory / OWNER_FILE).write_text(ctx.caller.sub, encoding="utf-8")
        written = exports.write(fmt, directory, f"extract-{file_name(layers[0])}"
                                if n == 1 else "extract", data_layers, srid, encoding, progress)
    ctx.progress(98, "listing the files")
    return {
        "format": fmt, "crs": f"EPSG:{srid}", "selection": "clip" if clip else "intersects",
        **({"encoding": encoding} if fmt == "shp" else {}),
        "job": job_id,
        "layers": [{"id": layer, "features": d.count,
                    "attributes": [c for c, _ in columns] if exports.FORMATS[fmt].attributes
                    else []}
                   for (layer, columns, _), d in zip(plans, data_layers, strict=True)],
        "files": [{"name": w.name, "size": w.size, "type": w.media_type,
                   "href": file_href(ctx, job_id, w.name)} for w in written],
    }


register(EXTRACT, run_extract, validate_extract)
