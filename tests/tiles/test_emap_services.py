"""The government e-map through real clients: OWSLib (WMTS REST/KVP, WMS 1.1.1/1.3.0), GDAL,
nginx front door with the cache fast path, and sensitive content kept off the e-map."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from owslib.wms import WebMapService
from owslib.wmts import WebMapTileService
from PIL import Image

from nodes.pygeoapi_config import node_dir
from tiles.grids import GRIDS, tile_at

LAYERS = {"vec", "cva", "img", "cia", "ter", "cta"}
COMPOSITES = {"national": {"hall_map"}}  # config/federation.yml registry.compositions
WATER = (158, 199, 234)  # config/styles/emap.yml water_area fill
SERVICE_HALL = (200, 16, 46)  # service_hall marker fill
TAIHU = (120.1356, 31.2343)
HALL = (120.2130, 30.2460)  # 杭州市民中心政务服务大厅 (fixed position in the synthetic data)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)


def assert_not_blank(img: np.ndarray, floor: float = 5.0) -> None:
    assert img[..., :3].reshape(-1, 3).var(axis=0).sum() > floor, "image looks blank"


def has_colour(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12, box=None) -> bool:
    part = img if box is None else img[box[1]:box[3], box[0]:box[2]]
    diff = np.abs(part[..., :3] - np.array(rgb)).max(axis=-1)
    return bool((diff <= tol).any())


@pytest.mark.parametrize("node", ["national", "zhejiang", "hangzhou"])
def test_wmts_capabilities_rest_and_kvp(urls: dict[str, str], node: str) -> None:
    rest = WebMapTileService(urls[node] + "/wmts/1.0.0/WMTSCapabilities.xml")
    kvp = WebMapTileService(urls[node] + "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities",
                            version="1.0.0")
    for caps in (rest, kvp):
        assert set(caps.contents) == LAYERS | COMPOSITES.get(node, set())
        assert {"c", "w"} <= set(caps.tilematrixsets)
        assert set(caps["vec"].tilematrixsetlinks) == {"c", "w"}
    c = rest.tilematrixsets["c"]
    assert "4490" in c.crs
    assert c.tilematrix["01"].topleftcorner == (90.0, -180.0)
    assert (c.tilematrix["01"].matrixwidth, c.tilematrix["01"].matrixheight) == (2, 1)
    assert len(c.tilematrix) == 21  # level 0 + Tianditu levels 1-20
    assert "3857" in rest.tilematrixsets["w"].crs


@pytest.mark.parametrize("node", ["national", "zhejiang", "hangzhou"])
def test_wms_capabilities_both_versions(urls: dict[str, str], node: str) -> None:
    for version in ("1.1.1", "1.3.0"):
        wms = WebMapService(urls[node] + "/wms", version=version)
        assert LAYERS <= set(wms.contents)
        assert "EPSG:4490" in wms["vec"].crsOptions


def test_wmts_gettile_rest_and_kvp(urls: dict[str, str]) -> None:
    x, y = tile_at("c", *HALL, 10)
    rest = WebMapTileService(urls["national"] + "/wmts/1.0.0/WMTSCapabilities.xml")
    tile = rest.gettile(layer="vec", tilematrixset="c", tilematrix="10", row=y, column=x,
                        format="image/png")
    img = decode(tile.read())
    assert img.shape[:2] == (256, 256)
    assert_not_blank(img)
    kvp = WebMapTileService(urls["national"] + "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities",
                            version="1.0.0")
    x, y = tile_at("w", *TAIHU, 9)
    tile = kvp.gettile(layer="vec", tilematrixset="w", tilematrix="09", row=y, column=x,
                       format="image/png")
    img = decode(tile.read())
    assert_not_blank(img)
    assert has_colour(img, WATER)  # 太湖 is in this tile


def test_wms_getmap_shows_known_features(urls: dict[str, str]) -> None:
    lon, lat = TAIHU
    d = 0.02
    for version in ("1.1.1", "1.3.0"):  # OWSLib takes lon/lat and orders axes per version
        wms = WebMapService(urls["national"] + "/wms", version=version)
        img = decode(wms.getmap(layers=["vec"], bbox=(lon - d, lat - d, lon + d, lat + d),
                                size=(64, 64), format="image/png", srs="EPSG:4490").read())
        assert tuple(img[32, 32, :3]) == WATER, (version, img[32, 32])
    # WMS 1.3.0 with EPSG:4490 is latitude-first on the wire
    r = requests.get(urls["national"] + "/wms", params={
        "SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0", "LAYERS": "vec", "STYLES": "",
        "CRS": "EPSG:4490", "BBOX": f"{lat - d},{lon - d},{lat + d},{lon + d}", "WIDTH": 64,
        "HEIGHT": 64, "FORMAT": "image/png"}, timeout=60)
    assert tuple(decode(r.content)[32, 32, :3]) == WATER
    # the main service hall of Hangzhou on the information base, 1:2000 scale
    lon, lat = HALL
    d = 0.002
    wms = WebMapService(urls["hangzhou"] + "/wms", version="1.1.1")
    img = decode(wms.getmap(layers=["vec"], srs="EPSG:4490", bbox=(lon - d, lat - d, lon + d, lat + d),
                            size=(256, 256), format="image/png").read())
    assert_not_blank(img)
    assert has_colour(img, SERVICE_HALL, box=(118, 118, 138, 138))
    img = decode(wms.getmap(layers=["img"], srs="EPSG:3857",
                            bbox=(13380000, 3535000, 13390000, 3545000),
                            size=(128, 128), format="image/jpeg").read())
    assert_not_blank(img)


def gdal_env(cache: Path) -> dict[str, str]:
    """The environment for Debian's GDAL tools, without the Python wheels' PROJ/GDAL data,
    and with GDAL's WMTS tile cache in a temporary directory (not ./gdalwmscache)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA")}
    return {**env, "GDAL_DEFAULT_WMS_CACHE_PATH": str(cache / "gdalwmscache")}


