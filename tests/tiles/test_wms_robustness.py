"""Bad requests get OGC exceptions (never 5xx, never an echo); concurrent renders agree."""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

EVIL = "<script>alert(1)</script>"
GETMAP = {"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.1.1", "LAYERS": "vec",
          "STYLES": "", "SRS": "EPSG:4490", "BBOX": "119.9,29.9,120.5,30.5",
          "WIDTH": "256", "HEIGHT": "256", "FORMAT": "image/png"}
TDT = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "vec",
       "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "tiles", "TILEMATRIX": "3",
       "TILEROW": "1", "TILECOL": "6", "tk": "x"}


def assert_ogc_exception(resp_status: int, body: bytes) -> None:
    assert 400 <= resp_status < 500, (resp_status, body[:300])
    text = body.decode("utf-8", "replace")
    assert "Exception" in text, text[:300]
    assert "<script>" not in text and "alert(1)" not in text


@pytest.mark.parametrize("override", [
    {"WIDTH": "100000"}, {"HEIGHT": "0"}, {"WIDTH": EVIL},
    {"FORMAT": "image/" + EVIL}, {"FORMAT": "application/pdf"},
    {"BBOX": "1,2,3"}, {"BBOX": "a,b,c,d"}, {"BBOX": "120,30,119,31"}, {"BBOX": EVIL},
    {"LAYERS": EVIL}, {"LAYERS": "contours"}, {"SRS": "EPSG:" + EVIL},
    {"REQUEST": EVIL},
])
def test_bad_wms_requests(urls: dict[str, str], override: dict[str, str]) -> None:
    for version in ("1.1.1", "1.3.0"):
        params = {**GETMAP, "VERSION": version, **override}
        if version == "1.3.0":
            params["CRS"] = params.pop("SRS")
        r = requests.get(urls["national"] + "/wms", params=params, timeout=60)
        assert_ogc_exception(r.status_code, r.content)


@pytest.mark.parametrize("override", [
    {"TILEMATRIX": "21"}, {"TILEMATRIX": "0"}, {"TILEMATRIX": "-1"}, {"TILEMATRIX": EVIL},
    {"TILEROW": "4"}, {"TILECOL": "99999"}, {"TILEROW": EVIL},
    {"LAYER": EVIL}, {"TILEMATRIXSET": "EPSG:4326"}, {"FORMAT": EVIL}, {"REQUEST": EVIL},
])
def test_bad_tianditu_requests(urls: dict[str, str], override: dict[str, str]) -> None:
    r = requests.get(urls["national"] + "/vec_c/wmts", params={**TDT, **override}, timeout=60)
    assert_ogc_exception(r.status_code, r.content)


@pytest.mark.parametrize("path", [
    "/wmts/vec/c/21/0/0.png", "/wmts/vec/c/03/99/0.png", "/wmts/vec/c/03/0/99.png",
    "/wmts/nope/c/03/0/0.png", "/wmts/vec/EPSG4326/03/0/0.png", "/wmts/vec/c/03/0/0.gif",
    "/wmts/vec/c/../../../../etc/passwd", "/wmts/vec/c/03/%2e%2e/%2e%2e/0.png",
    "/../../../etc/passwd", "/tms/1.0.0/vec/../../../../etc/passwd",
    "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=vec&TILEMATRIXSET=zz&TILEMATRIX=1&TILEROW=0&TILECOL=0&FORMAT=image/png",
    "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=vec&TILEMATRIXSET=c&TILEMATRIX=1&TILEROW=5&TILECOL=0&FORMAT=image/png",
    "/nope_c/wmts?SERVICE=WMTS&REQUEST=GetTile",
])
def test_bad_tile_paths(urls: dict[str, str], path: str) -> None:
    # http.client sends the path exactly as written (no dot-segment normalisation)
    u = urlsplit(urls["national"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert_ogc_exception(resp.status, body)
    assert b"root:" not in body


def test_five_concurrent_identical_wms_requests_agree(urls: dict[str, str]) -> None:
    params = {**GETMAP, "BBOX": "120.05,30.15,120.35,30.35", "WIDTH": "300", "HEIGHT": "200"}

    def fetch(_: int) -> bytes:
        r = requests.get(urls["zhejiang"] + "/wms", params=params, timeout=120)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
        return r.content

    with ThreadPoolExecutor(5) as pool:
        bodies = list(pool.map(fetch, range(5)))
    assert len(set(bodies)) == 1
