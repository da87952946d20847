"""pygeoapi HTML templates that load nothing from the internet and run no one else's script.

pygeoapi's templates pull Leaflet, Swagger UI, Bootstrap and fonts from CDNs. A node serves
these from its own origin instead: the templates are copied with every CDN address rewritten
to the node's `/ogc/static/vendor/...`, filled from the npm packages in `package.json`.
Libraries we do not ship (fonts, charts, coverage viewers) point to a local path that is
simply absent, so a page never reaches outside the machine.

Inline scripts are rewritten for the script context (`script_safe`): each carries the CSP nonce
(nodes/security_headers.py), every `{{ value }}` in it goes through the one script-safe JSON
encoder (`script_json`) instead of HTML escaping inside JS quotes, and popups are built with
DOM text nodes instead of HTML strings (attribute values are data, never markup).

The pages are geoplat's (issue 16): nodes/ogc_templates/ replaces pygeoapi's `_base.html`
(the node's header and footer, no pygeoapi branding) and the maps of the items, item and
collection pages, which extend pygeoapi's own (kept as `pygeoapi/<path>`) and draw with the SDK
(`/sdk/geoplat.js`) on the node's e-map instead of Leaflet (static/geoplat/ogc.js).
"""

from __future__ import annotations

import re
import shutil
import struct
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jinja2

from nodes.security_headers import NONCE_MARKER, script_json
from nodes.settings import PROJECT_ROOT, FederationSettings, NodeSettings

OURS = Path(__file__).parent / "ogc_templates"
STATIC = "{{ config['server']['url'] }}/static/vendor/"
# CDN prefix -> (vendor folder, npm package folder)
VENDORED = [
    (r"https://unpkg\.com/leaflet@[^/]+/dist/", "leaflet/", "leaflet/dist"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/leaflet/[^/]+/", "leaflet/", "leaflet/dist"),
    (r"https://unpkg\.com/leaflet\.markercluster(@[^/]+)?/dist/", "leaflet.markercluster/",
     "leaflet.markercluster/dist"),
    (r"https://unpkg\.com/leaflet\.vectorgrid(@[^/]+)?/dist/", "leaflet.vectorgrid/",
     "leaflet.vectorgrid/dist"),
    (r"https://unpkg\.com/swagger-ui-dist(@[^/]+)?/", "swagger-ui-dist/", "swagger-ui-dist"),
    (r"https://unpkg\.com/bootstrap@[^/]+/dist/", "bootstrap/", "bootstrap/dist"),
]
CDN = re.compile(r"https?://(unpkg\.com|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|"
                 r"fonts\.googleapis\.com|fonts\.gstatic\.com)/[^\"' )]*")


def rewrite(html: str) -> str:
    for pattern, vendor, _ in VENDORED:
        html = re.sub(pattern, STATIC + vendor, html)
    return CDN.sub(STATIC + "unavailable/", html)


SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# a JS string literal in a template: `{{ ... }}` is one token (it may hold either quote)
QUOTED = re.compile(r"""(['"])((?:\{\{.*?\}\}|(?!\1)[^\n\\])*?)\1""")
EXPRESSION = re.compile(r"\{\{(.*?)\}\}")
UNSAFE = re.compile(r"\s*\|\s*(safe|to_json|script_json)\b")
# pygeoapi's popups concatenate attribute text into HTML; build them from text nodes instead
POPUPS = [
    ("""            var url = '{{ data['items_path'] }}/' + feature.id + '?f=html';
            var html = '<span><a href="' + url + '">' + {% if data['title_field'] %} feature['properties']['{{ data['title_field'] }}'] {% else %} feature.id {% endif %} + '</a></span>';
            layer.bindPopup(html);""",
     """            var link = document.createElement('a'), html = document.createElement('span');
            link.href = {{ data['items_path'] | script_json }} + '/' + encodeURIComponent(feature.id) + '?f=html';
            link.textContent = String({% if data['title_field'] %}feature['properties'][{{ data['title_field'] | script_json }}]{% else %}feature.id{% endif %});
            html.appendChild(link);
            layer.bindPopup(html);"""),
    ("""            var html = '<span>' + {% if data['title_field'] %} feature['properties']['{{ data['title_field'] }}'] {% else %} feature.id {% endif %} + '</span>';
            layer.bindPopup(html);""",
     """            var html = document.createElement('span');
            html.textContent = String({% if data['title_field'] %}feature['properties'][{{ data['title_field'] | script_json }}]{% else %}feature.id{% endif %});
            layer.bindPopup(html);"""),
]


def _as_script_json(expression: str) -> str:
    return "{{ (" + UNSAFE.sub("", expression).strip() + ") | script_json }}"


def _quoted(m: re.Match[str]) -> str:
    """A JS string literal holding `{{ }}`: a concatenation of encoded values and literals."""
    quote, body = m.group(1), m.group(2)
    if "{{" not in body:
        return m.group(0)
    parts: list[str] = []
    last = 0
    for e in EXPRESSION.finditer(body):
        if e.start() > last:
            parts.append(quote + body[last:e.start()] + quote)
        parts.append(_as_script_json(e.group(1)))
        last = e.end()
    if last < len(body):
        parts.append(quote + body[last:] + quote)
    return parts[0] if len(parts) == 1 else "(" + " + ".join(parts) + ")"


def _script(m: re.Match[str]) -> str:
    code = QUOTED.sub(_quoted, m.group(1))
    # what is left outside quotes (numbers, already encoded values) is encoded too
    code = EXPRESSION.sub(lambda e: e.group(0) if "script_json" in e.group(1)
                          else _as_script_json(e.group(1)), code)
    code = code.replace(".innerHTML = JSON.stringify(", ".textContent = JSON.stringify(")
    return '<script nonce="{{ csp_nonce }}">' + code + "</script>"


def script_safe(html: str) -> str:
    """Inline scripts of a pygeoapi template with values encoded for the script context."""
    for before, after in POPUPS:
        html = html.replace(before, after)
    return SCRIPT.sub(_script, html)


_PAGE_KEY_DIR: list[Path] = []  # the node's directory, for its page key (install_page_rendering)


def page_key() -> str:
    """The node's public-only page key (the demo browser key its pages use, '' when none)."""
    from services.web.sdk_routes import demo_key

    return demo_key(_PAGE_KEY_DIR[0]) if _PAGE_KEY_DIR else ""


class PageEnvironment(jinja2.Environment):
    """pygeoapi's Jinja environment, with the script-safe encoder and the CSP nonce marker.

    pygeoapi builds a new `Environment` per page and sets its own `to_json` filter after the
    constructor; `get_template` is the first call after that, so the override goes there.
    pygeoapi's own templates (`{{ x | to_json | safe }}`) are thus script-safe too.
    """

    def get_template(self, *args: Any, **kwargs: Any) -> jinja2.Template:
        self.filters["to_json"] = self.filters["script_json"] = script_json
        self.globals.update(to_json=script_json, script_json=script_json, csp_nonce=NONCE_MARKER,
                            page_key=page_key())
        return super().get_template(*args, **kwargs)


class _ConfigTranslations:
    """pygeoapi's translated template config, cached per config object instead of per locale.

    pygeoapi keeps ONE translated copy of "the" config per locale for the whole process
    (`l10n._cfg_cache`), made from whichever API rendered a page first. A node has several
    API objects (one per set of hidden layers for the listings, a new one after every
    publish), so pages were rendered with another API's resources: the collection page of a
    layer missing from that first copy failed with `UndefinedError` (collection.html line 75).
    """

    def __init__(self, original: Any, max_entries: int = 128):
        self.original, self.max_entries = original, max_entries
        self._cache: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, struct: Any, locale_: Any, is_config: bool = False) -> Any:
        if not is_config:
            return self.original(struct, locale_, is_config)
        from pygeoapi import l10n

        key = (id(struct), str(locale_))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is struct:  # the same object, not a reused id
                self._cache.move_to_end(key)
                return hit[1]
            l10n._cfg_cache.clear()  # pygeoapi's own per-locale copy: never reused
            result = self.original(struct, locale_, True)
            l10n._cfg_cache.clear()
            self._cache[key] = (struct, result)  # holds `struct`, so its id stays unique
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return result


