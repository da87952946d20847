"""Issue 11, items 4 and 5: keys on every map surface, and the key in every capabilities URL.

Runs on the `keyed` federation (conftest.py: `auth.public_requires_key` at its default, true).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree
from tile_helpers import image, tdt_url
from waiting import wait_for

from nodes import federation as federation_mod
from services.access import apikeys
from services.db import Database
from services.sso import accounts
from tiles import capabilities

BBOX_3857 = "13370000,3530000,13390000,3550000"
GETMAP = {"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0", "LAYERS": "vec",
          "STYLES": "", "CRS": "EPSG:3857", "BBOX": BBOX_3857, "WIDTH": "256", "HEIGHT": "256",
          "FORMAT": "image/png"}
KVP_TILE = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "vec",
            "STYLE": "default", "TILEMATRIXSET": "c", "TILEMATRIX": "05", "TILEROW": "6",
            "TILECOL": "26", "FORMAT": "image/png"}

# every map surface of a node: (name, path, query); OGC XML answers except MVT (problem+json)
SURFACES = [
    ("wms-getmap", "/wms", GETMAP),
    ("wms-getfeatureinfo", "/wms", {**GETMAP, "REQUEST": "GetFeatureInfo", "QUERY_LAYERS": "vec",
                                    "I": "10", "J": "10", "INFO_FORMAT": "text/plain"}),
    ("wms-getlegendgraphic", "/wms", {"SERVICE": "WMS", "REQUEST": "GetLegendGraphic",
                                      "VERSION": "1.3.0", "LAYER": "vec", "FORMAT": "image/png"}),
    ("wms-capabilities", "/wms", {"SERVICE": "WMS", "REQUEST": "GetCapabilities"}),
    ("service-wms-getmap", "/service", GETMAP),
    ("wmts-kvp-gettile", "/wmts", KVP_TILE),
    ("wmts-kvp-capabilities", "/wmts", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
    ("service-wmts-gettile", "/service", KVP_TILE),
    ("service-wmts-capabilities", "/service", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
    ("wmts-rest-capabilities", "/wmts/1.0.0/WMTSCapabilities.xml", {}),
    ("wmts-rest-tile", "/wmts/vec/c/05/26/6.png", {}),
    ("tms-capabilities", "/tms/1.0.0/", {}),
    ("tms-tilemap", "/tms/1.0.0/vec/c", {}),
    ("tms-tile", "/tms/1.0.0/vec/c/5/26/6.png", {}),
    ("tianditu-tile", "/vec_c/wmts", {**KVP_TILE, "TILEMATRIX": "5", "FORMAT": "tiles"}),
    ("tianditu-capabilities", "/vec_c/wmts", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
]
# what the Accept-header table covers: one tile or image request per kind of surface
IMAGES = {name: (path, q) for name, path, q in SURFACES
          if name in ("wmts-rest-tile", "wmts-kvp-gettile", "wms-getmap", "tms-tile",
                      "tianditu-tile")}
IMAGES["mvt"] = ("/ogc/collections/poi/tiles/WebMercatorQuad/14/6722/13697", {"f": "mvt"})


def _xml_refusal(r: requests.Response, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    root = etree.fromstring(r.content)
    assert etree.QName(root).localname in ("ExceptionReport", "ServiceExceptionReport")


@pytest.fixture(scope="module")
def hz_db(keyed) -> Database:
    settings = keyed["settings"]
    return Database(federation_mod.node_dsn(settings, settings.node("hangzhou")), maxconn=1)


@pytest.fixture(scope="module")
def key_id(keyed) -> str:
    return apikeys.lookup(keyed["main_db"], apikeys.key_hash(keyed["key"]))["key_id"]


@pytest.mark.parametrize("name,path,query", SURFACES, ids=[s[0] for s in SURFACES])
def test_every_map_surface_needs_a_key(keyed, name: str, path: str, query: dict) -> None:
    """Before: WMS, WMTS KVP, /service and the capabilities answered anonymous callers 200."""
    r = requests.get(keyed["hz"] + path, params=query, timeout=60)
    _xml_refusal(r, 401)
    if name == "wms-getlegendgraphic":
        return  # the e-map layers have no legend (MapProxy answers 503)
    ok = requests.get(keyed["hz"] + path, params={**query, "tk": keyed["key"]}, timeout=120)
    if name == "wms-getfeatureinfo":  # the key passes; the e-map images are not queryable
        _xml_refusal(ok, 400)
        assert b'code="LayerNotQueryable"' in ok.content
        return
    assert ok.status_code == 200, (ok.status_code, ok.text[:300])


@pytest.mark.parametrize("surface", sorted(IMAGES))
@pytest.mark.parametrize("accept", ["text/html", "*/*", "text/html, image/png"])
@pytest.mark.parametrize("forged", [None, "origin", "referer"])
def test_accept_header_tricks_get_no_tile(keyed, surface: str, accept: str, forged: str | None
                                          ) -> None:
    """Before: `Accept: text/html` made a tile request an "own page" (no key needed)."""
    path, query = IMAGES[surface]
    headers = {"Accept": accept}
    if forged == "origin":
        headers["Origin"] = "https://elsewhere.example"
    elif forged == "referer":
        headers["Referer"] = "https://elsewhere.example/map.html"
    for _ in range(2):  # the second time the tile is in nginx's cache (if it ever was served)
        r = requests.get(keyed["hz"] + path, params=query, headers=headers, timeout=60)
        if surface == "mvt":
            assert r.status_code == 401
            assert r.headers["Content-Type"].startswith("application/problem+json")
        else:
            _xml_refusal(r, 401)


def _tiles_used(db: Database, key_id: str) -> int:
    row = db.one("SELECT coalesce(sum(count), 0) AS n FROM auth.key_usage WHERE key_id = %s "
                 "AND kind = 'tiles'", (key_id,))
    return int(row["n"])


def _wait_used(db: Database, key_id: str, at_least: int) -> int:
    # counters flush every 5 s; nginx's log is folded later
    return wait_for(lambda: (n := _tiles_used(db, key_id)) >= at_least and n, 90,
                    f"{at_least} tiles counted", interval=1)


def test_keyed_images_are_served_and_counted(keyed, hz_db, key_id) -> None:
    """With a key, the same requests (HTML Accept and all) get their image, each counted.
    Before: WMS GetMap and WMTS KVP GetTile were neither checked nor counted."""
    before = _tiles_used(hz_db, key_id)
    for _ in range(3):
        r = requests.get(keyed["hz"] + "/wms", params={**GETMAP, "tk": keyed["key"]}, timeout=120)
        assert image(r).shape == (256, 256, 4)
    assert _wait_used(hz_db, key_id, before + 3) >= before + 3
    before = _tiles_used(hz_db, key_id)
    for surface, (path, query) in sorted(IMAGES.items()):
        r = requests.get(keyed["hz"] + path, params={**query, "tk": keyed["key"]},
                         headers={"Accept": "text/html"}, timeout=120)
        assert r.status_code in ((200, 204) if surface == "mvt" else (200,)), \
            (surface, r.status_code, r.text[:200])
    assert _wait_used(hz_db, key_id, before + len(IMAGES)) >= before + len(IMAGES)


def test_wms_getmap_size_is_bounded(keyed) -> None:
    """Before: 4096 x 4096 was rendered (14.6 s). Now over 4 Mpx is refused at once."""
    for w, h in ((4096, 4096), (2049, 2048), (4096, 1025), (4097, 1)):
        t0 = time.monotonic()
        r = requests.get(keyed["hz"] + "/wms", timeout=60,
                         params={**GETMAP, "WIDTH": str(w), "HEIGHT": str(h), "tk": keyed["key"]})
        _xml_refusal(r, 400)
        assert "InvalidParameterValue" in r.text and time.monotonic() - t0 < 10
    ok = requests.get(keyed["hz"] + "/wms", params={**GETMAP, "WIDTH": "1024", "HEIGHT": "512",
                                                    "tk": keyed["key"]}, timeout=120)
    assert image(ok).shape == (512, 1024, 4)


def _urls(doc: bytes) -> list[str]:
    root = etree.fromstring(doc)
    return [v for el in root.iter() if isinstance(el.tag, str) for k, v in el.attrib.items()
            if k in ("template", "href", capabilities.XLINK_HREF) and v.startswith("http")]


CAPABILITIES = [
    ("/wmts/1.0.0/WMTSCapabilities.xml", {}),
    ("/wmts", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
    ("/service", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
    ("/wms", {"SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0"}),
    ("/wms", {"SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.1.1"}),
    ("/tms/1.0.0/", {}),
    ("/vec_c/wmts", {"SERVICE": "WMS", "REQUEST": "GetCapabilities"}),
    ("/img_w/wmts", {"SERVICE": "WMTS", "REQUEST": "GetCapabilities"}),
]


@pytest.mark.parametrize("path,query", CAPABILITIES, ids=[f"{p}{q.get('SERVICE', '')}"
                                                         f"{q.get('VERSION', '')}"
                                                         for p, q in CAPABILITIES])
def test_capabilities_carry_the_callers_key_in_every_url(keyed, path: str, query: dict) -> None:
    """Before: no URL of any capabilities document carried the tk (QGIS's tiles got 401)."""
    key = keyed["key"]
    r = requests.get(keyed["hz"] + path, params={**query, "tk": key}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert "no-store" in r.headers["Cache-Control"] and "private" in r.headers["Cache-Control"]
    own = urlsplit(keyed["hz"]).netloc
    urls = [u for u in _urls(r.content) if urlsplit(u).netloc == own]
    assert urls
    for url in urls:
        if "/tms/1.0.0/" in url and url.rstrip("/").split("/")[-1].isdigit():
            continue  # a TMS TileSet href is a path prefix for /{x}/{y}.{ext}: no query there
        assert parse_qs(urlsplit(url).query).get("tk") == [key], url
    # with the key in a header, the document does not invent a tk
    hdr = requests.get(keyed["hz"] + path, params=query, headers={"X-Api-Key": key}, timeout=60)
    assert hdr.status_code == 200 and key.encode() not in hdr.content


@pytest.mark.parametrize("service", ["WMS", "WMTS"])
def test_tianditu_route_answers_its_capabilities_like_tianditu(keyed, service: str) -> None:
    """QGIS given `/vec_c/wmts?tk=KEY` first asks SERVICE=WMS&REQUEST=GetCapabilities.
    Before: 400 "SERVICE must be WMTS" (WMS), or the whole node's document without tk."""
    from owslib.wmts import WebMapTileService

    hz, key = keyed["hz"], keyed["key"]
    r = requests.get(f"{hz}/vec_c/wmts", params={"tk": key, "SERVICE": service,
                                                 "REQUEST": "GetCapabilities"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    root = etree.fromstring(r.content)
    assert etree.QName(root).localname == "Capabilities"
    ows = "{http://www.opengis.net/ows/1.1}"
    wmts = "{http://www.opengis.net/wmts/1.0}"
    assert [e.findtext(f"{ows}Identifier") for e in root.iter(f"{wmts}Layer")] == ["vec"]
    sets = [e.findtext(f"{ows}Identifier") for e in root.find(f"{wmts}Contents")
            .findall(f"{wmts}TileMatrixSet")]
    assert sets == ["c"]
    for url in _urls(r.content):
        if "opengis.net" in url:
            continue
        assert url.startswith(f"{hz}/vec_c/wmts?"), url
        assert parse_qs(urlsplit(url).query)["tk"] == [key], url
    # a real client (OWSLib) given only that URL gets a tile through it
    service_ = WebMapTileService(f"{hz}/vec_c/wmts?tk={key}")
    assert list(service_.contents) == ["vec"]
    tile = service_.gettile(layer="vec", tilematrixset="c", tilematrix="05", row=6, column=26,
                            format="image/png")
    assert tile.info()["Content-Type"] == "image/png" and len(tile.read()) > 100


ODD_KEYS = ['"><script>alert(1)</script>', "k'&<x/>", "a b", "%00", "\u2028k"]


@pytest.mark.parametrize("tk", ODD_KEYS)
def test_odd_or_foreign_keys_are_never_echoed(keyed, tk: str) -> None:
    hz = keyed["hz"]
    for path, query in CAPABILITIES[:4] + CAPABILITIES[6:7]:
        r = requests.get(hz + path, params={**query, "tk": tk}, timeout=60)
        _xml_refusal(r, 403)
        assert "<script" not in r.text and tk not in r.text
    r = requests.get(hz + "/ogc", params={"f": "json", "tk": tk}, timeout=60)
    assert r.status_code == 403 and tk not in r.text


def test_unknown_key_gets_403_without_echo(keyed) -> None:
    foreign = "0123456789abcdef0123456789abcdef"
    r = requests.get(keyed["hz"] + "/wmts/1.0.0/WMTSCapabilities.xml", params={"tk": foreign},
                     timeout=60)
    _xml_refusal(r, 403)
    assert foreign not in r.text


def test_one_callers_document_is_never_served_to_another(keyed) -> None:
    db = keyed["main_db"]
    other = accounts.create(db, "keyed_dev2", "keyed-dev2-password-1", roles=["developer"])
    key_b, _ = apikeys.create_key(db, "test", other.id, "b", "server", ["127.0.0.0/8"],
                                  actor="test")
    url = keyed["hz"] + "/wmts/1.0.0/WMTSCapabilities.xml"
    a = requests.get(url, params={"tk": keyed["key"]}, timeout=60)
    assert a.status_code == 200 and keyed["key"].encode() in a.content
    for _ in range(2):
        _xml_refusal(requests.get(url, timeout=60), 401)
        b = requests.get(url, params={"tk": key_b}, timeout=60)
        assert b.status_code == 200
        assert key_b.encode() in b.content and keyed["key"].encode() not in b.content


def _hrefs(doc) -> list[str]:
    if isinstance(doc, dict):
        return [v for k, v in doc.items() if k == "href" and isinstance(v, str)] + \
            [h for k, v in doc.items() if k != "href" for h in _hrefs(v)]
    if isinstance(doc, list):
        return [h for v in doc for h in _hrefs(v)]
    return []


def test_ogc_api_links_carry_the_key(keyed) -> None:
    """Before: landing page, collections and collection links lost the tk (only paging kept it)."""
    hz, key = keyed["hz"], keyed["key"]
    own = urlsplit(hz).netloc
    for path in ("/ogc", "/ogc/collections", "/ogc/collections/poi",
                 "/ogc/collections/poi/items", "/ogc/collections/poi/tiles"):
        r = requests.get(hz + path, params={"f": "json", "tk": key, "limit": 2}, timeout=60)
        assert r.status_code == 200, (path, r.text[:200])
        assert "no-store" in r.headers.get("Cache-Control", "")
        hrefs = _hrefs(r.json())
        own_links = [h for h in hrefs if urlsplit(h).netloc == own]
        assert own_links, path
        for h in own_links:
            assert parse_qs(urlsplit(h).query).get("tk") == [key], (path, h)


def test_kvp_gettile_is_served_from_nginx_with_the_key_check(keyed) -> None:
    """The nginx fast path covers WMTS KVP GetTile (cached file), and checks the key there."""
    url = keyed["hz"] + "/wmts"
    q = {**KVP_TILE, "TILEMATRIX": "04", "TILEROW": "2", "TILECOL": "13"}
    first = requests.get(url, params={**q, "tk": keyed["key"]}, timeout=120)
    assert first.status_code == 200
    hit = wait_for(lambda: (r := requests.get(url, params={**q, "tk": keyed["key"]}, timeout=60))
                   .headers.get("X-Tile-Cache") == "hit" and r, 30,
                   "the tile is written by MapProxy after its answer, then served by nginx",
                   interval=0.5)
    assert hit is not None and hit.headers.get("X-Tile-Cache") == "hit"
    assert hit.content == first.content
    for headers in ({}, {"Accept": "text/html"}, {"Referer": "https://elsewhere.example/"}):
        _xml_refusal(requests.get(url, params=q, headers=headers, timeout=60), 401)
    bad = requests.get(url, params={**q, "tk": "0123456789abcdef0123456789abcdef"}, timeout=60)
    _xml_refusal(bad, 403)


def test_capabilities_leave_out_hidden_layers(keyed) -> None:
    """Layers the caller may not see are dropped from WMTS, WMS and TMS documents."""
    key = keyed["key"]
    host = urlsplit(keyed["hz"]).netloc
    for path, query in (CAPABILITIES[0], CAPABILITIES[3], CAPABILITIES[5]):
        r = requests.get(keyed["hz"] + path, params={**query, "tk": key}, timeout=60)
        assert b">cva<" in r.content or b"/cva/" in r.content
        out = capabilities.personalise(r.content, host=host, tk=None, hidden={"cva"})
        assert b">cva<" not in out and b"/cva/" not in out
        assert b">vec<" in out or b"/vec/" in out


def test_tianditu_tile_url_for_clients(keyed) -> None:
    """The Tianditu-style GetTile URL with tk still works (and anonymous does not)."""
    ok = requests.get(tdt_url(keyed["hz"], "vec", "c", 5, 6, 26, keyed["key"]), timeout=120)
    assert image(ok).shape == (256, 256, 4)
    _xml_refusal(requests.get(tdt_url(keyed["hz"], "vec", "c", 5, 6, 26), timeout=60), 401)
