"""The portal of the main node over the whole federation (issue 16) in headless Chromium: the
layer tree holds, grouped by node, the other nodes' public feature layers and the map services
(composites) the main node's catalogue lists for the caller, and nothing it leaves out; another
node's layer is drawn from that node (the page's CSP names the federation's origins and no
other); the division pickers list the provinces, a province's cities and a city's counties as
the place-names service does, and picking one outlines it and zooms to its bounds."""

from __future__ import annotations

from typing import Any

import httpx
from portal_pages import open_portal
from test_portal_browser import BROWSER_ACCEPT
from waiting import wait_for

from nodes.security_headers import content_security_policy


def catalogue(base: str) -> list[dict[str, Any]]:
    """Every record of a node's catalogue an anonymous caller sees."""
    r = httpx.get(base + "/ogc/collections/catalogue/items",
                  params={"f": "json", "limit": 1000}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["features"]


def test_tree_lists_the_federation_by_node(urls, browser, demo) -> None:
    base = urls["national"]
    # the children push their records up as they start: wait for Hangzhou's to arrive
    def arrived() -> list[dict[str, Any]] | None:
        rs = catalogue(base)
        return rs if any(r["id"] == "hangzhou:features:poi" for r in rs) else None

    records = wait_for(arrived, 120, "Hangzhou's records in the main node's catalogue")
    expected_remote = {f"{r['properties']['origin_node']}.{r['properties']['layer_id']}"
                       for r in records if r["properties"]["type"] == "OGCAPI-Features"
                       and r["properties"]["origin_node"] != "national"
                       and r["properties"]["access"] == "public"}
    assert {"zhejiang.counties", "hangzhou.poi"} <= expected_remote
    composites = {f"map.{r['properties']['origin_node']}.{r['properties']['layer_id']}"
                  for r in records if r["properties"]["type"] in ("WMS", "WMTS")
                  and r["properties"]["layer_id"] not in ("vec", "cva", "img", "cia", "ter", "cta")}
    assert "map.national.hall_map" in composites
    page = open_portal(browser, base + "/")
    try:
        tree = page.evaluate("portal.layers.entries.map((e) => [e.id, e.kind, e.group])")
        ids = {i for i, _, _ in tree}
        own = {c["id"] for c in httpx.get(base + "/ogc/collections", params={"f": "json"},
                                          timeout=60).json()["collections"]
               if c.get("itemType", "feature") == "feature"}
        assert ids == own | expected_remote | composites
        # the registered Hangzhou addresses are in no anonymous tree, whoever lists them
        assert not any(i.endswith(".addresses") for i in ids)
        groups = page.eval_on_selector_all("#layers li.group", "els => els.map(e => e.dataset.group)")
        assert groups[0].startswith("national/")  # this node first, then its subtree by tier
        assert {"zhejiang/features", "hangzhou/features"} <= set(groups)
        assert page.locator("#layers li.locked a").get_attribute("href").startswith(
            "/auth/login?next=")  # the view comes back after signing in
        assert page.locator("#layers li[data-layer] .legend").count() == len(ids)
        # another node's layer is drawn from that node, as that node's items say
        page.check("input[id='layer-zhejiang.counties']")
        page.wait_for_function("() => { const e = portal.layers.entries.find((x) => x.id === "
                               "'zhejiang.counties'); return e.drawn && e.drawn.source && "
                               "e.drawn.source.getFeatures().length > 0; }", timeout=60_000)
        drawn = set(page.evaluate("portal.layers.entries.find((x) => x.id === "
                                  "'zhejiang.counties').drawn.source.getFeatures()"
                                  ".map((f) => String(f.getId()))"))
        bounds = page.evaluate("portal.map.getBounds()")
        theirs = httpx.get(urls["zhejiang"] + "/ogc/collections/counties/items", params={
            "f": "json", "limit": 1000, "bbox": ",".join(f"{v:.7f}" for v in bounds)},
            timeout=60).json()
        assert drawn == {str(f["id"]) for f in theirs["features"]}
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_page_policy_names_the_federation_only(urls) -> None:
    r = httpx.get(urls["national"] + "/", headers={"Accept": BROWSER_ACCEPT}, timeout=60)
    policy = r.headers["content-security-policy"]
    connect = next(p for p in policy.split("; ") if p.startswith("connect-src"))
    origins = set(connect.split()[1:]) - {"'self'"}
    assert origins == {urls["zhejiang"], urls["hangzhou"]}
    # an origin is a scheme, a host and a port: anything else stays out of the policy
    hostile = content_security_policy("n", ("http://a.example:80", "http://x; script-src *",
                                            "javascript:alert(1)"))
    assert "http://a.example:80" in hostile and "script-src *" not in hostile
    assert "javascript" not in hostile


def test_division_pickers_follow_the_place_names_service(urls, browser, demo) -> None:
    base = urls["national"]
    country = httpx.get(base + "/api/places/admin/中国", params={"children": 1},
                        timeout=60).json()["features"][0]
    provinces = [c["code"] for c in country["properties"]["children"]]
    zj = httpx.get(base + "/api/places/admin/330000",
                   params={"children": 1, "geometry": "true"}, timeout=60).json()["features"][0]
    hz = httpx.get(base + "/api/places/admin/330100",
                   params={"children": 1, "geometry": "true"}, timeout=60).json()["features"][0]
    page = open_portal(browser, base + "/")
    try:
        options = page.eval_on_selector_all("#div-province option",
                                            "els => els.map(e => e.value).filter(Boolean)")
        assert options == provinces
        page.select_option("#div-province", "330000")
        page.wait_for_function("() => document.body.dataset.division === '330000'")
        cities = page.eval_on_selector_all("#div-city option",
                                           "els => els.map(e => e.value).filter(Boolean)")
        assert cities == [c["code"] for c in zj["properties"]["children"]]
        page.select_option("#div-city", "330100")
        page.wait_for_function("() => document.body.dataset.division === '330100'")
        counties = page.eval_on_selector_all("#div-county option",
                                             "els => els.map(e => e.value).filter(Boolean)")
        assert counties == [c["code"] for c in hz["properties"]["children"]]
        assert hz["geometry"]["type"] in ("Polygon", "MultiPolygon")
        outline = page.evaluate("portal.divisions.layer.getSource().getFeatures().length")
        assert outline == 1
        page.wait_for_function("() => !portal.map.getLibMap().getView().getAnimating()")
        west, south, east, north = page.evaluate("portal.map.getBounds()")
        x0, y0, x1, y1 = hz["properties"]["bbox"]
        # the view holds the city's box, and is not much larger than it
        assert west <= x0 and south <= y0 and east >= x1 and north >= y1
        assert (east - west) < 4 * (x1 - x0) or (north - south) < 4 * (y1 - y0)
        page.click("#div-clear")
        assert page.evaluate("portal.divisions.layer.getSource().getFeatures().length") == 0
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_country_lists_the_provinces_the_node_knows(urls, demo) -> None:
    """`中国` (and Tianditu's 156000000) is the root: its children are the node's provinces."""
    from services.places.divisions import load

    every = sorted(r.code for r in load().values() if r.kind == "province")
    for keyword in ("中国", "156000000"):
        [c] = httpx.get(urls["national"] + f"/api/places/admin/{keyword}",
                        params={"children": 1}, timeout=60).json()["features"]
        assert c["properties"]["kind"] == "country" and c["properties"]["name"] == "中华人民共和国"
        assert [k["code"] for k in c["properties"]["children"]] == every
        x0, y0, x1, y1 = c["properties"]["bbox"]
        assert x0 < 80 and x1 > 130 and y0 < 20 and y1 > 50
    r = httpx.get(urls["hangzhou"] + "/api/places/admin/中国",
                  params={"children": 1, "tk": demo["server_key"]}, timeout=60)
    assert r.status_code == 200, r.text
    [c] = r.json()["features"]
    assert [k["code"] for k in c["properties"]["children"]] == ["330000"]
    tdt = httpx.get(urls["national"] + "/v2/administrative",
                    params={"keyword": "中国", "childLevel": 1, "tk": demo["server_key"]}, timeout=60)
    assert tdt.status_code == 200, tdt.text
    [district] = tdt.json()["data"]["district"]
    assert district["gb"] == "156000000" and district["level"] == 5  # Tianditu: country 5
    assert [c["gb"] for c in district["children"]] == ["156" + k for k in every]
    assert {c["level"] for c in district["children"]} == {4}
