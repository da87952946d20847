"""The Tianditu JS API 4.0 layer in headless Chromium, on the shared federation: the pages of
services/web/sdk/examples/tianditu-*.html, written in the form of Tianditu's own examples with
the script src `/api?v=4.0&tk=KEY` (the node's demo browser key), served by the node.

Checked against the sample data (hangzhou.gpkg): the service halls LocalSearch returns, the
door plate Geocoder.getPoint finds; and against what the page asked the node (the postStr,
the `tk` on every request, the grid of the tiles). The render gate is the SDK's
`data-idle="true"` on the map element (OpenLayers' rendercomplete), reached through T.Map.
"""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyogrio
import pytest
from PIL import Image
from pyproj import Geod

ROOT = Path(__file__).resolve().parents[2]
GEOD = Geod(ellps="GRS80")
IDLE = "#mapDiv[data-idle='true']"

# pixels of the map's canvases: how many are opaque and how many colours they hold
CANVAS_STATS = """() => {
  const out = {opaque: 0, total: 0, colours: 0};
  const seen = new Set();
  for (const c of document.querySelectorAll('#mapDiv canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4 * 7) {
      out.total++;
      if (d[i + 3] > 0) { out.opaque++; seen.add((d[i] >> 3) + ',' + (d[i+1] >> 3) + ',' + (d[i+2] >> 3)); }
    }
  }
  out.colours = seen.size;
  return out;
}"""

SAMPLE = """() => {
  const c = document.querySelector('#mapDiv canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let i = 0; i < d.length; i += 4 * 997) out.push(d[i], d[i + 1], d[i + 2]);
  return out;
}"""


@pytest.fixture(scope="module")
def halls() -> Any:
    poi = pyogrio.read_dataframe(ROOT / "data-samples" / "hangzhou.gpkg", layer="poi")
    return poi[poi["category"] == "service_hall"]


@pytest.fixture(scope="module")
def plates() -> Any:
    return pyogrio.read_dataframe(ROOT / "data-samples" / "hangzhou.gpkg", layer="addresses")


class Page:
    """A page of the node with what it asked for and what it complained about."""

    def __init__(self, chromium: Any, url: str):
        self.page = chromium.new_page(viewport={"width": 1024, "height": 800})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        # the browser's own /favicon.ico is not the page's doing
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status} {r.url}")
                     if r.status >= 400 and urlsplit(r.url).path != "/favicon.ico" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" and not m.text.startswith("Failed to load resource")
                     else None)
        self.page.goto(url)
        self.page.wait_for_selector(IDLE, timeout=60000)

    def click_and_render(self, selector: str) -> None:
        """Clicks and waits for the map's next rendercomplete (polling with wait_for_function
        would need `eval`, which the node's CSP forbids)."""
        done = self.page.evaluate("""(sel) => new Promise((resolve) => {
          map.getLibMap().once('rendercomplete', () => resolve(true));
          setTimeout(() => resolve(false), 60000);  // a bound, not a wait: fails the test
          document.querySelector(sel).click();
        })""", selector)
        assert done
        self.page.wait_for_selector(IDLE, timeout=60000)

    def close(self) -> None:
        self.page.close()


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def shown(page: Any) -> dict[str, int]:
    """CANVAS_STATS from a screenshot of the map (tiles of another origin taint the canvas)."""
    img = np.asarray(Image.open(io.BytesIO(page.locator("#mapDiv").screenshot())).convert("RGB"))
    px = img.reshape(-1, 3)[::7]
    return {"total": len(px), "opaque": len(px),
            "colours": len({tuple(v) for v in (px >> 3).tolist()})}


def not_blank(stats: dict[str, int]) -> None:
    assert stats["total"] > 10000, stats
    assert stats["opaque"] / stats["total"] > 0.95, stats
    assert stats["colours"] > 20, stats


