"""Publishing a GeoTIFF: a Cloud-Optimised GeoTIFF in EPSG:4490, read and written by rasterio
inside the upload fence (layers/fence.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layers import fence
from layers.errors import PublishError
from layers.vector_checks import label, parse_crs


@dataclass
class RasterData:
    path: Path  # the COG written, EPSG:4490
    bbox: list[float]
    bands: int
    source_crs: str
    report: dict[str, Any] = field(default_factory=dict)


def rasterio_ready() -> None:
    """Point rasterio's GDAL at its own proj.db.

    The Mapnik wheel bundles a PROJ without data; when Mapnik was imported first (node
    processes, the CLI after building tiles) rasterio finds no proj.db and knows no EPSG code.
    """
    # rasterio is imported where it is used: publishing a vector file (the CLI, bench/publish.py)
    # does not pay for it
    import rasterio
    from rasterio._env import set_proj_data_search_path

    data = os.path.join(os.path.dirname(rasterio.__file__), "proj_data")
    if os.path.isdir(data):
        set_proj_data_search_path(data)


def write_cog(path: Path, out: Path, what: str, crs: str | None) -> RasterData:
    """A georeferenced GeoTIFF into a Cloud-Optimised GeoTIFF in EPSG:4490."""
    with fence.raster_env():
        rasterio_ready()
        return _write_cog(path, out, what, crs)


def _write_cog(path: Path, out: Path, what: str, crs: str | None) -> RasterData:
    import rasterio  # heavy, see rasterio_ready
    from rasterio._err import CPLE_BaseError
    from rasterio.crs import CRS as RioCRS
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.shutil import copy as rio_copy
    from rasterio.vrt import WarpedVRT

    if path.stat().st_size == 0:
        raise PublishError(f"{what}: the file is empty")
    fence.sniff(path, "GTiff", what)
    try:
        src = rasterio.open(path, driver="GTiff")  # GDALOpenEx tries no other driver
    except (RasterioError, CPLE_BaseError):
        raise PublishError(f"{what}: not a readable GeoTIFF") from None
    with src:
        fence.expect_driver(src.driver, "GTiff", what)
        if src.transform.is_identity or (src.gcps[0] if src.gcps else None):
            raise PublishError(f"{what}: the GeoTIFF is not georeferenced (no geotransform)")
        src_crs = crs or src.crs
        if not src_crs:
            raise PublishError(f"{what}: the GeoTIFF declares no CRS; pass --crs EPSG:xxxx")
        pcrs = parse_crs(src_crs.to_wkt() if hasattr(src_crs, "to_wkt") else src_crs, what)
        out.parent.mkdir(parents=True, exist_ok=True)
        with WarpedVRT(src, src_crs=RioCRS.from_wkt(pcrs.to_wkt()), crs="EPSG:4490",
                       resampling=Resampling.bilinear) as vrt:
            try:
                rio_copy(vrt, out, driver="COG", compress="DEFLATE",
                         overview_resampling="average")
            except (RasterioError, CPLE_BaseError):  # GDAL's text may name paths: not echoed
                raise PublishError(f"{what}: the GeoTIFF's pixels cannot be read (damaged or "
                                   "truncated file)") from None
    with rasterio.open(out, driver="GTiff") as cog:
        b = cog.bounds
        return RasterData(out, [b.left, b.bottom, b.right, b.top], cog.count, label(pcrs))

