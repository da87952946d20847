"""Issue 11, items 2, 12 and 13 over HTTP: the script-safe encoder, the pages' security headers,
CSV exports without spreadsheet formulas, and the HTML page of a non-public layer.

The browser half of item 2 (payloads that must not run in Chromium) is
tests/browser/test_security_html_browser.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from publish_helpers import ctx_of, served, sign_in_users
from waiting import wait_for

from layers.publish import publish, retire

PASSWORD = "Sec-Html-Pass-1"

# --- the encoder: a regression table of script-context payloads -----------------------------

SCRIPT_PAYLOADS = [
    "</script><script>window.__xss=1</script>",
    "</SCRIPT ><script>window.__xss=1</script>",
    "</script\t>",
    "<!--<script>",
    "<![CDATA[ ]]>",
    "<img src=x onerror=window.__xss=1>",
    "\u2028window.__xss=1\u2029",
    "' + (window.__xss=1) + '",
    '" + (window.__xss=1) + "',
    "\\'; window.__xss=1; //",
    "&lt;/script&gt;",
    "${window.__xss=1}`",
    "\x00\x1f\x7f",
    "西湖</script>断桥",
]


class _Scripts(HTMLParser):
    """The elements and script texts an HTML parser sees (the browser's tokenizer rules)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts.append("")

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1] == "script":
            self.scripts[-1] += data


@pytest.mark.parametrize("payload", SCRIPT_PAYLOADS)
@pytest.mark.parametrize("shape", ["string", "key", "nested"])
def test_script_json_cannot_leave_the_script(payload: str, shape: str) -> None:
    from nodes.security_headers import script_json

    value = {"string": payload, "key": {payload: 1},
             "nested": {"features": [{"properties": {"名称": payload, "n": -3.5}}]}}[shape]
    out = str(script_json(value))
    assert not set(out) & {"<", ">", "&", "'", "\u2028", "\u2029"}, out
    assert json.loads(out) == value  # still the same value for the page's script
    page = _Scripts()
    page.feed(f"<p>x</p><script>var data = {out};</script><p>y</p>")
    assert page.tags == ["p", "script", "p"] and page.scripts == [f"var data = {out};"]


def test_pygeoapi_to_json_was_not_script_safe() -> None:
    """What the templates used before (the attack's cause): it leaves `</script>` as it is."""
    from pygeoapi.util import to_json

    assert "</script>" in to_json({"a": SCRIPT_PAYLOADS[0]})


def _pygeoapi_templates() -> list[Path]:
    import pygeoapi

    return sorted((Path(pygeoapi.__file__).parent / "templates").rglob("*.html"))


@pytest.mark.parametrize("template", _pygeoapi_templates(), ids=lambda p: p.parent.name + "/" + p.name)
def test_every_inline_script_of_our_templates_is_encoded_and_nonced(template: Path) -> None:
    from nodes.templates import rewrite, script_safe

    out = script_safe(rewrite(template.read_text(encoding="utf-8")))
    assert "<script>" not in out
    for m in re.finditer(r"<script( [^>]*)?>(.*?)</script>", out, re.DOTALL):
        attrs, code = m.group(1) or "", m.group(2)
        if "src=" in attrs:
            continue
        assert 'nonce="{{ csp_nonce }}"' in attrs, m.group(0)[:200]
        assert "| safe" not in code and "to_json" not in code, code[:300]
        for e in re.findall(r"\{\{(.*?)\}\}", code):
            assert "script_json" in e, e
        assert "innerHTML" not in code, code[:300]
        if "bindPopup(html)" in code:  # popups are built from text nodes, not HTML strings
            assert "html = document.createElement('span')" in code, code[:300]


def _config(layer: str) -> dict:
    return {"server": {"url": "http://x/ogc"}, "resources": {layer: {"title": {"en": layer}}}}


def test_pygeoapi_renders_every_api_with_the_first_config() -> None:
    """Item 13's cause: one translated template config per locale, whichever API made it."""
    from babel import Locale
    from pygeoapi import l10n

    original = getattr(l10n.translate_struct, "original", l10n.translate_struct)
    l10n._cfg_cache.clear()
    try:
        original(_config("first"), Locale.parse("en_US"), True)
        assert "second" not in original(_config("second"), Locale.parse("en_US"), True)["resources"]
    finally:
        l10n._cfg_cache.clear()


def test_page_rendering_translates_each_config_on_its_own() -> None:
    from babel import Locale
    from pygeoapi import l10n

    from nodes.templates import install_page_rendering

    install_page_rendering()
    en = Locale.parse("en_US")
    first, second = _config("first"), _config("second")
    assert l10n.translate_struct(first, en, True)["resources"] == {"first": {"title": "first"}}
    assert l10n.translate_struct(second, en, True)["resources"] == {"second": {"title": "second"}}
    assert l10n.translate_struct(first, en, True)["resources"] == {"first": {"title": "first"}}


# --- over HTTP, on the shared federation ------------------------------------------------------

def _geojson(path: Path, features: list[tuple[dict, list[float]]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": xy}}
        for props, xy in features]}, ensure_ascii=False), encoding="utf-8")
    return path


def _assert_page_headers(r: requests.Response) -> str:
    """The security headers of one HTML page; returns its CSP nonce."""
    assert r.headers["content-type"].startswith("text/html"), r.headers
    csp = r.headers.get("content-security-policy", "")
    m = re.search(r"script-src 'self' 'nonce-([0-9a-f]{32})';", csp)
    assert m, csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], csp
    assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp
    assert "object-src 'none'" in csp and "img-src 'self' data: blob:" in csp
    assert r.headers.get("x-frame-options") == "SAMEORIGIN"
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "strict-origin-when-cross-origin"
    return m.group(1)


