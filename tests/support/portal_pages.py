"""Helpers of the portal's browser tests (tests/sdk/test_portal_*, the catalogue, status and
cadastre pages): a page that records what it complains about, the portal once it is ready,
a layer once drawn, and the server's own `s_intersects` answer to compare with."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from sdk_pages import IDLE


def new_page(browser: Any, url: str, *, width: int = 1280, height: int = 800,
             token: str | None = None, permissions: list[str] | None = None,
             **options: Any) -> Any:
    """A page of a new context (not yet at `url`), with `page.errors`: page errors and console
    errors (but /auth/me's 401, how a page learns it is anonymous). With `token`, as the user
    whose access token is Hangzhou's cookie (what /auth/callback sets after signing in)."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    if permissions:
        parts = urlsplit(url)
        context.grant_permissions(permissions, origin=f"{parts.scheme}://{parts.netloc}")
    if token:
        context.add_cookies([{"name": "geoplat_at_hangzhou", "value": token, "url": url}])
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: page.errors.append(f"console: {m.text}")
            if m.type == "error" and not (m.location or {}).get("url", "").endswith("/auth/me")
            else None)
    return page


def open_portal(browser: Any, url: str, width: int = 1280, height: int = 800,
                token: str | None = None, **options: Any) -> Any:
    """The portal at `url` once it is ready and its map rendered."""
    page = new_page(browser, url, width=width, height=height, token=token, **options)
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=90_000)
    page.wait_for_selector(IDLE, timeout=90_000)
    return page


def layer_loaded(page: Any, layer: str) -> None:
    """Until the portal has drawn features of `layer` (c grid: the view box's items)."""
    page.wait_for_function("(id) => { const e = portal.layers.entries.find((x) => x.id === id);"
                           " return e && e.drawn && e.drawn.source &&"
                           " e.drawn.source.getFeatures().length > 0; }", arg=layer,
                           timeout=60_000)


def s_intersects(base: str, collection: str, geometry: dict[str, Any],
                 headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every feature of `collection` the node says intersects `geometry` (CQL2-JSON, paged)."""
    body = json.dumps({"op": "s_intersects", "args": [{"property": "geometry"}, geometry]})
    out: list[dict[str, Any]] = []
    while True:
        r = httpx.post(f"{base}/ogc/collections/{collection}/items",
                       params={"f": "json", "limit": "500", "offset": str(len(out))},
                       content=body, timeout=60,
                       headers={"Content-Type": "application/query-cql-json", **(headers or {})})
        assert r.status_code == 200, r.text[:300]
        page = r.json()
        out += page["features"]
        if not page["features"] or len(out) >= page["numberMatched"]:
            return out
