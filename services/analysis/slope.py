"""The process `slope`: within a polygon, the area in each slope class of the land-survey
grading (≤2°, 2–6°, 6–15°, 15–25°, >25°: GB/T 21010, 第三次全国国土调查 坡度分级) and the
mean/min/max elevation, from the node's DEM (`analysis.dem`; by default its hillshade DEM).

The DEM is a GeoTIFF (COG) on a longitude/latitude grid, read in one window: the polygon's
bounds plus one cell (the neighbours Horn's method needs), never the whole file. Slope is
Horn's 3×3 gradient with the cell sizes in metres at each row's latitude on the CGCS2000
ellipsoid (east-west differences of the rows above and below at their own latitude). Each
cell counts by the fraction of it the polygon covers (exact: the intersection of the cell with
the polygon) times its ellipsoidal area (the closed form of a quadrangle between two
parallels), so the class areas plus the area without data sum to the polygon's geodesic
area. Cells without data (the DEM's nodata, or outside the DEM) are reported as such; a
neighbour without data takes the centre cell's elevation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from layers.cog import rasterio_ready
from services.analysis import compute
from services.analysis.compute import M2_PER_MU, InputError, Progress
from services.analysis.inputs import area_inputs, input_area
from services.analysis.processes import COMMON as _COMMON
from services.analysis.processes import GEOJSON as _GEOJSON
from services.analysis.processes import Context, connection, register

A = 6378137.0  # CGCS2000
F = 1 / 298.257222101
E2 = F * (2 - F)
B = A * (1 - F)
# (upper bound in degrees, label) of the land-survey slope classes; the last has no bound
CLASSES = ((2.0, "≤2°"), (6.0, "2°–6°"), (15.0, "6°–15°"), (25.0, "15°–25°"),
           (math.inf, ">25°"))
MAX_CELLS = 4_000_000  # DEM cells in one window
CHUNK = 250_000  # cells whose coverage is computed at once


SLOPE = {**_COMMON, "id": "slope", "title": {"en": "Slope classes (land-survey grading)",
                                             "zh": "坡度分级统计"},
         "description": {"en": "Within an input polygon, the area on the CGCS2000 ellipsoid "
                               "in each slope class of the land-survey grading (≤2°, 2–6°, "
                               "6–15°, 15–25°, >25°) and the mean, min and max elevation, from "
                               "this node's DEM (Horn's method, cell sizes in metres at their "
                               "latitude; partial cells by their covered fraction; the area "
                               "without DEM data reported)."},
         "inputs": area_inputs(_GEOJSON),
         "outputs": {"statistics": {"title": "Slope classes and elevation", "schema": {
             "type": "object", "contentMediaType": "application/json"}}},
         "example": {"inputs": {"geometry": {"type": "Polygon", "coordinates": [[
             [120.08, 30.18], [120.16, 30.18], [120.16, 30.26], [120.08, 30.26],
             [120.08, 30.18]]]}}}}


# --- the ellipsoid ------------------------------------------------------------------------

def _q(lat_deg: np.ndarray) -> np.ndarray:
    """The authalic function: the area between the equator and `lat` per radian of longitude
    is b²·q/2 (q = sinφ/(1−e²sin²φ) + atanh(e·sinφ)/e)."""
    s = np.sin(np.radians(lat_deg))
    e = math.sqrt(E2)
    return s / (1 - E2 * s * s) + np.arctanh(e * s) / e


def quadrangle_area(lat1: np.ndarray, lat2: np.ndarray, dlon_deg: float) -> np.ndarray:
    """m² on the ellipsoid between parallels lat1 and lat2 over dlon_deg of longitude."""
    return np.abs(B * B * math.radians(dlon_deg) / 2 * (_q(lat2) - _q(lat1)))


def metres_per_degree(lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(east-west, north-south) metres per degree at `lat` on the ellipsoid."""
    phi = np.radians(lat_deg)
    w = np.sqrt(1 - E2 * np.sin(phi) ** 2)
    n = A / w  # prime vertical radius
    m = A * (1 - E2) / w ** 3  # meridional radius
    return np.radians(1.0) * n * np.cos(phi), np.radians(1.0) * m


