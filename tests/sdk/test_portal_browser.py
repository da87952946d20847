"""The portal at every node's `/` (issue 16, first part) in headless Chromium against the shared
federation's Hangzhou node: `/` is HTML for a browser and the landing JSON for scripts; the
map renders and `img` changes its pixels; the URL after panning gives the same view and layers
in a new page; a click on the known service hall with `poi` shown identifies it by name; the
POI table filtered to `category = 'service_hall'` counts what the server's CQL query does and
a row highlights its feature; `市民中心` + Enter centres the map on it; an anonymous user's
layer tree lacks the registered and restricted layers; a measured segment and polygon equal
pyproj.Geod's on the CGCS2000 (GRS80) ellipsoid."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from portal_pages import layer_loaded, open_portal
from publish_helpers import served, sign_in_users
from pyproj import Geod
from sdk_pages import IDLE, colours, differing, pixel_of, rerender, snapshot
from waiting import wait_for

HALL = (120.2130, 30.2460)
HALL_NAME = "杭州市民中心政务服务大厅"
PASSWORD = "Portal-Page-Pass-1"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HOSTILE = '<img src=x onerror="window.hacked=1">测试</dd><b>粗'
SPOT = (120.2400, 30.2300)  # the published point of the hostile layer (no sample POI there)
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid (f differs from GRS80's in the 12th digit)


def anonymous_features(base: str, headers: dict[str, str] | None = None) -> set[str]:
    """The feature collections the node lists (for the caller of `headers`): layers other
    tests published are in it too."""
    return set(feature_titles(base, headers))


def feature_titles(base: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    listing = httpx.get(base + "/ogc/collections", params={"f": "json"}, headers=headers or {},
                        timeout=60).json()
    return {c["id"]: c.get("title", "") for c in listing["collections"]
            if c.get("itemType", "feature") == "feature"}


def test_front_page_is_html_for_browsers_and_json_for_scripts(urls, demo) -> None:
    base = urls["hangzhou"]
    plain = httpx.get(base + "/", timeout=60)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    landing = plain.json()
    assert landing["node"]["id"] == "hangzhou" and landing["links"]
    for headers, params in (({"Accept": "application/json"}, {}), ({"Accept": "*/*"}, {}),
                            ({"Accept": BROWSER_ACCEPT}, {"f": "json"}),
                            ({"Accept": "text/html;q=0.5, application/json"}, {})):
        r = httpx.get(base + "/", headers=headers, params=params, timeout=60)
        assert r.status_code == 200 and r.json() == landing, (headers, params)
        assert "Accept" in r.headers.get("vary", "")
    for headers, params in (({"Accept": BROWSER_ACCEPT}, {}), ({}, {"f": "html"})):
        page = httpx.get(base + "/", headers=headers, params=params, timeout=60)
        assert page.status_code == 200, (headers, params)
        assert page.headers["content-type"].startswith("text/html")
        nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
        assert f'id="portal-config" nonce="{nonce}"' in page.text
        assert demo["browser_key"] in page.text and demo["server_key"] not in page.text
        assert "杭州市地理信息公共服务平台" in page.text  # branded with the node's title
        assert not re.search(r"\son[a-z]+=", page.text), "no inline handlers (CSP)"
    assert httpx.get(base + "/", params={"f": "xml"}, timeout=60).status_code == 400
    script = httpx.get(base + "/sdk/portal.js", timeout=60)
    assert script.status_code == 200 and "portal-config" in script.text
    assert "innerHTML" not in script.text, "API text goes into the DOM as text only"


def test_map_renders_and_img_changes_the_pixels_english_toggle(browser, urls) -> None:
    page = open_portal(browser, urls["hangzhou"] + "/#c=120.16,30.27&z=12")
    try:
        assert page.title().startswith("杭州市地理信息公共服务平台")
        vec = snapshot(page, inner=0.6)
        assert colours(vec) > 30, "the map is not blank"
        rerender(page, "document.querySelector('input[name=basemap][value=img]').click()")
        img = snapshot(page, inner=0.6)
        assert differing(vec, img) > 0.3
        assert "b=img" in urlsplit(page.url).fragment
        assert page.inner_text("#lang") == "English"
        page.click("#lang")
        assert page.inner_text("#lang") == "中文"
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text("#basemaps") .count("Imagery") == 1
        assert page.errors == []
    finally:
        page.context.close()


def test_the_url_after_panning_restores_the_view_and_layers(browser, urls) -> None:
    page = open_portal(browser, urls["hangzhou"] + "/#c=120.18,30.26&z=13&l=poi:1")
    try:
        page.fill("li[data-layer='poi'] input.opacity", "0.5")
        page.check("#layer-roads")
        box = page.locator("#map").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - 150, y + 90, steps=8)
        page.mouse.up()
        page.wait_for_function("() => !location.hash.startsWith('#c=120.1800000,')",
                               timeout=30_000)
        page.wait_for_selector(IDLE, timeout=90_000)
        url = page.url
        view = page.evaluate("() => ({c: map.getCenter(), z: map.getZoom(),"
                             " r: map.getLibMap().getView().getResolution()})")
        assert view["z"] == 13 and abs(view["c"][0] - 120.18) > 0.001
        assert "l=roads:1,poi:0.5" in urlsplit(url).fragment or \
            "l=poi:0.5,roads:1" in urlsplit(url).fragment
        again = open_portal(browser, url)
        try:
            same = again.evaluate("() => ({c: map.getCenter(), z: map.getZoom()})")
            assert same["z"] == view["z"]
            # the same centre to a pixel (the URL keeps 1e-7 degrees)
            assert abs(same["c"][0] - view["c"][0]) < view["r"]
            assert abs(same["c"][1] - view["c"][1]) < view["r"]
            shown = again.evaluate("() => portal.layers.shown()")
            assert {s["id"]: s["opacity"] for s in shown} == {"poi": 0.5, "roads": 1}
            assert again.is_checked("#layer-poi") and again.is_checked("#layer-roads")
            assert not again.is_checked("#layer-buildings")
            assert again.input_value("li[data-layer='poi'] input.opacity") == "0.5"
        finally:
            again.context.close()
    finally:
        page.context.close()


def test_the_w_grid_draws_vector_tiles_and_keeps_the_view(browser, urls, demo) -> None:
    page = open_portal(browser, urls["hangzhou"] + f"/#c={HALL[0]},{HALL[1]}&z=15&l=poi:1")
    try:
        layer_loaded(page, "poi")
        before = page.evaluate("() => ({c: map.getCenter(), z: map.getZoom()})")
        mvt: list[str] = []
        page.on("request", lambda r: mvt.append(r.url) if "f=mvt" in r.url else None)
        page.check("input[name=grid][value=w]")
        page.wait_for_function("() => map.projection.getCode() === 'EPSG:3857'",
                               timeout=30_000)
        page.wait_for_selector(IDLE, timeout=90_000)
        after = page.evaluate("() => ({c: map.getCenter(), z: map.getZoom()})")
        assert after["z"] == before["z"]
        assert abs(after["c"][0] - before["c"][0]) < 1e-6
        assert abs(after["c"][1] - before["c"][1]) < 1e-6
        assert "g=w" in urlsplit(page.url).fragment
        poi_tiles = [u for u in mvt if "/collections/poi/tiles/WebMercatorQuad/" in u]
        assert poi_tiles and all(f"tk={demo['browser_key']}" in u for u in poi_tiles)
        x, y = pixel_of(page, HALL)
        page.locator("#map").click(position={"x": x, "y": y})
        page.wait_for_selector("#identify section[data-layer='poi']", timeout=30_000)
        assert HALL_NAME in page.inner_text("#identify")
        assert page.errors == []
    finally:
        page.context.close()


def test_clicking_the_service_hall_identifies_it(browser, urls) -> None:
    page = open_portal(browser, urls["hangzhou"] + f"/#c={HALL[0]},{HALL[1]}&z=16&l=poi:1")
    try:
        layer_loaded(page, "poi")
        x, y = pixel_of(page, HALL)
        page.locator("#map").click(position={"x": x, "y": y})
        page.wait_for_selector("#identify section[data-layer='poi']", timeout=30_000)
        text = page.inner_text("#identify")
        assert HALL_NAME in text and "service_hall" in text
        # titles of the collection's queryables head the values
        titles = page.eval_on_selector_all("#identify section[data-layer='poi'] dt",
                                           "els => els.map((e) => e.textContent)")
        assert "name" in titles and "category" in titles
        values = page.eval_on_selector_all("#identify section[data-layer='poi'] dd",
                                           "els => els.map((e) => e.textContent)")
        hall_id = httpx.get(urls["hangzhou"] + "/ogc/collections/poi/items", timeout=60, params={
            "f": "json", "filter": f"name = '{HALL_NAME}'"}).json()["features"][0]["id"]
        assert dict(zip(titles, values))["fid"] == str(hall_id)
        assert page.evaluate("() => portal.highlightLayer.getSource().getFeatures().length") >= 1
        assert page.errors == []
    finally:
        page.context.close()


def test_the_poi_table_filtered_counts_as_the_server_and_a_row_highlights(browser,
                                                                          urls) -> None:
    base = urls["hangzhou"]
    expected = httpx.get(base + "/ogc/collections/poi/items", timeout=60, params={
        "f": "json", "limit": "1", "filter": "category = 'service_hall'"}).json()
    assert expected["numberMatched"] > 0
    page = open_portal(browser, base + "/#c=120.18,30.26&z=12")
    try:
        page.click("li[data-layer='poi'] button.table")
        page.wait_for_selector("#table-body tr", timeout=30_000)
        page.select_option("#tf-field", "category")
        page.select_option("#tf-op", "=")
        page.fill("#tf-value", "service_hall")
        page.click("#table-filter button[type=submit]")
        page.wait_for_selector("#table-panel[data-loading='false']"
                               "[data-filter=\"category = 'service_hall'\"]", timeout=30_000)
        assert page.get_attribute("#table-count", "data-matched") == \
            str(expected["numberMatched"])
        cells = page.eval_on_selector_all("#table-body tr", "rows => rows.length")
        assert cells == min(20, expected["numberMatched"])
        first = page.locator("#table-body tr").first
        fid = first.get_attribute("data-id")
        assert page.inner_text("#table-head th") == "fid"  # the id column: the feature's id
        assert first.locator("td").first.inner_text() == fid
        first.click()
        assert page.evaluate("() => portal.highlighted.map(String)") == [fid]
        hit = httpx.get(f"{base}/ogc/collections/poi/items/{fid}", params={"f": "json"},
                        timeout=60).json()
        lon, lat = hit["geometry"]["coordinates"]
        # zoomed to it (an animation: until it ends at the point, level 18)
        page.wait_for_function("([lon, lat]) => { const c = map.getCenter(); return "
                               "map.getZoom() === 18 && Math.abs(c[0] - lon) < 1e-6 && "
                               "Math.abs(c[1] - lat) < 1e-6; }", arg=[lon, lat], timeout=30_000)
        assert page.evaluate("() => portal.highlightLayer.getSource().getFeatures().length") == 1
        # a quote cannot end the string (pygeoapi's CQL text has no escape for it): refused
        # in the page with a message, and the table stays as it was
        page.fill("#tf-value", "x' OR '1'='1")
        page.click("#table-filter button[type=submit]")
        page.wait_for_selector("#status:has-text(\"'\")", timeout=10_000)
        assert page.get_attribute("#table-panel", "data-filter") == "category = 'service_hall'"
        assert page.get_attribute("#table-count", "data-matched") == \
            str(expected["numberMatched"])
        # LIKE: contains
        page.select_option("#tf-field", "name")
        page.select_option("#tf-op", "LIKE")
        page.fill("#tf-value", "市民中心")
        page.click("#table-filter button[type=submit]")
        page.wait_for_selector("#table-panel[data-loading='false'][data-filter*='LIKE']",
                               timeout=30_000)
        assert HALL_NAME in page.inner_text("#table-body")
    finally:
        page.context.close()


def test_the_table_sorts_as_the_server_and_a_map_click_selects_its_row(browser, urls) -> None:
    base = urls["hangzhou"]
    page = open_portal(browser, base + f"/#c={HALL[0]},{HALL[1]}&z=16&l=poi:1")
    try:
        layer_loaded(page, "poi")
        page.click("li[data-layer='poi'] button.table")
        page.wait_for_selector("#table-body tr", timeout=30_000)
        for sortby in ("+name", "-name"):
            page.click("#table-head th[data-field='name']")
            page.wait_for_selector(f"#table-panel[data-loading='false'][data-sort='{sortby}']",
                                   timeout=30_000)
            served_ids = [str(f["id"]) for f in httpx.get(
                base + "/ogc/collections/poi/items", timeout=60,
                params={"f": "json", "limit": "20", "sortby": sortby}).json()["features"]]
            shown = page.eval_on_selector_all("#table-body tr", "rows => rows.map((r) => r.dataset.id)")
            assert shown == served_ids, sortby
        assert page.get_attribute("#table-head th[data-field='name']", "aria-sort") == "descending"
        page.click("#table-head th[data-field='name']")  # back to the node's order
        page.wait_for_selector("#table-panel[data-loading='false'][data-sort='']", timeout=30_000)
        page.select_option("#tf-field", "category")
        page.fill("#tf-value", "service_hall")
        page.click("#table-filter button[type=submit]")
        page.wait_for_selector("#table-panel[data-loading='false'][data-filter*='service_hall']",
                               timeout=30_000)
        hall_id = str(httpx.get(base + "/ogc/collections/poi/items", timeout=60, params={
            "f": "json", "filter": f"name = '{HALL_NAME}'"}).json()["features"][0]["id"])
        assert page.locator(f"#table-body tr[data-id='{hall_id}']").count() == 1
        assert page.locator("#table-body tr.selected").count() == 0
        x, y = pixel_of(page, HALL)
        page.locator("#map").click(position={"x": x, "y": y})
        page.wait_for_selector(f"#table-body tr.selected[data-id='{hall_id}']", timeout=30_000)
        assert page.locator("#table-body tr.selected").count() == 1
        assert page.errors == []
    finally:
        page.context.close()


def test_search_and_enter_centres_the_map_on_it(browser, urls) -> None:
    base = urls["hangzhou"]
    first = httpx.get(base + "/api/places/suggest", params={"q": "市民中心"}, timeout=60
                      ).json()["features"][0]
    page = open_portal(browser, base + "/#c=120.0,30.1&z=11")
    try:
        page.fill("#q", "市民中心")
        page.press("#q", "Enter")
        page.wait_for_function("() => !!portal.picked", timeout=30_000)
        centre = page.evaluate("() => map.getCenter()")
        lon, lat = first["geometry"]["coordinates"]
        assert abs(centre[0] - lon) < 1e-6 and abs(centre[1] - lat) < 1e-6
        assert page.evaluate("() => portal.picked.name") == first["properties"]["name"]
        assert abs(lon - HALL[0]) < 1e-3 and abs(lat - HALL[1]) < 1e-3
    finally:
        page.context.close()


def test_anonymous_users_see_no_registered_or_restricted_layer(browser, urls) -> None:
    page = open_portal(browser, urls["hangzhou"] + "/")
    try:
        assert page.get_attribute("body", "data-user") == "anonymous"
        tree = set(page.eval_on_selector_all("#layers li[data-layer]",
                                             "els => els.map((e) => e.dataset.layer)"))
        assert "poi" in tree and "parcels" in tree
        assert not tree & {"addresses", "control_points"}
        assert tree == anonymous_features(urls["hangzhou"])
        page.fill("#layer-filter", "兴趣点")
        shown = page.eval_on_selector_all("#layers li[data-layer]:not([hidden])",
                                          "els => els.map((e) => e.dataset.layer)")
        titles = feature_titles(urls["hangzhou"])  # other tests' layers may hold 兴趣点 too
        assert "poi" in shown and "addresses" not in shown
        assert set(shown) == {k for k, t in titles.items() if "兴趣点" in t or "兴趣点" in k}
    finally:
        page.context.close()


def test_signed_in_users_see_what_their_token_may(browser, urls, main_db) -> None:
    """A registered user's tree has `addresses`; Hangzhou's admin's has `control_points` too."""
    users = sign_in_users(main_db, urls["national"], "portal", {
        "plain": [], "admin": ["hangzhou:admin"]}, PASSWORD)
    expected = {"plain": {"addresses"}, "admin": {"addresses", "control_points"}}
    for name, headers in users.items():
        token = headers["Authorization"].split(" ", 1)[1]
        page = open_portal(browser, urls["hangzhou"] + "/", token=token)
        try:
            assert page.get_attribute("body", "data-user") == "signed-in"
            tree = set(page.eval_on_selector_all("#layers li[data-layer]",
                                                 "els => els.map((e) => e.dataset.layer)"))
            assert tree == anonymous_features(urls["hangzhou"], headers), name
            assert expected[name] <= tree - anonymous_features(urls["hangzhou"]), name
            assert ("control_points" in tree) is (name == "admin")
        finally:
            page.context.close()