def test_service_hall_page(browser: Any, urls: dict[str, str], halls: Any,
                           plates: Any) -> None:
    node = urls["hangzhou"]
    p = Page(browser, node + "/sdk/examples/tianditu-service-hall.html")
    page = p.page
    try:
        # the script URL as Tianditu's: /api?v=4.0&tk=KEY, with the node's demo browser key
        api = [u for u in p.requests if urlsplit(u).path == "/api"]
        assert len(api) == 1, api
        key = parse_qs(urlsplit(api[0]).query)["tk"][0]
        assert re.fullmatch(r"[A-Za-z0-9_-]{8,}", key), key
        assert page.evaluate("typeof T.Map") == "function"
        assert page.evaluate("TMAP_NORMAL_MAP instanceof T.MapType")
        # the map renders in the c grid at Tianditu's level 13
        not_blank(page.evaluate(CANVAS_STATS))
        assert page.evaluate("map.getCode()") == "EPSG:4326"
        assert page.evaluate("map.getZoom()") == 13
        res = page.evaluate("map.getLibMap().getView().getResolution()")
        assert res == pytest.approx(0.703125 / 2 ** 12, rel=1e-6)
        tiles = [u for u in p.requests if "/wmts" in urlsplit(u).path]
        assert tiles, p.requests
        for u in tiles:
            assert parse_qs(urlsplit(u).query).get("tk") == [key], u
        assert any("/c/13/" in u or "TILEMATRIX=13" in u.upper() for u in tiles), tiles[:5]
        assert not any("/w/" in urlsplit(u).path for u in tiles), tiles[:5]
        centre = page.evaluate("[map.getCenter().lng, map.getCenter().lat]")
        assert metres(tuple(centre), (120.2130, 30.2460)) < 1

        # the info window opens on a click on the marker
        assert not page.is_visible(".tdt-infowindow")
        page.click(".tdt-marker-icon")
        page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
        assert page.inner_text(".tdt-infowindow-content") == "杭州市民中心政务服务大厅"
        # and closes with its button
        page.click(".tdt-infowindow-close-button")
        page.wait_for_selector(".tdt-infowindow", state="detached", timeout=5000)

        # LocalSearch: the service halls of the view, as the data has them
        bounds = page.evaluate("(() => { const b = map.getBounds(); return [b.getWest(), "
                               "b.getSouth(), b.getEast(), b.getNorth()]; })()")
        with page.expect_request(lambda r: urlsplit(r.url).path == "/v2/search") as req:
            page.click("#searchButton")
        query = parse_qs(urlsplit(req.value.url).query)
        assert query["type"] == ["query"] and query["tk"] == [key]
        post = json.loads(query["postStr"][0])
        assert post["keyWord"] == "政务服务" and post["queryType"] == 1 and post["level"] == 13
        assert post["start"] == 0 and post["count"] == 10
        sent = [float(v) for v in post["mapBound"].split(",")]
        assert sent == pytest.approx(bounds, abs=1e-6)
        page.wait_for_selector("#searchDiv a.poi", timeout=30000)
        found = page.eval_on_selector_all(
            "#searchDiv a.poi", "els => els.map(a => [a.textContent, a.dataset.lonlat])")
        by_name = {r["name"]: (r.geometry.x, r.geometry.y) for _, r in halls.iterrows()}
        inside = {name for name, (x, y) in by_name.items() if "政务服务" in name
                  and bounds[0] <= x <= bounds[2] and bounds[1] <= y <= bounds[3]}
        assert inside, "the view holds no service hall: the test's view is wrong"
        names = [n for n, _ in found]
        assert set(names) >= inside, (names, inside)
        for name, lonlat in found:
            assert name in by_name, f"{name} is not a service hall"
            x, y = (float(v) for v in lonlat.split(","))
            assert metres((x, y), by_name[name]) < 1, name
        count = page.evaluate("localsearch.getCountNumber()")
        assert count == len(found)
        assert f"共{count}条记录，分1页,当前第1页" in page.inner_text("#searchDiv")
        # each result's marker opens its info window with the name and address
        page.wait_for_selector(IDLE, timeout=60000)
        page.click("#searchDiv a.poi >> nth=0")
        page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
        assert page.inner_text(".tdt-infowindow-content").startswith("名称:" + names[0])

        # Geocoder.getPoint: the door plate of the data
        with page.expect_request(lambda r: urlsplit(r.url).path == "/geocoder") as req:
            page.click("#geocodeButton")
        ds = json.loads(parse_qs(urlsplit(req.value.url).query)["ds"][0])
        assert ds == {"keyWord": "浙江省杭州市上城区宏二路2号"}
        page.wait_for_selector("#geocodeDiv:not(:empty)", timeout=30000)
        lng, lat = (float(v) for v in page.inner_text("#geocodeDiv").split(","))
        plate = plates[plates["address"] == "浙江省杭州市上城区宏二路2号"].iloc[0].geometry
        assert metres((lng, lat), (plate.x, plate.y)) < 1
        markers = page.evaluate("map.getOverlays().filter(o => o.getType() === 2)"
                                ".map(o => [o.getLngLat().lng, o.getLngLat().lat])")
        assert any(metres(tuple(m), (plate.x, plate.y)) < 1 for m in markers)
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_web_mercator_map_types_and_click(browser: Any, urls: dict[str, str]) -> None:
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-map.html")
    page = p.page
    try:
        assert page.evaluate("map.getCode()") == "EPSG:900913", "Tianditu's default projection"
        assert page.evaluate("map.getZoom()") == 12
        res = page.evaluate("map.getLibMap().getView().getResolution()")
        assert res == pytest.approx(2 * 20037508.342789244 / 256 / 2 ** 12, rel=1e-6)
        tiles = [u for u in p.requests if "/wmts" in urlsplit(u).path]
        assert tiles and not any("/c/" in urlsplit(u).path for u in tiles), tiles[:5]
        not_blank(page.evaluate(CANVAS_STATS))
        # a click gives Tianditu's event object: the lnglat of the pixel
        size = page.evaluate("[map.getSize().x, map.getSize().y]")
        page.evaluate("map.addEventListener('click', function (e) { window.clicked = {type: "
                      "e.type, target: e.target === map, x: e.containerPoint.x, "
                      "y: e.containerPoint.y, lnglat: e.lnglat instanceof T.LngLat}; })")
        page.mouse.click(size[0] / 2, size[1] / 2)
        page.wait_for_selector("#lnglat:not(:empty)", timeout=5000)
        lng, lat = (float(v) for v in page.inner_text("#lnglat").split(","))
        assert metres((lng, lat), (120.16, 30.27)) < 30  # within a pixel at level 12
        assert page.evaluate("window.clicked") == {"type": "click", "target": True,
                                                   "x": size[0] / 2, "y": size[1] / 2,
                                                   "lnglat": True}
        # TMAP_SATELLITE_MAP shows the imagery: other pixels, from the img layer
        before = page.evaluate(SAMPLE)
        p.requests.clear()
        p.click_and_render("#satellite")
        after = page.evaluate(SAMPLE)
        assert before != after
        img = [u for u in p.requests if "img" in u and "/wmts" in urlsplit(u).path]
        assert img, p.requests[:5]
        assert not any("cia" in u for u in p.requests), "卫星 is the imagery without labels"
        p.requests.clear()
        p.click_and_render("#hybrid")
        assert any("cia" in u for u in p.requests), "卫星混合 adds the imagery labels"
        active = page.inner_text(".tdt-control-maptype button.active")
        assert active == "卫星混合"
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_overlays_click_and_info_window(browser: Any, urls: dict[str, str]) -> None:
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-overlays.html")
    page = p.page
    try:
        kinds = page.evaluate("map.getOverlays().map(o => o.getType())")
        assert sorted(kinds) == [1, 4, 5, 6, 7], kinds
        radius_ok = page.evaluate(
            "(() => { const c = map.getOverlays().find(o => o.getType() === 7);"
            " const b = c.getBounds(); return b.getNorthEast().distanceTo("
            "new T.LngLat(b.getNorthEast().lng, c.getCenter().lat)); })()")
        assert radius_ok == pytest.approx(500, rel=0.01), "a circle of 500 m on the ground"
        pt = page.evaluate("(() => { const p = map.lngLatToContainerPoint("
                           "new T.LngLat(120.213, 30.246)); return [p.x, p.y]; })()")
        page.mouse.click(pt[0], pt[1])
        page.wait_for_selector("#clicked:not(:empty)", timeout=5000)
        assert page.inner_text("#clicked") == "圆：半径500米"
        page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
        assert page.inner_text(".tdt-infowindow-content") == "杭州市民中心"
        assert page.inner_text(".tdt-label") == "钱塘江"
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_reverse_geocoder_and_administrative(browser: Any, urls: dict[str, str],
                                             plates: Any) -> None:
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-geocoder.html")
    page = p.page
    try:
        plate = plates[plates["address"] == "浙江省杭州市上城区宏二路2号"].iloc[0].geometry
        with page.expect_request(lambda r: urlsplit(r.url).path == "/geocoder"
                                 and "postStr" in r.url) as req:
            page.evaluate(f"geocode.getLocation(new T.LngLat({plate.x}, {plate.y}), "
                          "locationResult)")
        q = parse_qs(urlsplit(req.value.url).query)
        assert q["type"] == ["geocode"]
        assert json.loads(q["postStr"][0]) == {"lon": round(plate.x, 6), "lat": round(plate.y, 6),
                                               "ver": 1}
        page.wait_for_selector("#address:not(:empty)", timeout=30000)
        assert page.inner_text("#address") == "浙江省杭州市上城区宏二路2号"
        assert p.errors == [], p.errors
    finally:
        p.close()
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-division.html")
    page = p.page
    try:
        page.click("#search")
        page.wait_for_selector("#msg:not(:empty)", timeout=30000)
        assert page.inner_text("#msg").startswith("上城区（156330102，中心")
        assert page.evaluate("map.getOverlays().filter(o => o.getType() === 5).length") >= 1
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_wrong_key_is_reported_not_a_blank_map(browser: Any, urls: dict[str, str]) -> None:
    """The same layer loaded with a key the node does not know: T.Map's `error` event has the
    node's 401/403 problem, a service callback gets a failed status with the reason."""
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-geocoder.html")
    page = p.page
    try:
        page.evaluate("""() => new Promise((resolve, reject) => {
          const s = document.createElement('script');
          s.src = '/api?v=4.0&tk=' + 'f'.repeat(32);
          s.nonce = document.querySelector('script[nonce]').nonce;
          s.onload = resolve; s.onerror = reject;
          document.head.appendChild(s);
        })""")
        got = page.evaluate("""() => new Promise((resolve) => {
          const div = document.createElement('div');
          div.style.cssText = 'width:300px;height:200px';
          document.body.appendChild(div);
          const m = new T.Map(div, {projection: 'EPSG:4326'});
          m.addEventListener('error', (e) => resolve({status: e.status, detail: e.detail}));
          m.centerAndZoom(new T.LngLat(120.2, 30.25), 12);
        })""")
        assert got["status"] in (401, 403), got
        assert got["detail"], got
        geo = page.evaluate("""() => new Promise((resolve) => new T.Geocoder().getPoint(
          '浙江省杭州市上城区宏二路2号', (r) => resolve([r.getStatus(), r.getMsg()])))""")
        assert geo[0] != 0 and re.search(r"HTTP 40[13]", geo[1]), geo
    finally:
        p.close()


