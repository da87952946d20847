"""The portal's catalogue page `/catalogue` (issue 16) in headless Chromium against the shared
federation's Hangzhou node: what the page lists, through all its pages, is what the node's
records API answers the same caller for the same query (type, node, text, a drawn extent):
an anonymous user sees no `registered` or `restricted` record, a signed-in user the
registered ones, Hangzhou's admin the restricted ones too; a result opens in the portal with
its layer shown, and copies its service URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from portal_pages import new_page
from publish_helpers import sign_in_users

PASSWORD = "Catalogue-Page-Pass-1"
ITEMS = "/ogc/collections/catalogue/items"
ADDRESSES, CONTROL, POI = ("hangzhou:features:addresses", "hangzhou:features:control_points",
                           "hangzhou:features:poi")


@pytest.fixture(scope="module")
def users(urls, main_db) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "cat", {
        "plain": [], "admin": ["hangzhou:admin"]}, PASSWORD)


def open_catalogue(browser: Any, base: str, headers: dict[str, str] | None = None) -> Any:
    url = base + "/catalogue"
    token = headers["Authorization"].split(" ", 1)[1] if headers else None
    page = new_page(browser, url, token=token, permissions=["clipboard-read", "clipboard-write"])
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=90_000)
    return page


def settled(page: Any, offset: int) -> None:
    page.wait_for_function("(o) => document.body.dataset.loading === 'false' && "
                           "cataloguePage.lastQuery && cataloguePage.lastQuery.offset === o",
                           arg=offset, timeout=30_000)


def search(page: Any, q: str = "", type_: str = "", node: str = "", bbox: str = "") -> None:
    page.fill("#q", q)
    page.select_option("#type", type_)
    page.select_option("#node", node)
    page.fill("#bbox", bbox)
    page.evaluate("cataloguePage.lastQuery = null")
    page.click("#search button[type=submit]")
    settled(page, 0)


def listed(page: Any) -> tuple[list[str], set[str], int]:
    """Every record the page lists for its query, page by page: (ids, access levels, matched)."""
    ids: list[str] = []
    access: set[str] = set()
    while True:
        ids += page.eval_on_selector_all("#results li.record", "els => els.map((e) => e.dataset.id)")
        access |= set(page.eval_on_selector_all("#results li.record",
                                                "els => els.map((e) => e.dataset.access)"))
        if page.is_disabled("#next"):
            break
        offset = page.evaluate("cataloguePage.offset") + 10
        page.click("#next")
        settled(page, offset)
    return ids, access, int(page.get_attribute("#count", "data-matched"))


def answered(base: str, headers: dict[str, str] | None = None, **params: str) -> list[str]:
    """The records API's own answer to the query (all pages, in its order)."""
    out: list[str] = []
    while True:
        page = httpx.get(base + ITEMS, params={"f": "json", "limit": 100, "offset": len(out),
                                               **{k: v for k, v in params.items() if v}},
                         headers=headers or {}, timeout=60).json()
        out += [f["id"] for f in page["features"]]
        if len(out) >= page["numberMatched"] or not page["features"]:
            return out


def test_each_caller_sees_what_the_records_api_answers_them(browser, urls, users) -> None:
    base = urls["hangzhou"]
    callers = {"anonymous": None, "plain": users["plain"], "admin": users["admin"]}
    for name, headers in callers.items():
        page = open_catalogue(browser, base, headers)
        try:
            search(page, node="hangzhou")
            ids, access, matched = listed(page)
            want = answered(base, headers, origin_node="hangzhou")
            assert ids == want and matched == len(want) > 10, name  # over several pages
            assert POI in ids
            assert (ADDRESSES in ids) is (name != "anonymous"), name
            assert (CONTROL in ids) is (name == "admin"), name
            if name == "anonymous":
                assert access == {"public"}
            search(page, type_="OGCAPI-Features")
            ids, access, _ = listed(page)
            assert ids == answered(base, headers, type="OGCAPI-Features"), name
            assert access <= ({"public"} if name == "anonymous" else
                              {"public", "registered", "restricted"}), name
            search(page, q="门牌")
            ids, access, _ = listed(page)
            assert ids == answered(base, headers, q="门牌"), name
            assert (ADDRESSES in ids) is (name != "anonymous"), name
            assert page.errors == [], name
        finally:
            page.context.close()


def test_a_drawn_extent_filters_as_the_server_does(browser, urls) -> None:
    base = urls["hangzhou"]
    page = open_catalogue(browser, base)
    try:
        page.evaluate("cataloguePage.lastQuery = null")
        page.click("#draw-box")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7)
        settled(page, 0)
        bbox = page.input_value("#bbox")
        x1, y1, x2, y2 = map(float, bbox.split(","))
        assert x1 < x2 and y1 < y2
        ids, _, matched = listed(page)
        assert ids == answered(base, bbox=bbox) and matched == len(ids) > 0
        page.click("#clear-box")
        page.wait_for_function("() => document.getElementById('bbox').value === ''")
        assert page.errors == []
    finally:
        page.context.close()


def test_a_result_opens_in_the_portal_and_copies_its_url(browser, urls) -> None:
    base = urls["hangzhou"]
    page = open_catalogue(browser, base)
    try:
        search(page, q="兴趣点", type_="OGCAPI-Features")
        item = page.locator(f"#results li[data-id='{POI}']")
        record = httpx.get(f"{base}{ITEMS[:-6]}/items/{POI}", params={"f": "json"},
                           timeout=60).json()
        href = next(link["href"] for link in record["links"] if link["rel"] == "service")
        item.locator("button.copy").click()
        page.wait_for_function("(u) => document.getElementById('note').dataset.url === u",
                               arg=href)
        assert page.evaluate("navigator.clipboard.readText()") == href
        page.click("#lang")
        assert page.inner_text("#search button[type=submit]") == "Search"
        item.locator("a.add").click()
        page.wait_for_selector("body[data-ready='true']", timeout=90_000)
        assert urlsplit(page.url).path == "/"
        assert "l=poi:1" in urlsplit(page.url).fragment
        assert page.evaluate("portal.layers.entries.find((e) => e.id === 'poi').on") is True
        assert page.errors == []
    finally:
        page.context.close()
