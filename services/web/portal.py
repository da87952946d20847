"""The portal (门户, issue 16): every node's `/` in a browser.

`/` is negotiated: a browser (`Accept` naming `text/html` before any JSON type) gets the portal
page, `services/web/sdk/pages/portal.html` with its script `/sdk/portal.js` (src/apps/portal/,
bundled by build.mjs, on the global `Geoplat` of /sdk/geoplat.js); `?f=json`, `Accept:
application/json`, no `Accept` or `*/*` (what scripts send) keep the node's landing JSON as it
always was, and `?f=html` asks for the page whatever the header says. The page is rendered as
the SDK's pages are (Jinja2 autoescape, the response's CSP nonce, the node's demo browser key,
values inside the script through the one script-safe encoder); everything it shows it fetches
from the node's public APIs with that key (or the signed-in user's cookie), so the access rules
and quotas apply unchanged.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.web.sdk_routes import _ENV, SdkRoutes
from tiles.errors import problem

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_ACCEPT = 1024  # longer Accept headers are not parsed: the JSON, as for a script
# the portal reads the layers of the other nodes its catalogue lists: their origins join the
# page's `connect-src` and `img-src` (nodes/security_headers.py), and nothing else
ORIGINS_SCOPE_KEY = "geoplat.csp_origins"
ORIGINS_SECONDS = 60.0


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


class NodeOrigins:
    """The origins of the nodes this node's registry lists (approved `node` records: its part
    of the federation), read at most once a minute."""

    def __init__(self, db: Any, own: str):
        self.db, self.own = db, own
        self._at, self._origins = -ORIGINS_SECONDS, ()  # type: tuple[float, tuple[str, ...]]

    def _read(self) -> tuple[str, ...]:
        rows = self.db.all("SELECT url FROM registry.services WHERE service_type = 'node' "
                           "AND status = 'approved' ORDER BY url")
        out = []
        for r in rows:
            origin = origin_of(str(r["url"]))
            if origin.startswith(("http://", "https://")) and origin != self.own \
                    and origin not in out:
                out.append(origin)
        return tuple(out)

    async def get(self) -> tuple[str, ...]:
        if time.monotonic() - self._at >= ORIGINS_SECONDS:
            with contextlib.suppress(Exception):  # the database may be down: keep what we had
                self._origins = await anyio.to_thread.run_sync(self._read)
            self._at = time.monotonic()
        return self._origins


def _media_ranges(accept: str) -> list[tuple[str, float, int]]:
    """(type, q, position) of each media range of an Accept header."""
    ranges = []
    for position, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        kind = pieces[0].lower()
        if not kind:
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((kind, q, position))
    return ranges


def wants_html(request: Request) -> bool:
    """Whether `/` answers the portal page: `?f=html`, or an Accept header preferring
    `text/html` (or `application/xhtml+xml`) to every JSON type. `?f=json`, no Accept, `*/*`
    and anything unclear answer the JSON."""
    f = request.query_params.get("f")
    if f is not None:
        return f.lower() == "html"
    accept = request.headers.get("accept", "")
    if not accept or len(accept) > MAX_ACCEPT:
        return False
    best_html: tuple[float, int] | None = None
    best_json: tuple[float, int] | None = None
    for kind, q, position in _media_ranges(accept):
        rank = (q, -position)
        if q <= 0:
            continue
        if kind in ("text/html", "application/xhtml+xml"):
            best_html = max(best_html or rank, rank)
        elif kind in ("application/json", "application/geo+json") or kind.endswith("+json"):
            best_json = max(best_json or rank, rank)
    return best_html is not None and (best_json is None or best_html > best_json)


class Portal:
    """The node's front page: the portal for browsers, `landing` (the JSON) for scripts."""

    def __init__(self, sdk: SdkRoutes, node: dict[str, Any], landing: Endpoint,
                 origins: NodeOrigins | None = None, main_url: str = ""):
        self.sdk = sdk
        self.node = node  # NodeSection.summary(): id, title, tier, parent, extent...
        self.landing = landing
        self.origins = origins
        self.main_url = main_url  # the main node: its /sso/keys is the user's key page

    async def front(self, request: Request) -> Response:
        f = request.query_params.get("f")
        if f is not None and f.lower() not in ("html", "json"):
            return problem(400, "Bad Request", "f must be html or json.")
        if not wants_html(request):
            response = await self.landing(request)
            response.headers["Vary"] = "Accept"
            return response
        if self.origins is not None:
            request.scope[ORIGINS_SCOPE_KEY] = await self.origins.get()
        return self.page(request)

    def page(self, request: Request) -> Response:
        values = self.sdk.page_values(request)
        config = {"key": values["key"], "node": values["node"], "title": self.node["title"],
                  "id": self.node["id"], "tier": self.node["tier"],
                  "extent": self.node["extent"], "main": self.main_url}
        html = _ENV.get_template("pages/portal.html").render(config=config, **values)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache", "Vary": "Accept"})
