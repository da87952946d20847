"""What an annotation is and what a request may say about one: the checks of every input.

An annotation is a user's point, line or polygon (GeoJSON, CRS84 lon/lat) with a title and a
note. Everything a request brings is checked here before it reaches the database: the geometry
type, its coordinates (finite numbers inside China and its seas), their count, its validity
(OGC simple features, by shapely/GEOS), the texts' lengths and characters. A refusal is an
`AnnotationError` (400 problem+json) whose detail is a fixed text, never the caller's input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from shapely.geometry import shape
from shapely.validation import explain_validity

from tiles.errors import ProblemError

TYPES = ("Point", "LineString", "Polygon")
# plausible for a CGCS2000 map of China: the mainland, Taiwan and the South China Sea islands
BOUNDS = (73.0, 3.0, 136.0, 54.0)
MAX_VERTICES = 5000  # positions of one geometry
MAX_RINGS = 50  # a polygon's exterior and holes
MAX_TITLE = 200
MAX_NOTE = 4000
MAX_PER_USER = 500  # annotations one user keeps at one node
MAX_BODY = 512 * 1024  # bytes of a request body
ID = re.compile(r"^[0-9a-f]{32}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
# C0/C1 controls other than tab and newline, and the Unicode line/paragraph separators
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class AnnotationError(ProblemError):
    """A request about annotations refused; nothing was changed."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any):
        super().__init__(status, title, detail, **extra)


def bad(detail: str, member: str | None = None) -> AnnotationError:
    return AnnotationError(400, "Bad Request", detail, **({"member": member} if member else {}))


def not_found() -> AnnotationError:
    # the same answer for "no such id" and "someone else's": existence is not revealed
    return AnnotationError(404, "Not Found", "No such annotation.")


@dataclass(frozen=True)
class Change:
    """What a POST (everything) or a PUT (any of them) sets."""

    title: str | None = None
    note: str | None = None
    wkt: str | None = None  # the geometry as WKT (lon lat, SRID 4490 when stored)


def _position(p: Any, member: str) -> tuple[float, float]:
    if not isinstance(p, list) or not 2 <= len(p) <= 3:
        raise bad("A position is [lon, lat] (or [lon, lat, height]).", member)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p):
        raise bad("Coordinates are numbers.", member)
    lon, lat = float(p[0]), float(p[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise bad("Coordinates are finite numbers.", member)
    w, s, e, n = BOUNDS
    if not (w <= lon <= e and s <= lat <= n):
        raise bad(f"Coordinates lie within lon {w}..{e}, lat {s}..{n} (CRS84, lon/lat).",
                  member)
    return lon, lat


def _positions(value: Any, member: str, counted: list[int]) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise bad("coordinates is an array of positions.", member)
    counted[0] += len(value)
    if counted[0] > MAX_VERTICES:
        raise bad(f"A geometry has at most {MAX_VERTICES} positions.", member)
    return [_position(p, member) for p in value]


def geometry_wkt(geometry: Any) -> str:
    """The WKT of a GeoJSON Point, LineString or Polygon that passes every check."""
    member = "geometry"
    if not isinstance(geometry, dict):
        raise bad("geometry is a GeoJSON geometry object.", member)
    kind = geometry.get("type")
    if kind not in TYPES:
        raise bad("geometry is a Point, LineString or Polygon.", member)
    coords = geometry.get("coordinates")
    counted = [0]
    if kind == "Point":
        clean: Any = list(_position(coords, member))
    elif kind == "LineString":
        clean = _positions(coords, member, counted)
        if len(set(clean)) < 2:
            raise bad("A line has at least two different positions.", member)
    else:
        if not isinstance(coords, list) or not 1 <= len(coords) <= MAX_RINGS:
            raise bad(f"A polygon has 1 to {MAX_RINGS} rings.", member)
        clean = []
        for ring in coords:
            r = _positions(ring, member, counted)
            if len(r) < 4 or r[0] != r[-1]:
                raise bad("A polygon ring is closed (first = last) with at least 4 positions.",
                          member)
            clean.append(r)
    geom = shape({"type": kind, "coordinates": clean})
    if geom.is_empty or not geom.is_valid:
        reason = explain_validity(geom) if not geom.is_empty else "empty"
        # GEOS' reason names a problem and a position computed by GEOS, not the caller's text
        raise bad(f"The geometry is not valid: {reason[:120]}.", member)
    return geom.wkt


def _text(value: Any, member: str, most: int, *, required: bool, lines: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise bad(f"{member} is a string.", member)
    value = value.strip()
    if required and not value:
        raise bad(f"{member} must not be empty.", member)
    if len(value) > most:
        raise bad(f"{member} is at most {most} characters.", member)
    if _CONTROL.search(value) or (not lines and ("\n" in value or "\t" in value)):
        raise bad(f"{member} contains control characters.", member)
    return value


def parse(doc: Any, *, partial: bool) -> Change:
    """The change a request body (a GeoJSON Feature) asks for; `partial` (PUT): members left
    out keep their value."""
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise bad("The body is a GeoJSON Feature: {\"type\": \"Feature\", \"geometry\": ..., "
                  "\"properties\": {\"title\": ..., \"note\": ...}}.")
    props = doc.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise bad("properties is an object.", "properties")
    title = note = wkt = None
    if not partial or "title" in props:
        title = _text(props.get("title"), "title", MAX_TITLE, required=True, lines=False)
    if not partial or "note" in props:
        note = _text(props.get("note"), "note", MAX_NOTE, required=False, lines=True)
    if not partial or doc.get("geometry") is not None:
        wkt = geometry_wkt(doc.get("geometry"))
    if partial and title is None and note is None and wkt is None:
        raise bad("Nothing to change: send geometry, properties.title or properties.note.")
    return Change(title, note, wkt)
