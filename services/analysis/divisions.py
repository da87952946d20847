"""The process `statistics-by-division`: for a layer, per administrative division (county or
district; township where the node has township boundaries) the feature count, the area
(m², 公顷, 亩, on the CGCS2000 ellipsoid) or length (m) and the sum/mean/min/max of an optional
numeric attribute, optionally within an area; as a table and as a choropleth-ready layer.

All in PostGIS: the features meeting each division's interior are intersected with it and
measured as geography (GeographicLib on the CGCS2000 spheroid), grouped by division. A feature
crossing two divisions counts in each, with its area or length by the part inside each; the
statistics of the attribute take the feature's whole value in each division it meets.
The division layers are the node's layers with `places: {kind: division, level: ...}` and
polygon geometries (Zhejiang's townships are centre points: no township statistics there).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import quote_ident

from services.analysis import compute
from services.analysis.compute import M2_PER_MU, InputError
from services.analysis.processes import COMMON as _COMMON
from services.analysis.processes import GEOJSON as _GEOJSON
from services.analysis.processes import Context, connection, register, visible_layer

LEVELS = ("province", "city", "county", "township")
NUMERIC = {"smallint", "integer", "bigint", "real", "double precision", "numeric"}

DIVISIONS = {**_COMMON, "id": "statistics-by-division",
             "title": {"en": "Statistics by administrative division", "zh": "分行政区统计"},
             "description": {"en": "For a layer the caller may see, per division (county/"
                                   "district, or township where the node has township "
                                   "boundaries): the feature count, the area on the CGCS2000 "
                                   "ellipsoid (m², 公顷, 亩) or the length (m), and the sum, "
                                   "mean, min and max of an optional numeric attribute, with "
                                   "the division codes and names; optionally within an area. "
                                   "A feature crossing two divisions counts in each, its area "
                                   "or length by the part in each (the attribute's statistics "
                                   "take its whole value). Output: a table and a "
                                   "choropleth-ready GeoJSON layer of the divisions."},
             "inputs": {
                 "layer": {"title": "Layer", "schema": {"type": "string"},
                           "minOccurs": 1, "maxOccurs": 1},
                 "level": {"title": "Division level", "schema": {
                     "type": "string", "enum": list(LEVELS), "default": "county"},
                     "minOccurs": 0, "maxOccurs": 1},
                 "field": {"title": "Numeric attribute to sum", "schema": {"type": "string"},
                           "minOccurs": 0, "maxOccurs": 1},
                 "area": {"title": "Limit to this polygon", "schema": _GEOJSON,
                          "minOccurs": 0, "maxOccurs": 1}},
             "outputs": {"statistics": {"title": "Rows per division and the choropleth layer",
                                        "schema": {"type": "object",
                                                   "contentMediaType": "application/json"}}},
             "example": {"inputs": {"layer": "parcels", "level": "township",
                                    "field": "area_m2"}}}


def _division(cur: Any, data: Mapping[str, Any], ctx: Context) -> tuple[str, str, str, str]:
    """(level, layer, code column, name column) of the requested division level."""
    level = data.get("level", "county")
    if not isinstance(level, str) or level not in LEVELS:
        raise InputError(f"level: one of {', '.join(LEVELS)}")
    ref = ctx.divisions.get(level)
    nope = InputError(f"level: this node has no {level} boundaries (it has: "
                      f"{', '.join(sorted(ctx.divisions)) or 'none'})")
    if ref is None:
        raise nope
    try:
        info = visible_layer(cur, ref["layer"], ctx, "level")
    except InputError:
        raise nope from None
    rights = ctx.caller.rights.get(info.id, frozenset())
    code = compute.resolve_attribute(info, ref["code"], rights, "level")
    name = compute.resolve_attribute(info, ref["name"], rights, "level")
    return level, info.id, code, name


def _column_type(cur: Any, table: str, column: str) -> str:
    cur.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                "to_regclass(%s) AND attname = %s AND NOT attisdropped",
                (quote_ident(table, cur), column))
    row = cur.fetchone()
    return str(row[0]) if row else ""


def _request(cur: Any, data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The checked request: layer, its field column (or None), division, area (or None)."""
    info = visible_layer(cur, data.get("layer"), ctx, "layer")
    column = None
    if data.get("field") not in (None, ""):
        if not isinstance(data["field"], str):
            raise InputError("field: the name of a numeric attribute is required")
        column = compute.resolve_attribute(info, data["field"],
                                           ctx.caller.rights.get(info.id, frozenset()), "field")
        kind = _column_type(cur, info.id, column)
        if kind not in NUMERIC:
            raise InputError(f"field: the attribute {data['field']!r} of layer {info.id} is not "
                             f"numeric ({kind or 'unknown'}); give a numeric attribute")
    area = None
    if data.get("area") is not None:
        area = compute.parse_geometry(data["area"], ctx.limits, polygonal=True, name="area")
    level, dlayer, code, name = _division(cur, data, ctx)
    return {"layer": info.id, "column": column, "level": level, "division_layer": dlayer,
            "code": code, "name": name, "area": area}


