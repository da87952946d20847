"""Overlays through the SDK in a real browser (issue 14 acceptance): a features overlay of
`poi` with a CQL2 filter holds exactly the filtered features; clicking one opens its name."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from sdk_pages import open_map, pixel_of

FILTER = "category = 'service_hall'"
CIVIC_CENTRE = (120.2130, 30.2460)
CIVIC_NAME = "杭州市民中心政务服务大厅"


def features_page(base: str, **params: str) -> str:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return f"{base}/sdk/examples/geoplat-features.html?{query}"


def test_features_overlay_holds_exactly_the_filtered_count(browser, urls, demo) -> None:
    hz = urls["hangzhou"]
    expected = httpx.get(f"{hz}/ogc/collections/poi/items", params={
        "f": "json", "limit": 1, "filter": FILTER, "tk": demo["server_key"]}).json()
    total = httpx.get(f"{hz}/ogc/collections/poi/items", params={
        "f": "json", "limit": 1, "tk": demo["server_key"]}).json()["numberMatched"]
    assert 0 < expected["numberMatched"] < total
    requested: list[str] = []
    page = browser.new_page(viewport={"width": 640, "height": 480})
    page.on("request", lambda r: requested.append(r.url))
    # pages of 10: the overlay follows the node's `next` links (they carry the key)
    page.goto(features_page(hz, filter=FILTER, zoom="11") + "&pageSize=10")
    page.wait_for_function("() => window.pois && window.pois.getCount() > 0", timeout=90_000)
    page.evaluate("() => pois.ready")
    got = page.evaluate("() => pois.getProperties().map((p) => p.category)")
    assert len(got) == expected["numberMatched"]
    assert set(got) == {"service_hall"}
    items = [u for u in requested if "/ogc/collections/poi/items" in u]
    assert all("tk=" in u and "filter=" in u for u in items), items
    page.close()


def test_clicking_a_feature_opens_a_popup_with_its_name(browser, urls) -> None:
    page = open_map(browser, features_page(urls["hangzhou"], filter=FILTER, zoom="17",
                                           lon=str(CIVIC_CENTRE[0]), lat=str(CIVIC_CENTRE[1])))
    page.evaluate("() => pois.ready")
    page.wait_for_selector("#map[data-idle='true']")
    x, y = pixel_of(page, CIVIC_CENTRE)
    page.locator("#map").click(position={"x": x, "y": y})
    popup = page.locator(".geoplat-popup[data-open='true']")
    popup.wait_for(timeout=10_000)
    assert CIVIC_NAME in popup.inner_text()
    # the popup's text is text: a name is never parsed as HTML
    assert popup.locator(".geoplat-popup-content *").count() == 0
    page.close()


def test_a_marker_opens_its_popup(browser, urls) -> None:
    page = open_map(browser, f"{urls['national']}/sdk/examples/geoplat-graphics.html")
    at = (120.19, 30.275)  # in view, away from the example's own graphics
    page.evaluate("""([lon, lat]) => new Promise((r) => { window.clicked = 0;
        window.m = map.addMarker({position: [lon, lat], title: '<b>x</b> 市民中心'});
        window.m.on('click', () => { window.clicked += 1; });
        map.once('rendercomplete', r); })""", list(at))
    x, y = pixel_of(page, at)
    page.locator("#map").click(position={"x": x, "y": y})
    popup = page.locator(".geoplat-popup[data-open='true']")
    popup.wait_for(timeout=10_000)
    assert popup.locator(".geoplat-popup-content").inner_text() == "<b>x</b> 市民中心"
    assert page.evaluate("() => window.clicked") == 1
    page.close()
