"""The limits of the places query layer and the checks of its arguments (PlacesInputError with
Tianditu's infocode).

These are the outer bounds, the union of what the two route styles accept (Tianditu's own
limits are enforced by services.places.tianditu: keyWord 100-200, start/count 300, radius
10 km; our API's by services.places.api: offset 10,000, radius 50 km): the query layer is the
last line, so a route that forgets a check still cannot ask for more than this.

| argument         | limit                                   | infocode |
|------------------|-----------------------------------------|----------|
| text / keyword   | 1-200 characters after trimming; no NUL, no control characters | 2003 empty, 2001 otherwise |
| limit (count)    | 1-300 (geocode 1-20, suggest 1-100)     | 2007 |
| offset (start)   | 0-10,000                                | 2007 |
| lon / lat        | finite, -180..180 / -90..90             | 2005 |
| radius_m         | > 0 and <= 50,000                       | 2006 |
| max_distance_m   | > 0 and <= 50,000                       | 2006 |
| bbox             | 4 finite numbers, min < max, in range   | 2005 |
| polygon          | 3-100 distinct points, valid ring       | 2006 (points), 2005 (coordinates) |
| categories       | <= 20, each <= 50 characters            | 2001 |
| kinds            | known kinds only                        | 2004 |
| children (admin) | 0-3                                     | 2004 |
"""

from __future__ import annotations

import math
import re

import shapely

from services.places.errors import (
    BAD_ENUM,
    BAD_LONLAT,
    BAD_PARAMETER,
    MISSING,
    OUT_OF_RANGE,
    OVERFLOW,
    PlacesInputError,
)
from services.places.model import LEVEL_CN
from services.places.text import MAX_TEXT

MAX_COUNT = 300
MAX_START = 10_000
MAX_RADIUS_M = 50_000.0
MAX_POLYGON_POINTS = 100
MAX_CATEGORIES = 20
MAX_CHILDREN = 3
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value: str | None, param: str, *, required: bool = True) -> str | None:
    if value is not None and not isinstance(value, str):
        raise PlacesInputError(BAD_PARAMETER, f"{param} must be text", param=param)
    if value is None or not value.strip():
        if required:
            raise PlacesInputError(MISSING, f"{param} is missing", param=param)
        return None
    if "\x00" in value or _CONTROL.search(value):
        raise PlacesInputError(BAD_PARAMETER, f"{param} holds control characters",
                               param=param)
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise PlacesInputError(BAD_PARAMETER, f"{param} is longer than {MAX_TEXT} characters",
                               param=param)
    return value


def _number(value: object, param: str, code: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlacesInputError(code, f"{param} must be a number", param=param)
    f = float(value)
    if not math.isfinite(f):
        raise PlacesInputError(code, f"{param} must be a finite number", param=param)
    return f


def lonlat(lon: object, lat: object) -> tuple[float, float]:
    x, y = _number(lon, "lon", BAD_LONLAT), _number(lat, "lat", BAD_LONLAT)
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise PlacesInputError(BAD_LONLAT, "lon/lat out of range", param="lonlat")
    return x, y


def distance(value: object, param: str) -> float:
    d = _number(value, param, BAD_PARAMETER)
    if not 0 < d <= MAX_RADIUS_M:
        raise PlacesInputError(OUT_OF_RANGE, f"{param} must be > 0 and <= {MAX_RADIUS_M:.0f} m",
                               param=param)
    return d


def paging(limit: object, offset: object) -> tuple[int, int]:
    for value, param in ((limit, "count"), (offset, "start")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlacesInputError(BAD_PARAMETER, f"{param} must be an integer", param=param)
    assert isinstance(limit, int) and isinstance(offset, int)
    if not 1 <= limit <= MAX_COUNT:
        raise PlacesInputError(OVERFLOW, f"count must be 1-{MAX_COUNT}", param="count")
    if not 0 <= offset <= MAX_START:
        raise PlacesInputError(OVERFLOW, f"start must be 0-{MAX_START}", param="start")
    return limit, offset


def bbox(value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if not isinstance(value, tuple | list) or len(value) != 4:
        raise PlacesInputError(BAD_PARAMETER, "bbox must be 4 numbers", param="bbox")
    x0, y0 = lonlat(value[0], value[1])
    x1, y1 = lonlat(value[2], value[3])
    if not (x0 <= x1 and y0 <= y1):
        raise PlacesInputError(BAD_LONLAT, "bbox must be minx,miny,maxx,maxy", param="bbox")
    return x0, y0, x1, y1


def polygon(points: list[tuple[float, float]]) -> str:
    """The WKT of a valid polygon from 3-20 points (closed here if it is not)."""
    if not isinstance(points, list | tuple):
        raise PlacesInputError(BAD_PARAMETER, "polygon must be a list of points",
                               param="polygon")
    if len(points) > MAX_POLYGON_POINTS + 1:
        raise PlacesInputError(OUT_OF_RANGE, f"polygon has more than {MAX_POLYGON_POINTS}"
                               " points", param="polygon")
    ring = []
    for p in points:
        if not isinstance(p, tuple | list) or len(p) != 2:
            raise PlacesInputError(BAD_LONLAT, "polygon points must be lon,lat",
                                   param="polygon")
        ring.append(lonlat(p[0], p[1]))
    if ring and ring[0] == ring[-1]:
        ring = ring[:-1]
    if len(ring) > MAX_POLYGON_POINTS:
        raise PlacesInputError(OUT_OF_RANGE, f"polygon has more than {MAX_POLYGON_POINTS}"
                               " points", param="polygon")
    if len(set(ring)) < 3:
        raise PlacesInputError(BAD_PARAMETER, "polygon needs at least 3 points",
                               param="polygon")
    poly = shapely.Polygon(ring)
    if not poly.is_valid or poly.area == 0:
        raise PlacesInputError(BAD_PARAMETER, "polygon is not a valid ring", param="polygon")
    return poly.wkt


def categories(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if not isinstance(values, list | tuple) or len(values) > MAX_CATEGORIES:
        raise PlacesInputError(BAD_PARAMETER, f"at most {MAX_CATEGORIES} categories",
                               param="dataTypes")
    out = []
    for v in values:
        if not isinstance(v, str) or not v or len(v) > 50 or _CONTROL.search(v):
            raise PlacesInputError(BAD_PARAMETER, "bad category", param="dataTypes")
        out.append(v)
    return out


def kinds(values: tuple[str, ...] | None) -> list[str] | None:
    if values is None:
        return None
    if not isinstance(values, list | tuple) or not values \
            or any(v not in LEVEL_CN for v in values):
        raise PlacesInputError(BAD_ENUM, "unknown kind", param="kinds")
    return list(values)


def children(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CHILDREN:
        raise PlacesInputError(BAD_ENUM, f"children must be 0-{MAX_CHILDREN}",
                               param="childLevel")
    return value


def visible(value: frozenset[str]) -> list[str]:
    if not isinstance(value, frozenset | set):
        raise PlacesInputError(BAD_PARAMETER, "visible must be a set of layer names",
                               param="visible")
    return sorted(str(v) for v in value)
