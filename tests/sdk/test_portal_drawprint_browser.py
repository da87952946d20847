"""The portal's draw-query (勾绘查询) and print sheet (issue 16) in headless Chromium against the
shared federation's Hangzhou node.

- A polygon drawn with the mouse over parcels, as a user with the grant for `parcels`, lists
  the ids the server's CQL2 `s_intersects` query returns (asked here with httpx, as that user)
  and their total ellipsoidal area equals pyproj.Geod's on CGCS2000's ellipsoid within 0.01 %;
  the holder fields of the grant come with them; a sum grouped by land use equals the one
  computed from the server's answer; a row highlights its feature; a circle and a division's
  outline (`runWith`) query too; the CSV export of a layer whose text starts with `=` disarms
  it (and the GeoJSON export is the features).
  An outline too long for a URL goes as a POSTed CQL2-JSON query, with the same answer.
- Print: the PDF's first page (pdftoppm) shows a non-blank map and the title; A3 landscape
  gives an A3 landscape page; the legend, review number, date and notice are on it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import shapely
from field_support import callers
from portal_pages import layer_loaded, s_intersects
from portal_pages import open_portal as open_page
from print_support import first_page, frame_area, page_size_pt, pdf_text, poppler
from publish_helpers import served
from pyproj import Geod
from sdk_pages import pixel_of
from waiting import wait_for

from nodes import federation as federation_mod
from services.db import Database

PASSWORD = "Portal-Draw-Pass-1"
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid (f differs from GRS80's in the 12th digit)
QUERY_DONE = "() => /^\\d+$/.test(document.getElementById('dq-panel').dataset.query || '')"
FORMULA = '=HYPERLINK("http://example.invalid","点我")'
SPOT = (120.2600, 30.2100)  # the published formula layer's polygon


def geod_area(geometry: dict[str, Any]) -> float:
    return abs(GEOD.geometry_area_perimeter(shapely.geometry.shape(geometry))[0])


def open_portal(browser: Any, url: str, token: str | None = None) -> Any:
    """The portal a little taller than 800 px, saving downloads (the exports)."""
    return open_page(browser, url, height=860, token=token, accept_downloads=True)


def on_screen(page: Any, lon_lat: tuple[float, float]) -> tuple[float, float]:
    x, y = pixel_of(page, lon_lat)
    frame = page.locator("#map").bounding_box()
    return frame["x"] + x, frame["y"] + y


def listed(page: Any, layer: str) -> list[str]:
    return page.eval_on_selector_all(f"#dq-results section[data-layer='{layer}'] li",
                                     "els => els.map((e) => e.dataset.id)")


@pytest.fixture(scope="module")
def hz_db(federation: Any) -> Any:
    db = Database(federation_mod.node_dsn(federation, federation.node("hangzhou")), maxconn=1)
    yield db
    db.close()


@pytest.fixture(scope="module")
def who(urls: dict[str, str], main_db: Any, hz_db: Any) -> dict[str, dict[str, str]]:
    """Anonymous, a user, a user with the grant for parcels, Hangzhou's publisher."""
    return callers(main_db, hz_db, urls["national"], "portaldraw", PASSWORD)


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.fixture(scope="module")
def spot(urls: dict[str, str]) -> tuple[float, float]:
    """A point inside a parcel in the middle of the sample's parcels."""
    r = httpx.get(urls["hangzhou"] + "/ogc/collections/parcels/items",
                  params={"f": "json", "limit": "1", "offset": "200"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    p = shapely.geometry.shape(r.json()["features"][0]["geometry"]).representative_point()
    return round(p.x, 6), round(p.y, 6)


def test_a_drawn_polygon_lists_what_s_intersects_returns_with_its_geodesic_area(
        browser, urls, who, spot) -> None:
    base = urls["hangzhou"]
    lon, lat = spot
    granted = who["granted"]
    page = open_portal(browser, f"{base}/#c={lon},{lat}&z=16&l=parcels:1",
                       token=token_of(granted))
    try:
        assert page.get_attribute("body", "data-user") == "signed-in"
        layer_loaded(page, "parcels")
        page.click("#dq-open")
        assert page.is_visible("#dq-panel")
        page.click("#dq-polygon")
        assert page.get_attribute("#dq-polygon", "aria-pressed") == "true"
        corners = [on_screen(page, c) for c in ((lon - 0.003, lat - 0.002),
                                                (lon + 0.003, lat - 0.0015),
                                                (lon + 0.002, lat + 0.002),
                                                (lon - 0.0025, lat + 0.0015))]
        for x, y in [*corners, corners[0]]:  # a click on the first point closes it
            page.mouse.move(x, y, steps=6)
            page.mouse.click(x, y)
        page.wait_for_function(QUERY_DONE, timeout=90_000)
        drawn = page.evaluate("() => portal.drawQuery.lastGeometry")
        assert drawn["type"] == "Polygon" and len(drawn["coordinates"][0]) == 5, drawn
        res = page.evaluate("() => map.getLibMap().getView().getResolution()")
        for (want_lon, want_lat), got in zip(((lon - 0.003, lat - 0.002),
                                              (lon + 0.002, lat + 0.002)),
                                             (drawn["coordinates"][0][0],
                                              drawn["coordinates"][0][2])):
            assert abs(got[0] - want_lon) < 2 * res and abs(got[1] - want_lat) < 2 * res
        expected = s_intersects(base, "parcels", drawn, granted)
        ids = sorted(str(f["id"]) for f in expected)
        assert 5 < len(ids) < 500
        assert sorted(listed(page, "parcels")) == ids
        section = "#dq-results section[data-layer='parcels']"
        assert page.get_attribute(section, "data-count") == str(len(ids))
        # the total ellipsoidal area: pyproj.Geod's within 0.01 %, shown in m², 公顷 and 亩
        area = float(page.get_attribute(section, "data-square-metres"))
        want = sum(geod_area(f["geometry"]) for f in expected)
        assert abs(area - want) / want < 1e-4, (area, want)
        text = page.inner_text(f"{section} p.area")
        assert "公顷" in text and "亩" in text
        assert f"{area / 10000:.4f}" in text and f"{area / (10000 / 15):.2f}" in text
        # the grant's holder fields came with the features (and are exported)
        got = page.evaluate("() => portal.drawQuery.results[0].features.map((f) =>"
                            " f.properties.right_holder)")
        assert all(got) and set(got) == {f["properties"]["right_holder"] for f in expected}
        # grouped by land use: the sums of area_m2 equal the server's features'
        page.select_option(f"{section} select.dq-groupby", "land_use")
        sums: dict[str, float] = defaultdict(float)
        for f in expected:
            sums[str(f["properties"]["land_use"])] += float(f["properties"]["area_m2"])
        shown = page.eval_on_selector_all(
            f"{section} table.dq-groups tr[data-group]",
            "rows => rows.map((r) => [r.dataset.group, r.querySelector("
            "\"td[data-field='area_m2']\").dataset.sum, r.children[1].textContent])")
        groups = {g: float(s) for g, s, _ in shown if g != "*"}
        assert set(groups) == set(sums)
        for name, total in sums.items():
            assert abs(groups[name] - total) < 1e-6 * max(1.0, total), (name, groups, sums)
        counts = {g: int(n) for g, _, n in shown}
        assert counts["*"] == len(ids) == sum(v for k, v in counts.items() if k != "*")
        # a row highlights and zooms to its feature
        page.click(f"{section} li[data-id='{ids[0]}']")
        assert page.evaluate("() => portal.highlighted.map(String)") == [ids[0]]
        assert page.locator(f"{section} li.selected").count() == 1
        # the map clicks drew, they did not identify
        assert page.locator("#identify").count() == 0
        # CSV: the grant's field, a header and a row a feature, WKT geometry
        with page.expect_download() as download:
            page.click(f"{section} button.dq-export-csv")
        assert download.value.suggested_filename == "parcels.csv"
        csv = Path(download.value.path()).read_bytes().decode("utf-8-sig")  # CRLF kept
        header = csv.split("\r\n")[0].split(",")
        assert header[0] == "id" and header[-1] == "wkt" and "right_holder" in header
        assert len(csv.strip("\r\n").split("\r\n")) == len(ids) + 1
        assert '"POLYGON ((' in csv or '"MULTIPOLYGON (((' in csv
        geojson = json.loads(page.evaluate(
            "() => portal.drawQuery.exportLayer('parcels', 'geojson')"))
        assert sorted(str(f["id"]) for f in geojson["features"]) == ids
        # a circle drawn with the mouse: a polygon of points at its radius on the ellipsoid
        page.click("#dq-circle")
        page.evaluate("() => { document.getElementById('dq-panel').dataset.query = ''; }")
        cx, cy = on_screen(page, (lon, lat))
        ex, _ = on_screen(page, (lon + 0.0015, lat))
        page.mouse.click(cx, cy)
        page.mouse.move(ex, cy, steps=6)
        page.mouse.click(ex, cy)
        page.wait_for_function(QUERY_DONE, timeout=90_000)
        circle = page.evaluate("() => portal.drawQuery.lastGeometry")
        ring = circle["coordinates"][0]
        drawn_circle = page.evaluate("() => portal.drawQuery.lastCircle")
        (clon, clat), radius = drawn_circle["centre"], drawn_circle["radius"]
        assert abs(clon - lon) < 2 * res and abs(clat - lat) < 2 * res
        assert abs(radius - GEOD.inv(lon, lat, lon + 0.0015, lat)[2]) < 3 * res * 111_000
        dists = [GEOD.inv(clon, clat, x, y)[2] for x, y in ring]  # the ring: rounded to 1e-7°
        assert len(ring) > 60 and max(abs(d - radius) for d in dists) < 0.03, (dists, radius)
        expected = s_intersects(base, "parcels", circle, granted)
        assert sorted(listed(page, "parcels")) == sorted(str(f["id"]) for f in expected)
        # a division's outline (the lead's division navigation calls runWith)
        outline = {"type": "MultiPolygon", "coordinates": [[[[lon - 0.001, lat - 0.001],
                   [lon + 0.001, lat - 0.001], [lon + 0.001, lat + 0.001],
                   [lon - 0.001, lat + 0.001], [lon - 0.001, lat - 0.001]]]]}
        got = page.evaluate("(g) => portal.drawQuery.runWith(g)", outline)
        expected = s_intersects(base, "parcels", outline, granted)
        assert [r["layer"] for r in got] == ["parcels"]
        assert sorted(got[0]["ids"]) == sorted(str(f["id"]) for f in expected)
        assert got[0]["matched"] == len(expected)
        assert page.evaluate("() => portal.drawQuery.lastMethod") == "GET"  # the text filter
        assert page.errors == []
    finally:
        page.context.close()


def test_without_the_grant_the_holder_fields_are_nowhere(browser, urls, who, spot) -> None:
    base = urls["hangzhou"]
    lon, lat = spot
    page = open_portal(browser, f"{base}/#c={lon},{lat}&z=16&l=parcels:1",
                       token=token_of(who["user"]))
    try:
        box = {"type": "Polygon", "coordinates": [[[lon - 0.001, lat - 0.001],
               [lon + 0.001, lat - 0.001], [lon + 0.001, lat + 0.001],
               [lon - 0.001, lat + 0.001], [lon - 0.001, lat - 0.001]]]}
        got = page.evaluate("(g) => portal.drawQuery.runWith(g)", box)
        assert got[0]["ids"]
        csv = page.evaluate("() => portal.drawQuery.exportLayer('parcels', 'csv')")
        assert "right_holder" not in csv and "right_holder" not in page.inner_text("#dq-panel")
        holders = {f["properties"]["right_holder"] for f in s_intersects(
            base, "parcels", box, who["granted"])}
        assert holders and not any(h in csv for h in holders)
        # an outline too long for a URL (a division's): the same query, POSTed as CQL2-JSON
        ring = [list(GEOD.fwd(lon, lat, 360 - i * 360 / 1500, 150)[:2]) for i in range(1500)]
        long = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        got = page.evaluate("(g) => portal.drawQuery.runWith(g)", long)
        assert page.evaluate("() => portal.drawQuery.lastMethod") == "POST"
        sent = page.evaluate("() => portal.drawQuery.lastGeometry")
        expected = s_intersects(base, "parcels", sent, who["user"])
        assert sorted(got[0]["ids"]) == sorted(str(f["id"]) for f in expected) != []
        assert page.errors == []
    finally:
        page.context.close()


@pytest.fixture
def formula_layer(urls: dict[str, str], who: dict[str, dict[str, str]]) -> Any:
    """A published layer of one polygon whose text attributes start with = + - @."""
    base = urls["hangzhou"]
    x, y = SPOT
    collection = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
            [x - 5e-4, y - 5e-4], [x + 5e-4, y - 5e-4], [x + 5e-4, y + 5e-4],
            [x - 5e-4, y + 5e-4], [x - 5e-4, y - 5e-4]]]},
        "properties": {"name": FORMULA, "tel": "+86 571 0000", "note": "@SUM(A1)",
                       "delta": "-1+1", "count": 7}}]}
    r = httpx.post(f"{base}/api/layers", headers=who["publisher"], timeout=120,
                   data={"name": "portal_formula"},
                   files={"file": ("formula.geojson", json.dumps(collection).encode(),
                                   "application/geo+json")})
    assert r.status_code == 201, r.text
    try:
        wait_for(lambda: served(base, "portal_formula"), timeout=120)
        yield "portal_formula"
    finally:
        httpx.delete(f"{base}/api/layers/portal_formula", headers=who["publisher"], timeout=60)


