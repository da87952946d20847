"""WMS GetFeatureInfo for the node's vector WMS layers, answered by us (not MapProxy).

The layers: configured layers with `wms: true` and published layers drawn on the e-map; the
build writes them into `queryable.json` beside each MapProxy config (tiles/build.py), so a
publish reload swaps them with the config. A request (WMS 1.1.1 `X`/`Y` and `SRS`, 1.3.0 `I`/`J`
and `CRS`, lat-first BBOX for EPSG:4490/4326 in 1.3.0) becomes the clicked point and a box of
TOLERANCE_PX pixels around it; the features of each QUERY_LAYER meeting that box come from the
node's table (parameterised SQL), nearest first, at most FEATURE_COUNT (default 1, cap 50),
without the attributes the caller may not see (the tile service asks the access check's
`hidden_fields`, the rule of the features service; without one, every attribute with a level
of its own is left out).

INFO_FORMATs: `application/json` (a GeoJSON FeatureCollection, CRS84 coordinates, each feature
with a `layer` member), `text/html` (a table per layer, every name and value HTML-escaped),
`text/plain` (MapServer's layout), `application/vnd.ogc.gml` and `text/xml` (MapServer-style GML
2, `msGMLOutput`, geometry in the request's CRS: what QGIS's identify tool reads as features).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lxml import etree
from psycopg2 import sql

from tiles.errors import OGCError
from tiles.mapproxy_config import MAX_WMS_PIXELS

QUERYABLE = "queryable.json"  # beside each mapproxy.yaml: the layers GetFeatureInfo answers for
INFO_FORMATS = ("application/json", "text/html", "text/plain", "application/vnd.ogc.gml",
                "text/xml")
MAX_FEATURE_COUNT = 50
TOLERANCE_PX = 4  # a click this close to a line or a point hits it
SRIDS = {"EPSG:4490": 4490, "EPSG:4326": 4326, "CRS:84": 4326, "EPSG:3857": 3857,
         "EPSG:900913": 3857}
LAT_FIRST = {"EPSG:4490", "EPSG:4326"}  # in WMS 1.3.0, as EPSG defines them
STORAGE_SRID = 4490
GML = "http://www.opengis.net/gml"
_INT = re.compile(r"^\d{1,9}$")
_NAME_START = re.compile(r"^[A-Za-z_\u00C0-\uFFEF]")
_NAME_BAD = re.compile(r"[^\w.\-\u00B7\u00C0-\uFFEF]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # no XML 1.0 text holds them


class Rows(Protocol):
    """The node's database (services.db.Database): rows as dicts."""

    def all(self, sql: Any, args: Any = ()) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class QueryableLayer:
    """A vector WMS layer: its table, title and the attributes with a level of their own."""

    name: str
    table: str
    title: str
    fields: Mapping[str, str]
    titles: Mapping[str, str] = field(default_factory=dict)  # column -> original attribute name


def read_queryable(mapproxy_yaml: Path) -> dict[str, QueryableLayer]:
    """The queryable layers written beside a MapProxy config ({} when there is no file)."""
    path = Path(mapproxy_yaml).parent / QUERYABLE
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: QueryableLayer(name, v["table"], v.get("title") or name,
                                 dict(v.get("fields") or {}), dict(v.get("titles") or {}))
            for name, v in raw.items()}


def queryable_text(layers: Mapping[str, QueryableLayer]) -> str:
    """The text of a `queryable.json` for `layers` (written by tiles/build.py)."""
    return json.dumps({n: {"table": q.table, "title": q.title, "fields": dict(q.fields),
                           "titles": dict(q.titles)}
                       for n, q in layers.items()}, ensure_ascii=False, indent=1)


def parse_bbox(value: str) -> list[float]:
    """A WMS BBOX: four finite numbers, minimum below maximum."""
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
        raise OGCError("InvalidParameterValue", "BBOX must be four numbers: minx,miny,maxx,maxy.", "BBOX")
    if parts[0] >= parts[2] or parts[1] >= parts[3]:
        raise OGCError("InvalidParameterValue", "BBOX minimum must be less than maximum.", "BBOX")
    return parts


def parse_size(p: Mapping[str, str]) -> tuple[int, int]:
    """A WMS WIDTH and HEIGHT: integers from 1 to MAX_WMS_PIXELS."""
    size = []
    for name in ("WIDTH", "HEIGHT"):
        value = p.get(name, "")
        if not _INT.match(value) or not 1 <= int(value) <= MAX_WMS_PIXELS:
            raise OGCError("InvalidParameterValue",
                           f"{name} must be an integer from 1 to {MAX_WMS_PIXELS}.", name)
        size.append(int(value))
    return size[0], size[1]


