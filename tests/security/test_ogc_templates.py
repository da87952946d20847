"""nodes/ogc_templates (issue 16): geoplat's frame and maps over pygeoapi's templates, rendered
by pygeoapi itself (no federation): pygeoapi's pages stay reachable as `pygeoapi/<path>`, ours
replace them; no page names pygeoapi or loads anything from another origin; values reach the
map's script only as a JSON data block written by `script_json`, so a `</script>` in a
property cannot end it; our templates have no inline script."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nodes.templates import OURS, install_page_rendering, prepare_templates

BREAKOUT = "</script><script>window.__xss=1</script>"
CONFIG = {
    "server": {"url": "http://node.test:8080/ogc", "encoding": "utf-8", "language": "en-US",
               "limits": {"default_items": 10},
               "map": {"url": "http://node.test:8080/ogc/static/img/blank-tile.png",
                       "attribution": "node"}},
    "metadata": {"identification": {"title": "杭州 <b>节点</b>", "description": "d",
                                    "keywords": ["geoplat"]},
                 "license": {"name": "Sample data", "url": "http://node.test:8080/ogc"}},
}
FOREIGN = re.compile(r"""(?:src|href)=["'](https?:)?//(?!node\.test:8080)""")


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("ogc")
    settings: Any = SimpleNamespace(resolve=lambda _: out, var_dir="var")
    install_page_rendering()
    return prepare_templates(settings, SimpleNamespace(id="n"))  # type: ignore[arg-type]


def _render(templates: dict[str, str], page: str, data: dict) -> str:
    from pygeoapi.util import render_j2_template

    return render_j2_template(CONFIG, templates, page, data, "en")


def _visible(html: str) -> str:
    html = re.sub(r"<!--.*?-->|<script\b.*?</script>|<style\b.*?</style>|<head>.*?</head>", "",
                  html, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", html)


def _data_block(html: str) -> Any:
    blocks = re.findall(r'<script type="application/json" id="geoplat-map-data" nonce="[^"]+">(.*?)</script>',
                        html, re.DOTALL)
    assert len(blocks) == 1, html[-800:]
    return json.loads(blocks[0])


FEATURE = {"type": "Feature", "id": 7, "geometry": {"type": "Point", "coordinates": [120.2, 30.2]},
           "properties": {"name": BREAKOUT, "n": 1}}


def test_ours_replace_pygeoapis_which_stay_under_pygeoapi(templates) -> None:
    tdir, sdir = Path(templates["path"]), Path(templates["static"])
    for page in OURS.rglob("*.html"):
        rel = page.relative_to(OURS)
        assert (tdir / rel).read_text(encoding="utf-8") == page.read_text(encoding="utf-8")
    for rel in ("_base.html", "collections/items/index.html", "collections/items/item.html",
                "collections/collection.html", "collections/tiles/index.html"):
        assert (tdir / "pygeoapi" / rel).is_file(), rel
        extends = re.search(r'{% extends "([^"]+)" %}', (tdir / rel).read_text(encoding="utf-8"))
        assert rel == "_base.html" or (extends and extends.group(1) == f"pygeoapi/{rel}")
    assert (sdir / "geoplat" / "ogc.js").is_file() and (sdir / "geoplat" / "ogc.css").is_file()


def test_items_page_is_geoplats_with_its_features_as_data(templates) -> None:
    html = _render(templates, "collections/items/index.html", {
        "features": [FEATURE], "items_path": "http://node.test:8080/ogc/collections/poi/items",
        "collections_path": "http://node.test:8080/ogc/collections", "dataset_path": "d",
        "title_field": "name", "id_field": "id", "links": [], "numberMatched": 1, "offset": 0})
    assert "pygeoapi" not in _visible(html).lower()
    assert "杭州 &lt;b&gt;节点&lt;/b&gt;" in html and "<b>节点" not in html  # escaped
    for label, href in (("地图", "/"), ("目录", "/catalogue"), ("服务状态", "/status")):
        assert f'<a href="http://node.test:8080{href}">{label}</a>' in html
    assert "不作为中国地图使用" in _visible(html)
    assert not FOREIGN.search(html), FOREIGN.search(html)
    assert "leaflet" not in html.lower() and "unpkg" not in html
    assert '<script src="http://node.test:8080/sdk/geoplat.js"></script>' in html
    assert html.count("</script>") == html.count("<script")  # no value closed a script
    data = _data_block(html)
    assert data["kind"] == "items" and data["features"] == [FEATURE]
    assert data["titleField"] == "name" and data["itemsPath"].endswith("/poi/items")


def test_item_and_collection_pages_draw_their_geometry(templates) -> None:
    item = dict(FEATURE, links=[], collections_path="c", title_field="name", id_field="id")
    html = _render(templates, "collections/items/item.html", item)
    assert "pygeoapi" not in _visible(html).lower() and not FOREIGN.search(html)
    assert _data_block(html)["features"][0]["geometry"] == FEATURE["geometry"]
    html = _render(templates, "collections/collection.html", {
        "id": "poi", "title": BREAKOUT, "description": "", "keywords": [], "links": [],
        "collections_path": "c", "extent": {"spatial": {"bbox": [[119.5, 29.5, 120.5, 30.5]]}}})
    assert "pygeoapi" not in _visible(html).lower() and not FOREIGN.search(html)
    assert _data_block(html) == {"kind": "extent", "target": "collection-map",
                                 "bbox": [119.5, 29.5, 120.5, 30.5], "key": ""}
    assert BREAKOUT not in html


@pytest.mark.parametrize("page", sorted(p.relative_to(OURS).as_posix()
                                        for p in OURS.rglob("*.html")))
def test_our_templates_have_no_inline_script(page: str) -> None:
    text = (OURS / page).read_text(encoding="utf-8")
    for m in re.finditer(r"<script( [^>]*)?>(.*?)</script>", text, re.DOTALL):
        attrs, body = m.group(1) or "", m.group(2)
        if 'type="application/json"' in attrs:  # data only, one script_json expression
            assert 'nonce="{{ csp_nonce }}"' in attrs, attrs  # as every script of a page
            assert re.fullmatch(r"\{\{ .* \| script_json \}\}", body.strip(), re.DOTALL), body
        else:
            assert "src=" in attrs and not body.strip(), m.group(0)
    assert "| safe" not in text and "innerHTML" not in text