def test_the_csv_export_disarms_formulas(browser, urls, formula_layer) -> None:
    base = urls["hangzhou"]
    page = open_portal(browser, f"{base}/#c={SPOT[0]},{SPOT[1]}&z=17&l={formula_layer}:1")
    try:
        x, y = SPOT
        got = page.evaluate("(g) => portal.drawQuery.runWith(g)", {"type": "Polygon",
                            "coordinates": [[[x - 1e-3, y - 1e-3], [x + 1e-3, y - 1e-3],
                                             [x + 1e-3, y + 1e-3], [x - 1e-3, y - 1e-3]]]})
        assert [len(r["ids"]) for r in got if r["layer"] == formula_layer] == [1]
        section = f"#dq-results section[data-layer='{formula_layer}']"
        with page.expect_download() as download:
            page.click(f"{section} button.dq-export-csv")
        raw = Path(download.value.path()).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), "a BOM: spreadsheets read it as UTF-8"
        lines = raw.decode("utf-8-sig").split("\r\n")
        header, row = lines[0].split(","), lines[1]
        assert {"name", "tel", "note", "delta", "count"} <= set(header)
        # each cell that starts with = + - @ starts with a quote; quotes inside are doubled
        assert '"\'=HYPERLINK(""http://example.invalid"",""点我"")"' in row
        assert "'+86 571 0000" in row
        assert "'@SUM(A1)" in row and "'-1+1" in row
        cells = re.findall(r'(?:^|,)("(?:[^"]|"")*"|[^,]*)', row)
        assert not [c for c in cells if c.lstrip('"')[:1] in ("=", "+", "-", "@")], cells
        assert page.locator("#dq-panel img, #dq-panel a").count() == 0
        assert page.errors == []
    finally:
        page.context.close()


