"""The work of the processes: pure functions over shapely geometries and the node's PostGIS.

Distances and areas are on the CGCS2000 ellipsoid (a = 6378137 m, f = 1/298.257222101):
buffers are made in the CGCS2000 3-degree Gauss-Krüger zone of the input (EPSG:4534-4554,
central meridians 75°E-135°E), with the distance scaled by the zone's point scale factor at
the input, and brought back to longitude/latitude; areas are pyproj.Geod's.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pygeoapi.process.base import ProcessorExecuteError
from pyproj import Geod, Proj, Transformer
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

GEOD = Geod(a=6378137.0, f=1 / 298.257222101)  # CGCS2000
M2_PER_MU = 10000.0 / 15.0  # 1 亩 = 666.67 m²
MAX_DISTANCE = 100_000.0
Progress = Callable[[int, str], None]


class InputError(ProcessorExecuteError):
    """Bad input: 400, OGC `InvalidParameterValue`, the reason for the caller."""

    ogc_exception_code = "InvalidParameterValue"
    http_status_code = 400  # type: ignore[assignment]

    def __init__(self, message: str):
        super().__init__(message, user_msg=message)


class QuotaExceeded(ProcessorExecuteError):
    """Over a caller's quota of executions: 429, the reason for the caller."""

    ogc_exception_code = "TooManyRequests"
    http_status_code = 429  # type: ignore[assignment]

    def __init__(self, message: str):
        super().__init__(message, user_msg=message)


@dataclass(frozen=True)
class Limits:
    max_area_km2: float = 2500.0
    max_vertices: int = 200_000
    test_hooks: bool = False


def gk_zone(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone (CM 75°E..135°E) holding `lon`."""
    cm = min(max(3 * round(lon / 3), 75), 135)
    return 4534 + (cm - 75) // 3


@lru_cache(maxsize=64)
def _to_gk(epsg: int) -> tuple[Transformer, Transformer, Proj]:
    fwd = Transformer.from_crs("EPSG:4490", f"EPSG:{epsg}", always_xy=True)
    back = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4490", always_xy=True)
    return fwd, back, Proj(f"EPSG:{epsg}")


def _apply(t: Transformer, geom: BaseGeometry) -> BaseGeometry:
    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fn)


def geodesic_area(geom: BaseGeometry) -> float:
    """Area in m² on the CGCS2000 ellipsoid (0 for points and lines)."""
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon", "GeometryCollection"):
        return 0.0
    # counter-clockwise shells, clockwise holes: every part and hole counts with its sign
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


# --- inputs ---------------------------------------------------------------------------------

def parse_geometry(value: Any, limits: Limits, *, polygonal: bool = False,
                   name: str = "geometry") -> BaseGeometry:
    """A GeoJSON geometry or Feature (CRS84 / EPSG:4490 longitude, latitude) as shapely; bad
    JSON, coordinates out of range, invalid or too large geometries are refused with why."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        feats = value.get("features") or []
        if len(feats) != 1:
            raise InputError(f"{name}: give one geometry (a FeatureCollection of one feature)")
        value = feats[0].get("geometry")
    if not isinstance(value, dict) or "type" not in value:
        raise InputError(f"{name}: a GeoJSON geometry is required")
    try:
        geom = shape(value)
    except Exception as exc:  # noqa: BLE001 (shapely raises several kinds for bad GeoJSON)
        raise InputError(f"{name}: not a GeoJSON geometry ({str(exc)[:200]})") from None
    if geom.is_empty:
        raise InputError(f"{name}: the geometry is empty")
    if shapely.get_num_coordinates(geom) > limits.max_vertices:
        raise InputError(f"{name}: more than {limits.max_vertices} vertices")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all() or (np.abs(coords[:, 0]) > 180).any() or \
            (np.abs(coords[:, 1]) > 90).any():
        raise InputError(f"{name}: coordinates are longitude, latitude in degrees "
                         "(CRS84 or EPSG:4490)")
    if polygonal and geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(f"{name}: a Polygon or MultiPolygon is required, not {geom.geom_type}")
    if not geom.is_valid:
        raise InputError(f"{name}: invalid geometry ({shapely.is_valid_reason(geom)}); "
                         "repair it (e.g. remove the self-intersection) and send it again")
    if polygonal:
        area = geodesic_area(geom)
        if area > limits.max_area_km2 * 1e6:
            raise InputError(f"{name}: its area ({area / 1e6:.1f} km²) is over this node's "
                             f"limit of {limits.max_area_km2:g} km²")
    return geom


def parse_number(data: Mapping[str, Any], key: str, *, low: float, high: float,
                 default: float | None = None) -> float:
    raw = data.get(key, default)
    if raw is None:
        raise InputError(f"{key}: required")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise InputError(f"{key}: a number is required")
    try:
        v = float(raw)
    except ValueError:
        raise InputError(f"{key}: a number is required") from None
    if not math.isfinite(v) or not low <= v <= high:
        raise InputError(f"{key}: between {low:g} and {high:g}")
    return v


def test_delay(data: Mapping[str, Any], limits: Limits) -> float:
    """Seconds to wait per step (tests only: the node's `analysis.test_hooks`)."""
    if "test_delay" not in data:
        return 0.0
    if not limits.test_hooks:
        raise InputError("test_delay: unknown input")
    return parse_number(data, "test_delay", low=0, high=10)


# --- buffer ---------------------------------------------------------------------------------

def buffer(geom: BaseGeometry, distance: float, segments: int = 16) -> tuple[BaseGeometry, int]:
    """`geom` (lon/lat) buffered by `distance` metres on the ground; and the zone's EPSG."""
    c = geom.centroid
    epsg = gk_zone(c.x)
    fwd, back, proj = _to_gk(epsg)
    k = proj.get_factors(c.x, c.y).meridional_scale  # grid metres per ground metre, here
    grid = _apply(fwd, geom)
    out = _apply(back, grid.buffer(distance * k, quad_segs=segments))
    return out, epsg


def run_buffer(data: Mapping[str, Any], limits: Limits, progress: Progress) -> dict[str, Any]:
    geom = parse_geometry(data.get("geometry"), limits)
    distance = parse_number(data, "distance", low=0.01, high=MAX_DISTANCE)
    segments = int(parse_number(data, "segments", low=1, high=64, default=16))
    delay = test_delay(data, limits)
    steps = 5 if delay else 1
    for i in range(steps):
        progress(10 + 80 * i // steps, f"buffering ({i + 1}/{steps})")
        if delay:
            time.sleep(delay)
    out, epsg = buffer(geom, distance, segments)
    progress(95, "writing the result")
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": mapping(out),
        "properties": {"distance_m": distance, "area_m2": round(geodesic_area(out), 3),
                       "projection": f"EPSG:{epsg}"}}]}


