"""The portal's service-status page `/status` (issue 16) in headless Chromium, on a small
federation of its own (st_national > st_zhejiang > st_hangzhou, registry health every 1.5 s,
tests/support/registry_support.py): the page at Zhejiang shows the health tree the node's
`/registry/api/health` answers and a node's services as its records API answers them; an
anonymous page shows no review queue; Zhejiang's admin approves and rejects pending
registrations from the page (checked on the server) while a forged cross-origin POST with the
same cookie is refused (403) and changes nothing; a stopped child shows as down on the open
page, refreshed in place, within two health intervals and a poll."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from registry_support import HEALTH_INTERVAL, Fed, ServiceServer, running_federation

POLL = 2.0  # the page's poll (src/apps/status/index.js POLL_MS)
ZJ, HZ = "st_zhejiang", "st_hangzhou"
WMS = "/wms?SERVICE=WMS&REQUEST=GetCapabilities"


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[Fed]:
    base: Path = tmp_path_factory.mktemp("status")
    with running_federation(make_federation, base, pg_cluster, prefix="st") as f:
        yield f


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    srv = ServiceServer()
    yield srv
    srv.close()


def token_of(fed: Fed, user: str) -> str:
    return fed.headers[user]["Authorization"].split(" ", 1)[1]


def open_status(browser: Any, fed: Fed, user: str | None = None) -> Any:
    """Zhejiang's /status once its first poll is shown; with `user`, signed in (the node's
    cookie holding their token, as /auth/callback sets it)."""
    url = fed.urls[ZJ] + "/status"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    if user:
        context.add_cookies([{"name": f"geoplat_at_{ZJ}", "value": token_of(fed, user),
                              "url": url}])
    page = context.new_page()
    page.errors = []
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: page.errors.append(f"console: {m.text}")
            if m.type == "error" and not (m.location or {}).get("url", "").endswith("/auth/me")
            else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=60_000)
    return page


def tree_nodes(tree: dict) -> dict[str, str]:
    out = {tree["id"]: tree["health"]}
    for child in tree.get("children", []):
        out.update(tree_nodes(child))
    return out


def shown_nodes(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        "#tree li.node", "els => Object.fromEntries(els.map((e) => [e.dataset.node, "
        "e.dataset.health]))")


def register(fed: Fed, title: str, server: ServiceServer) -> str:
    r = httpx.post(fed.urls[ZJ] + "/registry/api/services",
                   json={"url": server.url + WMS, "title": title},
                   headers=fed.headers["reg_other_admin"], timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    return r.json()["id"]


def status_of(fed: Fed, rid: str) -> str:
    rows = httpx.get(fed.urls[ZJ] + "/registry/api/services",
                     headers=fed.headers["reg_other_admin"], timeout=30).json()["services"]
    return next(r["status"] for r in rows if r["id"] == rid)


def test_pages_are_served_as_the_portal_is(fed: Fed) -> None:
    for path in ("/status", "/catalogue"):
        r = httpx.get(fed.urls[ZJ] + path, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        nonce = r.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
        assert f'nonce="{nonce}"' in r.text and 'href="/status"' in r.text
    for name in ("status.js", "catalogue.js"):
        script = httpx.get(fed.urls[ZJ] + "/sdk/" + name, timeout=30)
        assert script.status_code == 200 and "innerHTML" not in script.text
    front = httpx.get(fed.urls[ZJ] + "/", params={"f": "html"}, timeout=30).text
    assert 'href="/catalogue"' in front and 'href="/status"' in front


def test_anonymous_page_shows_the_health_tree_and_no_review_queue(browser, fed: Fed,
                                                                   server: ServiceServer) -> None:
    register(fed, "pending while anonymous looks", server)  # a queue exists, unseen
    page = open_status(browser, fed)
    try:
        assert page.get_attribute("body", "data-user") == "anonymous"
        answer = httpx.get(fed.urls[ZJ] + "/registry/api/health", timeout=30).json()
        assert set(shown_nodes(page)) == set(tree_nodes(answer["tree"])) == {ZJ, HZ}
        page.wait_for_selector(f"#tree li[data-node='{HZ}'][data-health='up']", timeout=20_000)
        assert page.locator(f"li[data-node='{ZJ}'] li[data-node='{HZ}']").count() == 1
        assert page.is_hidden("#queue-section")
        assert page.locator("#queue-body tr").count() == 0
        # a node's services: what the records API answers an anonymous caller
        page.click(f"li[data-node='{HZ}'] > .row button.toggle")
        page.wait_for_selector(f"li[data-node='{HZ}'] table.services tbody tr", timeout=20_000)
        shown = page.eval_on_selector_all(f"li[data-node='{HZ}'] table.services tbody tr",
                                          "els => els.map((e) => e.dataset.id)")
        records = httpx.get(fed.urls[ZJ] + "/ogc/collections/catalogue/items", params={
            "f": "json", "origin_node": HZ, "limit": 100}, timeout=30).json()
        assert shown == [f["id"] for f in records["features"]] and shown
        assert all(f["properties"]["access"] == "public" for f in records["features"])
        assert all("health_changed" in f["properties"] for f in records["features"])
        polls = int(page.get_attribute("#refreshed", "data-polls"))
        page.wait_for_function(
            "(n) => Number(document.getElementById('refreshed').dataset.polls) > n",
            arg=polls, timeout=int(POLL * 3000))
        assert not any("/registry/api/services" in u for u in page.requests)
        page.click("#lang")
        assert page.inner_text("#health-section h2") == "Federation health"
        assert page.errors == []
    finally:
        page.context.close()


def test_admin_approves_and_rejects_a_forged_post_is_refused(browser, fed: Fed,
                                                             server: ServiceServer) -> None:
    keep, drop = register(fed, "西湖 approve me", server), register(fed, "reject me", server)
    page = open_status(browser, fed, "reg_other_admin")
    try:
        assert page.get_attribute("body", "data-user") == "signed-in"
        page.wait_for_selector(f"#queue-body tr[data-id='{keep}']", timeout=20_000)
        pending = {r["id"] for r in httpx.get(
            fed.urls[ZJ] + "/registry/api/services", params={"status": "pending"},
            headers=fed.headers["reg_other_admin"], timeout=30).json()["services"]}
        assert set(page.eval_on_selector_all("#queue-body tr",
                                             "els => els.map((e) => e.dataset.id)")) == pending
        # another site's forms and scripts, with the admin's cookie: refused, nothing changes
        cookie = {f"geoplat_at_{ZJ}": token_of(fed, "reg_other_admin")}
        for headers, body in (
                ({"Origin": "http://evil.example", "Content-Type": "application/json"}, b"{}"),
                ({"Origin": "http://evil.example",
                  "Content-Type": "application/x-www-form-urlencoded"}, b"x=1"),
                ({"Content-Type": "text/plain"}, b"{}")):
            with httpx.Client(cookies=cookie, timeout=30) as c:
                r = c.post(f"{fed.urls[ZJ]}/registry/api/services/{keep}/approve",
                           headers=headers, content=body)
            assert r.status_code == 403, (headers, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert status_of(fed, keep) == "pending"
        page.click(f"#queue-body tr[data-id='{keep}'] button.approve")
        page.wait_for_selector(f"#queue-body tr[data-id='{keep}']", state="detached",
                               timeout=20_000)
        assert "西湖 approve me" in page.inner_text("#note")
        assert status_of(fed, keep) == "approved"
        page.click(f"#queue-body tr[data-id='{drop}'] button.reject")
        page.wait_for_selector(f"#queue-body tr[data-id='{drop}']", state="detached",
                               timeout=20_000)
        assert status_of(fed, drop) == "rejected"
        assert page.errors == []
    finally:
        page.context.close()
    # a signed-in user who is not Zhejiang's admin sees no queue either
    page = open_status(browser, fed, "reg_user")
    try:
        assert page.get_attribute("body", "data-user") == "signed-in"
        assert page.is_hidden("#queue-section")
        assert not any("/registry/api/services" in u for u in page.requests)
    finally:
        page.context.close()


def test_a_stopped_child_shows_down_on_the_open_page(browser, fed: Fed) -> None:
    page = open_status(browser, fed)
    try:
        page.wait_for_selector(f"#tree li[data-node='{HZ}'][data-health='up']", timeout=20_000)
        page.evaluate("window.sameDocument = true")
        fed.stop(HZ)
        stopped = time.monotonic()
        # the registry probes every HEALTH_INTERVAL (a refused connection is down at once)
        # and the page polls every POLL
        bound = 2 * HEALTH_INTERVAL + POLL + 1.5
        page.wait_for_selector(f"#tree li[data-node='{HZ}'][data-health='down']",
                               timeout=int(bound * 1000))
        assert time.monotonic() - stopped <= bound
        assert page.evaluate("window.sameDocument") is True  # refreshed in place, no reload
        row = page.inner_text(f"li[data-node='{HZ}'] > .row")
        assert "故障" in row and "延迟 —" in row
        assert shown_nodes(page)[ZJ] == "up"
        answer = httpx.get(fed.urls[ZJ] + "/registry/api/health", timeout=30).json()
        assert tree_nodes(answer["tree"])[HZ] == "down"
        hz = answer["tree"]["children"][0]
        assert hz["id"] == HZ and hz["changed"]
        assert "状态始于 —" not in page.inner_text(f"li[data-node='{HZ}'] > .row")
    finally:
        page.context.close()