def test_gdal_opens_wmts_in_both_grids(urls: dict[str, str], tmp_path: Path) -> None:
    base = urls["national"] + "/wmts/1.0.0/WMTSCapabilities.xml"
    for grid, epsg in (("c", "4490"), ("w", "3857")):
        out = subprocess.run(["gdalinfo", "-json", f"WMTS:{base},layer=vec,tilematrixset={grid}"],
                             capture_output=True, text=True, timeout=60, env=gdal_env(tmp_path), check=False)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert f'"EPSG",{epsg}]' in info["coordinateSystem"]["wkt"].replace(" ", "")
    # A window over Hangzhou read through GDAL equals the WMS render of the same box.
    z = 12
    x, y = tile_at("c", *HALL, z)
    span = GRIDS["c"].res(z) * 256
    minx, maxy = -180 + x * span, 90 - y * span
    gdal_window_matches_wms(urls["national"], "c", "EPSG:4490",
                            (minx, maxy - span, minx + span, maxy), tmp_path, 3.0)
    # the same in the `w` grid: the level-12 Web Mercator tile over the hall
    from pyproj import Transformer

    half = 20037508.342789244
    span = 2 * half / 2 ** z
    mx, my = Transformer.from_crs(4490, 3857, always_xy=True).transform(*HALL)
    minx = -half + (mx + half) // span * span
    maxy = half - (half - my) // span * span
    # WMS reprojects from the c cache: allow a little more resampling noise
    gdal_window_matches_wms(urls["national"], "w", "EPSG:3857",
                            (minx, maxy - span, minx + span, maxy), tmp_path, 8.0)