def test_tianditu_tile_url_layer_and_wms(browser: Any, urls: dict[str, str]) -> None:
    """Tianditu's own tile URL (`/img_w/wmts?...TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=`),
    only the host changed, as `new T.Map(el, {layers: [new T.TileLayer(url)]})`, and a
    T.TileLayer.WMS of the node's /wms."""
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-layers.html")
    page = p.page
    try:
        key = parse_qs(urlsplit(next(u for u in p.requests
                                     if urlsplit(u).path == "/api")).query)["tk"][0]
        not_blank(page.evaluate(CANVAS_STATS))
        tdt = [parse_qs(urlsplit(u).query) for u in p.requests
               if urlsplit(u).path == "/img_w/wmts"]
        assert tdt, p.requests[:10]
        for q in tdt:
            assert q["TILEMATRIX"] == ["12"] and q["TILEMATRIXSET"] == ["w"] and q["tk"] == [key]
        # a map given its own layers shows no e-map base layer
        emap = [u for u in p.requests if "/wmts" in urlsplit(u).path
                and urlsplit(u).path != "/img_w/wmts" and "Capabilities" not in u]
        assert emap == [], emap[:5]
        before = page.evaluate(SAMPLE)
        p.click_and_render("#add")
        getmap = [parse_qs(urlsplit(u).query) for u in p.requests if urlsplit(u).path == "/wms"]
        assert getmap, p.requests[-5:]
        q = {k: v[0] for k, v in getmap[0].items()}
        assert {k: q[k] for k in ("REQUEST", "LAYERS", "TRANSPARENT", "FORMAT", "VERSION",
                                   "SRS", "tk")} == {
            "REQUEST": "GetMap", "LAYERS": "cia", "TRANSPARENT": "TRUE", "FORMAT": "image/png",
            "VERSION": "1.1.1", "SRS": "EPSG:3857", "tk": key}
        assert page.evaluate(SAMPLE) != before, "the labels are drawn over the imagery"
        assert page.evaluate("map.getLayers().length") == 2
        page.click("#remove")
        assert page.evaluate("map.getLayers().length") == 1
        assert p.errors == [], p.errors
    finally:
        p.close()


