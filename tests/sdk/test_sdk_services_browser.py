"""The SDK's services from a page (issue 14): place search, geocoding, reverse geocoding,
divisions and features with the browser key injected, the same answers the node gives over
HTTP; map navigation (fitBounds, flyTo) and its events."""

from __future__ import annotations

import httpx
from sdk_pages import IDLE

CIVIC_NAME = "杭州市民中心政务服务大厅"
ADDRESS = "浙江省杭州市上城区宏二路2号"


def test_place_services_answer_as_the_node_does(browser, urls, demo, dev_key) -> None:
    """With a developer's own key (door plates are `registered`: the pages' public-only key
    finds none)."""
    base = urls["national"]
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/sdk/examples/geoplat-map.html")
    page.wait_for_selector(IDLE, timeout=90_000)
    got = page.evaluate("""async (key) => {
        const s = await Geoplat.search('市民中心', {key});
        const g = await Geoplat.geocode('浙江省杭州市上城区宏二路2号', {key});
        const r = await Geoplat.reverse([120.213, 30.246], {key});
        const a = await Geoplat.admin('330100', {key, children: 1});
        return {search: s.features.map((f) => f.properties.name),
                geocode: g.features[0].geometry.coordinates,
                reverse: r.features[0].properties.address,
                admin: a.features[0].properties.name};
    }""", dev_key)
    direct = httpx.get(f"{base}/api/places/geocode", params={
        "address": ADDRESS, "tk": demo["server_key"]}).json()
    assert CIVIC_NAME in got["search"]
    assert got["geocode"] == direct["features"][0]["geometry"]["coordinates"]
    assert got["reverse"].startswith("浙江省杭州市上城区")
    assert got["admin"] == "杭州市"
    places = [u for u in requested if "/api/places/" in u]
    assert len(places) == 4 and all(f"tk={dev_key}" in u for u in places)
    page.close()


def test_features_service_pages_through_a_filter(browser, urls, demo) -> None:
    hz = urls["hangzhou"]
    page = browser.new_page()
    page.goto(f"{hz}/sdk/examples/geoplat-map.html")
    page.wait_for_selector(IDLE, timeout=90_000)
    got = page.evaluate("""async (key) => {
        const fc = await Geoplat.features('poi', {key, filter: "category = 'service_hall'",
                                                  bbox: [120.0, 30.1, 120.4, 30.4]});
        return {n: fc.features.length, matched: fc.numberMatched,
                cats: [...new Set(fc.features.map((f) => f.properties.category))]};
    }""", demo["browser_key"])
    direct = httpx.get(f"{hz}/ogc/collections/poi/items", params={
        "f": "json", "limit": 1, "filter": "category = 'service_hall'",
        "bbox": "120.0,30.1,120.4,30.4", "tk": demo["server_key"]}).json()
    assert got["n"] == got["matched"] == direct["numberMatched"] > 0
    assert got["cats"] == ["service_hall"]
    page.close()


def test_fit_bounds_fly_to_and_moveend(browser, urls) -> None:
    page = browser.new_page(viewport={"width": 640, "height": 480})
    page.goto(f"{urls['national']}/sdk/examples/geoplat-map.html?zoom=5")
    page.wait_for_selector(IDLE, timeout=90_000)
    box = page.evaluate("""() => new Promise((resolve) => {
        map.once('moveend', (e) => resolve({zoom: e.zoom, bounds: map.getBounds()}));
        map.fitBounds([120.1, 30.2, 120.3, 30.3], {padding: [0, 0, 0, 0]}); })""")
    b = box["bounds"]
    assert b[0] <= 120.1 and b[1] <= 30.2 and b[2] >= 120.3 and b[3] >= 30.3
    assert box["zoom"] >= 10, "fitBounds zoomed in to the box"
    flown = page.evaluate("""async () => { const done = await map.flyTo({center: [116.39, 39.91],
        zoom: 9, duration: 200}); return {done, center: map.getCenter(), zoom: map.getZoom()}; }""")
    assert flown["done"] is True and flown["zoom"] == 9
    assert abs(flown["center"][0] - 116.39) < 1e-6 and abs(flown["center"][1] - 39.91) < 1e-6
    page.close()
