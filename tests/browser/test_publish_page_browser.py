"""The /publish upload page in a real headless browser: Debian's `chromium`, driven by Playwright.

Nothing is downloaded: Playwright launches the system chromium (`make` installs it from apt).
The browser signs in the real way (the node's sign-in link, the main node's login form, the
node session cookie), uploads with the page's own JS and reads the result from the DOM.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import requests
import shapely
from publish_helpers import ctx_of, served
from waiting import wait_for

from services.sso import accounts

PASSWORD = "Browser-Test-Pass-1"
USER = "pubbrowser_alice"
N = 60_000
WAIT_MS = 120_000  # generous: a loaded 2-core machine


@pytest.fixture(scope="module")
def page(browser, main_db, urls):
    """A browser tab signed in at the Hangzhou node as its publisher, on /publish."""
    accounts.create(main_db, USER, PASSWORD, roles=["hangzhou:publisher"])
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    base = urls["hangzhou"]
    first = tab.goto(f"{base}/publish")
    assert first is not None and first.status == 401  # no session: the sign-in page
    tab.click("a[href^='/auth/login']")  # -> main node's login form
    tab.wait_for_selector("input[name=password]")
    assert tab.url.startswith(urls["national"])
    tab.fill("input[name=username]", USER)
    tab.fill("input[name=password]", PASSWORD)
    with tab.expect_navigation(url=lambda u: u.startswith(base)):
        tab.click("button[type=submit]")
    tab.wait_for_load_state()
    assert tab.url == f"{base}/publish", tab.url  # back on the page that asked for sign-in
    cookies = {c["name"] for c in context.cookies(base)}
    assert "geoplat_at_hangzhou" in cookies, cookies
    r = tab.goto(f"{base}/publish")
    assert r is not None and r.status == 200
    tab.wait_for_selector("#f input[type=file]")
    yield tab
    context.close()


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    x, y = 120.0 + rng.random(N) * 0.4, 30.0 + rng.random(N) * 0.4
    gdf = gpd.GeoDataFrame({"code": np.arange(N), "名称": [f"点{i}" for i in range(N)]},
                           geometry=shapely.points(x, y), crs="EPSG:4490")
    path = tmp_path_factory.mktemp("browser") / "points.gpkg"
    pyogrio.write_dataframe(gdf, path, layer="points")
    return path


# what the page showed while it worked: every value of the loading bar and every status text
RECORDER = """() => {
  document.getElementById('out').textContent = '';
  const seen = window.__seen = {loading: [], status: []};
  const load = document.getElementById('l'), st = document.getElementById('st');
  new MutationObserver(() => seen.loading.push([load.value, load.max]))
    .observe(load, {attributes: true, attributeFilter: ['value', 'max']});
  new MutationObserver(() => seen.status.push(st.textContent))
    .observe(st, {childList: true, characterData: true, subtree: true});
}"""


def _submit(tab, name: str, title: str, file: Path, access: str = "public",
            emap: bool = False, places: str = "") -> None:
    tab.fill("#f input[name=name]", name)
    tab.fill("#f input[name=places]", places)
    tab.fill("#f input[name=title]", title)
    tab.select_option("#f select[name=access]", access)
    tab.set_checked("#f input[name=emap]", emap)
    tab.set_input_files("#f input[type=file]", str(file))
    tab.evaluate(RECORDER)
    tab.click("#f button")  # waits for the button: disabled while an upload is running


def test_upload_page_publishes_a_large_geopackage(page, gpkg, federation, urls):
    base, name = urls["hangzhou"], "pub_browser_points"
    try:
        _submit(page, name, "浏览器上传 Browser points", gpkg)
        page.wait_for_function(
            "() => /完成|失败/.test(document.getElementById('st').textContent)"
            " || document.getElementById('out').textContent !== ''", timeout=WAIT_MS)
        status = page.text_content("#st")
        out = page.text_content("#out") or ""
        assert "完成 Published" in status, (status, out[:500])
        load = page.eval_on_selector("#l", "e => ({hidden: e.hidden, value: e.value, max: e.max})")
        assert load == {"hidden": False, "value": N, "max": N}, load
        upload = page.eval_on_selector("#p", "e => ({value: e.value, max: e.max})")
        assert upload["max"] >= gpkg.stat().st_size and upload["value"] == upload["max"], upload
        seen = page.evaluate("() => window.__seen")
        lines = [t for t in seen["status"] if t.startswith("入库 Loading")]
        assert len(lines) >= 2 and lines[-1] == f"入库 Loading {N} / {N}", seen["status"]
        values = [v for v, m in seen["loading"] if m == N]
        assert len(set(values)) >= 2 and values[-1] == N, seen["loading"]  # it moved, then full
        assert f'"name": "{name}"' in out and f'"feature_count": {N}' in out, out[:500]
        # and over HTTP: the layer serves all the features
        wait_for(lambda: served(base, name), timeout=60)
        got = requests.get(f"{base}/ogc/collections/{name}/items?f=json&limit=1", timeout=60).json()
        assert got["numberMatched"] == N
        last = requests.get(f"{base}/ogc/collections/{name}/items/{N}?f=json", timeout=60)
        assert last.status_code == 200 and f"点{N - 1}" in last.json()["properties"].values()
    finally:
        from layers.formats import PublishError
        from layers.publish import retire

        with contextlib.suppress(PublishError):  # not published: the assertion above says why
            retire(ctx_of(federation, "hangzhou"), name, purge=True)


def test_upload_page_shows_the_error_detail(page, tmp_path, urls):
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    name = "pub_browser_empty"
    _submit(page, name, "", empty)
    page.wait_for_function("() => document.getElementById('out').textContent !== ''",
                           timeout=WAIT_MS)
    status, out = page.text_content("#st"), page.text_content("#out") or ""
    assert "失败" in status and out.startswith("422 "), (status, out)
    assert "zero features" in out, out  # the problem's detail, not just a status
    assert not served(urls["hangzhou"], name)


def test_upload_page_sends_the_places_mapping(page, tmp_path, urls):
    """The form's place-search field reaches the API: a mapping naming a column the data lacks
    is refused with the API's detail, and nothing is published."""
    one = tmp_path / "one.geojson"
    one.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties":'
                   ' {"mc": "测试点"}, "geometry": {"type": "Point", "coordinates": [120.2, 30.2]}}]}',
                   encoding="utf-8")
    name = "pub_browser_places"
    _submit(page, name, "", one, places='{"kind": "poi", "name": "no_such_column"}')
    page.wait_for_function("() => document.getElementById('out').textContent !== ''",
                           timeout=WAIT_MS)
    status, out = page.text_content("#st"), page.text_content("#out") or ""
    assert "失败" in status and "no_such_column" in out, (status, out)
    assert not served(urls["hangzhou"], name)


def test_upload_page_shows_a_refusal_before_the_stream(page, tmp_path, urls):
    """A 400 problem+json answered before any progress line: the page shows its detail."""
    small = tmp_path / "small.geojson"
    small.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                     '"properties": {"a": 1}, "geometry": {"type": "Point", '
                     '"coordinates": [120.1, 30.2]}}]}', encoding="utf-8")
    name = "pub_browser_refused"
    _submit(page, name, "", small, access="restricted", emap=True)
    page.wait_for_function("() => document.getElementById('out').textContent !== ''",
                           timeout=WAIT_MS)
    status, out = page.text_content("#st"), page.text_content("#out") or ""
    assert "失败" in status and out.startswith("400 Bad Request"), (status, out)
    assert "only public layers can be drawn on the e-map" in out, out
    assert page.is_enabled("#f button")  # ready for the next try
    assert not served(urls["hangzhou"], name)