def test_print_gives_a_pdf_with_the_map_and_the_title_on_a4_and_a3(browser, urls,
                                                                  tmp_path: Path) -> None:
    pdftoppm = poppler("pdftoppm")
    page = open_portal(browser, urls["hangzhou"] + "/#c=120.19,30.26&z=14&l=roads:1,poi:1")
    try:
        layer_loaded(page, "poi")
        page.click("#print-open")
        assert page.is_visible("#print-dialog")
        page.fill("#print-title-input", "杭州市区图 测试打印")
        page.fill("#print-review-input", "浙S(2026)000号")
        # the sheet is not ready: page.pdf's `beforeprint` would fill it; it says it is ready,
        # so this PDF is the sheet without the map
        page.evaluate("() => { document.body.dataset.print = 'ready'; }")
        blank = first_page(page.pdf(prefer_css_page_size=True), pdftoppm, tmp_path / "blank")
        info = page.evaluate("() => portal.printSheet.prepare()")
        assert info["paper"] == "A4 portrait"
        # the frame (186 x 130 mm) at 150 dpi: the map was drawn again at print resolution
        assert info["width"] >= 1000 and 500 < info["scale"] < 200_000, info
        pdf = page.pdf(prefer_css_page_size=True)
        (tmp_path / "a4.pdf").write_bytes(pdf)
        w, h = page_size_pt(tmp_path / "a4.pdf")
        assert abs(w - 595.3) < 2 and abs(h - 841.9) < 2, (w, h)
        img = first_page(pdf, pdftoppm, tmp_path / "a4")
        pixels = np.asarray(frame_area(img, (186, 130)))
        assert len(frame_area(img, (186, 130)).getcolors(1 << 20) or []) > 1000
        assert (pixels.min(axis=2) < 235).mean() > 0.5, "the map area is mostly not white"
        assert len(frame_area(blank, (186, 130)).getcolors(1 << 20) or []) < 100
        text = pdf_text(tmp_path / "a4.pdf")
        for words in ("杭州市区图 测试打印", "审图号", "浙S(2026)000号", "制图日期", "合成样例数据",
                      "1:", "N", "底图"):
            assert words in text, (words, text)
        assert re.search(r"\d{4}-\d{2}-\d{2}", text)
        titles = page.evaluate("() => portal.layers.visible().map((e) => e.title)")
        assert titles and all(t in text for t in titles), (titles, text)
        swatches = page.eval_on_selector_all("#print-legend li span.swatch",
                                             "els => els.map((e) => e.style.backgroundColor)")
        assert len(swatches) == len(titles) and all(swatches)
        # A3 landscape: an A3 landscape page, the frame 396 x 211 mm
        page.evaluate("() => portal.printSheet.choose({paper: 'A3', orientation: 'landscape'})")
        info = page.evaluate("() => portal.printSheet.prepare()")
        assert info["paper"] == "A3 landscape" and info["width"] > info["height"] * 1.5
        pdf = page.pdf(prefer_css_page_size=True)
        (tmp_path / "a3.pdf").write_bytes(pdf)
        w, h = page_size_pt(tmp_path / "a3.pdf")
        assert abs(w - 1190.6) < 2 and abs(h - 841.9) < 2, (w, h)
        img = first_page(pdf, pdftoppm, tmp_path / "a3")
        area = frame_area(img, (396, 211))
        assert len(area.getcolors(1 << 20) or []) > 1000
        assert (np.asarray(area).min(axis=2) < 235).mean() > 0.5
        assert "杭州市区图 测试打印" in pdf_text(tmp_path / "a3.pdf")
        # the live map is back as it was
        assert page.evaluate("() => map.getZoom()") == 14
        assert page.is_visible("#map")
        assert page.errors == []
    finally:
        page.context.close()
