"""The node's OGC API HTML pages are geoplat's (issue 16): nodes/ogc_templates/ over pygeoapi's.

In Debian's chromium (Playwright), on the shared federation's Hangzhou and national nodes: the
items and item pages of a layer at `?f=html` load nothing from another origin (every request is
recorded), show no pygeoapi text or logo, carry the node's header (地图/目录/服务状态) and data
notice, and draw a map whose background is the node's e-map (its WMTS tiles are requested and
the map's pixels are not one colour) with the page's features on it; a feature's popup is its
title as text linking to its page; the collection page draws its extent, and Ctrl + drag gives
a `bbox=` with a link to its items; the vector tiles page draws the tiles on the `w` grid's
e-map; the collections page lists the collections; no console error, no CSP violation, every
inline script has the response's nonce.
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

WAIT_MS = 90_000
RECORDER = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
  {directive: e.violatedDirective, blocked: e.blockedURI}));
"""
# (node, layer): points at Hangzhou and the main node, polygons at the main node
LAYERS = [("hangzhou", "poi"), ("national", "cities"), ("national", "provinces")]


@pytest.fixture()
def tab(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.requests = []  # type: ignore[attr-defined]
    page.errors = []  # type: ignore[attr-defined]
    page.failed = []  # type: ignore[attr-defined]
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("response", lambda r: page.failed.append((r.status, r.url)) if r.status >= 400
            else None)
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: page.errors.append(f"console: {m.text}")
            if m.type == "error" else None)
    yield page
    context.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _open(tab: Any, url: str, map_id: str | None) -> Any:
    """The page at `url`, checked: its CSP and nonces, its frame, its map (when it has one)."""
    tab.requests.clear()
    tab.failed.clear()
    r = tab.goto(url)
    assert r is not None and r.status == 200, (url, r and r.status)
    tab.wait_for_load_state("load")
    csp = r.headers.get("content-security-policy", "")
    m = re.search(r"script-src 'self' 'nonce-([0-9a-f]{32})';", csp)
    assert m, csp
    html = r.text()
    for tag in re.finditer(r"<script( [^>]*)?>", html):
        attrs = tag.group(1) or ""
        assert "src=" in attrs or f'nonce="{m.group(1)}"' in attrs, (url, tag.group(0))
    assert not re.search(r"unpkg\.com|jsdelivr|cdnjs|googleapis|gstatic|leaflet", html,
                         re.IGNORECASE)
    # the frame: the node's header, links to its portal pages, the data notice; no pygeoapi
    node = _origin(url)
    nav = tab.eval_on_selector_all("header.geoplat-header nav a",
                                   "els => els.map(e => [e.textContent, e.href])")
    assert [n[0] for n in nav][:3] == ["地图", "目录", "服务状态"], nav
    assert [n[1] for n in nav][:3] == [f"{node}/", f"{node}/catalogue", f"{node}/status"], nav
    assert "不作为中国地图使用" in tab.inner_text("footer")
    visible = tab.inner_text("body")
    assert "pygeoapi" not in visible.lower(), visible[:500]
    assert tab.evaluate("""() => [...document.querySelectorAll('img, link[rel~=icon]')]
        .filter(e => /pygeoapi|logo/i.test(e.src || e.href || '')).length""") == 0
    if map_id:
        tab.wait_for_selector(f"#{map_id}[data-idle='true']", timeout=WAIT_MS)
        assert tab.get_attribute(f"#{map_id}", "data-error") is None, tab.failed
    assert tab.evaluate("() => window.__violations") == [], url
    assert tab.errors == [], (url, tab.errors)
    foreign = [u for u in tab.requests
               if not u.startswith(("data:", "blob:")) and _origin(u) != node]
    assert foreign == [], foreign
    return r


