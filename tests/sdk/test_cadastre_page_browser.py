"""The public cadastral map `/cadastre` (issue 15) in headless Chromium against the shared
federation's Hangzhou node: a rectangle drawn with the mouse lists exactly the parcels the
server's CQL2 `s_intersects` query returns (asked here with httpx), and the pre-sale projects
on them; a click on a parcel lists it, and so does a polygon drawn with the mouse; list entries are keyboard-focusable and zoom to their
parcel; the A4 PDF of the print view, rendered by pdftoppm, shows the map (and is blank there
without it); one column without horizontal scroll at 390 px; English; hostile attribute text of
a published layer shows as text; a node without parcels answers a 404 page."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from portal_pages import s_intersects
from print_support import map_area
from publish_helpers import served, sign_in_users
from sdk_pages import IDLE, differing, pixel_of, snapshot
from sso_client import bearer, login_pkce
from waiting import wait_for

from nodes import federation as federation_mod
from services.access.control import token_cookie
from services.db import Database
from services.sso import accounts

MU = 10000 / 15  # m² per 亩
PASSWORD = "Cadastre-Page-Pass-1"
HOSTILE = '<img src=x onerror="window.hacked=1">宗地&amp;'
HOSTILE_LAYER = "cad_hostile"
QUERY_DONE = "() => /^\\d+$/.test(document.body.dataset.query || '')"


def all_items(base: str, collection: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/ogc/collections/{collection}/items",
                  params={"f": "json", "limit": "1000"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    return r.json()["features"]


def box(lon: float, lat: float, dx: float, dy: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon - dx, lat - dy], [lon + dx, lat - dy],
                                                [lon + dx, lat + dy], [lon - dx, lat + dy],
                                                [lon - dx, lat - dy]]]}


def open_cadastre(browser: Any, url: str, width: int = 1200, height: int = 800) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height}) if hasattr(
        browser, "new_context") else browser.new_page()  # a context has its own viewport
    page.errors = []  # what the page complained about (favicon aside), asserted empty
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: page.errors.append(f"console: {m.text}")
            if m.type == "error" and "favicon" not in (m.location or {}).get("url", "")
            else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=90_000)
    page.wait_for_selector(IDLE, timeout=90_000)
    return page


def on_screen(page: Any, lon_lat: tuple[float, float]) -> tuple[float, float]:
    """The page coordinates of a lon/lat on the map."""
    x, y = pixel_of(page, lon_lat)
    frame = page.locator("#map").bounding_box()
    return frame["x"] + x, frame["y"] + y


def listed(page: Any, kind: str) -> list[str]:
    attr = "data-parcel" if kind == "parcels" else "data-permit"
    return page.eval_on_selector_all(f"#{kind} li", f"els => els.map(e => e.getAttribute('{attr}'))")


def redraw(page: Any) -> None:
    page.evaluate("() => new Promise((r) => { map.once('rendercomplete', r); "
                  "map.getLibMap().render(); })")
    page.wait_for_selector(IDLE, timeout=90_000)


@pytest.fixture(scope="module")
def project(urls: dict[str, str]) -> dict[str, Any]:
    """A sample pre-sale project with its parcel: where the tests look."""
    base = urls["hangzhou"]
    projects = all_items(base, "presale_projects")
    assert len(projects) == 60
    first = min(projects, key=lambda f: f["properties"]["permit_no"])
    centre = shapely.geometry.shape(first["geometry"]).representative_point()
    return {"feature": first, "centre": (round(centre.x, 6), round(centre.y, 6)),
            "all": projects}


def test_the_page_with_the_demo_browser_key_and_a_404_without_parcels(urls, demo) -> None:
    r = httpx.get(urls["hangzhou"] + "/cadastre")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    nonce = r.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'id="cadastre-config" nonce="{nonce}"' in r.text
    assert demo["browser_key"] in r.text and demo["server_key"] not in r.text
    assert " on" + "click=" not in r.text and "onerror" not in r.text
    assert '"parcels":"parcels"' in r.text and '"projects":"presale_projects"' in r.text
    script = httpx.get(urls["hangzhou"] + "/sdk/cadastre.js")
    assert script.status_code == 200 and "cadastre-config" in script.text
    assert "innerHTML" not in script.text, "API text goes into the DOM as text only"
    for node in ("national", "zhejiang"):  # no cadastre: setting, no parcels layer
        missing = httpx.get(urls[node] + "/cadastre")
        assert missing.status_code == 404, node
        assert missing.headers["content-type"].startswith("text/html")
        assert "no cadastral parcels layer" in missing.text and "cadastre.js" not in missing.text


def test_a_drawn_rectangle_lists_what_s_intersects_returns(browser, urls, project) -> None:
    base = urls["hangzhou"]
    lon, lat = project["centre"]
    page = open_cadastre(browser, f"{base}/cadastre?center={lon},{lat}&zoom=16")
    assert int(page.evaluate("document.getElementById('map').dataset.parcels")) > 50
    before = snapshot(page)
    # draw the rectangle with the mouse: one corner, then the opposite one
    page.click("#tool-box")
    assert page.get_attribute("#tool-box", "aria-pressed") == "true"
    x0, y0 = on_screen(page, (lon - 0.004, lat - 0.003))
    x1, y1 = on_screen(page, (lon + 0.004, lat + 0.003))
    page.mouse.click(x0, y0)
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.click(x1, y1)
    page.wait_for_function(QUERY_DONE, timeout=60_000)
    drawn = page.evaluate("window.__cadastre.state.lastGeometry")
    assert drawn["type"] == "Polygon"
    xs = [c[0] for c in drawn["coordinates"][0]]
    ys = [c[1] for c in drawn["coordinates"][0]]
    for got, want in ((min(xs), lon - 0.004), (max(xs), lon + 0.004), (min(ys), lat - 0.003),
                      (max(ys), lat + 0.003)):
        assert abs(got - want) < 1e-4, (got, want)  # a pixel at level 16 is ~2e-5 degrees
    expected = s_intersects(base, "parcels", drawn)
    numbers = sorted(f["properties"]["parcel_no"] for f in expected)
    assert 5 < len(numbers) < 500
    assert listed(page, "parcels") == numbers
    assert project["feature"]["properties"]["parcel_no"] in numbers
    # each parcel: land use with its GB/T 21010 code and name, area in m² and 亩
    first = next(f["properties"] for f in expected if f["properties"]["parcel_no"] == numbers[0])
    text = page.locator("#parcels li").nth(0).inner_text().replace(",", "")
    assert first["land_use"] in text and first["gbt21010_code"] in text
    assert first["gbt21010_name"] in text
    assert f"{first['area_m2']:.1f} m²" in text and f"{first['area_m2'] / MU:.2f} 亩" in text
    # the pre-sale projects on those parcels (read here from the whole layer)
    on_them = sorted((f for f in project["all"] if f["properties"]["parcel_no"] in numbers),
                     key=lambda f: (f["properties"]["parcel_no"], f["properties"]["permit_no"]))
    assert sorted(listed(page, "projects")) == sorted(f["properties"]["permit_no"]
                                                     for f in on_them)
    p = project["feature"]["properties"]
    entry = page.locator(f"#projects li[data-permit='{p['permit_no']}']").inner_text()
    for value in (p["project_name"], p["developer"], p["permit_no"], p["status"],
                  f"{p['units_for_sale']} / {p['units_total']}"):
        assert str(value) in entry, (value, entry)
    # highlighted on the map
    redraw(page)
    assert differing(before, snapshot(page)) > 0.02
    # keyboard: an entry is focusable and Enter zooms to its parcel
    page.focus("#parcels li >> nth=0")
    page.keyboard.press("Enter")
    page.wait_for_selector("#map[data-selected='parcel:0']", timeout=30_000)
    page.wait_for_selector("#parcels li.selected", timeout=30_000)
    shape = shapely.geometry.shape(next(f["geometry"] for f in expected
                                        if f["properties"]["parcel_no"] == numbers[0]))
    page.wait_for_function("() => !map.getLibMap().getView().getAnimating()", timeout=30_000)
    cx, cy = page.evaluate("map.getCenter()")
    assert shape.envelope.buffer(1e-4).contains(shapely.Point(cx, cy)), (cx, cy, shape.bounds)
    west, south, east, north = page.evaluate("map.getBounds()")
    assert west <= shape.bounds[0] and east >= shape.bounds[2], "the parcel is in the view"
    assert south <= shape.bounds[1] and north >= shape.bounds[3]
    assert page.errors == []
    page.close()


def test_the_query_hook_and_a_click_on_a_parcel(browser, urls, project) -> None:
    base = urls["hangzhou"]
    lon, lat = project["centre"]
    page = open_cadastre(browser, f"{base}/cadastre?center={lon},{lat}&zoom=17")
    # the test hook: a box in degrees, exactly as the server answers it
    bbox = [lon - 0.006, lat - 0.002, lon + 0.001, lat + 0.005]
    got = page.evaluate("(b) => window.__cadastre.queryExtent(b)", bbox)
    expected = s_intersects(base, "parcels", box((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2,
                                                 (bbox[2] - bbox[0]) / 2, (bbox[3] - bbox[1]) / 2))
    assert sorted(got["parcels"]) == sorted(f["properties"]["parcel_no"] for f in expected)
    assert listed(page, "parcels") == sorted(got["parcels"]) and got["matched"] == len(expected)
    # a click on a parcel (inside it, away from its edges) lists that parcel
    parcels = s_intersects(base, "parcels", box(lon, lat, 0.0015, 0.001))
    target = max(parcels, key=lambda f: shapely.geometry.shape(f["geometry"]).area)
    inside = shapely.geometry.shape(target["geometry"]).buffer(-2e-5).representative_point()
    page.evaluate("() => { document.body.dataset.query = ''; }")
    x, y = on_screen(page, (inside.x, inside.y))
    frame = page.locator("#map").bounding_box()
    assert frame["x"] < x < frame["x"] + frame["width"] and frame["y"] < y < frame["y"] + frame[
        "height"], "the parcel is on the screen"
    page.mouse.click(x, y)
    page.wait_for_function(QUERY_DONE, timeout=60_000)
    at = s_intersects(base, "parcels", page.evaluate("window.__cadastre.state.lastGeometry"))
    assert [f["properties"]["parcel_no"] for f in at] == [target["properties"]["parcel_no"]]
    assert listed(page, "parcels") == [target["properties"]["parcel_no"]]
    # a polygon drawn with the mouse: three corners, then a click on the first closes it
    page.click("#tool-polygon")
    corners = [on_screen(page, c) for c in ((lon - 0.002, lat - 0.0015), (lon + 0.002,
                                             lat - 0.001), (lon, lat + 0.0015))]
    page.evaluate("() => { document.body.dataset.query = ''; }")
    for x, y in [*corners, corners[0]]:
        page.mouse.move(x, y, steps=8)
        page.mouse.click(x, y)
    page.wait_for_function(QUERY_DONE, timeout=60_000)
    drawn = page.evaluate("window.__cadastre.state.lastGeometry")
    assert drawn["type"] == "Polygon" and len(drawn["coordinates"][0]) == 4, drawn
    expected = s_intersects(base, "parcels", drawn)
    assert listed(page, "parcels") == sorted(f["properties"]["parcel_no"] for f in expected)
    assert len(expected) > 1
    assert page.errors == []
    page.close()


def test_the_printed_pdf_shows_the_map(browser, urls, project, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is missing: apt-get install -y poppler-utils (APT_PACKAGES)"
    lon, lat = project["centre"]
    page = open_cadastre(browser, f"{urls['hangzhou']}/cadastre?center={lon},{lat}&zoom=16")
    page.evaluate("(b) => window.__cadastre.queryExtent(b)",
                  [lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002])
    # page.pdf prints with the print stylesheet (emulating print media first would hide the
    # live map, display: none, and OpenLayers would draw it at size 0). Its `beforeprint` puts
    # the map into the sheet unless the sheet says it is ready: the control without the map
    page.evaluate("() => { document.body.dataset.print = 'ready'; }")
    blank = map_area(page.pdf(format="A4"), pdftoppm, tmp_path / "blank")
    info = page.evaluate("window.__cadastre.preparePrint()")
    assert info["width"] > 300 and 500 < info["scale"] < 100_000
    pdf = page.pdf(format="A4")
    printed = map_area(pdf, pdftoppm, tmp_path / "map")
    pixels = np.asarray(printed)
    assert len(printed.getcolors(1 << 20) or []) > 1000
    assert (pixels.min(axis=2) < 235).mean() > 0.5, "the map area is mostly not white"
    assert len(blank.getcolors(1 << 20) or []) < 100, "without the map image it is blank"
    (tmp_path / "sheet.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "sheet.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    for words in ("地籍图查询", "审图号", "制图日期", "合成样例数据", "1:", "居住用地", "N"):
        assert words in text, words
    assert re.search(r"\d{4}-\d{2}-\d{2}", text)
    page.close()


def test_phone_width_and_english(browser, urls, project) -> None:
    lon, lat = project["centre"]
    page = open_cadastre(browser, f"{urls['hangzhou']}/cadastre?center={lon},{lat}&zoom=16",
                         width=390, height=844)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.evaluate("(b) => window.__cadastre.queryExtent(b)",
                  [lon - 0.003, lat - 0.002, lon + 0.003, lat + 0.002])
    assert page.locator("#parcels li").count() > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    side = page.locator("#side").bounding_box()
    assert side["width"] <= 390 and side["y"] > page.locator("#map").bounding_box()["y"]
    page.click("#lang")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("#parcels-section h2").inner_text().startswith("Parcels")
    assert "mu" in page.locator("#parcels li").nth(0).inner_text()
    page.click("#lang")
    assert page.locator("#parcels-section h2").inner_text().startswith("宗地")
    # a query over the whole sample stops at the cap (500) and says so
    got = page.evaluate("(b) => window.__cadastre.queryExtent(b)", [120.13, 30.22, 120.25, 30.32])
    assert len(got["parcels"]) == 500 < got["matched"]
    assert page.locator("#parcels li").count() == 500
    assert f"只列出前 500 宗（共 {got['matched']} 宗）" in page.locator("#parcel-total").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()


@pytest.fixture
def hostile_layer(main_db: Any, urls: dict[str, str]) -> Any:
    """A published layer of one polygon whose every text attribute is an HTML payload."""
    base = urls["hangzhou"]
    heads = sign_in_users(main_db, urls["national"], "cadpage",
                          {"publisher": ["hangzhou:publisher"]}, PASSWORD)["publisher"]
    centre = (120.1000, 30.2000)
    gdf = gpd.GeoDataFrame({name: [HOSTILE] for name in (
        "parcel_no", "land_use", "gbt21010_name", "project_name", "developer", "status",
        "note")}, geometry=[shapely.box(centre[0] - 5e-4, centre[1] - 5e-4, centre[0] + 5e-4,
                                        centre[1] + 5e-4)], crs="EPSG:4326")
    buf = io.BytesIO()
    pyogrio.write_dataframe(gdf, buf, driver="GeoJSON")
    r = httpx.post(f"{base}/api/layers", headers=heads, timeout=120,
                   data={"name": HOSTILE_LAYER},
                   files={"file": ("hostile.geojson", buf.getvalue(), "application/geo+json")})
    assert r.status_code == 201, r.text
    wait_for(lambda: served(base, HOSTILE_LAYER))
    try:
        yield centre
    finally:
        httpx.delete(f"{base}/api/layers/{HOSTILE_LAYER}", headers=heads, timeout=60)


def test_hostile_attribute_text_shows_as_text(browser, urls, hostile_layer) -> None:
    lon, lat = hostile_layer
    page = open_cadastre(browser, f"{urls['hangzhou']}/cadastre?parcels={HOSTILE_LAYER}"
                                  f"&projects={HOSTILE_LAYER}&center={lon},{lat}&zoom=16")
    got = page.evaluate("(b) => window.__cadastre.queryExtent(b)",
                        [lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001])
    assert got["parcels"] == [HOSTILE] and len(got["projects"]) == 1
    assert page.locator("#parcels li h3").inner_text() == HOSTILE
    assert page.locator("#projects li h3").inner_text() == HOSTILE
    assert HOSTILE in page.locator("#parcels li dl").inner_text()  # the unknown field `note`
    assert page.locator("#side img, #print-sheet img:not(#print-map)").count() == 0
    assert page.evaluate("window.hacked") is None
    page.close()


@pytest.fixture
def granted_token(federation: Any, main_db: Any, urls: dict[str, str]) -> Any:
    """The access token of a user with Hangzhou's grant for `parcels` (its holder fields)."""
    hz = Database(federation_mod.node_dsn(federation, federation.node("hangzhou")), maxconn=1)
    user = accounts.create(main_db, "cadpage_granted", PASSWORD, roles=[])
    hz.execute("INSERT INTO auth.grants (user_sub, username, layer_id, status) "
               "VALUES (%s, %s, 'parcels', 'approved')", (str(user.id), user.username))
    try:
        yield login_pkce(urls["national"], "cadpage_granted", PASSWORD)["access_token"]
    finally:
        hz.execute("DELETE FROM auth.grants WHERE user_sub = %s", (str(user.id),))
        hz.close()


def test_the_holder_fields_for_a_signed_in_user_with_the_grant(browser, urls, project,
                                                               granted_token) -> None:
    """The page's queries carry the node's session cookie: the grant's fields are listed as
    text; without it (or with a stale sign-in, which falls back to the key) they are not."""
    base = urls["hangzhou"]
    lon, lat = project["centre"]
    bbox = [lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001]
    shown = {}
    for who, token in (("granted", granted_token), ("stale", "not-a-token"), ("anonymous", None)):
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        if token:
            context.add_cookies([{"name": token_cookie("hangzhou"), "value": token, "url": base}])
        page = open_cadastre(context, f"{base}/cadastre?center={lon},{lat}&zoom=17")
        got = page.evaluate("(b) => window.__cadastre.queryExtent(b)", bbox)
        assert got["parcels"], who
        shown[who] = page.locator("#parcels").inner_text()
        context.close()
    holders = [f["properties"]["right_holder"] for f in s_intersects(
        base, "parcels", box(lon, lat, 0.001, 0.001), bearer(granted_token))]
    assert holders and all(h in shown["granted"] for h in holders) and "权利人" in shown["granted"]
    for who in ("stale", "anonymous"):
        assert "权利人" not in shown[who] and not any(h in shown[who] for h in holders), who
