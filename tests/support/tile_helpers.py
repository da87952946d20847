"""Shared helpers of the tile tests: Tianditu-style GetTile URLs and decoded tile images."""

from __future__ import annotations

import io

import numpy as np
import requests
from PIL import Image

from tiles.grids import tile_at


def tdt_url(base: str, layer: str, grid: str, z: int | str, row: int, col: int,
            tk: str | None = None) -> str:
    """A Tianditu KVP GetTile URL (`/{layer}_{grid}/wmts?...`), with `tk` when given."""
    return (f"{base}/{layer}_{grid}/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={layer}"
            f"&STYLE=default&TILEMATRIXSET={grid}&FORMAT=tiles&TILEMATRIX={z}&TILEROW={row}"
            f"&TILECOL={col}" + (f"&tk={tk}" if tk else ""))


def tdt_url_at(base: str, layer: str, grid: str, z: int, lon: float, lat: float) -> str:
    """The Tianditu GetTile URL of the tile holding (lon, lat) at level z."""
    col, row = tile_at(grid, lon, lat, z)
    return tdt_url(base, layer, grid, z, row, col)


def image(resp: requests.Response) -> np.ndarray:
    """The tile of a 200 image response as an RGBA integer array."""
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("image/")
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGBA")).astype(int)
