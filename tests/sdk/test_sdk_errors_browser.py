"""Errors through the SDK (issue 14 acceptance): a wrong key gives an `error` event with the
node's 403 detail, never a silent blank map; a browser key used from another origin is
refused; a service call rejects with the problem detail."""

from __future__ import annotations

from sdk_pages import IDLE

from services.access import apikeys
from services.sso import accounts


def wait_error(page) -> dict:
    page.wait_for_selector("#map[data-error]", timeout=90_000)
    return page.evaluate("() => ({...map.lastError.toJSON(), idle: map.element.dataset.idle})")


def test_a_wrong_key_gives_an_error_event_with_the_detail(browser, urls) -> None:
    page = browser.new_page()
    page.goto(f"{urls['national']}/sdk/examples/geoplat-map.html?tk=0123456789abcdef")
    err = wait_error(page)
    assert err["status"] == 403
    assert err["detail"] == "This API key is unknown or revoked."
    assert "0123456789abcdef" not in err["url"], "the key is masked in the error"
    assert err["idle"] == "false", "no render gate on a map that could not load"
    assert "403" in page.locator("#status").inner_text()  # the example shows it
    page.close()


def test_a_service_call_rejects_with_the_problem_detail(browser, urls) -> None:
    page = browser.new_page()
    page.goto(f"{urls['national']}/sdk/examples/geoplat-map.html")
    page.wait_for_selector(IDLE, timeout=90_000)
    err = page.evaluate("""() => Geoplat.search('市民中心', {key: 'not-a-key'}).then(
        () => null, (e) => ({name: e.name, status: e.status, title: e.title, detail: e.detail}))""")
    assert err == {"name": "GeoplatError", "status": 403, "title": "Invalid key",
                   "detail": "This API key is unknown or revoked."}
    missing = page.evaluate("""() => { const m = Geoplat.Map ? window.map : null;
        const o = m.addLayer({type: 'features', collection: 'no_such_layer'});
        return o.ready.then(() => null, (e) => e.status); }""")
    assert missing == 404
    page.close()


def test_a_browser_key_from_another_origin_is_refused(browser, urls, demo, other_origin) -> None:
    node = urls["national"]
    url = other_origin(f"""<!doctype html><html><head><meta charset="utf-8"></head><body>
<div id="map" style="width:400px;height:300px"></div>
<script src="{node}/sdk/geoplat.js"></script>
<script>
  window.map = new Geoplat.Map('map', {{key: "{demo['browser_key']}", center: [120.15, 30.25], zoom: 10}});
</script></body></html>""")
    page = browser.new_page()
    page.goto(url)
    err = wait_error(page)
    assert err["status"] == 403
    assert err["detail"] == "This key is bound to other origins or addresses."
    # the node is where the script came from, not the page's origin
    assert page.evaluate("() => map.node") == node
    page.close()


def test_an_unknown_layer_gives_an_error_event_not_a_blank_overlay(browser, urls) -> None:
    """A tile that fails to load is asked once more with fetch, to read the node's OGC
    exception: the `error` event carries it."""
    page = browser.new_page()
    page.goto(f"{urls['national']}/sdk/examples/geoplat-map.html")
    page.wait_for_selector(IDLE, timeout=90_000)
    page.evaluate("() => { map.addLayer({type: 'wms', layer: 'no_such_layer'}); }")
    err = wait_error(page)
    assert err["status"] == 400
    assert err["title"] == "LayerNotDefined" and "LAYERS" in err["detail"]
    assert "/wms?" in err["url"] and "tk=***" in err["url"]
    wmts = page.evaluate("""() => map.addLayer({type: 'wmts', layer: 'no_such_layer'}).ready
        .then(() => null, (e) => e.message)""")
    assert "no WMTS layer no_such_layer" in wmts
    page.close()


def quota_key(main_db, federation, **quotas: int) -> str:
    """A browser key of the demo developer for the nodes' origins, with small daily quotas."""
    owner = accounts.by_name(main_db, "demo")
    value, _ = apikeys.create_key(main_db, "test", owner.id, "sdk quota", "browser",
                                  [n.base_url for n in federation.nodes], quotas=quotas,
                                  actor="test")
    return value


def test_a_quota_exceeded_rejects_a_service_call_with_429(browser, urls, main_db,
                                                         federation) -> None:
    key = quota_key(main_db, federation, search=1)
    page = browser.new_page()
    page.goto(f"{urls['national']}/sdk/examples/geoplat-map.html")
    page.wait_for_selector(IDLE, timeout=90_000)
    got = page.evaluate("""async (key) => {
        const first = await Geoplat.admin('330100', {key}).then(() => 'ok', (e) => e.status);
        const second = await Geoplat.admin('330100', {key}).then(() => 'ok',
            (e) => ({status: e.status, title: e.title, detail: e.detail}));
        return {first, second}; }""", key)
    assert got["first"] == "ok"
    assert got["second"]["status"] == 429 and got["second"]["title"] == "Quota exceeded"
    assert "search quota" in got["second"]["detail"]
    page.close()


def test_a_tiles_quota_exceeded_gives_the_map_an_error_event(browser, urls, main_db,
                                                             federation) -> None:
    key = quota_key(main_db, federation, tiles=3)
    page = browser.new_page()
    page.goto(f"{urls['zhejiang']}/sdk/examples/geoplat-map.html?tk={key}&zoom=9")
    err = wait_error(page)
    assert err["status"] == 429, err
    assert "tiles quota" in err["detail"]
    page.close()
