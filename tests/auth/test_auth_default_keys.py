"""The shipped default: public APIs and tiles need an API key or a session (issue 4).

A federation of its own with `public_requires_key` left at its default (the session fixture
`keyed` of conftest.py, shared with test_security_keys.py and test_clients_qgis.py).
"""

from __future__ import annotations

import requests


def test_json_api_needs_a_key_or_session(keyed) -> None:
    url = keyed["hz"] + "/ogc/collections/poi/items"
    r = requests.get(url, params={"f": "json", "limit": 1}, timeout=30)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/problem+json")
    r = requests.get(url, params={"f": "json", "limit": 1, "tk": keyed["key"]}, timeout=30)
    assert r.status_code == 200 and len(r.json()["features"]) == 1
    r = requests.get(url, params={"f": "json", "limit": 1}, headers={"X-Api-Key": keyed["key"]},
                     timeout=30)
    assert r.status_code == 200
    tile = keyed["hz"] + "/ogc/collections/poi/tiles/WebMercatorQuad/14/6722/13697"
    assert requests.get(tile, params={"f": "mvt"}, timeout=30).status_code == 401


def test_the_nodes_own_pages_work_without_a_key(keyed) -> None:
    hz = keyed["hz"]
    page = requests.get(hz + "/ogc/collections/poi/items", params={"f": "html"}, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    # what the page itself fetches carries the page's origin
    own = requests.get(hz + "/ogc/collections/poi/items", params={"f": "json", "limit": 1},
                       headers={"Referer": hz + "/ogc/collections/poi/items?f=html"}, timeout=30)
    assert own.status_code == 200
    foreign = requests.get(hz + "/ogc/collections/poi/items", params={"f": "json", "limit": 1},
                           headers={"Referer": "https://elsewhere.example/map.html"}, timeout=30)
    assert foreign.status_code == 401
    assert requests.get(hz + "/health", timeout=10).json()["status"] == "ok"


def test_tianditu_tiles_need_a_key(keyed) -> None:
    url = keyed["hz"] + "/vec_c/wmts"
    params = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "vec",
              "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "tiles", "TILEMATRIX": "3",
              "TILEROW": "1", "TILECOL": "6"}
    ok = requests.get(url, params={**params, "tk": keyed["key"]}, timeout=60)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/png"
    for _ in range(2):  # the tile is cached now: nginx must still not hand it out keyless
        r = requests.get(url, params=params, timeout=60)
        assert r.status_code == 401 and "ExceptionReport" in r.text


def test_cascade_works_when_children_require_keys(keyed) -> None:
    """The main node's level-18 tile over Hangzhou comes from the information base, whose
    tiles need a key: the parent sends its own node key."""
    import io

    import numpy as np
    from PIL import Image

    from tiles.grids import tile_at

    col, row = tile_at("c", 120.2130, 30.2460, 18)
    params = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "vec",
              "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "tiles", "TILEMATRIX": "18",
              "TILEROW": str(row), "TILECOL": str(col), "tk": keyed["key"]}
    national = requests.get(keyed["nat"] + "/vec_c/wmts", params=params, timeout=120)
    hangzhou = requests.get(keyed["hz"] + "/vec_c/wmts", params=params, timeout=120)
    assert national.status_code == hangzhou.status_code == 200
    pixels = np.asarray(Image.open(io.BytesIO(national.content)).convert("RGBA"))
    assert pixels[..., 3].max() > 0 and pixels[..., :3].std() > 5  # not the transparent fallback
    assert national.content == hangzhou.content
