"""How nodes serve the SDK (issue 14): bundles with ETag, gzip and caching through the node's
front door, the docs and examples as pages with the demo browser key, Tianditu's script URL
`/api?v=4.0&tk=` with the key written safely for a script, CORS for pages of other origins."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import uvicorn
from federations import free_port
from starlette.applications import Starlette

from services.web.sdk_routes import DIST, EXAMPLES, Assets, SdkRoutes


class _Handlers(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [f"<{tag} {k}>" for k, _ in attrs if k.lower().startswith("on")]


def inline_handlers(html: str) -> list[str]:
    """Event handler attributes of the page's elements (script text is not parsed as tags)."""
    parser = _Handlers()
    parser.feed(html)
    return parser.found


HOSTILE_KEYS = [
    "</script><script>alert(1)</script>",
    "\u2028\u2029alert(1)//",
    "'\";alert(1)//<!--",
    "&amp;<b>\\u003c",
]


def test_bundles_are_served_with_etag_gzip_and_caching(urls) -> None:
    base = urls["national"]
    r = httpx.get(f"{base}/sdk/geoplat.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"]
    assert "Geoplat" in r.text  # httpx decompressed it: the UMD wrapper names the global
    assert r.content == (DIST / "geoplat.js").read_bytes()
    again = httpx.get(f"{base}/sdk/geoplat.js", headers={
        "Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    plain = httpx.get(f"{base}/sdk/geoplat.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["etag"] != r.headers["etag"]
    esm = httpx.get(f"{base}/sdk/geoplat.esm.js")
    assert esm.status_code == 200 and "export" in esm.text
    dts = httpx.get(f"{base}/sdk/geoplat.d.ts")
    assert dts.status_code == 200 and "class Map" in dts.text
    for bad in ("/sdk/build.mjs", "/sdk/..%2fsdk_routes.py", "/sdk/src/Map.js", "/sdk/x.js"):
        assert httpx.get(base + bad).status_code == 404, bad


def test_docs_and_examples_are_pages_with_the_demo_browser_key(urls, demo) -> None:
    base = urls["hangzhou"]
    docs = httpx.get(f"{base}/sdk/")
    assert docs.status_code == 200 and "geoplat-map" in docs.text
    assert demo["browser_key"] in docs.text
    assert demo["server_key"] not in docs.text, "a server key never goes into a page"
    for bundle in ("geoplat.js", "geoplat.esm.js", "tianditu.js", "geoplat.d.ts"):
        body = httpx.get(f"{base}/sdk/{bundle}" if bundle != "tianditu.js" else f"{base}/api",
                         params={"v": "4.0"} if bundle == "tianditu.js" else None).text
        assert "T" in body and len(body) > 1000, bundle
        assert demo["server_key"] not in body and demo["browser_key"] not in body, bundle
    page = httpx.get(f"{base}/sdk/examples/geoplat-map.html")
    csp = page.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text
    assert json.dumps(demo["browser_key"]) in page.text
    # every page: the node's CSP, a fresh nonce, and no script without a src or that nonce
    names = sorted(p.stem for p in EXAMPLES.glob("*.html"))
    nonces = set()
    for url in [f"{base}/sdk/"] + [f"{base}/sdk/examples/{n}.html" for n in names]:
        r = httpx.get(url)
        assert r.status_code == 200, url
        m = re.search(r"script-src 'self' 'nonce-([0-9a-f]{32})';", r.headers["content-security-policy"])
        assert m and r.headers["x-frame-options"] == "SAMEORIGIN", url
        nonces.add(m.group(1))
        for tag in re.finditer(r"<script( [^>]*)?>", r.text):
            attrs = tag.group(1) or ""
            assert "src=" in attrs or f'nonce="{m.group(1)}"' in attrs, (url, tag.group(0))
        assert not inline_handlers(r.text), (url, inline_handlers(r.text))
    assert len(nonces) == len(names) + 1
    for name in ("../docs", "nope", "Geoplat-map", "a" * 70):
        assert httpx.get(f"{base}/sdk/examples/{name}.html").status_code == 404, name
    assert httpx.get(f"{base}/sdk", follow_redirects=False).headers["location"] == "/sdk/"


def test_capabilities_and_refusals_carry_cors_for_other_origins(urls, demo) -> None:
    base = urls["national"]
    origin = {"Origin": "http://127.0.0.1:9"}
    ok = httpx.get(f"{base}/wmts/1.0.0/WMTSCapabilities.xml",
                   params={"tk": demo["server_key"]}, headers=origin)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in ok.headers
    refused = httpx.get(f"{base}/wmts/1.0.0/WMTSCapabilities.xml",
                        params={"tk": demo["browser_key"]}, headers=origin)
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == "*"
    places = httpx.get(f"{base}/api/places/search", params={"q": "杭州", "tk": "bad"},
                       headers=origin)
    assert places.status_code == 403 and places.headers["access-control-allow-origin"] == "*"
    # nothing else gets it: the sign-on and key pages stay same-origin
    assert "access-control-allow-origin" not in httpx.get(f"{base}/sso/keys",
                                                          headers=origin).headers


def test_the_tianditu_script_url_of_the_node(urls) -> None:
    base = urls["national"]
    r = httpx.get(f"{base}/api", params={"v": "4.0", "tk": "abc"})
    assert r.headers["content-type"].startswith("application/javascript")
    if (DIST / "tianditu.js").exists():
        assert r.status_code == 200
        assert r.text.startswith('globalThis.GEOPLAT_TIANDITU={"key":"abc",')
        assert r.headers["cache-control"].startswith("private")
    else:  # not built here: a script that says so, not a blank page
        assert r.status_code == 503 and r.text.startswith("throw new Error(")
    wrong = httpx.get(f"{base}/api", params={"v": "3.0"})
    assert wrong.status_code == 400 and wrong.text.startswith("throw new Error(")


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """SdkRoutes alone on a loopback uvicorn, over a dist/ of the test's own."""
    dist = tmp_path_factory.mktemp("dist")
    (dist / "tianditu.js").write_text("window.T = {};\n")
    app = Starlette(routes=SdkRoutes("http://node.example", dist, "t", Assets(dist)).routes())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", dist
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_the_key_is_written_safely_for_a_script(sdk_server, key: str) -> None:
    base, _ = sdk_server
    r = httpx.get(f"{base}/api", params={"v": "4.0", "tk": key})
    assert r.status_code == 200
    prefix, _, rest = r.text.partition("\n")
    assert rest == "window.T = {};\n"
    for raw in ("<", ">", "&", "'", "\u2028", "\u2029"):
        assert raw not in prefix, f"{raw!r} left raw in {prefix!r}"
    assert prefix.startswith("globalThis.GEOPLAT_TIANDITU=") and prefix.endswith(";")
    value = json.loads(prefix[len("globalThis.GEOPLAT_TIANDITU="):-1])
    assert value == {"key": key, "node": "http://node.example", "v": "4.0"}


def test_script_prefix_limits_and_versions(sdk_server) -> None:
    base, _ = sdk_server
    assert httpx.get(f"{base}/api", params={"tk": "k" * 257}).status_code == 400
    with httpx.stream("GET", f"{base}/api", params={"tk": "k"},
                      headers={"Accept-Encoding": "gzip"}) as r:
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        raw = b"".join(r.iter_raw())
    assert gzip.decompress(raw).endswith(b"window.T = {};\n")


def test_a_missing_bundle_is_a_script_error_and_a_rebuild_is_picked_up(sdk_server) -> None:
    base, dist = sdk_server
    r = httpx.get(f"{base}/sdk/geoplat.js")
    assert r.status_code == 503 and r.text.startswith("throw new Error(")
    assert "make install" in r.text and r.headers["cache-control"] == "no-store"
    (dist / "geoplat.js").write_text("var Geoplat = 1;\n")
    first = httpx.get(f"{base}/sdk/geoplat.js")
    assert first.status_code == 200 and first.text == "var Geoplat = 1;\n"
    (dist / "geoplat.js").write_text("var Geoplat = 22;\n")
    second = httpx.get(f"{base}/sdk/geoplat.js")
    assert second.text == "var Geoplat = 22;\n" and second.headers["etag"] != first.headers["etag"]


def test_the_key_in_the_public_pages_reaches_public_layers_only(urls, demo, main_db) -> None:
    """The demo browser key is written into every node's public pages, so anyone can copy it
    (and send its Origin from outside a browser): it reaches public layers and place names,
    never what its owner may see as a registered user (Hangzhou's door plates), in features,
    place names or records. A developer's own browser key still acts for its owner."""
    from services.access import apikeys
    from services.sso import accounts

    hz = urls["hangzhou"]
    origin = {"Origin": hz}
    page_key = {"tk": demo["browser_key"]}
    poi = httpx.get(f"{hz}/ogc/collections/poi/items?f=json&limit=1", params=page_key,
                    headers=origin, timeout=30)
    assert poi.status_code == 200 and poi.json()["features"]
    plates = httpx.get(f"{hz}/ogc/collections/addresses/items?f=json&limit=1", params=page_key,
                       headers=origin, timeout=30)
    assert plates.status_code == 401 and "public layers only" in plates.text
    listing = httpx.get(f"{hz}/ogc/collections?f=json", params=page_key, headers=origin,
                        timeout=30).json()
    assert "addresses" not in {c["id"] for c in listing["collections"]}
    geo = httpx.get(f"{hz}/api/places/geocode", params={**page_key, "address": "宏二路2号"},
                    headers=origin, timeout=30).json()
    owner = accounts.create(main_db, "page_key_dev", "page-key-password-1", roles=["developer"])
    own, _ = apikeys.create_key(main_db, "test", owner.id, "own", "browser", [hz], actor="test")
    mine = httpx.get(f"{hz}/ogc/collections/addresses/items?f=json&limit=1", params={"tk": own},
                     headers=origin, timeout=30)
    assert mine.status_code == 200 and mine.json()["features"]
    assert all(f["properties"].get("kind") != "address" for f in geo["features"]), geo
    own_geo = httpx.get(f"{hz}/api/places/geocode", params={"tk": own, "address": "宏二路2号"},
                        headers=origin, timeout=30).json()
    assert own_geo["features"][0]["properties"]["kind"] == "address", own_geo


def test_the_page_key_serves_a_crowd(demo, main_db) -> None:
    """Every visitor of the nodes' pages shares their key: its rate and daily quotas are a
    crowd's, not one developer's (it still reaches public layers only)."""
    from services.access.apikeys import DEFAULT_QUOTAS, DEFAULT_RATE, key_hash
    from services.provision import PAGE_KEY_QUOTAS, PAGE_KEY_RATE

    row = main_db.one("SELECT rate_per_second, quotas, public_only FROM auth.api_keys "
                      "WHERE key_hash = %s", (key_hash(demo["browser_key"]),))
    assert row["public_only"] and row["rate_per_second"] == PAGE_KEY_RATE > DEFAULT_RATE * 50
    assert {k: row["quotas"][k] for k in PAGE_KEY_QUOTAS} == PAGE_KEY_QUOTAS
    assert all(PAGE_KEY_QUOTAS[k] >= 100 * DEFAULT_QUOTAS[k] for k in DEFAULT_QUOTAS)
