"""pygeoapi HTML templates that load nothing from the internet.

pygeoapi's templates pull Leaflet, Swagger UI, Bootstrap and fonts from CDNs. A node serves
these from its own origin instead: the templates are copied with every CDN address rewritten
to the node's `/ogc/static/vendor/...`, filled from the npm packages in `package.json`.
Libraries we do not ship (fonts, charts, coverage viewers) point to a local path that is
simply absent, so a page never reaches outside the machine.
"""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from pathlib import Path

from nodes.settings import PROJECT_ROOT, FederationSettings, NodeSettings

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
    for page in tdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = rewrite(text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    shutil.copytree(src / "static", sdir)
    modules = PROJECT_ROOT / "node_modules"
    for _, vendor, package_dir in VENDORED:
        target = sdir / "vendor" / vendor.rstrip("/")
        if (modules / package_dir).is_dir() and not target.exists():
            shutil.copytree(modules / package_dir, target)
    (sdir / "img").mkdir(exist_ok=True)
    (sdir / "img" / "blank-tile.png").write_bytes(blank_png())
    return {"path": str(tdir), "static": str(sdir)}