SEARCH = """([how, args]) => new Promise((resolve) => {
  setTimeout(() => resolve({type: 'no answer in 30 s'}), 30000);  // a bound: fails the test
  localsearch.setSearchCompleteCallback((r) => resolve({
    type: r.getResultType(), count: localsearch.getCountNumber(),
    pages: localsearch.getCountPage(), index: localsearch.getPageIndex(),
    pois: (r.getPois() || []).map((p) => [p.name, p.lonlat])}));
  if (how === 'search') localsearch.search(args[0], args[1]);
  if (how === 'nearby') localsearch.searchNearby(args[0], new T.LngLat(args[1], args[2]), args[3]);
  if (how === 'page') localsearch.gotoPage(args[0]);
  if (how === 'next') localsearch.nextPage();
})"""


def test_local_search_paging_nearby_admin_code_and_events(browser: Any,
                                                          urls: dict[str, str],
                                                          halls: Any) -> None:
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-service-hall.html")
    page = p.page
    try:
        posts: list[dict[str, Any]] = []
        page.on("request", lambda r: posts.append(json.loads(
            parse_qs(urlsplit(r.url).query)["postStr"][0]))
            if urlsplit(r.url).path == "/v2/search" else None)
        by_name = {r["name"]: (r.geometry.x, r.geometry.y, r["district"])
                   for _, r in halls.iterrows()}
        # zoomend on T.Map with Tianditu's event object
        ev = page.evaluate("""() => new Promise((resolve) => {
          map.addEventListener('zoomend', function (e) {
            resolve([e.type, e.target === map, this === map, map.getZoom()]); });
          setTimeout(() => resolve('no zoomend'), 10000);  // a bound: fails the test
          map.setZoom(11);
        })""")
        assert ev == ["zoomend", True, True, 11]
        page.wait_for_selector(IDLE, timeout=60000)

        # pages of 2, counted from 1; start = (page - 1) * 2
        page.evaluate("localsearch.setPageCapacity(2)")
        first = page.evaluate(SEARCH, ["search", ["便民服务中心", 1]])
        assert first["type"] == 1 and first["index"] == 1 and len(first["pois"]) == 2
        assert first["count"] > 4, first
        assert first["pages"] == -(-first["count"] // 2)
        second = page.evaluate(SEARCH, ["next", []])
        assert second["index"] == 2 and len(second["pois"]) == 2
        last = page.evaluate(SEARCH, ["page", [first["pages"]]])
        assert last["index"] == first["pages"]
        assert len(last["pois"]) == first["count"] - 2 * (first["pages"] - 1)
        seen = [n for r in (first, second, last) for n, _ in r["pois"]]
        assert len(set(seen)) == len(seen), "pages do not repeat a result"
        assert all(name in by_name for name in seen)
        assert [(q["queryType"], q["start"], q["count"]) for q in posts] == [
            (1, 0, 2), (1, 2, 2), (1, 2 * (first["pages"] - 1), 2)]

        # searchNearby: queryType 3, and every result within the radius (the data's positions)
        posts.clear()
        page.evaluate("localsearch.setPageCapacity(20)")
        near = page.evaluate(SEARCH, ["nearby", ["便民服务中心", 120.2130, 30.2460, 3000]])
        assert posts[-1]["queryType"] == 3 and posts[-1]["pointLonlat"] == "120.213,30.246"
        assert posts[-1]["queryRadius"] == "3000"
        got = {n for n, _ in near["pois"]}
        expected = {n for n, (x, y, _) in by_name.items() if "便民服务中心" in n
                    and metres((x, y), (120.2130, 30.2460)) <= 3000}
        assert expected and got == expected, (got, expected)

        # setSpecifyAdminCode: `specify`, and only 上城区's halls
        posts.clear()
        page.evaluate("localsearch.setSpecifyAdminCode('156330102')")
        spec = page.evaluate(SEARCH, ["search", ["便民服务中心", 1]])
        assert posts[-1]["specify"] == "156330102"
        assert spec["pois"] and all(by_name[n][2] == "上城区" for n, _ in spec["pois"]), spec

        # type 4: suggestions from the node's type-ahead (pinyin initials of 杭州市民中心)
        with page.expect_request(lambda r: urlsplit(r.url).path == "/api/places/suggest") as sr:
            sug = page.evaluate("""() => new Promise((resolve) => {
              setTimeout(() => resolve('no answer in 30 s'), 30000);  // a bound: fails the test
              localsearch.setSearchCompleteCallback((r) => resolve([r.getResultType(),
                r.getSuggests().map((x) => x.name)]));
              localsearch.search('hzsmzx', 4);
            })""")
        assert parse_qs(urlsplit(sr.value.url).query)["q"] == ["hzsmzx"]
        assert sug[0] == 4 and any("市民中心" in n for n in sug[1]), sug

        # overlays: the page's own search puts a marker per result; then removal and clearing
        page.evaluate("localsearch.setSearchCompleteCallback(localSearchResult)")
        page.click("#searchButton")
        page.wait_for_selector("#searchDiv a.poi", timeout=30000)
        n_markers = page.locator(".tdt-marker-icon").count()
        assert n_markers == page.evaluate("map.getOverlays().length") > 1
        page.evaluate("map.removeOverLay(map.getOverlays()[0])")
        assert page.locator(".tdt-marker-icon").count() == n_markers - 1
        page.click(".tdt-marker-icon >> nth=0")
        page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
        page.evaluate("map.clearOverLays()")
        assert page.locator(".tdt-marker-icon").count() == 0
        assert page.locator(".tdt-infowindow").count() == 0
        assert page.evaluate("map.getOverlays().length") == 0
        assert p.errors == [], p.errors
    finally:
        p.close()


# Tianditu's example form untouched (inline script, <body onLoad>, onClick attributes): only the
# script src changed. No CSP on a developer's own server, so it runs as written there.
OWN_PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta http-equiv="content-type" content="text/html; charset=utf-8"/>
    <title>天地图－地图API－范例－添加标注与信息窗口</title>
    <script type="text/javascript" src="NODE/api?v=4.0&tk=KEY"></script>
    <style type="text/css">body,html{width:100%;height:100%;margin:0}#mapDiv{width:100%;height:400px}</style>
    <script>
        var map;
        var zoom = 14;
        function onLoad() {
            map = new T.Map('mapDiv', {projection: 'EPSG:4326'});
            map.centerAndZoom(new T.LngLat(120.2130, 30.2460), zoom);
            var marker = new T.Marker(new T.LngLat(120.2130, 30.2460));
            map.addOverLay(marker);
            var markerInfoWin = new T.InfoWindow("杭州市民中心政务服务大厅");
            marker.addEventListener("click", function () {
                marker.openInfoWindow(markerInfoWin);
            });
        }
    </script>
</head>
<body onLoad="onLoad()">
<div id="mapDiv"></div>
<p><a id="zoomIn" href="javascript://" onClick="map.zoomIn()">放大</a></p>
</body>
</html>
"""


def test_unchanged_tianditu_page_on_its_own_origin(browser: Any, urls: dict[str, str],
                                                    main_db: Any) -> None:
    """A developer's own server with Tianditu's page as written, the script src pointing at
    the node, and a browser key registered for that page's origin."""
    from services.access import apikeys
    from services.sso import accounts

    class Handler(BaseHTTPRequestHandler):
        body = b""

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    user = accounts.create(main_db, "tianditu_own_origin", "tianditu-own-origin-pw-1",
                           roles=["developer"])
    key, _ = apikeys.create_key(main_db, "test", user.id, "tianditu page", "browser", [origin],
                                actor="test")
    node = urls["hangzhou"]
    Handler.body = OWN_PAGE.replace("NODE", node).replace("KEY", key).encode()
    try:
        p = Page(browser, origin + "/")
        page = p.page
        try:
            not_blank(shown(page))
            tiles = [u for u in p.requests if "/wmts" in urlsplit(u).path]
            assert tiles and all(parse_qs(urlsplit(u).query).get("tk") == [key] for u in tiles)
            assert page.evaluate("map.getZoom()") == 14
            page.click(".tdt-marker-icon")
            page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
            assert page.inner_text(".tdt-infowindow-content") == "杭州市民中心政务服务大厅"
            # an onClick attribute with href="javascript://"; zoomIn animates, zoomend ends it
            zoomed = page.evaluate("""() => new Promise((resolve) => {
              map.addEventListener('zoomend', () => resolve(map.getZoom()));
              setTimeout(() => resolve('no zoomend'), 10000);  // a bound: fails the test
              document.getElementById('zoomIn').click();
            })""")
            assert zoomed == 15
            page.wait_for_selector(IDLE, timeout=60000)
            assert p.errors == [], p.errors
        finally:
            p.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("crs", "code", "resolution"), [
    ("EPSG:4490", "EPSG:4326", 0.703125 / 2 ** 11),
    ("EPSG:3857", "EPSG:900913", 2 * 20037508.342789244 / 256 / 2 ** 12)])