QUERY = """
WITH a AS (SELECT ST_GeomFromText(%(area)s, 4490) AS g),
d AS (
  SELECT row_number() OVER () AS id, {code}::text AS code, {name}::text AS name,
         CASE WHEN %(area)s IS NULL THEN dv.geom
              ELSE ST_Multi(ST_CollectionExtract(ST_Intersection(dv.geom, a.g), 3)) END AS geom
  FROM {dtbl} dv, a
  WHERE %(area)s IS NULL OR (dv.geom && a.g AND ST_Relate(dv.geom, a.g, 'T********'))
),
s AS (
  SELECT d.id, count(f.geom) AS n,
         coalesce(sum(ST_Area(ST_CollectionExtract(ST_Intersection(f.geom, d.geom), 3)
                              ::geography)), 0) AS area_m2,
         coalesce(sum(ST_Length(ST_CollectionExtract(ST_Intersection(f.geom, d.geom), 2)
                                ::geography)), 0) AS length_m,
         {stats}
  FROM d LEFT JOIN {tbl} f ON f.geom && d.geom AND ST_Intersects(f.geom, d.geom)
       AND (ST_Dimension(f.geom) = 0 OR ST_Relate(f.geom, d.geom, 'T********'))
  GROUP BY d.id
)
SELECT d.code, d.name, s.n, s.area_m2, s.length_m, s.v_sum, s.v_mean, s.v_min, s.v_max,
       ST_AsGeoJSON(d.geom, 9)
FROM d JOIN s USING (id)
ORDER BY d.code, d.name
"""


def statistics(cur: Any, req: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    if req["column"]:
        v = sql.SQL("f.{}::double precision").format(sql.Identifier(req["column"]))
        stats = sql.SQL("sum({v}) AS v_sum, avg({v}) AS v_mean, min({v}) AS v_min, "
                        "max({v}) AS v_max").format(v=v)
    else:
        stats = sql.SQL("NULL::float8 AS v_sum, NULL::float8 AS v_mean, NULL::float8 AS v_min, "
                        "NULL::float8 AS v_max")
    q = sql.SQL(QUERY).format(code=sql.Identifier("dv", req["code"]),
                              name=sql.Identifier("dv", req["name"]),
                              dtbl=sql.Identifier(req["division_layer"]),
                              tbl=sql.Identifier(req["layer"]), stats=stats)
    ctx.progress(30, f"statistics per {req['level']}")
    cur.execute(q, {"area": req["area"].wkt if req["area"] is not None else None})
    rows, features = [], []
    for code, name, n, area, length, s, mean, lo, hi, geojson in cur.fetchall():
        row: dict[str, Any] = {
            "code": code, "name": name, "count": int(n), "area_m2": round(float(area), 3),
            "area_ha": round(float(area) / 10000, 6), "area_mu": round(float(area) / M2_PER_MU, 4),
            "length_m": round(float(length), 3)}
        if req["column"]:
            row.update({"sum": s, "mean": mean, "min": lo, "max": hi})
        rows.append(row)
        features.append({"type": "Feature", "id": code,
                         "geometry": json.loads(geojson) if geojson else None,
                         "properties": dict(row)})
    ctx.progress(95, "writing the result")
    total = {"count": sum(r["count"] for r in rows),
             "area_m2": round(sum(r["area_m2"] for r in rows), 3),
             "length_m": round(sum(r["length_m"] for r in rows), 3)}
    return {"layer": req["layer"], "level": req["level"],
            "division_layer": req["division_layer"], "field": req["column"],
            "area_m2": round(compute.geodesic_area(req["area"]), 3)
            if req["area"] is not None else None,
            "counting": "a feature crossing divisions counts in each, its area or length by "
                        "the part in each; the field's statistics take its whole value",
            "rows": rows, "totals": total,
            "choropleth": {"type": "FeatureCollection", "features": features}}


def validate_divisions(data: Mapping[str, Any], ctx: Context) -> None:
    with connection(ctx) as conn, conn.cursor() as cur:
        _request(cur, data, ctx)


def run_divisions(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    with connection(ctx) as conn, conn.cursor() as cur:
        req = _request(cur, data, ctx)
        return statistics(cur, req, ctx)


register(DIVISIONS, run_divisions, validate_divisions)