def click_points(page: Any, points: list[tuple[float, float]]) -> list[list[float]]:
    """Clicks each point (a double click on the last) and returns the lon/lat the page took."""
    for i, point in enumerate(points):
        x, y = pixel_of(page, point)
        if i == len(points) - 1:
            page.locator("#map").dblclick(position={"x": x, "y": y})
        else:
            page.locator("#map").click(position={"x": x, "y": y})
    page.wait_for_selector("#measure-out[data-done='true']", timeout=10_000)
    return page.evaluate("() => portal.measure.last.points")


def test_measured_lengths_and_areas_equal_pyproj_geod(browser, urls) -> None:
    page = open_portal(browser, urls["hangzhou"] + "/#c=120.19,30.26&z=13")
    try:
        page.click("#measure-line")
        a, b = (120.17, 30.25), (120.215, 30.275)
        taken = click_points(page, [a, b])
        assert len(taken) == 2
        res = page.evaluate("() => map.getLibMap().getView().getResolution()")
        for want, got in zip((a, b), taken):
            assert abs(want[0] - got[0]) < 2 * res and abs(want[1] - got[1]) < 2 * res
        metres = float(page.get_attribute("#measure-out", "data-metres"))
        geod = GEOD.inv(taken[0][0], taken[0][1], taken[1][0], taken[1][1])[2]
        assert abs(metres - geod) / geod < 1e-4, (metres, geod)
        assert 4000 < metres < 6000
        assert page.is_visible("#measure-out") and "km" in page.inner_text("#measure-out")
        page.click("#measure-area")
        ring = [(120.17, 30.25), (120.21, 30.25), (120.21, 30.275), (120.17, 30.27)]
        taken = click_points(page, ring)
        assert len(taken) == 4
        area = float(page.get_attribute("#measure-out", "data-square-metres"))
        lons, lats = zip(*taken)
        geod_area = abs(GEOD.polygon_area_perimeter(lons, lats)[0])
        assert abs(area - geod_area) / geod_area < 1e-4, (area, geod_area)
        assert "公顷" in page.inner_text("#measure-out")
        assert page.evaluate("() => map.getZoom()") == 13, "a double click ends, never zooms"
        assert page.locator("#identify").count() == 0, "measuring clicks identify nothing"
    finally:
        page.context.close()


