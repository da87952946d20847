"""Issue 11, item 2 in a real browser: stored XSS payloads do not run on pygeoapi's pages.

A layer published at Hangzhou carries script payloads in its title and in its attribute values;
its registry record travels up to the main node's catalogue (the SSO origin). Debian's chromium
(Playwright) opens the items, item, collection and catalogue pages of the node and the main
node: no payload runs (`window.__xss` stays undefined, no dialog), the text is shown literally,
every page has its CSP, no script of ours is blocked by it, and the map still draws (the SDK's,
nodes/ogc_templates/static/ogc.js).
"""

from __future__ import annotations

import json

import pytest
import requests
from publish_helpers import ctx_of, served
from waiting import wait_for

from layers.publish import publish, retire

NAME = "sec_xss_layer"
RID = f"hangzhou:features:{NAME}"
BREAKOUT = "</script><script>window.__xss=1</script>"
IMG = "<img src=x onerror=window.__xss=2>"
TITLE = f"标题 {BREAKOUT}{IMG}\u2028end"
VALUES = [BREAKOUT, IMG, "\u2028window.__xss=3\u2029", "' + (window.__xss=4) + '",
          '<svg onload="window.__xss=5">']
WAIT_MS = 120_000

# Before any page script: record CSP violations and anything setting window.__xss.
RECORDER = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
  {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, line: e.lineNumber}));
"""


@pytest.fixture(scope="module")
def xss_layer(federation, urls, tmp_path_factory):
    """The layer with payloads, served at Hangzhou and listed in the main node's catalogue."""
    ctx = ctx_of(federation, "hangzhou")
    path = tmp_path_factory.mktemp("xss") / "xss.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"名称": v, "n": i},
         "geometry": {"type": "Point", "coordinates": [120.1 + i * 0.01, 30.25 + i * 0.005]}}
        for i, v in enumerate(VALUES)]}, ensure_ascii=False), encoding="utf-8")
    publish(ctx, path, NAME, title=TITLE, keywords=[BREAKOUT])
    wait_for(lambda: served(urls["hangzhou"], NAME), timeout=60)

    def in_catalogue(base: str) -> bool:
        r = requests.get(f"{base}/ogc/collections/catalogue/items/{RID}?f=json", timeout=30)
        return r.status_code == 200 and r.json()["properties"]["title"] == TITLE

    wait_for(lambda: in_catalogue(urls["hangzhou"]), timeout=60)
    wait_for(lambda: in_catalogue(urls["national"]), timeout=120)  # pushed up twice
    yield NAME
    retire(ctx, NAME, purge=True)


@pytest.fixture()
def tab(browser):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def _open(tab, url: str, map_selector: str | None, tiles: bool = False) -> None:
    """Load a page: nothing of the payloads ran, its CSP is there, its map drew (if any): the
    SDK's map on the e-map (nodes/ogc_templates) with the page's features or vector tiles."""
    r = tab.goto(url)
    assert r is not None and r.status == 200, (url, r and r.status)
    tab.wait_for_load_state("load")
    _assert_nothing_ran(tab, url)
    csp = r.headers.get("content-security-policy", "")
    assert "script-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp.split(";")[1], csp
    assert r.headers.get("x-frame-options") == "SAMEORIGIN"
    if map_selector:  # our own scripts ran under that policy: base map and features drawn
        tab.wait_for_selector(f"{map_selector}[data-idle='true']", state="attached")
        assert tab.get_attribute(map_selector, "data-error") is None, url
        drawn = ("() => Boolean(window.geoplatOgc.overlay)" if tiles
                 else "() => window.geoplatOgc.source.getFeatures().length > 0")
        assert tab.evaluate(drawn), url
    assert tab.evaluate("() => window.__violations") == [], url  # none of our scripts blocked


def _assert_nothing_ran(tab, url: str) -> None:
    assert tab.evaluate("() => typeof window.__xss") == "undefined", (
        url, tab.evaluate("() => window.__xss"))
    assert tab.dialogs == [], (url, tab.dialogs)
    assert tab.evaluate("() => document.querySelectorAll('img[src=x], svg[onload]').length") == 0