def horn_slope(z: np.ndarray, lats: np.ndarray, dlon: float, dlat: float) -> np.ndarray:
    """Slope in degrees of the inner cells of `z` ((H+2)×(W+2), NaN: no data), `lats` the H+2
    row-centre latitudes, cells `dlon`×`dlat` degrees; NaN where the centre has no data."""
    e = z[1:-1, 1:-1]

    def nb(rows: slice, cols: slice) -> np.ndarray:
        v = z[rows, cols]
        return np.where(np.isnan(v), e, v)

    up, mid, down = slice(None, -2), slice(1, -1), slice(2, None)
    left, centre, right = slice(None, -2), slice(1, -1), slice(2, None)
    a, b, c = nb(up, left), nb(up, centre), nb(up, right)
    d, f = nb(mid, left), nb(mid, right)
    g, h, i = nb(down, left), nb(down, centre), nb(down, right)
    mx, my = metres_per_degree(lats)
    dx = (mx * dlon)[:, None]  # metres of one cell east-west, per row
    dy = (my * dlat)[1:-1, None]
    dzdx = ((c - a) / (2 * dx[:-2]) + 2 * (f - d) / (2 * dx[1:-1]) +
            (i - g) / (2 * dx[2:])) / 4
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * dy)
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


def slope_class(deg: np.ndarray) -> np.ndarray:
    """0..4: the class of each slope (≤2, (2, 6], (6, 15], (15, 25], >25)."""
    return np.digitize(deg, [c[0] for c in CLASSES[:-1]], right=True)


# --- the DEM window -----------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Elevations of a window with a margin of one cell: z (H+2)×(W+2), NaN without data;
    the geographic position of its first inner cell's top-left corner and the cell size."""

    z: np.ndarray
    left: float  # longitude of the inner cells' west edge
    top: float  # latitude of the inner cells' north edge
    dlon: float
    dlat: float
    name: str


def read_window(path: str, bounds: tuple[float, float, float, float],
                max_cells: int = MAX_CELLS) -> Window:
    """The DEM cells covering `bounds` (lon/lat) plus one cell around, read as one window."""
    import rasterio

    if not path:
        raise InputError("slope: this node has no DEM (set analysis.dem, or give the node a "
                         "hillshade DEM in config/styles/rasters.yml)")
    if not Path(path).is_file():
        raise InputError("slope: this node's DEM is not available")
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        rasterio_ready()  # Mapnik, imported by the node, hides rasterio's proj.db
        return _read(rasterio.open(path, driver="GTiff"), bounds, max_cells, Path(path).stem)


def _read(dataset: Any, bounds: tuple[float, float, float, float], max_cells: int,
          name: str) -> Window:
    from rasterio.windows import Window as RWindow

    with dataset as src:
        t = src.transform
        if src.crs is None or not src.crs.is_geographic or t.b != 0 or t.d != 0 or t.e >= 0:
            raise InputError("slope: this node's DEM is not a north-up longitude/latitude grid")
        dlon, dlat = t.a, -t.e
        minx, miny, maxx, maxy = bounds
        c0 = math.floor((minx - t.c) / dlon)
        c1 = math.ceil((maxx - t.c) / dlon)
        r0 = math.floor((t.f - maxy) / dlat)
        r1 = math.ceil((t.f - miny) / dlat)
        c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
        h, w = r1 - r0, c1 - c0
        if h * w > max_cells:
            raise InputError(f"geometry: the area covers {h * w} cells of this node's DEM, over "
                             f"the limit of {max_cells}; give a smaller area")
        z = np.full((h + 2, w + 2), np.nan)
        # the part of [r0-1, r1+1) × [c0-1, c1+1) inside the raster: one windowed read
        rr0, rr1 = max(r0 - 1, 0), min(r1 + 1, src.height)
        cc0, cc1 = max(c0 - 1, 0), min(c1 + 1, src.width)
        if rr0 < rr1 and cc0 < cc1:
            data = src.read(1, window=RWindow(cc0, rr0, cc1 - cc0, rr1 - rr0), masked=True)
            block = np.ma.filled(data.astype("float64"), np.nan)
            z[rr0 - (r0 - 1):rr1 - (r0 - 1), cc0 - (c0 - 1):cc1 - (c0 - 1)] = block
        return Window(z, t.c + c0 * dlon, t.f - r0 * dlat, dlon, dlat, name)