def test_picked_coordinate_in_degrees_dms_and_gauss_krueger(browser, urls) -> None:
    """A picked point: decimal degrees, DMS, and the CGCS2000 3-degree Gauss-Krüger
    coordinate of its zone equal to pyproj's (EPSG:4549, central meridian 120E) within 1 mm."""
    from pyproj import Transformer

    page = open_portal(browser, urls["hangzhou"] + "/#c=120.19,30.26&z=13")
    try:
        page.click("#pick-point")
        assert page.get_attribute("#pick-point", "aria-pressed") == "true"
        x, y = pixel_of(page, (120.2130, 30.2460))
        page.locator("#map").click(position={"x": x, "y": y})
        page.wait_for_selector("#measure-out[data-done='true']", timeout=10_000)
        lon = float(page.get_attribute("#measure-out", "data-lon"))
        lat = float(page.get_attribute("#measure-out", "data-lat"))
        res = page.evaluate("() => map.getLibMap().getView().getResolution()")
        assert abs(lon - 120.2130) < 2 * res and abs(lat - 30.2460) < 2 * res
        text = page.inner_text("#measure-out")
        east, north = Transformer.from_crs(4490, 4549, always_xy=True).transform(lon, lat)
        got = re.search(r"EPSG:4549 \(120°E\): X ([0-9.]+) m, Y ([0-9.]+) m", text)
        assert got, text
        assert abs(float(got.group(1)) - north) < 0.001 and abs(float(got.group(2)) - east) < 0.001
        assert f"{lon:.6f}, {lat:.6f}" in text and "°" in text and "″E" in text
        assert page.locator("#identify").count() == 0, "picking identifies nothing"
        page.click("#pick-point")
        assert page.get_attribute("#pick-point", "aria-pressed") == "false"
        assert not page.is_visible("#measure-out")
        assert page.errors == [], page.errors
    finally:
        page.context.close()