def test_every_html_page_has_the_security_headers(federation, urls) -> None:
    hz, national = urls["hangzhou"], urls["national"]
    pages = [f"{hz}/ogc?f=html", f"{hz}/ogc/collections?f=html",
             f"{hz}/ogc/collections/catalogue?f=html", f"{hz}/ogc/collections/catalogue/items?f=html",
             f"{hz}/ogc/openapi?f=html", f"{hz}/publish", f"{hz}/auth/register",
             f"{national}/sso/login",
             f"{national}/ogc/collections/catalogue/items?f=html"]
    nonces = set()
    for url in pages:
        r = requests.get(url, timeout=60, allow_redirects=False)
        assert r.status_code in (200, 401), (url, r.status_code, r.text[:200])
        nonce = _assert_page_headers(r)
        nonces.add(nonce)
        for m in re.finditer(r"<script( [^>]*)?>", r.text):
            attrs = m.group(1) or ""
            assert "src=" in attrs or f'nonce="{nonce}"' in attrs, (url, m.group(0))
    assert len(nonces) == len(pages)  # a fresh nonce per response
    # JSON answers get the generic headers, and no HTML policy is needed there
    r = requests.get(f"{hz}/ogc/collections?f=json", timeout=60)
    assert r.headers.get("x-content-type-options") == "nosniff"


# --- item 12: CSV exports ----------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://127.0.0.1:9/x","click")', "+1+1", "-2+3", "@SUM(A1:A2)",
            "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_formatter_prefixes_formula_text_and_keeps_numbers(text: str) -> None:
    from nodes.providers.csv_export import SafeCSVFormatter

    data = {"features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-1.5, 2]},
                          "properties": {text: text, "n": -3.5, "i": -7, "s": "-3.5 km", "ok": "a=b"}}]}
    out = SafeCSVFormatter({"name": "CSV", "geom": True}).write(data=data)
    header, row = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    assert header == ["x", "y", "'" + text, "n", "i", "s", "ok"]
    assert row == ["-1.5", "2", "'" + text, "-3.5", "-7", "'-3.5 km", "a=b"]


@pytest.fixture(scope="module")
def csv_layer(federation, urls, tmp_path_factory):
    ctx = ctx_of(federation, "hangzhou")
    name = "sec_csv_formulas"
    feats = [({"label": text, "value": -3.5 - i, "plain": "西湖"}, [120.1 + i * 0.001, 30.2 + i * 0.001])
             for i, text in enumerate(FORMULAS)]
    path = _geojson(tmp_path_factory.mktemp("csv") / "formulas.geojson", feats)
    publish(ctx, path, name, title="CSV formulas")
    wait_for(lambda: served(urls["hangzhou"], name), timeout=60)
    yield name
    retire(ctx, name, purge=True)


def test_csv_export_neutralises_formulas(csv_layer, urls) -> None:
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/{csv_layer}/items?f=csv&limit=100",
                     timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text[:300]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert sorted(row["label"] for row in rows) == sorted("'" + f for f in FORMULAS), rows
    assert sorted(float(row["value"]) for row in rows) == sorted(-3.5 - i for i in range(len(FORMULAS)))
    assert "-3.5" in {row["value"] for row in rows}  # numbers stay numbers, sign included
    assert {row["plain"] for row in rows} == {"西湖"}
    # the geometry as WKT (nodes/downloads.py: every geometry type), never taken for a formula
    assert all(row["WKT"].startswith("POINT (120.") for row in rows), rows


# --- item 13: the HTML page of a non-public layer ----------------------------------------------

@pytest.fixture(scope="module")
def registered_layer(federation, urls, tmp_path_factory):
    ctx = ctx_of(federation, "hangzhou")
    name = "sec_html_registered"
    path = _geojson(tmp_path_factory.mktemp("reg") / "reg.geojson",
                    [({"名称": "灵隐寺"}, [120.1, 30.24]), ({"名称": "断桥"}, [120.15, 30.26])])
    publish(ctx, path, name, title="登记用户图层 Registered", access="registered")
    yield name
    retire(ctx, name, purge=True)


def test_non_public_layer_pages_render_for_a_user_with_access(registered_layer, main_db,
                                                              urls) -> None:
    hz = urls["hangzhou"]
    user = sign_in_users(main_db, urls["national"], "sechtml", {"reader": []}, PASSWORD)["reader"]
    wait_for(lambda: served(hz, registered_layer, user), timeout=60)
    for _ in range(8):  # every worker renders a page for a caller who cannot see the layer
        assert requests.get(f"{hz}/ogc/collections?f=html", timeout=60).status_code == 200
    for path, shown in (("", "登记用户图层 Registered"), ("/items", "断桥"), ("/items/1", "灵隐寺")):
        url = f"{hz}/ogc/collections/{registered_layer}{path}?f=html"
        anon = requests.get(url, timeout=60)
        assert anon.status_code == 401, (url, anon.status_code, anon.text[:200])
        r = requests.get(url, headers=user, timeout=60)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        text = r.content.decode("utf-8")  # pygeoapi says text/html, the page says utf-8
        assert shown in text, (url, shown, text[:3000])
        _assert_page_headers(r)