def coverage(area: BaseGeometry, win: Window, progress: Progress = lambda p, m: None
             ) -> np.ndarray:
    """H×W: the fraction of each inner cell of `win` inside `area` (exact, by intersection)."""
    h, w = win.z.shape[0] - 2, win.z.shape[1] - 2
    shapely.prepare(area)
    out = np.zeros(h * w)
    cols = np.arange(w)
    rows_per_chunk = max(1, CHUNK // w)
    cell = win.dlon * win.dlat
    for r0 in range(0, h, rows_per_chunk):
        rows = np.arange(r0, min(h, r0 + rows_per_chunk))
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        x0 = win.left + cc.ravel() * win.dlon
        y1 = win.top - rr.ravel() * win.dlat
        boxes = shapely.box(x0, y1 - win.dlat, x0 + win.dlon, y1)
        frac = np.zeros(len(boxes))
        inside = shapely.contains(area, boxes)
        frac[inside] = 1.0
        edge = ~inside & shapely.intersects(area, boxes)
        if edge.any():
            frac[edge] = np.clip(shapely.area(shapely.intersection(boxes[edge], area)) / cell,
                                 0, 1)
        out[r0 * w:r0 * w + len(frac)] = frac
        progress(30 + 50 * (r0 + len(rows)) // h, f"cells covered: rows {r0 + len(rows)}/{h}")
    return out.reshape(h, w)


# --- the statistics -----------------------------------------------------------------------

def _areas(a: float, total: float) -> dict[str, float]:
    return {"area_m2": round(a, 3), "area_ha": round(a / 10000, 6),
            "area_mu": round(a / M2_PER_MU, 4), "share": round(a / total, 8) if total else 0.0}


def slope_statistics(area: BaseGeometry, win: Window, progress: Progress = lambda p, m: None
                     ) -> dict[str, Any]:
    """The slope classes, elevation and area without data of `area` over `win`."""
    h = win.z.shape[0] - 2
    # row-centre latitudes of the window's rows, margin included
    lats = win.top + win.dlat / 2 - (np.arange(h + 2) - 1) * win.dlat
    progress(25, "computing slopes")
    deg = horn_slope(win.z, lats, win.dlon, win.dlat)
    frac = coverage(area, win, progress)
    inner = lats[1:-1]
    cell_m2 = quadrangle_area(inner - win.dlat / 2, inner + win.dlat / 2, win.dlon)[:, None]
    weight = frac * cell_m2  # m² of each cell inside the area
    elev = win.z[1:-1, 1:-1]
    has = ~np.isnan(elev) & (frac > 0)
    total = compute.geodesic_area(area)
    cls = slope_class(np.where(has, deg, 0))
    classes = []
    for k, (upper, label) in enumerate(CLASSES):
        a = float(weight[has & (cls == k)].sum())
        lower = 0.0 if k == 0 else CLASSES[k - 1][0]
        classes.append({"class": k + 1, "range": label, "min_deg": lower,
                        "max_deg": None if math.isinf(upper) else upper, **_areas(a, total)})
    nodata = float(weight[np.isnan(elev)].sum())
    covered = float(weight[has].sum())
    elevation: dict[str, Any]
    slope_deg: dict[str, Any]
    if has.any():
        ws = weight[has]
        elevation = {"mean": round(float((elev[has] * ws).sum() / ws.sum()), 2),
                     "min": float(elev[has].min()), "max": float(elev[has].max()), "unit": "m"}
        slope_deg = {"mean": round(float((deg[has] * ws).sum() / ws.sum()), 3),
                     "max": round(float(deg[has].max()), 3)}
    else:
        elevation = {"mean": None, "min": None, "max": None, "unit": "m"}
        slope_deg = {"mean": None, "max": None}
    c = area.centroid
    mx, my = metres_per_degree(np.array([c.y]))
    progress(95, "writing the result")
    return {"input_area_m2": round(total, 3), "input_area_ha": round(total / 10000, 6),
            "input_area_mu": round(total / M2_PER_MU, 4), "classes": classes,
            "nodata": _areas(nodata, total), "with_data": _areas(covered, total),
            "elevation": elevation, "slope_deg": slope_deg,
            "dem": {"name": win.name, "cell_deg": [win.dlon, win.dlat],
                    "cell_m": [round(float(mx[0] * win.dlon), 1),
                               round(float(my[0] * win.dlat), 1)],
                    "cells": int((frac > 0).sum()), "method": "Horn, ellipsoidal cell sizes"}}


# --- the process --------------------------------------------------------------------------

def _area(data: Mapping[str, Any], ctx: Context) -> BaseGeometry:
    if data.get("feature") is None:
        return input_area(data, ctx)
    with connection(ctx) as conn, conn.cursor() as cur:
        return input_area(data, ctx, cur)


def validate_slope(data: Mapping[str, Any], ctx: Context) -> None:
    if not ctx.dem:
        read_window(ctx.dem, (0, 0, 0, 0))  # refused: the node has no DEM
    _area(data, ctx)


def run_slope(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    area = _area(data, ctx)
    ctx.progress(15, "reading the DEM")
    win = read_window(ctx.dem, area.bounds)
    return slope_statistics(area, win, ctx.progress)


register(SLOPE, run_slope, validate_slope)