def gdal_window_matches_wms(base_url: str, grid: str, srs: str, box: tuple, tmp_path: Path,
                            tolerance: float) -> None:
    """gdal_translate of a WMTS window equals the WMS GetMap of the same box (mean abs diff)."""
    caps = base_url + "/wmts/1.0.0/WMTSCapabilities.xml"
    gdal_png = tmp_path / f"gdal_{grid}.png"
    res = subprocess.run(["gdal_translate", "-q", "-of", "PNG", "-outsize", "256", "256",
                          "-projwin", str(box[0]), str(box[3]), str(box[2]), str(box[1]),
                          f"WMTS:{caps},layer=vec,tilematrixset={grid}", str(gdal_png)],
                         capture_output=True, text=True, timeout=120, env=gdal_env(tmp_path),
                         check=False)
    assert res.returncode == 0, res.stderr
    wms = requests.get(base_url + "/wms", params={
        "SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.1.1", "LAYERS": "vec", "STYLES": "",
        "SRS": srs, "BBOX": ",".join(map(str, box)), "WIDTH": 256, "HEIGHT": 256,
        "FORMAT": "image/png"}, timeout=60)
    a, b = decode(gdal_png.read_bytes())[..., :3], decode(wms.content)[..., :3]
    assert_not_blank(b)
    assert np.abs(a - b).mean() < tolerance


def test_front_door_serves_cached_tiles_from_disk(federation, urls: dict[str, str]) -> None:
    x, y = tile_at("c", *HALL, 8)
    url = f"{urls['hangzhou']}/wmts/vec/c/08/{x}/{y}.png"
    first = requests.get(url, timeout=60)
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/png"
    again = requests.get(url, timeout=10)
    assert again.headers.get("X-Tile-Cache") == "hit"  # nginx sent the file itself
    assert again.content == first.content
    ndir = node_dir(federation, federation.node("hangzhou"))
    assert (ndir / "cache" / "vec_c" / "c" / "8" / str(x) / f"{y}.png").read_bytes() == first.content
    # everything else still reaches the app through the same port
    assert requests.get(urls["hangzhou"] + "/health", timeout=10).json()["status"] == "ok"
    assert (ndir / "nginx" / "nginx.conf").exists()


def test_sensitive_layers_never_reach_the_emap(federation, urls: dict[str, str]) -> None:
    from nodes.settings import load_layers
    from tiles.styles import (
        SensitiveContentError,
        check_no_sensitive,
        drawable_tables,
        load_styles,
        map_xml,
    )

    node = federation.node("zhejiang")
    layers = load_layers(federation, node)
    sensitive = {lay.id for lay in layers if lay.sensitive}
    assert "contours" in sensitive
    tdir = node_dir(federation, node) / "tiles"
    xmls = list(tdir.glob("*.xml"))
    assert len(xmls) == 6
    for xml in xmls:
        text = xml.read_text(encoding="utf-8")
        assert "contours" not in text, xml.name
    # on every node, nothing sensitive or non-public is a data source of any e-map layer
    for n in federation.nodes:
        hidden = {lay.id for lay in load_layers(federation, n)
                  if lay.sensitive or lay.access != "public"}
        for xml in (node_dir(federation, n) / "tiles").glob("*.xml"):
            text = xml.read_text(encoding="utf-8")
            assert not any(f'FROM "{t}"' in text for t in hidden), (n.id, xml.name)
    # even a style that asks for contours cannot draw them
    style = load_styles(Path(__file__).resolve().parents[2] / "config" / "styles" / "emap.yml")
    tables = drawable_tables(layers, {lay.id for lay in layers})
    assert "contours" not in tables
    style = style.model_copy(update={"classes": {**style.classes, "water_line": style.classes[
        "water_line"].model_copy(update={"tables": ["rivers", "contours"]})}})
    xml = map_xml(style, "vec", tables, {"dbname": "x"}, [])
    assert 'FROM "contours"' not in xml
    with pytest.raises(SensitiveContentError):
        check_no_sensitive(map_xml(style, "vec", tables | {"contours"}, {"dbname": "x"}, []),
                           sensitive)
