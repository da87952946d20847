"""The processes `buffer` (metres on the ground, in the Gauss-Krüger zone of the input) and
`overlay` (area statistics of layers within a polygon); their work is in compute.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from psycopg2 import sql

from services.analysis import compute
from services.analysis.compute import InputError
from services.analysis.inputs import area_inputs, input_area
from services.analysis.processes import COMMON as _COMMON
from services.analysis.processes import GEOJSON as _GEOJSON
from services.analysis.processes import Context, connection, register, visible_layer

BUFFER = {**_COMMON, "id": "buffer", "title": {"en": "Buffer (metres on the ground)",
                                               "zh": "缓冲区分析"},
          "description": {"en": "The zone within a distance in metres of a geometry, buffered in "
                                "the CGCS2000 3-degree Gauss-Krüger zone of the input "
                                "(EPSG:4534-4554) and returned in longitude/latitude."},
          "inputs": {
              "geometry": {"title": "Input geometry", "schema": _GEOJSON,
                           "minOccurs": 1, "maxOccurs": 1},
              "distance": {"title": "Distance (m)", "schema": {
                  "type": "number", "exclusiveMinimum": 0, "maximum": compute.MAX_DISTANCE},
                  "minOccurs": 1, "maxOccurs": 1},
              "segments": {"title": "Segments per quarter circle", "schema": {
                  "type": "integer", "minimum": 1, "maximum": 64, "default": 16},
                  "minOccurs": 0, "maxOccurs": 1}},
          "outputs": {"buffer": {"title": "Buffer", "schema": {
              "type": "object", "contentMediaType": "application/geo+json"}}},
          "example": {"inputs": {"geometry": {"type": "Point", "coordinates": [120.2, 30.25]},
                                 "distance": 1000}}}

OVERLAY = {**_COMMON, "id": "overlay", "title": {"en": "Overlay area statistics",
                                                 "zh": "叠加分析（压覆分析）"},
           "description": {"en": "An input polygon (GeoJSON, a feature of a layer by id, or an "
                                 "uploaded GeoJSON, zipped Shapefile or GeoPackage: the union "
                                 "of its polygons) against layers of this node the caller may "
                                 "see, grouped by an attribute: per class the intersected area "
                                 "on the CGCS2000 ellipsoid in m², hectares (公顷) and mu (亩), "
                                 "its share of the input, the feature count, and the "
                                 "intersection geometries."},
           "inputs": {
               **area_inputs(_GEOJSON),
               "layers": {"title": "Layers", "schema": {"type": "array",
                                                        "items": {"type": "string"},
                                                        "minItems": 1, "maxItems": 10},
                          "minOccurs": 1, "maxOccurs": 1},
               "group_by": {"title": "Attribute the classes are of", "schema": {"type": "string"},
                            "minOccurs": 1, "maxOccurs": 1}},
           "outputs": {"statistics": {"title": "Classes, areas and intersections", "schema": {
               "type": "object", "contentMediaType": "application/json"}}},
           "example": {"inputs": {"geometry": {"type": "Polygon", "coordinates": [[
               [120.20, 30.24], [120.22, 30.24], [120.22, 30.26], [120.20, 30.26],
               [120.20, 30.24]]]}, "layers": ["parcels"], "group_by": "land_use"}}}


# The intersections, their ellipsoidal areas and lengths and their GeoJSON features are
# computed in PostGIS (GEOS overlay, only of features not wholly inside; geography on the
# CGCS2000 spheroid):
# many times faster than shapely and pyproj.Geod feature by feature in Python (bench/analysis.py).
# A part of lower dimension than its feature (a parcel touching the area along an edge) is no
# part of the result.
OVERLAY_SQL = """
WITH cut AS MATERIALIZED (  -- materialized: each part is computed once, not per use of it
    SELECT {col} AS v, ST_Dimension(t.geom) AS d,
           CASE WHEN ST_Covers(a.g, t.geom) THEN t.geom  -- inside: no overlay needed
                ELSE ST_Intersection(t.geom, a.g) END AS p
    FROM {tbl} t, (SELECT ST_GeomFromText(%(wkt)s, 4490) AS g) a
    WHERE t.geom && a.g AND ST_Intersects(t.geom, a.g)
)
SELECT v, area, length,  -- the Feature as JSON text (concatenated: json_build_object is slower)
       '{{"type":"Feature","geometry":' || ST_AsGeoJSON(p, 9, 0)
       || ',"properties":{{"layer":' || to_json(%(layer)s::text)::text
       || ',"value":' || COALESCE(to_json(v)::text, 'null')
       || ',"area_m2":' || round(area::numeric, 3)::text
       || ',"length_m":' || round(length::numeric, 3)::text || '}}}}'