@dataclass(frozen=True)
class FeatureInfoRequest:
    """A validated GetFeatureInfo: the point and tolerance box in `srid` (x east, y north)."""

    layers: tuple[str, ...]
    x: float
    y: float
    dx: float  # half the tolerance box, in CRS units
    dy: float
    srid: int
    crs: str
    info_format: str
    feature_count: int


def _int(p: Mapping[str, str], names: Sequence[str]) -> str:
    for name in names:
        if name in p:
            return p[name]
    return ""


def parse_request(p: Mapping[str, str], queryable: Collection[str]) -> FeatureInfoRequest:
    """Validate a GetFeatureInfo (upper-case parameter names); raises OGCError."""
    version = p.get("VERSION", "1.3.0")
    v130 = version != "1.1.1"
    query_layers = tuple(dict.fromkeys(v for v in p.get("QUERY_LAYERS", "").split(",") if v))
    if not query_layers:
        raise OGCError("LayerNotDefined", "QUERY_LAYERS is missing.", "QUERY_LAYERS")
    if any(v not in queryable for v in query_layers):
        raise OGCError("LayerNotQueryable", "A layer in QUERY_LAYERS is not queryable.",
                       "QUERY_LAYERS")
    fmt = p.get("INFO_FORMAT", "text/plain").strip().lower()
    if fmt not in INFO_FORMATS:
        raise OGCError("InvalidFormat", "Unsupported INFO_FORMAT (use one of "
                       + ", ".join(INFO_FORMATS) + ").", "INFO_FORMAT")
    width, height = parse_size(p)
    crs = (p.get("CRS") if v130 else p.get("SRS")) or p.get("CRS") or p.get("SRS") or ""
    crs = crs.upper()
    if crs not in SRIDS:
        raise OGCError("InvalidCRS" if v130 else "InvalidSRS", "Unsupported CRS/SRS.",
                       "CRS" if v130 else "SRS")
    minx, miny, maxx, maxy = parse_bbox(p.get("BBOX", ""))
    if v130 and crs in LAT_FIRST:
        minx, miny, maxx, maxy = miny, minx, maxy, maxx
    names = ("I", "J", "X", "Y") if v130 else ("X", "Y", "I", "J")
    i, j = _int(p, (names[0], names[2])), _int(p, (names[1], names[3]))
    if not (_INT.match(i) and _INT.match(j) and int(i) < width and int(j) < height):
        raise OGCError("InvalidPoint" if v130 else "InvalidParameterValue",
                       "I/J (X/Y in 1.1.1) must be pixel positions inside WIDTH x HEIGHT.",
                       "I" if v130 else "X")
    count = p.get("FEATURE_COUNT", "1")
    if not _INT.match(count) or int(count) < 1:
        raise OGCError("InvalidParameterValue", "FEATURE_COUNT must be a positive integer.",
                       "FEATURE_COUNT")
    rx, ry = (maxx - minx) / width, (maxy - miny) / height
    return FeatureInfoRequest(
        layers=query_layers, x=minx + (int(i) + 0.5) * rx, y=maxy - (int(j) + 0.5) * ry,
        dx=TOLERANCE_PX * rx, dy=TOLERANCE_PX * ry, srid=SRIDS[crs], crs=crs, info_format=fmt,
        feature_count=min(int(count), MAX_FEATURE_COUNT))


_QUERY = """
WITH q AS (SELECT ST_Transform(ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, %(srid)s),
                               {storage}) AS box,
                  ST_Transform(ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), %(srid)s), {storage}) AS pt)
SELECT t.fid AS fid, to_jsonb(t) - %(drop)s::text[] AS props,
       ST_AsGeoJSON(t.geom, 7) AS geojson,
       ST_AsGML(2, ST_Transform(t.geom, %(srid)s), 7) AS gml,
       Box2D(ST_Transform(t.geom, %(srid)s))::text AS extent
FROM {table} AS t, q
WHERE t.geom && q.box AND ST_Intersects(t.geom, q.box)
ORDER BY ST_Distance(t.geom, q.pt), t.fid
LIMIT %(n)s
"""


