"""The e-map tile matrix sets: `c` (CGCS2000, Tianditu-compatible) and `w` (Web Mercator).

Level numbers equal Tianditu's TILEMATRIX numbers: `c` gets an extra level 0 (1.40625 deg/px)
so that level 1 is 0.703125 deg/px as in Tianditu, and `w` is the usual GoogleMapsCompatible.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LEVEL = 20
EARTH_RADIUS = 6378137.0
METERS_PER_DEGREE = 2 * 3.141592653589793 * EARTH_RADIUS / 360
C_LEVEL0_RES = 1.40625  # deg/px
W_LEVEL0_RES = 2 * 3.141592653589793 * EARTH_RADIUS / 256  # m/px
OGC_PIXEL = 0.00028  # m: the standard 0.28 mm pixel of OGC scale denominators


@dataclass(frozen=True)
class TileMatrixSet:
    id: str
    srs: str
    epsg: int
    level0_res: float  # in CRS units per pixel
    geographic: bool

    def res(self, level: int) -> float:
        return self.level0_res / 2**level

    def res_m(self, level: int) -> float:
        """Resolution in metres per pixel (degrees converted at the equator)."""
        r = self.res(level)
        return r * METERS_PER_DEGREE if self.geographic else r

    def matrix_size(self, level: int) -> tuple[int, int]:
        """(columns, rows) of the matrix at `level`."""
        if self.geographic:
            return max(1, 2**level), max(1, 2 ** (level - 1))
        return 2**level, 2**level

    def mapproxy(self) -> dict:
        if self.geographic:
            return {"srs": self.srs, "bbox": [-180, -90, 180, 90], "bbox_srs": self.srs,
                    "origin": "ul", "tile_size": [256, 256],
                    "res": [self.res(z) for z in range(MAX_LEVEL + 1)]}
        return {"base": "GLOBAL_WEBMERCATOR", "origin": "ul", "num_levels": MAX_LEVEL + 1}


GRIDS: dict[str, TileMatrixSet] = {
    "c": TileMatrixSet("c", "EPSG:4490", 4490, C_LEVEL0_RES, True),
    "w": TileMatrixSet("w", "EPSG:3857", 3857, W_LEVEL0_RES, False),
}


def scale_denominator(level: int) -> float:
    """OGC scale denominator of a level (the same for c and w at the equator)."""
    return GRIDS["w"].res_m(level) / OGC_PIXEL


def tile_at(grid: str, lon: float, lat: float, level: int) -> tuple[int, int]:
    """(col, row) of the tile holding lon/lat at `level` (top-left origin)."""
    import math

    g = GRIDS[grid]
    span = g.res(level) * 256
    if g.geographic:
        x, y = lon + 180.0, 90.0 - lat
    else:
        r = EARTH_RADIUS
        x = math.radians(lon) * r + math.pi * r
        y = math.pi * r - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * r
    return int(x // span), int(y // span)