FROM (SELECT v, p, CASE WHEN ST_Dimension(p) = 2 THEN ST_Area(p::geography) ELSE 0 END AS area,
             CASE WHEN ST_Dimension(p) = 1 THEN ST_Length(p::geography) ELSE 0 END AS length
      FROM cut WHERE ST_Dimension(p) = d AND NOT ST_IsEmpty(p)) parts
"""


def _rows(cur: Any, layer: str, column: str, wkt: str) -> Iterator[tuple[Any, float, float, str]]:
    cur.execute(sql.SQL(OVERLAY_SQL).format(col=sql.Identifier(column),
                                            tbl=sql.Identifier(layer)),
                {"wkt": wkt, "layer": layer})
    while True:
        batch = cur.fetchmany(500)
        if not batch:
            return
        yield from batch


def _overlay_layers(cur: Any, data: Mapping[str, Any], ctx: Context) -> list[tuple[str, str]]:
    """(layer, column) of the request."""
    layers = data.get("layers")
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, list) or not layers or len(layers) > 10 or \
            not all(isinstance(x, str) for x in layers):
        raise InputError("layers: a list of 1 to 10 layer ids is required")
    group_by = data.get("group_by")
    if not isinstance(group_by, str) or not group_by:
        raise InputError("group_by: the name of an attribute is required")
    out = []
    for layer_id in dict.fromkeys(layers):
        info = visible_layer(cur, layer_id, ctx)
        out.append((layer_id, compute.resolve_attribute(
            info, group_by, ctx.caller.rights.get(layer_id, frozenset()))))
    return out


def validate_buffer(data: Mapping[str, Any], ctx: Context) -> None:
    compute.parse_geometry(data.get("geometry"), ctx.limits)
    compute.parse_number(data, "distance", low=0.01, high=compute.MAX_DISTANCE)
    compute.parse_number(data, "segments", low=1, high=64, default=16)


def run_buffer(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    return compute.run_buffer(data, ctx.limits, ctx.progress)


def validate_overlay(data: Mapping[str, Any], ctx: Context) -> None:
    with connection(ctx) as conn, conn.cursor() as cur:
        input_area(data, ctx, cur)
        _overlay_layers(cur, data, ctx)


def run_overlay(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    delay = compute.test_delay(data, ctx.limits)
    with connection(ctx) as conn:
        with conn.cursor() as cur:
            area = input_area(data, ctx, cur)
            targets = _overlay_layers(cur, data, ctx)
        ctx.progress(20, "intersecting")
        wkt = area.wkt

        def rows() -> Iterator[tuple[str, Iterator[tuple[Any, float, float, str]]]]:
            for layer, column in targets:
                with conn.cursor(name=f"overlay_{layer[:40]}") as cur:  # server-side: streamed
                    cur.itersize = 500
                    yield layer, _rows(cur, layer, column, wkt)

        result = compute.overlay(area, rows(), ctx.progress, delay)
    result["group_by"] = data["group_by"]
    return result


register(BUFFER, run_buffer, validate_buffer)
register(OVERLAY, run_overlay, validate_overlay)
