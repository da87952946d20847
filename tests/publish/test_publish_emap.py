"""Published layers on the node's e-map and tile services: WMS/WMTS see them, retire removes them."""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import requests
import shapely
from owslib.wms import WebMapService
from owslib.wmts import WebMapTileService
from PIL import Image

from layers.formats import PublishError
from layers.publish import publish, retire
from tiles.seed import tile_range


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _wms(base: str) -> WebMapService:
    return WebMapService(f"{base}/wms", version="1.1.1", timeout=60)


def _getmap(base: str, layer: str, box: tuple[float, float, float, float]) -> bytes:
    r = requests.get(f"{base}/wms", params={
        "SERVICE": "WMS", "VERSION": "1.1.1", "REQUEST": "GetMap", "LAYERS": layer, "STYLES": "",
        "SRS": "EPSG:4490", "BBOX": ",".join(map(str, box)), "WIDTH": 256, "HEIGHT": 256,
        "FORMAT": "image/png", "TRANSPARENT": "TRUE"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    return r.content


def _tile(base: str, layer: str, z: int, x: int, y: int) -> bytes:
    r = requests.get(f"{base}/wmts/{layer}/c/{z:02d}/{x}/{y}.png", timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/"), r.text[:300]
    return r.content


def test_public_layer_with_emap_is_drawn_on_vec_and_offered_by_wms(ctx, urls, tmp_path):
    base, name = urls["hangzhou"], "pub_emap_plot"
    box = (120.500, 30.400, 120.530, 30.430)
    view = (120.490, 30.390, 120.540, 30.440)
    z = 16
    x_in, y_in, _, _ = tile_range("c", (120.514, 30.414, 120.5141, 30.4141), z)
    x_out, y_out, _, _ = tile_range("c", (119.20, 29.70, 119.2001, 29.7001), z)
    assert name not in _wms(base).contents
    map_before = _getmap(base, "vec", view)
    tile_in_before = _tile(base, "vec", z, x_in, y_in)
    tile_out_before = _tile(base, "vec", z, x_out, y_out)

    src = tmp_path / "plot.geojson"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"name": ["地块"]}, geometry=[shapely.box(*box)],
                                             crs="EPSG:4490"), src)
    publish(ctx, src, name, title="地块 Parcel", emap=True)

    wms = _wms(base)
    assert name in wms.contents and wms.contents[name].title == "地块 Parcel"
    after = _pixels(_getmap(base, "vec", view))
    changed = np.any(after != _pixels(map_before), axis=2)
    assert changed.mean() > 0.2, "the layer is not drawn on vec"
    own = _pixels(_getmap(base, name, view))
    assert own[128, 128, 3] > 0 and own[2, 2, 3] == 0  # its own layer: drawn inside, clear outside
    assert _tile(base, "vec", z, x_in, y_in) != tile_in_before  # cached tile invalidated
    assert _tile(base, "vec", z, x_out, y_out) == tile_out_before

    retire(ctx, name)
    assert name not in _wms(base).contents
    r = requests.get(f"{base}/wms", params={
        "SERVICE": "WMS", "VERSION": "1.1.1", "REQUEST": "GetMap", "LAYERS": name, "STYLES": "",
        "SRS": "EPSG:4490", "BBOX": ",".join(map(str, view)), "WIDTH": 64, "HEIGHT": 64,
        "FORMAT": "image/png"}, timeout=30)
    assert b"LayerNotDefined" in r.content
    gone = np.any(_pixels(_getmap(base, "vec", view)) != _pixels(map_before), axis=2)
    assert gone.mean() < 0.01


def test_non_public_layer_with_emap_is_refused(ctx, urls, tmp_path):
    src = tmp_path / "secret.geojson"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.box(120.6, 30.3, 120.61, 30.31)],
                                             crs="EPSG:4490"), src)
    with pytest.raises(PublishError) as err:
        publish(ctx, src, "pub_emap_secret", access="restricted", emap=True)
    assert err.value.status == 400 and "public" in err.value.message
    assert "pub_emap_secret" not in _wms(urls["hangzhou"]).contents


def test_geotiff_is_a_raster_tile_layer(ctx, urls, tmp_path):
    import rasterio
    from rasterio.transform import from_bounds

    from nodes.providers.coverage import proj_env

    base, name = urls["hangzhou"], "pub_raster_tiles"
    bounds = (120.60, 30.10, 120.66, 30.16)
    h = w = 240
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx % 256), (yy % 256), ((xx + yy) // 2 % 256)]).astype("uint8")
    src = tmp_path / "dom.tif"
    with proj_env(), rasterio.open(src, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs="EPSG:4490", transform=from_bounds(*bounds, w, h)) as dst:
        dst.write(rgb)
    caps_url = f"{base}/wmts/1.0.0/WMTSCapabilities.xml"
    assert name not in WebMapTileService(caps_url, timeout=60).contents

    publish(ctx, src, name, title="正射影像 Orthophoto")

    wmts = WebMapTileService(caps_url, timeout=60)
    assert name in wmts.contents and {"c", "w"} <= set(wmts.contents[name].tilematrixsetlinks)
    z = 14
    x, y, _, _ = tile_range("c", (120.63, 30.13, 120.6301, 30.1301), z)
    matrix = next(m for m in wmts.tilematrixsets["c"].tilematrix if int(m) == z)
    tile = wmts.gettile(layer=name, tilematrixset="c", tilematrix=matrix, row=y, column=x,
                        format="image/png")
    px = _pixels(tile.read())
    assert px[..., 3].min() > 0 and px[..., :3].std() > 10, "tile over the raster is blank"
    assert name in _wms(base).contents

    retire(ctx, name)
    assert name not in WebMapTileService(caps_url, timeout=60).contents
    r = requests.get(f"{base}/wmts/{name}/c/{z:02d}/{x}/{y}.png", timeout=30)
    assert r.status_code in (400, 404)
    assert not list((ctx.node_dir / "cache").glob(f"{name}__v*"))
