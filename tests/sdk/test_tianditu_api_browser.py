"""The Tianditu JS API 4.0 layer's classes in headless Chromium on the shared federation,
through the other example pages (services/web/sdk/examples/tianditu-*.html): both grids and
Tianditu's level numbers, map types, events, overlays, tile URL and WMS layers, LocalSearch
paging/nearby/admin code/suggestions, reverse geocoding, administrative divisions, and a
wrong key reported as an error event.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tianditu_support import (
    CANVAS_STATS,
    IDLE,
    SAMPLE,
    Page,
    metres,
    not_blank,
)


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
                                             plates: Any, dev_key: str) -> None:
    """With a developer's own key (`?tk=`): door plates are `registered`."""
    p = Page(browser, urls["hangzhou"] + f"/sdk/examples/tianditu-geocoder.html?tk={dev_key}")
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


def test_style_bounds_and_resize(browser: Any, urls: dict[str, str]) -> None:
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-basic-map.html")
    page = p.page
    try:
        plain = page.evaluate(SAMPLE)
        # setStyle("black") draws the base map darker; removeStyle gives the same pixels back
        page.evaluate("""() => new Promise((resolve) => {
          map.getLibMap().once('rendercomplete', resolve); map.setStyle('black'); })""")
        dark = page.evaluate(SAMPLE)
        assert sum(dark) < sum(plain) * 0.8, (sum(dark), sum(plain))
        page.evaluate("""() => new Promise((resolve) => {
          map.getLibMap().once('rendercomplete', resolve); map.removeStyle(); })""")
        assert page.evaluate(SAMPLE) == plain
        with pytest.raises(Exception, match="black"):
            page.evaluate("map.setStyle('pink')")
        # setMaxBounds holds the centre inside
        centre = page.evaluate("""() => {
          map.setMaxBounds(new T.LngLatBounds(new T.LngLat(120.3, 30.3), new T.LngLat(120.4, 30.4)));
          const c = map.getCenter(); return [c.lng, c.lat]; }""")
        assert centre == pytest.approx([120.3, 30.3], abs=1e-9)
        # checkResize after the container changed: the new size, and a resize event
        got = page.evaluate("""() => new Promise((resolve) => {
          map.addEventListener('resize', (e) => resolve([e.newSize.x, e.newSize.y, e.oldSize.x]));
          setTimeout(() => resolve('no resize'), 10000);  // a bound: fails the test
          document.getElementById('mapDiv').style.right = '224px';
          map.checkResize();
        })""")
        assert got == [800, 760, 1024], got
        assert page.evaluate("[map.getSize().x, map.getSize().y]") == [800, 760]
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_driving_route_reads_the_nodes_drive_answer(browser: Any, urls: dict[str, str],
                                                    demo: dict[str, str]) -> None:
    """T.DrivingRoute sends /drive and fills Tianditu's getters from its XML (issue 15)."""
    orig, dest = (120.2130, 30.2460), (120.1600, 30.2700)
    post = json.dumps({"orig": f"{orig[0]},{orig[1]}", "dest": f"{dest[0]},{dest[1]}",
                       "mid": "", "style": "0"})
    xml = httpx.get(urls["hangzhou"] + "/drive", timeout=60, params={
        "postStr": post, "type": "search", "tk": demo["server_key"]}).text
    root = ET.fromstring(xml)
    p = Page(browser, urls["hangzhou"] + "/sdk/examples/tianditu-geocoder.html")
    page = p.page
    try:
        got = page.evaluate("""([o, d]) => new Promise((resolve) => {
          const route = new T.DrivingRoute(map, {policy: 0, onSearchComplete: (r) => {
            const plan = r.getPlan(0);
            const seg = plan.getRoute(0);
            resolve({status: r.getStatus(), plans: r.getNumPlans(), km: plan.getDistance(),
                     s: plan.getDuration(), path: plan.getPath().length,
                     first: plan.getPath()[0] instanceof T.LngLat,
                     routes: plan.getNumRoutes(), step: seg.getStep(0).getDescription(),
                     same: route.getResults() === r});
          }});
          route.search(new T.LngLat(o[0], o[1]), new T.LngLat(d[0], d[1]));
        })""", [list(orig), list(dest)])
        line = [c for c in (root.findtext("routelatlon") or "").split(";") if c]
        assert got == {"status": 0, "plans": 1, "km": float(root.findtext("distance") or 0),
                       "s": float(root.findtext("duration") or 0), "path": len(line),
                       "first": True, "routes": len(root.findall("simple/item")),
                       "step": root.findtext("routes/item/strguide"), "same": True}
        assert got["km"] > 0 and got["path"] > 1
        assert p.errors == [], p.errors
    finally:
        p.close()
