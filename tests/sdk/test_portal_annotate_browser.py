"""Signing in and out from the portal, and annotations (issue 16), in headless Chromium against
the shared federation's Hangzhou node: the header's sign-in link goes through the main node's
login form and comes back to the same view (the hash); the user draws a point and a polygon
with the mouse, titles them (a hostile title stays text), moves a vertex, signs out (anonymous:
no annotations) and in again (they are still there); another user sees none of them, until a
shared link shows one, read-only, zoomed to."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from publish_helpers import sign_in_users
from sdk_pages import IDLE, pixel_of
from waiting import wait_for

from services.sso import accounts

PASSWORD = "Portal-Annotate-Pass-1"
HOSTILE = '<img src=x onerror="window.hacked=1">标注</li><b>粗'
VIEW = "#c=120.2000000,30.2500000&z=14&g=c&b=vec&lb=1"
WAIT_MS = 90_000


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    # /auth/me answers 401 to an anonymous user (how the page learns it); the main node's
    # login and logout pages have no icon, so the browser asks for /favicon.ico there
    page.on("console", lambda m: page.errors.append(f"console: {m.text} {m.location}")
            if m.type == "error" and not (m.location or {}).get("url", "").endswith(
                ("/auth/me", "/favicon.ico")) else None)
    return page


def ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector("body[data-annotations='ready']")
    page.wait_for_selector(IDLE)


def sign_in(page: Any, base: str, main: str, user: str) -> None:
    """From the portal's header, through the main node's login form, back to the portal."""
    page.click("#sign-in")
    page.wait_for_selector("input[name=password]")
    assert page.url.startswith(main)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(url=lambda u: u.startswith(base)):
        page.click("button[type=submit]")
    ready(page)


def click_map(page: Any, points: list[tuple[float, float]]) -> None:
    """Clicks each lon/lat on the map, a double click on the last when there are several."""
    for i, point in enumerate(points):
        x, y = pixel_of(page, point)
        if len(points) > 1 and i == len(points) - 1:
            page.locator("#map").dblclick(position={"x": x, "y": y})
        else:
            page.locator("#map").click(position={"x": x, "y": y})


def save(page: Any, title: str, note: str, count: int) -> None:
    page.wait_for_selector("#ann-form:not([hidden])")
    page.fill("#ann-title", title)
    page.fill("#ann-note", note)
    page.click("#ann-save")
    page.wait_for_function("(n) => document.querySelectorAll('#ann-list li').length === n",
                           arg=count)


def kept(base: str, token: str) -> list[dict[str, Any]]:
    r = httpx.get(base + "/api/annotations", headers={"Authorization": f"Bearer {token}"},
                  timeout=60)
    r.raise_for_status()
    return r.json()["features"]


def cookie_of(page: Any, base: str) -> str:
    return next(c["value"] for c in page.context.cookies(base)
                if c["name"] == "geoplat_at_hangzhou")


def test_annotations_survive_sign_out_and_stay_private_until_shared(browser, urls,
                                                                    main_db) -> None:
    base, main = urls["hangzhou"], urls["national"]
    user_a = "annbrowser_a"
    accounts.create(main_db, user_a, PASSWORD, roles=[])
    page = new_page(browser)
    try:
        page.goto(base + "/" + VIEW)
        ready(page)
        assert page.get_attribute("body", "data-user") == "anonymous"
        assert page.is_hidden("#ann-tools") and page.is_visible("#ann-anon")
        assert page.is_visible("#register")
        assert "next=" in (page.get_attribute("#register", "href") or "")

        # sign in from the panned view: back at the same hash, signed in
        sign_in(page, base, main, user_a)
        assert "#" + urlsplit(page.url).fragment == VIEW, page.url
        assert page.get_attribute("body", "data-user") == "signed-in"
        assert page.inner_text("#user-name") == user_a
        assert page.get_attribute("#my-keys", "href") == main + "/sso/keys"
        assert page.is_visible("#ann-tools")

        # a point and a polygon, drawn with the mouse
        page.click("#ann-point")
        spot = (120.2, 30.25)
        click_map(page, [spot])
        save(page, HOSTILE, "第一行\n<script>alert(1)</script>", 1)
        page.click("#ann-polygon")
        corners = [(120.19, 30.245), (120.21, 30.245), (120.21, 30.255)]
        click_map(page, corners)
        save(page, "Polygon A", "", 2)
        assert page.inner_text("#ann-list li:first-child .ann-title") == HOSTILE
        assert page.evaluate("() => window.hacked") is None
        assert page.query_selector("#ann-list img") is None
        token_a = cookie_of(page, base)
        stored = {f["properties"]["title"]: f for f in kept(base, token_a)}
        assert set(stored) == {HOSTILE, "Polygon A"}
        res = page.evaluate("() => map.getLibMap().getView().getResolution()")
        lon, lat = stored[HOSTILE]["geometry"]["coordinates"]
        assert abs(lon - spot[0]) < 2 * res and abs(lat - spot[1]) < 2 * res
        ring = stored["Polygon A"]["geometry"]["coordinates"][0]
        assert stored["Polygon A"]["geometry"]["type"] == "Polygon" and len(ring) == 4
        for want, got in zip(corners, ring, strict=False):
            assert abs(want[0] - got[0]) < 2 * res and abs(want[1] - got[1]) < 2 * res

        # edit the polygon: a new title, and its first corner dragged (Modify)
        page.click("#ann-list li:nth-child(2) .ann-edit")
        page.wait_for_selector("#ann-form:not([hidden])")
        x, y = pixel_of(page, (ring[0][0], ring[0][1]))
        box = page.locator("#map").bounding_box()
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        page.mouse.move(box["x"] + x - 20, box["y"] + y + 15, steps=5)
        page.mouse.up()
        page.fill("#ann-title", "Polygon A2")
        page.click("#ann-save")
        page.wait_for_function("() => [...document.querySelectorAll('#ann-list .ann-title')]"
                               ".some((e) => e.textContent === 'Polygon A2')")
        moved = {f["properties"]["title"]: f for f in kept(base, token_a)}["Polygon A2"]
        first = moved["geometry"]["coordinates"][0][0]
        assert first[0] < ring[0][0] - 10 * res and first[1] < ring[0][1] - 5 * res, first
        assert moved["geometry"]["coordinates"][0][1] == ring[1]

        # sign out: anonymous, no annotations shown; the view is kept
        before = urlsplit(page.url).fragment
        page.click("#sign-out")
        page.wait_for_selector("form[action='/sso/logout'] button[type=submit]")
        with page.expect_navigation(url=lambda u: u.startswith(base)):
            page.click("form[action='/sso/logout'] button[type=submit]")
        ready(page)
        assert page.get_attribute("body", "data-user") == "anonymous"
        assert page.is_hidden("#ann-tools")
        assert page.evaluate("() => portal.annotate.layer.getSource().getFeatures().length") == 0
        assert urlsplit(page.url).fragment == before
        assert "geoplat_at_hangzhou" not in {c["name"] for c in page.context.cookies(base)}

        # and in again: the annotations are still there
        sign_in(page, base, main, user_a)
        titles = page.eval_on_selector_all("#ann-list .ann-title",
                                           "els => els.map((e) => e.textContent)")
        assert titles == [HOSTILE, "Polygon A2"]

        # share the point: the link is shown
        page.click("#ann-list li:first-child .ann-share")
        page.wait_for_selector("#ann-list li:first-child input.ann-link")
        link = page.input_value("#ann-list li:first-child input.ann-link")
        assert link.startswith(base + "/?note=")
        assert page.errors == []
    finally:
        page.context.close()

    # another user: none of A's annotations, until the shared link shows one, read-only
    token_b = sign_in_users(main_db, main, "annbrowser", {"b": []}, PASSWORD)["b"][
        "Authorization"].split(" ", 1)[1]
    page = new_page(browser)
    try:
        page.context.add_cookies([{"name": "geoplat_at_hangzhou", "value": token_b,
                                   "url": base}])
        page.goto(base + "/#c=120.1,30.3&z=10")
        ready(page)
        assert page.get_attribute("body", "data-user") == "signed-in"
        assert page.query_selector_all("#ann-list li") == []
        assert page.is_hidden("#ann-shared")
        page.goto(link + "#c=119.5,29.5&z=9")
        ready(page)
        wait_for(lambda: page.is_visible("#ann-shared"), timeout=30, message="the shared note")
        assert page.inner_text("#ann-shared .ann-title") == HOSTILE
        assert "<script>" in page.inner_text("#ann-shared .ann-note")
        assert user_a in page.inner_text("#ann-shared")
        assert page.query_selector("#ann-shared button, #ann-shared input") is None
        assert page.query_selector_all("#ann-list li") == []  # not B's
        assert page.evaluate("() => window.hacked") is None
        centre = page.evaluate("() => map.getCenter()")
        assert abs(centre[0] - lon) < 1e-6 and abs(centre[1] - lat) < 1e-6, centre
        assert page.evaluate("() => map.getZoom()") >= 15
        assert kept(base, token_b) == []
        assert page.errors == []
    finally:
        page.context.close()


def test_draw_query_exports_geopackage_and_shapefile_through_extract(browser, urls,
                                                                     main_db) -> None:
    """A signed-in user's draw-query selection of a layer of this node downloads as the
    node's process `extract` writes it: the same features as the query found, progress shown;
    an anonymous visitor gets only the browser's GeoJSON/CSV."""
    import io
    import tempfile
    import zipfile
    from pathlib import Path

    import pyogrio

    base, main = urls["hangzhou"], urls["national"]
    token = sign_in_users(main_db, main, "dqextract", {"c": []}, PASSWORD)["c"][
        "Authorization"].split(" ", 1)[1]
    area = {"type": "Polygon", "coordinates": [[[120.15, 30.24], [120.22, 30.24],
                                                [120.22, 30.29], [120.15, 30.29],
                                                [120.15, 30.24]]]}
    section = "#dq-results section[data-layer='poi']"
    page = new_page(browser)
    try:
        page.goto(base + "/#c=120.19,30.26&z=13&l=poi:1")
        ready(page)
        page.evaluate("(g) => portal.drawQuery.runWith(g)", area)
        assert page.query_selector(f"{section} button.dq-export-csv") is not None
        assert page.query_selector(f"{section} button.dq-export-gpkg") is None  # anonymous
    finally:
        page.context.close()
    page = new_page(browser)
    try:
        page.context.add_cookies([{"name": "geoplat_at_hangzhou", "value": token, "url": base}])
        page.goto(base + "/#c=120.19,30.26&z=13&l=poi:1")
        ready(page)
        assert page.get_attribute("body", "data-user") == "signed-in"
        got = page.evaluate("(g) => portal.drawQuery.runWith(g)", area)
        [ids] = [sorted(int(i) for i in r["ids"]) for r in got if r["layer"] == "poi"]
        assert len(ids) > 5, got
        with page.expect_download() as download:
            page.click(f"{section} button.dq-export-gpkg")
        gpkg = Path(tempfile.mkdtemp()) / "poi.gpkg"
        gpkg.write_bytes(Path(download.value.path()).read_bytes())
        assert download.value.suggested_filename.endswith(".gpkg")
        df = pyogrio.read_dataframe(gpkg, fid_as_index=True)
        assert sorted(int(i) for i in df.index) == ids
        assert "name" in df.columns
        job = page.get_attribute(section, "data-extract")
        assert job and job not in ("running", "failed"), job
        assert str(len(ids)) in page.inner_text(f"{section} .dq-extract-status")
        with page.expect_download() as download:
            page.click(f"{section} button.dq-export-shp")
        raw = Path(download.value.path()).read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = z.namelist()
        assert any(n.endswith(".shp") for n in names) and any(n.endswith(".cpg")
                                                               for n in names), names
        assert page.errors == []
    finally:
        page.context.close()