def test_basic_map_view_from_its_url(browser: Any, urls: dict[str, str], crs: str, code: str,
                                     resolution: float) -> None:
    """The page bench/web.py compares with geoplat-map.html: the same view parameters."""
    p = Page(browser, urls["hangzhou"] + f"/sdk/examples/tianditu-basic-map.html?crs={crs}"
             "&lon=120.155&lat=30.25&zoom=12")
    try:
        page = p.page
        not_blank(page.evaluate(CANVAS_STATS))
        assert page.evaluate("map.getCode()") == code
        assert page.evaluate("map.getZoom()") == 12
        assert page.evaluate("map.getLibMap().getView().getResolution()") == pytest.approx(
            resolution, rel=1e-6)
        centre = page.evaluate("[map.getCenter().lng, map.getCenter().lat]")
        assert metres(tuple(centre), (120.155, 30.25)) < 1
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_service_hall_page_shows_hostile_place_text_as_text(browser: Any,
                                                            urls: dict[str, str]) -> None:
    """A search answer whose name and address hold HTML (a publisher's data is hostile input):
    the example's list and info window show it as text, no element is made of it."""
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-service-hall.html")
    page = p.page
    try:
        evil = '<img src=x id=evil onerror="window.owned=1">'
        # the page's own onSearchComplete callback, given such an answer
        page.evaluate("""(evil) => localSearchResult({getResultType: () => 1, getPois: () => [
          {name: evil, address: '<b id=bold>x</b>', lonlat: '120.2130,30.2460'}]})""", evil)
        page.wait_for_selector("#searchDiv a.poi", timeout=5000)
        assert page.inner_text("#searchDiv a.poi") == evil
        page.click("#searchDiv a.poi")
        page.wait_for_selector(".tdt-infowindow", state="visible", timeout=5000)
        assert page.inner_text(".tdt-infowindow-content") == f"名称:{evil}\n地址:<b id=bold>x</b>"
        assert page.locator("#evil").count() == 0 and page.locator("#bold").count() == 0
        assert page.evaluate("window.owned") is None
    finally:
        p.close()