# --- overlay --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    id: str
    columns: Mapping[str, str]  # column -> original attribute name
    field_rules: Mapping[str, str]  # attribute (column) -> level


def resolve_attribute(layer: LayerInfo, name: str, rights: frozenset[str],
                      what: str = "group_by") -> str:
    """The column of attribute `name` (column or original name) the caller may read."""
    col = name if name in layer.columns else next(
        (c for c, orig in layer.columns.items() if orig == name), None)
    if col is None or col in ("geom", "fid"):
        raise InputError(f"{what}: layer {layer.id} has no attribute {name!r}")
    level = layer.field_rules.get(col)
    if level is not None and level not in rights:
        raise InputError(f"{what}: the attribute {name!r} of layer {layer.id} needs a grant "
                         "from the node that provides it")
    return col


class RawJSON(str):
    """A JSON text that goes into a result as it is (PostGIS wrote it): see `dumps`."""


def dumps(value: Any) -> str:
    """`json.dumps` of a result whose members may be `RawJSON` texts, written in place
    without being parsed and encoded again (the overlay's intersections: thousands of
    GeoJSON features)."""
    raws: list[str] = []
    nonce = secrets.token_hex(8)  # no text of the data can be taken for a marker

    def swap(v: Any) -> Any:
        if isinstance(v, RawJSON):
            raws.append(v)
            return f"\x00{nonce}{len(raws) - 1}\x00"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value), ensure_ascii=False)
    for i, raw in enumerate(raws):  # json writes the NUL-delimited marker as \u0000
        text = text.replace(f'"\\u0000{nonce}{i}\\u0000"', raw, 1)
    return text


def overlay(area: BaseGeometry,
            rows_by_layer: Iterable[tuple[str, Iterable[tuple[Any, float, float, str]]]],
            progress: Progress, delay: float = 0.0) -> dict[str, Any]:
    """Per layer and class: intersected area (m², 公顷, 亩), share of `area`, count (and the
    length in metres for lines; points are counted); and the intersections. `rows_by_layer`:
    (layer, [(class value, area m², length m, GeoJSON Feature of the part)]), the parts of
    features within `area` (services/analysis/overlay.py computes them in PostGIS)."""
    total = geodesic_area(area)
    classes: dict[tuple[str, Any], dict[str, Any]] = {}
    features: list[str] = []
    n = 0
    for layer, rows in rows_by_layer:
        for value, a, length, feature in rows:
            n += 1
            if n % 200 == 0:
                progress(min(90, 20 + n // 200), f"intersecting: {n} features")
            if delay:
                time.sleep(delay)
                progress(min(90, 20 + n), f"intersecting: {n} features")
            a, length = float(a), float(length)
            key = (layer, value)
            c = classes.setdefault(key, {"layer": layer, "value": value, "area_m2": 0.0,
                                         "length_m": 0.0, "count": 0})
            c["area_m2"] += a
            c["length_m"] += length
            c["count"] += 1
            features.append(feature)
    out = []
    for c in sorted(classes.values(), key=lambda c: (c["layer"], -c["area_m2"])):
        a = c["area_m2"]
        out.append({**c, "area_m2": round(a, 3), "length_m": round(c["length_m"], 3),
                    "area_ha": round(a / 10000, 6),
                    "area_mu": round(a / M2_PER_MU, 4), "share": round(a / total, 8) if total else 0})
    progress(95, "writing the result")
    return {"input_area_m2": round(total, 3), "input_area_ha": round(total / 10000, 6),
            "input_area_mu": round(total / M2_PER_MU, 4), "classes": out,
            "intersections": RawJSON('{"type":"FeatureCollection","features":['
                                     + ",".join(features) + "]}")}
