"""Geoplat.Map in a real browser against the shared federation (issue 14 acceptance): the
render gate, the `c` and `w` grids as the capabilities give them, West Lake at level 12, the
cascade to the information base at level 18, switching to imagery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rasterio
from sdk_pages import colours, differing, open_map, pixel_of, rerender, snapshot

ROOT = Path(__file__).resolve().parents[2]
WEST_LAKE = (120.1445, 30.2445)  # the synthetic outline's centre (data-samples/generate_hangzhou.py)
CIVIC_CENTRE = (120.2130, 30.2460)  # 杭州市民中心, a fixed point of the Hangzhou samples


def example(base: str, name: str = "geoplat-map", **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}/sdk/examples/{name}.html" + (f"?{query}" if query else "")


@pytest.mark.parametrize(("crs", "grid"), [("EPSG:4490", "c"), ("EPSG:3857", "w")])
def test_map_renders_in_the_grid_of_the_capabilities(browser, urls, crs, grid) -> None:
    requested: list[str] = []
    page = browser.new_page(viewport={"width": 640, "height": 480})
    page.on("request", lambda r: requested.append(r.url))
    page.goto(example(urls["national"], crs=crs, zoom=12, lon=120.155, lat=30.25))
    page.wait_for_selector("#map[data-idle='true']", timeout=90_000)
    img = snapshot(page)
    assert colours(img) > 50, "the map canvas is blank after rendercomplete"
    view = page.evaluate("""() => { const v = map.getLibMap().getView();
        return {res: v.getResolution(), zoom: v.getZoom(), code: v.getProjection().getCode(),
                mpu: v.getProjection().getMetersPerUnit()}; }""")
    assert view["zoom"] == 12 and view["code"] == crs
    if grid == "c":  # level 1 = 0.703125 deg/px: level 12 = 1.40625 / 2^12
        assert abs(view["res"] - 1.40625 / 2 ** 12) < 1e-15
        assert abs(view["mpu"] - 111319.4907932736) < 1e-6
        # the tile holding the centre, numbered as Tianditu's: col 3414, row 679 at level 12
        assert any("/wmts/vec/c/12/3414/679.png" in u for u in requested), requested[:20]
    else:
        assert abs(view["res"] - 2 * 20037508.342789244 / 256 / 2 ** 12) < 1e-6
        assert any("/wmts/vec/w/12/" in u for u in requested)
    assert all("tk=" in u for u in requested if "/wmts" in u), "every e-map request has the key"
    page.close()


def test_west_lake_has_the_lake_colour_at_level_12(browser, urls) -> None:
    # Hangzhou's node draws every level within its extent; West Lake is in its imagery (the
    # samples' vector layers have no lake polygon there: roads and blocks are cut around it)
    with rasterio.open(ROOT / "data-samples" / "rasters" / "hangzhou_img_synthetic.tif") as r:
        water = [int(v) for v in next(r.sample([WEST_LAKE]))]
    page = open_map(browser, example(urls["hangzhou"], basemap="img", labels="false", zoom=12,
                                     lon=WEST_LAKE[0], lat=WEST_LAKE[1]))
    img = snapshot(page)
    rgb = img.getpixel(pixel_of(page, WEST_LAKE))
    assert max(abs(a - b) for a, b in zip(rgb, water, strict=True)) < 30, (rgb, water)
    assert rgb[2] > rgb[0] + 30, f"not water-blue: {rgb}"
    page.close()


def test_level_18_over_hangzhou_shows_the_information_base(browser, urls) -> None:
    """The main node's map at level 18 draws what the Hangzhou node draws (the cascade), not
    an upscaled level 14 of its own data."""
    view = {"zoom": 18, "lon": CIVIC_CENTRE[0], "lat": CIVIC_CENTRE[1], "labels": "false"}
    main = open_map(browser, example(urls["national"], **view))
    via_main = snapshot(main, inner=0.7)
    local = open_map(browser, example(urls["hangzhou"], **view))
    from_hangzhou = snapshot(local, inner=0.7)
    rerender(main, "map.setZoom(14)")
    own_14 = snapshot(main, inner=0.7)
    assert colours(via_main) > 30, "level 18 is blank"
    assert differing(via_main, from_hangzhou) < 0.02, "level 18 is not the information base's"
    assert differing(via_main, own_14) > 0.2, "level 18 looks like level 14: no detail"
    main.close()
    local.close()


def test_switching_to_imagery_changes_the_pixels(browser, urls) -> None:
    page = open_map(browser, example(urls["national"], zoom=8, lon=120.2, lat=30.2))
    vec = snapshot(page)
    rerender(page, "await map.setBasemap('img')")
    img = snapshot(page)
    assert page.evaluate("() => map.getBasemap()") == "img"
    assert differing(vec, img) > 0.5
    rerender(page, "await map.setLabels(false)")
    assert differing(img, snapshot(page), tolerance=8) > 0.001, "labels did not go"
    page.close()


def test_the_es_module_build_renders(browser, urls) -> None:
    page = open_map(browser, example(urls["national"], "geoplat-esm"))
    assert colours(snapshot(page)) > 50
    assert page.evaluate("() => map.getLibMap().getView().getProjection().getCode()") \
        == "EPSG:3857"
    page.close()
