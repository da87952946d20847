"""HTML pages load nothing from the internet, and the node's own endpoints answer."""

from __future__ import annotations

import re

import pytest
import requests

# what a page loads (scripts, styles, images, frames), not links a reader may follow
EXTERNAL = re.compile(r"""<(?:script|img|iframe|source)\b[^>]*\bsrc\s*=\s*["'](?:https?:)?//(?!127\.0\.0\.1|localhost)"""
                      r"""|<link\b[^>]*\bhref\s*=\s*["'](?:https?:)?//(?!127\.0\.0\.1|localhost)"""
                      r"""|url\(\s*["']?(?:https?:)?//(?!127\.0\.0\.1|localhost)""", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/ogc", "/ogc/collections", "/ogc/collections/poi",
                                  "/ogc/collections/poi/items", "/ogc/collections/poi/items/1",
                                  "/ogc/openapi", "/ogc/conformance",
                                  "/ogc/collections/poi/tiles"])
def test_html_loads_nothing_external(urls, path) -> None:
    r = requests.get(urls["hangzhou"] + path, params={"f": "html"}, timeout=30)
    assert r.status_code == 200, r.status_code
    assert "text/html" in r.headers["Content-Type"]
    found = [r.text[m.start():m.start() + 160] for m in EXTERNAL.finditer(r.text)]
    assert not found, found
    assert "openstreetmap" not in r.text.lower()


def test_vendored_scripts_are_served(urls) -> None:
    r = requests.get(urls["hangzhou"] + "/ogc/collections/poi/items", params={"f": "html"},
                     timeout=30)
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', r.text)
    # the map is the SDK's on the node's e-map (nodes/ogc_templates), no longer Leaflet's
    assert any(s.endswith("/sdk/geoplat.js") for s in scripts), scripts
    assert any(s.endswith("/ogc/static/geoplat/ogc.js") for s in scripts), scripts
    for src in scripts:
        if "/vendor/unavailable/" in src:
            continue
        assert requests.get(src, timeout=30).status_code == 200, src


def test_health_reports_components(urls) -> None:
    for node, base in urls.items():
        h = requests.get(base + "/health", timeout=10).json()
        assert h["status"] == "ok"
        assert h["node"]["id"] == node
        assert h["checks"]["database"]["status"] == "ok"
        assert h["checks"]["ogc"]["collections"] > 0


def test_landing_links(urls) -> None:
    body = requests.get(urls["zhejiang"] + "/", timeout=10).json()
    assert body["node"]["parent"] == "national"
    assert {link["rel"] for link in body["links"]} >= {"data", "status", "service-desc"}


def test_unknown_path_is_problem_json(urls) -> None:
    r = requests.get(urls["national"] + "/no/such/thing", timeout=10)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")