def test_identify_and_table_show_chinese_titles_and_hostile_text_as_text(browser, urls,
                                                                         main_db) -> None:
    """A layer published with Chinese attribute names (the queryables' titles) and values
    that are HTML: identify and the table show the names and the values as text."""
    base = urls["hangzhou"]
    publisher = sign_in_users(main_db, urls["national"], "portalpub",
                              {"pub": ["hangzhou:publisher"]}, PASSWORD)["pub"]
    collection = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": list(SPOT)},
        "properties": {"名称": HOSTILE, "类别": "<script>window.hacked=2</script>",
                       "数量": 7}}]}
    r = httpx.post(f"{base}/api/layers", headers=publisher, timeout=120,
                   data={"name": "portal_hostile", "title": "门户测试 <b>层</b>"},
                   files={"file": ("hostile.geojson", json.dumps(collection).encode(),
                                   "application/geo+json")})
    assert r.status_code == 201, r.text
    try:
        wait_for(lambda: served(base, "portal_hostile"), timeout=120)
        page = open_portal(browser, base + f"/#c={SPOT[0]},{SPOT[1]}&z=17&l=portal_hostile:1")
        try:
            assert page.inner_text("li[data-layer='portal_hostile'] label") == "门户测试 <b>层</b>"
            layer_loaded(page, "portal_hostile")
            x, y = pixel_of(page, SPOT)
            page.locator("#map").click(position={"x": x, "y": y})
            page.wait_for_selector("#identify section[data-layer='portal_hostile']",
                                   timeout=30_000)
            section = "#identify section[data-layer='portal_hostile']"
            titles = page.eval_on_selector_all(f"{section} dt", "els => els.map((e) => e.textContent)")
            values = page.eval_on_selector_all(f"{section} dd", "els => els.map((e) => e.textContent)")
            assert dict(zip(titles, values))["名称"] == HOSTILE
            assert dict(zip(titles, values))["类别"] == "<script>window.hacked=2</script>"
            assert "数量" in titles
            page.click("li[data-layer='portal_hostile'] button.table")
            page.wait_for_selector("#table-body tr", timeout=30_000)
            assert HOSTILE in page.inner_text("#table-body")
            heads = page.eval_on_selector_all("#table-head th", "els => els.map((e) => e.textContent)")
            assert "名称" in heads and "类别" in heads
            assert page.locator("#identify img, #identify b, #table-body img, #layers b"
                                ).count() == 0
            assert page.evaluate("() => window.hacked") is None
            assert page.errors == []
        finally:
            page.context.close()
    finally:
        requests_delete = httpx.delete(f"{base}/api/layers/portal_hostile", headers=publisher,
                                       timeout=60)
        assert requests_delete.status_code in (200, 204), requests_delete.text


