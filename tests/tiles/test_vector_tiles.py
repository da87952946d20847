"""Vector tiles (OGC API Tiles, MVT) decode with mapbox-vector-tile and hold the right features."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import requests

HALL_NAME = "杭州市民中心政务服务大厅"
HALL_LONLAT = (120.2130, 30.2460)
TILE_SIZE_CAP = 500_000  # bytes: what a z5 tile may weigh


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def get_tile(base: str, collection: str, z: int, x: int, y: int) -> requests.Response:
    return requests.get(f"{base}/ogc/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}",
                        params={"f": "mvt"}, timeout=60)


def test_z14_tile_over_hangzhou_holds_the_hall(urls) -> None:
    x, y = tile_of(*HALL_LONLAT, 14)
    r = get_tile(urls["hangzhou"], "poi", 14, x, y)
    assert r.status_code == 200
    tile = mapbox_vector_tile.decode(r.content)
    assert "poi" in tile
    names = [f["properties"].get("name") for f in tile["poi"]["features"]]
    assert HALL_NAME in names
    hall = next(f for f in tile["poi"]["features"] if f["properties"].get("name") == HALL_NAME)
    # tile-local position matches the lon/lat within a pixel of the 4096 extent
    n = 2 ** 14
    fx = ((HALL_LONLAT[0] + 180) / 360 * n - x) * 4096
    fy = (1 - ((1 - math.asinh(math.tan(math.radians(HALL_LONLAT[1]))) / math.pi) / 2 * n - y)) * 4096
    gx, gy = hall["geometry"]["coordinates"]
    assert abs(gx - fx) <= 2 and abs(gy - fy) <= 2


def test_z14_roads_and_buildings_have_content(urls) -> None:
    x, y = tile_of(*HALL_LONLAT, 14)
    for collection in ("roads", "buildings"):
        r = get_tile(urls["hangzhou"], collection, 14, x, y)
        assert r.status_code == 200
        tile = mapbox_vector_tile.decode(r.content)
        assert len(tile[collection]["features"]) > 0


def test_z5_tile_over_china_stays_small(urls) -> None:
    x, y = tile_of(115.0, 30.0, 5)
    for collection in ("provinces", "counties"):
        r = get_tile(urls["national"], collection, 5, x, y)
        assert r.status_code == 200
        assert 0 < len(r.content) < TILE_SIZE_CAP, (collection, len(r.content))
        tile = mapbox_vector_tile.decode(r.content)
        assert len(tile[collection]["features"]) > 5


def test_tile_metadata_lists_webmercatorquad(urls) -> None:
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/poi/tiles", params={"f": "json"},
                     timeout=30)
    assert r.status_code == 200
    assert "WebMercatorQuad" in r.text


@pytest.mark.parametrize("path", ["99/0/0", "5/-1/3", "5/40/3", "5/3/40", "a/b/c"])
def test_bad_tile_addresses_are_4xx(urls, path) -> None:
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/poi/tiles/WebMercatorQuad/{path}",
                     params={"f": "mvt"}, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