def test_node_items_and_item_pages(xss_layer, urls, tab) -> None:
    base = f"{urls['hangzhou']}/ogc/collections/{xss_layer}"
    _open(tab, f"{base}/items?f=html&limit=100", "#items-map")
    _assert_nothing_ran(tab, "items")
    text = tab.inner_text("body")
    for v in VALUES:  # the attribute values are shown as text
        assert v.replace("\u2028", "").replace("\u2029", "")[:12] in text.replace(
            "\u2028", "").replace("\u2029", ""), v
    assert tab.evaluate("() => window.geoplatOgc.config.features.length") == len(VALUES)  # arrived
    for fid in (1, 2):
        _open(tab, f"{base}/items/{fid}?f=html", "#items-map")
        _assert_nothing_ran(tab, f"item {fid}")
        assert VALUES[fid - 1] in tab.inner_text("body")


def test_node_collection_page(xss_layer, urls, tab) -> None:
    _open(tab, f"{urls['hangzhou']}/ogc/collections/{xss_layer}?f=html", "#collection-map")
    _assert_nothing_ran(tab, "collection")
    assert BREAKOUT + IMG in tab.inner_text("h1")


@pytest.mark.parametrize("node", ["hangzhou", "national"])
def test_catalogue_pages(xss_layer, urls, tab, node) -> None:
    base = f"{urls[node]}/ogc/collections/catalogue"
    _open(tab, f"{base}/items?f=html&q=标题", "#items-map")  # q: title, keywords
    titles = tab.eval_on_selector_all("a[title]", "els => els.map(e => e.title)")
    assert TITLE in titles, titles  # the record's link, its full title as text
    # the record's popup (title_field: title) shows the title as text, with a working link
    popup = tab.evaluate("""(rid) => {
      let out = null;
      window.geoplatOgc.popupFor(rid);
      const el = document.querySelector('.geoplat-popup-content');
      if (el) out = {text: el.textContent, imgs: el.querySelectorAll('img').length,
                     href: el.querySelector('a') && el.querySelector('a').getAttribute('href')};
      return out;
    }""", RID)
    assert popup is not None, "no popup opened"
    assert popup["imgs"] == 0 and BREAKOUT + IMG in popup["text"], popup
    assert popup["href"].endswith("/" + requests.utils.quote(RID, safe="") + "?f=html"), popup
    _assert_nothing_ran(tab, f"{node} catalogue popup")
    _open(tab, f"{base}/items/{RID}?f=html", "#items-map")
    _assert_nothing_ran(tab, f"{node} record")
    assert BREAKOUT + IMG in tab.inner_text("body")


def test_openapi_page_works_under_the_policy(urls, tab) -> None:
    """Swagger UI (vendored, same origin) renders with the nonce policy and no violation."""
    r = tab.goto(f"{urls['hangzhou']}/ogc/openapi?f=html")
    assert r is not None and r.status == 200
    assert "'nonce-" in r.headers.get("content-security-policy", "")
    tab.wait_for_selector("#swagger-ui .opblock", state="attached")
    assert tab.evaluate("() => window.__violations") == []


def test_configured_layer_pages_work_under_the_policy(urls, tab) -> None:
    """poi (title_field `name`): its popups show the name as text and link to the item; the
    vector tiles page draws with the SDK."""
    base = f"{urls['hangzhou']}/ogc/collections/poi"
    _open(tab, f"{base}/items?f=html&limit=20", "#items-map")
    popup = tab.evaluate("""() => {
      const feature = window.geoplatOgc.config.features[0];
      const content = window.geoplatOgc.popupFor(feature.id)
        .querySelector('.geoplat-popup-content');
      return {text: content.textContent, name: feature.properties.name,
              href: content.querySelector('a').getAttribute('href'), id: feature.id};
    }""")
    assert popup["text"] == popup["name"] and popup["name"], popup
    assert popup["href"].endswith(f"/poi/items/{popup['id']}?f=html"), popup
    _open(tab, f"{base}/tiles?f=html", "#items-map", tiles=True)
