"""Rasters behind `img` and `ter`: imagery used as-is, hillshade computed from a DEM as a COG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WATER = (207, 224, 240)  # the vec background: sea and no-data areas look the same in ter


def hillshade_rgb(dem: np.ndarray, nodata: float | None, cell_x_m: float, cell_y_m: float,
                  azimuth: float = 315.0, altitude: float = 45.0) -> np.ndarray:
    """An RGB (3, h, w) uint8 shaded relief with a light hypsometric tint."""
    z = dem.astype("float64")
    mask = np.zeros(z.shape, bool) if nodata is None else (z == nodata)
    z[mask] = 0.0
    gy, gx = np.gradient(z, cell_y_m, cell_x_m)
    slope = np.pi / 2 - np.arctan(np.hypot(gx, gy) * 3.0)  # 3x vertical exaggeration
    aspect = np.arctan2(-gx, gy)
    az, alt = np.radians(360 - azimuth + 90), np.radians(altitude)
    shade = np.sin(alt) * np.sin(slope) + np.cos(alt) * np.cos(slope) * np.cos(az - aspect)
    shade = np.clip(shade, 0, 1)
    t = np.clip(z / 3000.0, 0, 1)
    tint = np.stack([200 + 40 * t, 220 - 20 * t, 180 - 10 * t])  # green lowlands to tan hills
    rgb = tint * (0.45 + 0.55 * shade)
    for i, c in enumerate(WATER):
        rgb[i][mask] = c
    return np.clip(rgb, 0, 255).astype("uint8")


def make_hillshade(dem_path: Path, out: Path) -> Path:
    """Write the hillshade of `dem_path` as a Cloud-Optimised GeoTIFF (skipped if up to date)."""
    import rasterio

    if out.exists() and out.stat().st_mtime >= dem_path.stat().st_mtime:
        return out
    with rasterio.open(dem_path) as src:
        dem = src.read(1)
        t = src.transform
        lat = (src.bounds.top + src.bounds.bottom) / 2
        cell_x = abs(t.a) * 111320 * np.cos(np.radians(lat))
        cell_y = abs(t.e) * 110540
        rgb = hillshade_rgb(dem, src.nodata, cell_x, cell_y)
        profile = {"driver": "COG", "width": src.width, "height": src.height, "count": 3,
                   "dtype": "uint8", "crs": src.crs, "transform": t, "compress": "DEFLATE"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(rgb)
    tmp.replace(out)
    return out
