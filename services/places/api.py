"""Our own JSON API of place names: `/api/places/{geocode,reverse,search,suggest,admin/{code}}`.

GeoJSON FeatureCollections, lon/lat in CRS84 by default; `crs=` the EPSG:4490 URI gives
CGCS2000 in its own axis order (lat, lon) with a `Content-Crs` header, as the node's OGC API
endpoints do. `partial` lists the nodes of the federation that did not answer in time; search
pages carry `next`/`prev` links. Errors are RFC 9457 problem+json (`PlacesInputError`, which
carries Tianditu's infocode too). Limits, as the query layer's (services/places/limits.py) and
Tianditu's: text 100 characters, `limit` 1-100, `offset` 0-300, `radius` up to 10 km,
`max_distance` up to 5 km, `children` 0-3.
The OpenAPI document of these routes: `openapi()` (served at /api/places/openapi).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import shapely
import shapely.errors
from shapely import wkt
from shapely.geometry import mapping

from services.places.errors import (
    BAD_ENUM,
    BAD_LONLAT,
    BAD_PARAMETER,
    MISSING,
    OUT_OF_RANGE,
    OVERFLOW,
    PlacesInputError,
)
from services.places.model import LEVEL_CN, AdminChain, Division, Geocoded, Place, Reversed
from services.places.tianditu import CONTROL, TYPE_OF, lonlat, number, numbers

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS_NAMES = {CRS84: CRS84, "CRS84": CRS84, "OGC:CRS84": CRS84,
             CRS4490: CRS4490, "EPSG:4490": CRS4490}
MAX_TEXT, MAX_LIMIT, MAX_OFFSET, MAX_RADIUS_M, MAX_CHILDREN = 100, 100, 300, 10_000.0, 3
CATEGORIES = tuple(TYPE_OF)


def fail(code: int, message: str, param: str) -> PlacesInputError:
    return PlacesInputError(code, message, param=param)


# --- parameters -----------------------------------------------------------------------------

def text(params: dict[str, str], key: str, *, required: bool = False) -> str | None:
    v = params.get(key)
    if v is None or not v.strip():
        if required:
            raise fail(MISSING, f"{key} is required.", key)
        return None
    if CONTROL.search(v):
        raise fail(BAD_PARAMETER, f"{key} contains control characters.", key)
    if len(v) > MAX_TEXT:
        raise fail(BAD_PARAMETER, f"{key} is longer than {MAX_TEXT} characters.", key)
    return v.strip()


def integer(params: dict[str, str], key: str, default: int, lo: int, hi: int,
            code: int = OUT_OF_RANGE) -> int:
    v = params.get(key)
    if v is None or v == "":
        return default
    if not v.strip().lstrip("-").isdigit() or len(v) > 12:
        raise fail(BAD_PARAMETER, f"{key} must be an integer.", key)
    n = int(v)
    if not lo <= n <= hi:
        raise fail(code, f"{key} must be between {lo} and {hi}.", key)
    return n


def crs_of(params: dict[str, str]) -> str:
    v = params.get("crs")
    if v is None or v == "":
        return CRS84
    if v not in CRS_NAMES:
        raise fail(BAD_ENUM, f"crs is {CRS84} or {CRS4490}.", "crs")
    return CRS_NAMES[v]


def boolean(params: dict[str, str], key: str) -> bool:
    v = (params.get(key) or "false").lower()
    if v not in ("true", "false", "1", "0"):
        raise fail(BAD_ENUM, f"{key} is true or false.", key)
    return v in ("true", "1")


def point_of(params: dict[str, str]) -> tuple[float, float]:
    for key in ("lon", "lat"):
        if not params.get(key):
            raise fail(MISSING, f"{key} is required.", key)
        if len(params[key]) > 40:
            raise fail(BAD_LONLAT, f"{key} is not a number.", key)
    return lonlat(params["lon"], params["lat"], "lon/lat")


def search_args(params: dict[str, str]) -> dict[str, Any]:
    """`/api/places/search` parameters -> `Places.search` keyword arguments (but `visible`)."""
    args: dict[str, Any] = {"q": text(params, "q"), "admin": text(params, "admin")}
    raw_bbox = text(params, "bbox")
    if raw_bbox is not None:
        xs = numbers(raw_bbox, "bbox")
        if len(xs) != 4:
            raise fail(BAD_LONLAT, "bbox is minlon,minlat,maxlon,maxlat.", "bbox")
        (x0, y0), (x1, y1) = lonlat(xs[0], xs[1], "bbox"), lonlat(xs[2], xs[3], "bbox")
        if x0 > x1 or y0 > y1:
            raise fail(BAD_LONLAT, "bbox: min must not exceed max.", "bbox")
        args["bbox"] = (x0, y0, x1, y1)
    near = text(params, "near")
    radius = text(params, "radius")
    if near is not None:
        xs = numbers(near, "near")
        if len(xs) != 2:
            raise fail(BAD_LONLAT, "near is lon,lat.", "near")
        args["near"] = lonlat(xs[0], xs[1], "near")
        if radius is not None:
            r = number(radius, "radius")
            if not 0 < r <= MAX_RADIUS_M:
                raise fail(OUT_OF_RANGE, f"radius is 1-{int(MAX_RADIUS_M)} metres.", "radius")
            args["radius_m"] = r
    elif radius is not None:
        raise fail(MISSING, "radius needs near=lon,lat.", "near")
    cats = text(params, "category")
    if cats is not None:
        wanted = [c.strip() for c in cats.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in CATEGORIES]
        if unknown or len(wanted) > 20:
            raise fail(BAD_ENUM, f"category is one or more of {', '.join(CATEGORIES)}.",
                       "category")
        args["categories"] = wanted
    if not any(args.get(k) for k in ("q", "admin", "bbox", "near", "categories")):
        raise fail(MISSING, "Give q, or at least one of bbox, near, admin, category.", "q")
    args["limit"] = integer(params, "limit", 10, 1, MAX_LIMIT)
    args["offset"] = integer(params, "offset", 0, 0, MAX_OFFSET, OVERFLOW)
    args["statistics"] = boolean(params, "statistics")
    return args


# --- GeoJSON --------------------------------------------------------------------------------

def _xy(lon: float, lat: float, crs: str) -> list[float]:
    return [lat, lon] if crs == CRS4490 else [lon, lat]


def admin_props(a: AdminChain) -> dict[str, Any]:
    return {k: getattr(a, k) for k in ("province", "province_code", "city", "city_code",
                                        "county", "county_code", "township", "township_code")}


def place_feature(p: Place, crs: str, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": p.name, "kind": p.kind, "level": LEVEL_CN.get(p.kind), "address": p.address,
        "road": p.road, "number": p.number, "category": p.category, "phone": p.phone,
        "score": p.score, "distance_m": None if p.distance_m is None else round(p.distance_m, 1),
        "admin": admin_props(p.admin), "layer": p.layer, "node": p.node, **extra}
    return {"type": "Feature", "id": p.id,
            "geometry": {"type": "Point", "coordinates": _xy(p.lon, p.lat, crs)},
            "properties": props}


def collection(features: list[dict[str, Any]], partial: tuple[str, ...], **members: Any
               ) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features,
            "numberReturned": len(features), "partial": list(partial), **members}


def geocoded(g: Geocoded, crs: str) -> dict[str, Any]:
    feats = []
    if g.best is not None:
        feats.append(place_feature(g.best, crs, best=True,
                                   match_level=g.level, match_level_cn=LEVEL_CN.get(g.level or "")))
    feats += [place_feature(c, crs, best=False) for c in g.candidates
              if g.best is None or c.id != g.best.id]
    return collection(feats, g.partial)


def reversed_(r: Reversed, crs: str) -> dict[str, Any]:
    feats = [place_feature(p, crs, role=role) for role, p in
             (("address", r.address), ("road", r.road), ("poi", r.poi)) if p is not None]
    return collection(feats, r.partial, formatted_address=r.formatted_address,
                      admin=admin_props(r.admin),
                      point={"type": "Point", "coordinates": _xy(r.lon, r.lat, crs)})


def _swap(geom: Any) -> Any:
    return shapely.transform(geom, lambda c: c[:, ::-1])


def division_feature(d: Division, crs: str) -> dict[str, Any]:
    geometry: dict[str, Any] = {"type": "Point", "coordinates": _xy(d.lon, d.lat, crs)}
    if d.boundary_wkt:
        try:
            g = wkt.loads(d.boundary_wkt)
            geometry = mapping(_swap(g) if crs == CRS4490 else g)
        except shapely.errors.ShapelyError:  # an unreadable boundary: the centre instead
            geometry = {"type": "Point", "coordinates": _xy(d.lon, d.lat, crs)}
    return {"type": "Feature", "id": d.code, "geometry": geometry, "properties": {
        "code": d.code, "name": d.name, "kind": d.kind, "level": LEVEL_CN.get(d.kind),
        "parent_code": d.parent_code, "centre": _xy(d.lon, d.lat, crs),
        "bbox": list(d.bbox) if d.bbox else None, "boundary_note": d.boundary_note,
        "parents": [{"code": p.code, "name": p.name, "kind": p.kind} for p in d.parents],
        "children": [division_child(c) for c in d.children]}}


def division_child(d: Division) -> dict[str, Any]:
    return {"code": d.code, "name": d.name, "kind": d.kind, "lon": d.lon, "lat": d.lat,
            "bbox": list(d.bbox) if d.bbox else None, "boundary_note": d.boundary_note,
            "children": [division_child(c) for c in d.children]}


def page_links(base: str, params: dict[str, str], offset: int, limit: int, total: int
               ) -> list[dict[str, str]]:
    def href(off: int) -> str:
        return f"{base}?{urlencode({**params, 'offset': str(off), 'limit': str(limit)})}"

    links = [{"rel": "self", "type": "application/geo+json", "href": href(offset)}]
    if offset + limit < total:
        links.append({"rel": "next", "type": "application/geo+json", "href": href(offset + limit)})
    if offset > 0:
        links.append({"rel": "prev", "type": "application/geo+json",
                      "href": href(max(0, offset - limit))})
    return links


# --- OpenAPI --------------------------------------------------------------------------------

def _param(name: str, desc: str, *, required: bool = False, schema: dict[str, Any] | None = None,
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": desc,
            "schema": schema or {"type": "string", "maxLength": MAX_TEXT}}


_CRS = _param("crs", "Output CRS: CRS84 (lon/lat, default) or EPSG:4490 (lat/lon).",
              schema={"type": "string", "enum": [CRS84, CRS4490]})
_TK = _param("tk", "API key (or Authorization: Bearer); counts against the key's search quota.")
_FC = {"200": {"description": "GeoJSON FeatureCollection (`partial`: nodes that did not "
                              "answer in time)",
               "content": {"application/geo+json": {"schema": {"type": "object"}}}},
       "400": {"description": "Bad parameter (RFC 9457; `infocode` as Tianditu's)",
               "content": {"application/problem+json": {"schema": {"type": "object"}}}},
       "401": {"description": "Missing or bad credentials"},
       "429": {"description": "The key's search quota is used up"}}


def openapi(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of /api/places (the node's OGC OpenAPI covers /ogc only)."""
    def op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": [*params, _CRS, _TK], "responses": _FC}}

    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}
    return {
        "openapi": "3.0.3",
        "info": {"title": "geoplat place names and addresses", "version": "1.0.0",
                 "description": "Geocoding, reverse geocoding, place search, suggestions and "
                                "administrative divisions. Tianditu-compatible forms are at "
                                "/geocoder, /v2/search, /search, /v2/administrative, "
                                "/administrative."},
        "servers": [{"url": base_url}],
        "paths": {
            "/api/places/geocode": op("Geocode an address or place name", [
                _param("address", "Address or place name", required=True)]),
            "/api/places/reverse": op("Reverse geocode a point", [
                _param("lon", "Longitude", required=True, schema={"type": "number"}),
                _param("lat", "Latitude", required=True, schema={"type": "number"})]),
            "/api/places/search": op("Search places", [
                _param("q", "Keyword"),
                _param("bbox", "minlon,minlat,maxlon,maxlat"),
                _param("near", "lon,lat (sorted by distance)"),
                _param("radius", "Metres around near", schema={
                    "type": "number", "maximum": MAX_RADIUS_M}),
                _param("admin", "Division code (6/9 digits or 156-prefixed) or name"),
                _param("category", "Comma-separated: " + ", ".join(CATEGORIES)),
                _param("statistics", "Counts per city/county", schema={"type": "boolean"}),
                _param("limit", "Page size", schema=limit),
                _param("offset", "Start", schema={"type": "integer", "minimum": 0,
                                                  "maximum": MAX_OFFSET})]),
            "/api/places/suggest": op("Type-ahead suggestions", [
                _param("q", "Prefix", required=True), _param("limit", "Size", schema=limit)]),
            "/api/places/admin/{code}": op("An administrative division by code or name", [
                _param("code", "Code (6/9 digits, or 156-prefixed) or name", required=True,
                       where="path"),
                _param("children", "Depth of children", schema={
                    "type": "integer", "minimum": 0, "maximum": MAX_CHILDREN}),
                _param("geometry", "Include the boundary", schema={"type": "boolean"})]),
        },
    }