def test_the_portal_works_where_public_layers_need_a_key(browser, keyed) -> None:
    """`public_requires_key` at its default (true): tiles go with the page's browser key, an
    anonymous user's data requests as the node's own page's (no key: the demo key's owner
    would see the registered layers), and nothing registered shows."""
    base = keyed["hz"]
    assert httpx.get(base + "/ogc/collections/poi/items", params={"f": "json"},
                     timeout=60).status_code == 401  # a script without a key is refused
    page = open_portal(browser, base + f"/#c={HALL[0]},{HALL[1]}&z=16&l=poi:1")
    try:
        tree = set(page.eval_on_selector_all("#layers li[data-layer]",
                                             "els => els.map((e) => e.dataset.layer)"))
        assert "poi" in tree and not tree & {"addresses", "control_points"}
        layer_loaded(page, "poi")
        x, y = pixel_of(page, HALL)
        page.locator("#map").click(position={"x": x, "y": y})
        page.wait_for_selector("#identify section[data-layer='poi']", timeout=30_000)
        assert HALL_NAME in page.inner_text("#identify")
        page.fill("#q", "市民中心")
        page.press("#q", "Enter")
        page.wait_for_function("() => !!portal.picked", timeout=30_000)
        assert page.evaluate("() => portal.picked.name") == HALL_NAME
        assert page.errors == []
    finally:
        page.context.close()