def query_features(db: Rows, layer: QueryableLayer, req: FeatureInfoRequest,
                   hidden: Collection[str]) -> list[dict[str, Any]]:
    """The features of `layer` at the request's point, nearest first, without `hidden`
    attributes (removed in the query itself: they never leave the database)."""
    statement = sql.SQL(_QUERY).format(storage=sql.Literal(STORAGE_SRID),
                                       table=sql.Identifier("public", layer.table))
    rows = db.all(statement, {
        "x0": req.x - req.dx, "y0": req.y - req.dy, "x1": req.x + req.dx, "y1": req.y + req.dy,
        "x": req.x, "y": req.y, "srid": req.srid, "n": req.feature_count,
        "drop": ["geom", "fid", *sorted(hidden)]})
    out = [dict(r) for r in rows]
    if layer.titles:  # a published layer: its attributes by their original names
        for r in out:
            r["props"] = {layer.titles.get(k, k): v for k, v in (r["props"] or {}).items()}
    return out


# --- rendering ---------------------------------------------------------------------------------

Results = Sequence[tuple[QueryableLayer, list[dict[str, Any]]]]


def render(req: FeatureInfoRequest, results: Results) -> tuple[bytes, str]:
    """The answer body and its media type."""
    fmt = req.info_format
    if fmt == "application/json":
        return _json(results), "application/json"
    if fmt == "text/html":
        return _html(results), "text/html; charset=utf-8"
    if fmt == "text/plain":
        return _plain(results), "text/plain; charset=utf-8"
    return _gml(req, results), f"{fmt}; charset=utf-8"


def _json(results: Results) -> bytes:
    features = [{"type": "Feature", "id": r["fid"], "layer": layer.name,
                 "geometry": json.loads(r["geojson"]) if r["geojson"] else None,
                 "properties": r["props"]}
                for layer, rows in results for r in rows]
    return json.dumps({"type": "FeatureCollection", "features": features},
                      ensure_ascii=False).encode("utf-8")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _html(results: Results) -> bytes:
    e = html.escape
    head = ('<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
            "<title>GetFeatureInfo</title></head><body>")
    parts = [head]
    for layer, rows in results:
        parts.append(f'<table class="featureinfo" data-layer="{e(layer.name)}">'
                     f"<caption>{e(layer.title)}</caption>")
        for n, r in enumerate(rows, 1):
            parts.append(f'<tbody><tr><th colspan="2">{e(layer.name)}.{e(_text(r["fid"]))}'
                         f" ({n})</th></tr>")
            for name, value in r["props"].items():
                parts.append(f"<tr><th>{e(name)}</th><td>{e(_text(value))}</td></tr>")
            parts.append("</tbody>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts).encode("utf-8")


def _plain(results: Results) -> bytes:
    lines = ["GetFeatureInfo results:", ""]
    for layer, rows in results:
        lines.append(f"Layer '{layer.name}'")
        for r in rows:
            lines.append(f"  Feature {r['fid']}: ")
            for name, value in r["props"].items():
                lines.append(f"    {name} = '{_text(value)}'")
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def xml_name(name: str) -> str:
    """An XML element name for an attribute name (any character a name may not hold -> `_`)."""
    out = _NAME_BAD.sub("_", name) or "_"
    if not _NAME_START.match(out) or out.lower().startswith("xml"):
        out = "_" + out
    return out


def _gml_geometry(text: str | None) -> etree._Element | None:
    if not text:
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    wrapper = etree.fromstring(f'<w xmlns:gml="{GML}">{text}</w>'.encode(), parser)
    return wrapper[0] if len(wrapper) else None


def _gml(req: FeatureInfoRequest, results: Results) -> bytes:
    """MapServer's GML 2 layout (`msGMLOutput`, `{layer}_layer`, `{layer}_feature`)."""
    root = etree.Element("msGMLOutput", nsmap={"gml": GML})
    srs = "EPSG:4326" if req.crs == "CRS:84" else req.crs
    for layer, rows in results:
        lay = etree.SubElement(root, xml_name(f"{layer.name}_layer"))
        etree.SubElement(lay, f"{{{GML}}}name").text = layer.title
        for r in rows:
            feat = etree.SubElement(lay, xml_name(f"{layer.name}_feature"), fid=str(r["fid"]))
            box = re.findall(r"-?[\d.eE+-]+", r.get("extent") or "")
            if len(box) == 4:
                bounded = etree.SubElement(feat, f"{{{GML}}}boundedBy")
                b = etree.SubElement(bounded, f"{{{GML}}}Box", srsName=srs)
                etree.SubElement(b, f"{{{GML}}}coordinates").text = \
                    f"{box[0]},{box[1]} {box[2]},{box[3]}"
            geom = _gml_geometry(r.get("gml"))
            if geom is not None:
                geom.set("srsName", srs)
                etree.SubElement(feat, "msGeometry").append(geom)
            for name, value in r["props"].items():
                etree.SubElement(feat, xml_name(name)).text = _NOT_XML.sub("\ufffd", _text(value))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
