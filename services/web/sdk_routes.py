"""The JavaScript SDK as a node serves it: `/sdk/geoplat.js` (UMD), `/sdk/geoplat.esm.js`,
`/sdk/geoplat.d.ts`, the docs `/sdk/` with live examples `/sdk/examples/{name}.html`,
Tianditu's script URL `/api?v=4.0&tk=KEY` (a prefix that sets the key, then dist/tianditu.js),
the service-hall map `/hall` (issue 15: pages/hall.html with /sdk/hall.js, the SDK's
reference application) and the public cadastral map `/cadastre` (pages/cadastre.html with
/sdk/cadastre.js, on the nodes whose `cadastre:` setting names their parcels layer).

The bundles are built at install time (services/web/sdk/build.mjs, `make install`); they are
read from `services/web/sdk/dist/` when they change on disk, kept in memory with their gzip form
and a strong ETag. A bundle that was not built answers a script that throws a clear error (a
page's console says what is wrong, instead of a blank map).

The pages are Jinja2 templates (autoescape) rendered with the response's CSP nonce for their
inline scripts and the node's demo browser key (a browser key is bound to the nodes' origins:
embedding it in the nodes' own pages is what it is for). Scripts and pages are public; the
data they fetch carries the key.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoplat_settings.cadastre import CadastreSettings
from services.web.scriptsafe import script_json
from tiles.errors import problem

SDK_DIR = Path(__file__).resolve().parent / "sdk"
DIST = SDK_DIR / "dist"
EXAMPLES = SDK_DIR / "examples"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
DEMO_KEY_FILE = "sdk-demo.json"  # in the node's directory, written at build time
NONCE_SCOPE_KEY = "geoplat.csp_nonce"  # nodes/security_headers.py sets it per response

JS = "application/javascript; charset=utf-8"
CACHE = "public, max-age=300, must-revalidate"
EXAMPLE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_KEY = 256
TIANDITU_VERSIONS = ("4.0",)
BUNDLES = {"geoplat.js": JS, "geoplat.esm.js": JS, "hall.js": JS, "cadastre.js": JS,
           "portal.js": JS,  # the portal at / (services/web/portal.py, issue 16)
           "status.js": JS, "catalogue.js": JS,  # /status, /catalogue (status_pages.py)
           "geoplat.d.ts": "application/typescript; charset=utf-8"}

_ENV = Environment(loader=FileSystemLoader(str(SDK_DIR)),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["script_json"] = script_json


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    stamp: tuple[int, int]


class Assets:
    """Files of dist/, read again when their size or mtime changes (a rebuild)."""

    def __init__(self, directory: Path = DIST):
        self.directory = directory
        self._cache: dict[str, Asset] = {}

    def get(self, name: str) -> Asset | None:
        path = self.directory / name
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(name)
        if cached is not None and cached.stamp == stamp:
            return cached
        body = path.read_bytes()
        asset = Asset(body, gzip.compress(body, 9, mtime=0),
                      hashlib.sha256(body).hexdigest()[:32], stamp)
        self._cache[name] = asset
        return asset


def not_built(what: str) -> bytes:
    """A script that fails loudly: the bundle is missing on this node."""
    message = (f"geoplat: {what} is not built on this node "
               "(run `make install`, which builds services/web/sdk/dist/)")
    return f"throw new Error({script_json(message)});\n".encode()


def accepts_gzip(request: Request) -> bool:
    return any(part.split(";")[0].strip().lower() in ("gzip", "*")
               for part in request.headers.get("accept-encoding", "").split(","))


def send(request: Request, body: bytes, gzipped: bytes | None, etag: str, media_type: str,
         cache: str = CACHE) -> Response:
    """`body` (or its gzip form when accepted) with a strong ETag; 304 when it matches."""
    use_gzip = gzipped is not None and accepts_gzip(request)
    tag = f'"{etag}{"-gz" if use_gzip else ""}"'
    headers = {"ETag": tag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    match = request.headers.get("if-none-match", "")
    if tag in [t.strip() for t in match.split(",")] or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(gzipped if use_gzip and gzipped is not None else body,
                    media_type=media_type, headers=headers)


def demo_key(node_dir: Path) -> str:
    """The demo browser key the build left for this node's pages ('' when there is none)."""
    try:
        value = json.loads((node_dir / DEMO_KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    key = value.get("browser_key") if isinstance(value, dict) else None
    return key if isinstance(key, str) and KEY_PATTERN.fullmatch(key) else ""


def write_demo_key(node_dir: Path, demo_file: Path) -> None:
    """At build time: the demo developer's browser key for the node's SDK pages (nothing when
    the install has no demo developer, e.g. a node on a host of its own)."""
    target = node_dir / DEMO_KEY_FILE
    try:
        demo = json.loads(demo_file.read_text(encoding="utf-8"))
        key = demo["browser_key"]
    except (OSError, ValueError, KeyError, TypeError):
        target.unlink(missing_ok=True)
        return
    target.write_text(json.dumps({"browser_key": key}), encoding="utf-8")
    target.chmod(0o600)


class SdkRoutes:
    """The routes of the SDK (mounted by nodes/asgi.py, rules in services/access/rules.py)."""

    def __init__(self, base_url: str, node_dir: Path, node_title: str = "",
                 assets: Assets | None = None, cadastre: CadastreSettings | None = None,
                 layer_ids: frozenset[str] = frozenset()):
        self.base_url = base_url.rstrip("/")
        self.node_dir = node_dir
        self.node_title = node_title
        self.assets = assets or Assets()
        self.cadastre = cadastre or CadastreSettings()
        self.layer_ids = layer_ids  # the node's configured layers: /cadastre needs its parcels

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sdk", self.to_docs, methods=["GET", "HEAD"]),
            Route("/sdk/", self.docs, methods=["GET", "HEAD"]),
            Route("/sdk/{name:str}", self.bundle, methods=["GET", "HEAD"]),
            Route("/sdk/examples/{name:str}.html", self.example, methods=["GET", "HEAD"]),
            Route("/api", self.tianditu, methods=["GET", "HEAD"]),
            Route("/hall", self.hall, methods=["GET", "HEAD"]),
            Route("/cadastre", self.cadastre_page, methods=["GET", "HEAD"]),
        ]

    async def to_docs(self, request: Request) -> Response:
        return RedirectResponse("/sdk/", status_code=301)

    async def bundle(self, request: Request) -> Response:
        name = request.path_params["name"]
        media_type = BUNDLES.get(name)
        if media_type is None:
            return problem(404, "Not Found", "No such file of the SDK.")
        asset = self.assets.get(name)
        if asset is None:
            if name.endswith(".d.ts"):
                return problem(503, "Not built", "The SDK is not built on this node.")
            return Response(not_built(name), status_code=503, media_type=JS,
                            headers={"Cache-Control": "no-store"})
        return send(request, asset.body, asset.gzipped, asset.etag, media_type)

    async def tianditu(self, request: Request) -> Response:
        """Tianditu's `<script src="/api?v=4.0&tk=KEY">`: the key and node, then the layer."""
        version = request.query_params.get("v", "4.0")
        key = request.query_params.get("tk", "")
        if version not in TIANDITU_VERSIONS:
            body = ("throw new Error(" + script_json(
                f"geoplat: only v={', '.join(TIANDITU_VERSIONS)} of the Tianditu JS API is "
                "served here") + ");\n").encode()
            return Response(body, status_code=400, media_type=JS,
                            headers={"Cache-Control": "no-store"})
        if len(key) > MAX_KEY:
            return Response(b"throw new Error(\"geoplat: tk is too long\");\n", status_code=400,
                            media_type=JS, headers={"Cache-Control": "no-store"})
        asset = self.assets.get("tianditu.js")
        if asset is None:
            return Response(not_built("the Tianditu JS API layer (tianditu.js)"),
                            status_code=503, media_type=JS, headers={"Cache-Control": "no-store"})
        prefix = ("globalThis.GEOPLAT_TIANDITU=" + script_json(
            {"key": key, "node": self.base_url, "v": version}) + ";\n").encode()
        body = prefix + asset.body
        etag = hashlib.sha256(prefix + asset.etag.encode()).hexdigest()[:32]
        # the answer holds the key: private caches only
        return send(request, body, gzip.compress(body, 6, mtime=0), etag, JS,
                    cache="private, max-age=300, must-revalidate")

    def page_values(self, request: Request) -> dict:
        """What every page of the node is rendered with; its key: `?tk=` (a developer trying
        the examples and pages with their own key), else the node's public-only page key."""
        own = request.query_params.get("tk", "")
        key = own if KEY_PATTERN.fullmatch(own) else demo_key(self.node_dir)
        return {"nonce": request.scope.get(NONCE_SCOPE_KEY, ""), "key": key,
                "node": self.base_url, "node_title": self.node_title,
                "built": self.assets.get("geoplat.js") is not None}

    async def docs(self, request: Request) -> Response:
        examples = sorted(p.stem for p in EXAMPLES.glob("*.html")
                          if EXAMPLE_NAME.fullmatch(p.stem))
        html = _ENV.get_template("docs.html").render(
            examples=examples, cadastre=self.has_cadastre(), **self.page_values(request))
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    async def hall(self, request: Request) -> Response:
        """The service-hall map (issue 15): pages/hall.html with its script /sdk/hall.js
        (src/apps/hall.js); `?item=CODE&near=lon,lat` are read by the script."""
        html = _ENV.get_template("pages/hall.html").render(**self.page_values(request))
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    def has_cadastre(self) -> bool:
        return self.cadastre.parcels is not None and self.cadastre.parcels in self.layer_ids

    async def cadastre_page(self, request: Request) -> Response:
        """The public cadastral map (issue 15): pages/cadastre.html with /sdk/cadastre.js
        (src/apps/cadastre.js), on a node whose `cadastre.parcels` is one of its layers."""
        c = self.cadastre
        values = self.page_values(request)
        if not self.has_cadastre():
            html = _ENV.get_template("pages/missing.html").render(
                what="地籍图查询 Cadastral map",
                why="这个节点没有地籍宗地图层。 This node has no cadastral parcels layer.",
                **values)
            return HTMLResponse(html, status_code=404, headers={"Cache-Control": "no-cache"})
        projects = c.projects if c.projects in self.layer_ids else None
        config = {"key": values["key"], "node": values["node"], "parcels": c.parcels,
                  "projects": projects, "maxParcels": c.max_parcels}
        html = _ENV.get_template("pages/cadastre.html").render(config=config, **values)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    async def example(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not EXAMPLE_NAME.fullmatch(name) or not (EXAMPLES / f"{name}.html").is_file():
            return problem(404, "Not Found", "No such example.")
        html = _ENV.get_template(f"examples/{name}.html").render(**self.page_values(request))
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


# --- CORS for what the SDK reads from another origin ---------------------------------------------

# The surfaces the SDK reads with fetch (XHR), not as images: the capabilities, the place-name
# API, and (to read their problem detail) failing tiles. pygeoapi (/ogc) sends its own CORS
# headers. No credentials are ever allowed: the key in the URL is the credential, and a browser
# key is checked against the page's Origin by the node, so `*` gives a page of another origin
# nothing its own key would not.
CORS_PREFIXES = ("/wmts", "/wms", "/tms", "/service", "/api/places/", "/sdk/", "/api/halls/",
                 "/api/items")
# Tianditu's script, its web services (T.LocalSearch, T.Geocoder, T.AdministrativeDivision,
# T.DrivingRoute call them from the page's origin) and our route API
CORS_EXACT = frozenset({"/api", "/geocoder", "/v2/search", "/search", "/v2/administrative",
                        "/administrative", "/drive", "/api/route"})
TIANDITU_TILES = re.compile(r"^/[a-z]{3}_[cw]/wmts$")


def cors_applies(path: str) -> bool:
    return (path in CORS_EXACT or path.startswith(CORS_PREFIXES)
            or TIANDITU_TILES.match(path) is not None)


class PublicReadCors:
    """`Access-Control-Allow-Origin: *` on GET/HEAD answers (refusals too) of the SDK's data
    surfaces, so that a page on a developer's own origin can use the SDK with its key."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or not cors_applies(scope["path"])):
            await self.app(scope, receive, send)
            return

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"access-control-allow-origin" not in names:
                    headers += [(b"access-control-allow-origin", b"*"),
                                (b"access-control-expose-headers", b"ETag, Content-Type")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, cors_send)
