"""The OpenAPI 3.0 document of /api/annotations (served at /api/annotations/openapi)."""

from __future__ import annotations

from typing import Any

from services.annotations.model import BOUNDS, MAX_NOTE, MAX_PER_USER, MAX_TITLE, MAX_VERTICES

_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
_GEO = {"application/geo+json": {"schema": {"$ref": "#/components/schemas/Annotation"}}}
_FC = {"application/geo+json": {"schema": {"type": "object"}},
       "application/vnd.google-earth.kml+xml": {"schema": {"type": "string"}}}
_F = {"name": "f", "in": "query", "required": False,
      "description": "json (default), geojson (a download) or kml (a download)",
      "schema": {"type": "string", "enum": ["json", "geojson", "kml"]}}
_ID = {"name": "annotation_id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_TOKEN = {"name": "token", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$"}}
_USER: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]


def _answers(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    text = {400: "Bad input (RFC 9457)", 401: "Not signed in", 403: "Not a user (a key)",
            404: "No such annotation of yours", 409: f"More than {MAX_PER_USER} annotations",
            413: "Body too large", 415: "Not JSON"}
    return {**ok, **{str(c): {"description": text[c], "content": _PROBLEM} for c in codes}}


def openapi(base_url: str) -> dict[str, Any]:
    w, s, e, n = BOUNDS
    body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Annotation"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "geoplat annotations", "version": "1.0.0",
                 "description": "A signed-in user's points, lines and polygons with a title and "
                                "a note, kept at this node; private unless shared by link."},
        "servers": [{"url": base_url}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "geoplat_at_<node>"}},
            "schemas": {"Annotation": {
                "type": "object", "required": ["type", "geometry", "properties"],
                "description": f"A GeoJSON Feature, CRS84; coordinates within lon {w}..{e}, "
                               f"lat {s}..{n}; at most {MAX_VERTICES} positions; valid (OGC "
                               "simple features).",
                "properties": {
                    "type": {"type": "string", "enum": ["Feature"]},
                    "id": {"type": "string", "readOnly": True},
                    "geometry": {"type": "object", "properties": {
                        "type": {"type": "string", "enum": ["Point", "LineString", "Polygon"]},
                        "coordinates": {"type": "array"}}},
                    "properties": {"type": "object", "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE},
                        "note": {"type": "string", "maxLength": MAX_NOTE},
                        "share": {"type": "string", "nullable": True, "readOnly": True}}}}}}},
        "paths": {
            "/api/annotations": {
                "get": {"summary": "Your annotations", "security": _USER, "parameters": [_F],
                        "responses": _answers({"200": {"description": "FeatureCollection",
                                                       "content": _FC}}, 400, 401, 403)},
                "post": {"summary": "Keep a new annotation", "security": _USER,
                         "requestBody": body,
                         "responses": _answers({"201": {"description": "Kept",
                                                        "content": _GEO}},
                                               400, 401, 403, 409, 413, 415)}},
            "/api/annotations/{annotation_id}": {
                "parameters": [_ID],
                "get": {"summary": "One of your annotations", "security": _USER,
                        "parameters": [_F],
                        "responses": _answers({"200": {"description": "Feature",
                                                       "content": _GEO}}, 401, 403, 404)},
                "put": {"summary": "Change its geometry, title or note", "security": _USER,
                        "requestBody": body,
                        "responses": _answers({"200": {"description": "Changed",
                                                       "content": _GEO}},
                                              400, 401, 403, 404, 413, 415)},
                "delete": {"summary": "Delete it", "security": _USER,
                           "responses": _answers({"204": {"description": "Deleted"}},
                                                 401, 403, 404)}},
            "/api/annotations/{annotation_id}/share": {
                "parameters": [_ID],
                "post": {"summary": "Share by link (properties.share: the token)",
                         "security": _USER,
                         "responses": _answers({"200": {"description": "Shared",
                                                        "content": _GEO}}, 401, 403, 404)},
                "delete": {"summary": "Stop sharing", "security": _USER,
                           "responses": _answers({"200": {"description": "Not shared",
                                                          "content": _GEO}}, 401, 403, 404)}},
            "/api/annotations/shared/{token}": {
                "get": {"summary": "A shared annotation, read-only (anyone with the link)",
                        "parameters": [_TOKEN, _F],
                        "responses": _answers({"200": {"description": "Feature",
                                                       "content": _GEO}}, 400, 404)}},
        },
    }
