"""The e-map tile matrix sets: `c` (CGCS2000, Tianditu-compatible) and `w` (Web Mercator).

Both are morecantile `TileMatrixSet`s, defined once here and used by every tile computation
of the node (MapProxy grids, Tianditu/WMTS range checks, seeding, the MVT provider's tile
envelopes, the OGC TileMatrixSet JSON).

Level numbers equal Tianditu's TILEMATRIX numbers: `c` gets an extra level 0 (1.40625 deg/px,
one tile) so that level 1 is 0.703125 deg/px with 2x1 tiles as in Tianditu; level z has
2^z x 2^(z-1) tiles from the origin (-180, 90). `w` is OGC's registered WebMercatorQuad
(GoogleMapsCompatible). `morecantile.TileMatrixSet.custom` cannot make `c`: its matrices
grow from one matrix shape (2x1 or 1x1 at level 0), and `c` changes shape after level 0, so
its matrices are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import morecantile
from morecantile import TileMatrixSet
from pyproj import CRS

MAX_LEVEL = 20
OGC_PIXEL = 0.00028  # m: the standard 0.28 mm pixel of OGC scale denominators
TILE_SIZE = 256


def _cgcs2000_tms() -> TileMatrixSet:
    """Tianditu's `c`: EPSG:4490 (lat, lon axes), origin (-180, 90), levels 0-MAX_LEVEL."""
    crs = CRS.from_epsg(4490)
    # the scale denominators as morecantile computes them for a degree CRS (the equator)
    mpu = morecantile.utils.meters_per_unit(crs)
    matrices = []
    for z in range(MAX_LEVEL + 1):
        cell = 1.40625 / 2**z
        matrices.append({
            "id": str(z), "scaleDenominator": cell * mpu / OGC_PIXEL, "cellSize": cell,
            "cornerOfOrigin": "topLeft", "pointOfOrigin": [90.0, -180.0],  # CRS axis order
            "tileWidth": TILE_SIZE, "tileHeight": TILE_SIZE,
            "matrixWidth": max(1, 2**z), "matrixHeight": max(1, 2 ** (z - 1)),
        })
    tms = TileMatrixSet.model_validate({
        "id": "c", "title": "CGCS2000 geographic (Tianditu c)",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/4490", "orderedAxes": ["Lat", "Lon"],
        "tileMatrices": matrices,
    })
    tms.set_geographic_crs(crs)  # lon/lat given to it are CGCS2000's own
    return tms


C_TMS: TileMatrixSet = _cgcs2000_tms()
W_TMS: TileMatrixSet = morecantile.tms.get("WebMercatorQuad")
# the OGC API tiling schemes of the vector tiles (nodes/providers/mvt.py), by OGC id, to level
# 24; WorldCRS84Quad made, not registered: morecantile's JSON of it has rounded cell sizes
OGC_TMS: dict[str, TileMatrixSet] = {
    "WebMercatorQuad": W_TMS,
    "WorldCRS84Quad": TileMatrixSet.custom(
        [-180.0, -90.0, 180.0, 90.0], CRS.from_user_input("OGC:CRS84"), matrix_scale=[2, 1],
        minzoom=0, maxzoom=24, id="WorldCRS84Quad", title="CRS84 for the World"),
}


@dataclass(frozen=True)
class Grid:
    """One e-map grid: its morecantile TileMatrixSet and what MapProxy needs of it."""

    id: str
    srs: str
    epsg: int
    tms: TileMatrixSet
    geographic: bool

    @cached_property
    def _levels(self) -> tuple[Any, ...]:
        return tuple(self.tms.matrix(z) for z in range(MAX_LEVEL + 1))

    def res(self, level: int) -> float:
        """Resolution in CRS units per pixel."""
        return float(self._levels[level].cellSize)

    def res_m(self, level: int) -> float:
        """Resolution in metres per pixel (degrees converted at the equator)."""
        return float(self._levels[level].scaleDenominator) * OGC_PIXEL

    def matrix_size(self, level: int) -> tuple[int, int]:
        """(columns, rows) of the matrix at `level`."""
        m = self._levels[level]
        return int(m.matrixWidth), int(m.matrixHeight)

    def mapproxy(self) -> dict:
        if self.geographic:
            return {"srs": self.srs, "bbox": [-180, -90, 180, 90], "bbox_srs": self.srs,
                    "origin": "ul", "tile_size": [TILE_SIZE, TILE_SIZE],
                    "res": [self.res(z) for z in range(MAX_LEVEL + 1)]}
        return {"base": "GLOBAL_WEBMERCATOR", "origin": "ul", "num_levels": MAX_LEVEL + 1}


GRIDS: dict[str, Grid] = {
    "c": Grid("c", "EPSG:4490", 4490, C_TMS, True),
    "w": Grid("w", "EPSG:3857", 3857, W_TMS, False),
}


def scale_denominator(level: int) -> float:
    """OGC scale denominator of a level (the same for c and w at the equator)."""
    return float(W_TMS.matrix(level).scaleDenominator)


def tile_at(grid: str, lon: float, lat: float, level: int) -> tuple[int, int]:
    """(col, row) of the tile holding lon/lat at `level` (top-left origin)."""
    t = GRIDS[grid].tms.tile(lon, lat, level)
    return t.x, t.y


def tms_json(grid: str) -> dict:
    """The OGC TileMatrixSet 2.0 JSON of a grid (what `/TileMatrixSets/{id}` documents)."""
    return GRIDS[grid].tms.model_dump(exclude_none=True, mode="json")
