"""Service composition (issue 5): layers of several nodes served as one WMTS/WMS layer.

config/federation.yml gives the main node `hall_map`: its own vector e-map with the Hangzhou
node's annotation layer on top (Hangzhou draws its service halls from level 13, the main node
does not draw them at all), stacked by MapProxy like the e-map cascade.
"""

from __future__ import annotations

import io

import numpy as np
import requests
from owslib.wms import WebMapService
from owslib.wmts import WebMapTileService
from PIL import Image

from tiles.grids import tile_at

HALL = (120.2130, 30.2460)  # 杭州市民中心政务服务大厅 in the synthetic Hangzhou data
SERVICE_HALL_TEXT = (51, 51, 51)


def rgba(resp: requests.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("image/")
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGBA")).astype(float)


def over(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """`top` alpha-composited over an opaque `bottom`."""
    a = top[..., 3:4] / 255.0
    out = bottom.copy()
    out[..., :3] = top[..., :3] * a + bottom[..., :3] * (1 - a)
    return out


def test_composite_layer_stacks_the_parts_of_two_nodes(urls) -> None:
    z = 13
    col, row = tile_at("c", *HALL, z)
    national, hangzhou = urls["national"], urls["hangzhou"]
    composite = rgba(requests.get(f"{national}/wmts/hall_map/c/{z}/{col}/{row}.png", timeout=120))
    vec = rgba(requests.get(f"{national}/wmts/vec/c/{z}/{col}/{row}.png", timeout=120))
    cva = rgba(requests.get(f"{hangzhou}/wmts/cva/c/{z}/{col}/{row}.png", timeout=120))
    assert (cva[..., 3] > 0).sum() > 50  # Hangzhou has annotations here (the hall's label)
    assert np.abs(composite - vec).max() > 50  # so the composite is not the main node's tile
    expected = over(vec, cva)
    assert np.abs(composite[..., :3] - expected[..., :3]).mean() < 2.0
    # Tianditu-style and KVP requests of the same layer
    kvp = requests.get(f"{national}/wmts", timeout=120, params={
        "SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "hall_map",
        "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "image/png", "TILEMATRIX": str(z),
        "TILEROW": str(row), "TILECOL": str(col)})
    assert np.abs(rgba(kvp) - composite).max() == 0


def test_composite_layer_in_capabilities_getmap_and_catalogue(urls) -> None:
    national = urls["national"]
    wmts = WebMapTileService(f"{national}/wmts/1.0.0/WMTSCapabilities.xml")
    assert "hall_map" in wmts.contents and "vec" in wmts.contents
    wms = WebMapService(f"{national}/wms", version="1.3.0")
    assert "hall_map" in wms.contents
    lon, lat = HALL

    def getmap(layer: str) -> np.ndarray:  # CGCS2000 is latitude-first in WMS 1.3.0
        return rgba(requests.get(f"{national}/wms", timeout=120, params={
            "SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0", "LAYERS": layer,
            "STYLES": "", "CRS": "EPSG:4490", "WIDTH": 256, "HEIGHT": 256, "FORMAT": "image/png",
            "BBOX": f"{lat - 0.02},{lon - 0.02},{lat + 0.02},{lon + 0.02}"}))

    composite, vec = getmap("hall_map"), getmap("vec")
    assert composite.reshape(-1, 4).var(axis=0).sum() > 5
    assert np.abs(composite - vec).max() > 50  # the Hangzhou annotations are drawn over it
    r = requests.get(f"{national}/ogc/collections/catalogue/items",
                     params={"q": "hall_map", "f": "json"}, timeout=30)
    assert r.status_code == 200
    ids = {f["id"] for f in r.json()["features"]}
    assert {"national:wmts:hall_map", "national:wms:hall_map"} <= ids