def _map_is_the_emap(tab: Any, map_id: str) -> None:
    """The base map's tiles came from the node's WMTS and the map is not blank."""
    tiles = [u for u in tab.requests if "wmts" in urlsplit(u).path.lower()
             and "getcapabilities" not in u.lower() and "capabilities" not in urlsplit(u).path]
    assert tiles, tab.requests
    img = Image.open(io.BytesIO(tab.locator(f"#{map_id}").screenshot())).convert("RGB")
    w, h = img.size
    inner = img.crop((w // 6, h // 6, w - w // 6, h - h // 6))
    assert len(inner.getcolors(maxcolors=1 << 20) or []) > 20, "the map is (nearly) one colour"
    assert tab.evaluate("() => window.geoplatOgc.source.getFeatures().length") > 0


@pytest.mark.parametrize(("node", "layer"), LAYERS)
def test_items_and_item_pages_are_geoplat_pages_on_the_emap(urls, tab, node, layer) -> None:
    base = f"{urls[node]}/ogc/collections/{layer}"
    _open(tab, f"{base}/items?f=html&limit=10", "items-map")
    _map_is_the_emap(tab, "items-map")
    expected = httpx.get(f"{base}/items", params={"f": "json", "limit": 10}, timeout=60).json()
    ids = [f["id"] for f in expected["features"]]
    drawn = tab.evaluate("() => window.geoplatOgc.source.getFeatures().map(f => f.getId())")
    assert sorted(map(str, drawn)) == sorted(map(str, ids))
    # the paging links and the JSON alternates of pygeoapi's page are still there
    hrefs = tab.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert any("f=json" in (h or "") for h in hrefs) and any("f=jsonld" in (h or "")
                                                            for h in hrefs)
    if expected.get("numberMatched", 0) > 10:
        assert tab.locator("a[role=button]", has_text="Next").count() == 1
    # a popup: the feature's title as text, linking to its item page
    popup = tab.evaluate("""(id) => { const el = window.geoplatOgc.popupFor(id);
        const a = el && el.querySelector('.geoplat-popup-content a');
        return a && {text: a.textContent, href: a.getAttribute('href'),
                     html: el.querySelector('.geoplat-popup-content').innerHTML}; }""", ids[0])
    assert popup and popup["href"].endswith(f"/{layer}/items/{ids[0]}?f=html"), popup
    title_field = {"poi": "name", "cities": "name", "provinces": "name"}[layer]
    first = expected["features"][0]["properties"]
    if title_field in first:
        assert popup["text"] == str(first[title_field]), (popup, first)
    # its item page
    tab.goto("about:blank")
    _open(tab, f"{base}/items/{ids[0]}?f=html", "items-map")
    _map_is_the_emap(tab, "items-map")
    assert tab.evaluate("() => window.geoplatOgc.source.getFeatures()[0].getId()") == ids[0]


def test_collection_page_draws_the_extent_on_the_emap(urls, tab) -> None:
    _open(tab, f"{urls['hangzhou']}/ogc/collections/poi?f=html", "collection-map")
    _map_is_the_emap(tab, "collection-map")
    assert "poi" in tab.inner_text("h1").lower() or "兴趣点" in tab.inner_text("h1")


def test_collection_page_ctrl_drag_gives_a_bbox_and_its_items(urls, tab) -> None:
    """As pygeoapi's page: Ctrl + drag on the map draws a box and tells its `bbox=`; its link
    opens the items in that box."""
    base = f"{urls['hangzhou']}/ogc/collections/poi"
    _open(tab, f"{base}?f=html", "collection-map")
    box = tab.locator("#collection-map").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    tab.keyboard.down("Control")
    tab.mouse.move(x - 80, y - 60)
    tab.mouse.down()
    tab.mouse.move(x, y, steps=5)
    tab.mouse.move(x + 80, y + 60, steps=5)
    tab.mouse.up()
    tab.keyboard.up("Control")
    tab.wait_for_function("() => Boolean(window.geoplatOgc.bbox)")
    bbox = tab.evaluate("() => window.geoplatOgc.bbox")
    west, south, east, north = map(float, bbox.split(","))
    assert 118 < west < east < 122 and 29 < south < north < 31.5, bbox
    content = tab.locator(".geoplat-popup-content")
    assert f"bbox={bbox}" in content.inner_text()
    href = content.locator("a").get_attribute("href")
    assert href == f"/ogc/collections/poi/items?f=html&bbox={bbox.replace(',', '%2C')}", href
    inside = httpx.get(f"{base}/items", params={"f": "json", "bbox": bbox, "limit": 1},
                       timeout=60).json()["numberMatched"]
    _open(tab, urls["hangzhou"] + href, "items-map" if inside else None)
    if inside:
        assert f"Items in this collection: {inside}" in tab.inner_text("body")


def test_vector_tiles_page_draws_the_tiles_on_the_emap(urls, tab) -> None:
    _open(tab, f"{urls['hangzhou']}/ogc/collections/poi/tiles?f=html", "items-map")
    tiles = [u for u in tab.requests if "/collections/poi/tiles/WebMercatorQuad/" in u]
    assert tiles, tab.requests
    assert any("wmts" in urlsplit(u).path.lower() for u in tab.requests), tab.requests
    assert tab.evaluate("() => window.geoplatOgc.map.crs") == "EPSG:3857"
    assert tab.locator("#tilingScheme option").count() >= 1  # pygeoapi's page around it


@pytest.mark.parametrize("node", ["hangzhou", "national"])
def test_collections_and_landing_pages_list_what_the_node_serves(urls, tab, node) -> None:
    base = urls[node]
    listing = httpx.get(f"{base}/ogc/collections", params={"f": "json"}, timeout=60).json()
    _open(tab, f"{base}/ogc/collections?f=html", None)
    hrefs = tab.eval_on_selector_all("a", "els => els.map(e => e.href)")
    for c in listing["collections"]:
        assert any(h.split("?")[0].endswith(f"/collections/{c['id']}") for h in hrefs), c["id"]
    _open(tab, f"{base}/ogc?f=html", None)
    _open(tab, f"{base}/ogc/collections/catalogue/items?f=html", "items-map")