def install_page_rendering(node_dir: Path | None = None) -> None:
    """Render pygeoapi's pages with `PageEnvironment` and a translated config of their own API.

    Both are looked up by pygeoapi per page (`pygeoapi.util.Environment`,
    `pygeoapi.l10n.translate_struct`), so this works whenever it runs. Idempotent.
    `node_dir`: where the node's page key is (its pages' maps read the e-map with it).
    """
    if node_dir is not None:
        _PAGE_KEY_DIR[:] = [node_dir]
    import pygeoapi.l10n
    import pygeoapi.util

    pygeoapi.util.Environment = PageEnvironment  # type: ignore[misc]
    if not isinstance(pygeoapi.l10n.translate_struct, _ConfigTranslations):
        pygeoapi.l10n.translate_struct = _ConfigTranslations(pygeoapi.l10n.translate_struct)


def blank_png(size: int = 256) -> bytes:
    """A fully transparent RGBA PNG (the HTML map's base layer until the e-map exists)."""
    raw = b"".join(b"\x00" + b"\x00" * 4 * size for _ in range(size))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def prepare_templates(settings: FederationSettings, node: NodeSettings) -> dict[str, str]:
    """Write the node's templates and static folder; returns pygeoapi's `server.templates`."""
    import pygeoapi

    src = Path(pygeoapi.__file__).parent
    out = settings.resolve(settings.var_dir) / "nodes" / node.id
    tdir, sdir = out / "templates", out / "static"
    for d in (tdir, sdir):
        if d.exists():
            shutil.rmtree(d)
    shutil.copytree(src / "templates", tdir)
    for snippet, _ in POPUPS:  # a pygeoapi upgrade that moves a popup must not go unnoticed
        if not any(snippet in p.read_text(encoding="utf-8") for p in tdir.rglob("*.html")):
            raise RuntimeError("pygeoapi's popup code changed: update nodes/templates.py POPUPS")
    for page in tdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = script_safe(rewrite(text))
        if new != text:
            page.write_text(new, encoding="utf-8")
    for page in sorted(OURS.rglob("*.html")):  # ours over pygeoapi's, which stay as pygeoapi/...
        rel = page.relative_to(OURS)
        if (tdir / rel).exists():
            (tdir / "pygeoapi" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(tdir / rel, tdir / "pygeoapi" / rel)
        (tdir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, tdir / rel)
    shutil.copytree(src / "static", sdir)
    shutil.copytree(OURS / "static", sdir / "geoplat")
    modules = PROJECT_ROOT / "node_modules"
    for _, vendor, package_dir in VENDORED:
        target = sdir / "vendor" / vendor.rstrip("/")
        if (modules / package_dir).is_dir() and not target.exists():
            shutil.copytree(modules / package_dir, target)
    (sdir / "img").mkdir(exist_ok=True)
    (sdir / "img" / "blank-tile.png").write_bytes(blank_png())
    return {"path": str(tdir), "static": str(sdir)}
