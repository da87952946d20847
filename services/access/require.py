"""Access as a dependency of every route group: `require(...)` and the wrapper that enforces it.

A route group carries one `Requirement` per route (`route.requirement`, set by `guard()`), and
the route's ASGI app is wrapped by `Enforce`, which resolves the caller once (bearer token or
the node's cookie, `tk`/`X-Api-Key`, as `AccessControl.check` always did) and decides with the
node's `AccessControl` and `KeyChecker`. The rules of every route group of a node are in
services/access/rules.py; a route mounted without one fails `tests/test_access_routes.py`.

Kinds:
- `public`, `public-page`: anyone, no key (`/`, `/health`, the sign-in and registration pages);
  explicit, so that "anyone" is a decision and not an omission.
- `client`: OAuth 2.0 endpoints where the client authenticates in the request (RFC 6749
  section 2.3, RFC 7009; never a cookie, so no CSRF token); `protocol`: OIDC/OAuth endpoints
  that validate the bearer token (RFC 6750) and its scope or roles; `check`: `/auth/check`,
  the fast path's decision about another request (it runs the same check on that request).
- `ogc-api`: the pygeoapi mount; per request `features` (items), `tiles` (MVT), `metadata`,
  with the layer from the collection path, hidden layers left out of the listings, and
  pygeoapi's own HTML pages (`pages`) needing no key.
- `tiles`, `maps`: MapProxy surfaces (WMTS REST and KVP, TMS, Tianditu routes, WMS); the tile
  engine validates the request first and then asks the check this wrapper hands it
  (`scope["geoplat.access"]`) with the layers the request uses.
- `features`, `records`, `search`, `processes`, `metadata`: a JSON API of that kind without a
  layer in its path: token, key and quota checked before the endpoint runs.
- `caller`, `user`, `publisher`, `admin`: our JSON APIs that need a signed-in caller (any
  token), a user, this node's publisher (or admin, or a platform admin), this node's admin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.access.control import AccessControl, Decision, bearer, token_cookie
from services.errors import AuthError, problem
from tiles.errors import OGCError

OPEN_KINDS = ("public", "public-page", "protocol", "client", "check")
ROLE_KINDS = ("caller", "user", "publisher", "admin")
ENGINE_KINDS = ("tiles", "maps")
API_KINDS = ("features", "records", "search", "processes", "metadata")
KINDS = (*OPEN_KINDS, "ogc-api", *ENGINE_KINDS, *API_KINDS, *ROLE_KINDS)
LayerFrom = Literal["none", "path", "request"]
ACCESS = "geoplat.access"  # scope key: the check a tile engine asks (see EngineAccess)
TRUSTED = "geoplat.trusted"  # scope key: in-process requests (the node's own health probe)


class _Trusted:
    """The value of scope[TRUSTED] for the node's own in-process requests: a Python object no
    HTTP server can put into a scope, so no client can claim it."""

    def __repr__(self) -> str:
        return "TRUSTED_CALL"


TRUSTED_CALL = _Trusted()


@dataclass(frozen=True)
class Requirement:
    """What a route needs of its caller. Immutable, comparable, printable."""

    kind: str
    layer: LayerFrom = "none"
    unauthorized: str = ""  # the 401 detail (role kinds)
    forbidden: str = ""  # the 403 detail (role kinds); `{node}` is the node id
    challenge: bool = False  # a 401 carries `WWW-Authenticate: Bearer`
    pages: bool = False  # HTML pages for people (pygeoapi's) need no key
    note: str = ""  # why, for readers of the rules
    # API kinds: the answer to a refused request in the routes' own error form (the Tianditu
    # web services answer a bad tk in Tianditu's JSON); None: problem+json
    refusal: Callable[[Decision], ASGIApp] | None = field(default=None, compare=False)

    @property
    def open(self) -> bool:
        """No check at all (anyone, or the endpoint's protocol authenticates)."""
        return self.kind in OPEN_KINDS

    @property
    def keyed(self) -> bool:
        """The node's key rule applies: `tk`/`X-Api-Key` checked, counted, and required of
        anonymous callers when the node's `auth.public_requires_key` is set."""
        return self.kind in ("ogc-api", *ENGINE_KINDS, *API_KINDS)

    def nginx_need(self, public_requires_key: bool) -> str | None:
        """For nginx's cached-tile fast path: the value of `$geoplat_auth_need` (non-empty: ask
        the app) for a location served under this requirement; None: no check (public)."""
        if not self.keyed:
            return None
        return "1" if public_requires_key else '"$arg_tk$http_x_api_key"'


def require(kind: str, *, layer: LayerFrom = "none", unauthorized: str = "",
            forbidden: str = "", challenge: bool = False, pages: bool = False,
            note: str = "", refusal: Callable[[Decision], ASGIApp] | None = None
            ) -> Requirement:
    """The requirement of a route group (see the module docstring for the kinds)."""
    if kind not in KINDS:
        raise ValueError(f"unknown access kind {kind!r}; one of {', '.join(KINDS)}")
    if kind in ROLE_KINDS and not unauthorized:
        raise ValueError(f"a {kind!r} requirement says what an anonymous caller is told")
    if kind in ENGINE_KINDS and layer != "request":
        raise ValueError("tile engines name the layers of a request: layer='request'")
    if refusal is not None and kind not in API_KINDS:
        raise ValueError("only API kinds answer refusals in their own form")
    return Requirement(kind, layer, unauthorized, forbidden, challenge, pages, note, refusal)


# --- attaching ------------------------------------------------------------------------------

def guard(requirement: Requirement, route: BaseRoute) -> BaseRoute:
    """`route` carrying `requirement` (`route.requirement`), its app wrapped to enforce it."""
    if getattr(route, "requirement", None) is not None:
        raise ValueError(f"{getattr(route, 'path', route)!r} already carries a requirement")
    if not isinstance(route, (Route, Mount)):
        raise TypeError(f"cannot guard {route!r}")
    route.app = Enforce(route.app, requirement)
    route.requirement = requirement  # type: ignore[union-attr]  # our attribute on Starlette's
    return route


def guard_group(rules: Mapping[str, Requirement], routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """Every route of a group guarded by its rule (by path); a route without one is an error,
    so a new route cannot be mounted without deciding who may call it."""
    out = []
    for route in routes:
        path = str(getattr(route, "path", ""))
        if path not in rules:
            raise LookupError(f"no access rule for {path!r} (services/access/rules.py)")
        out.append(guard(rules[path], route))
    return out


def attach(routes: list[BaseRoute], rules: Mapping[str, Requirement]) -> None:
    """Guard, in place, the routes of `routes` the `rules` name (a group another package added
    to the app's router, e.g. layers/web.py, which does not import services)."""
    for i, route in enumerate(routes):
        path = str(getattr(route, "path", ""))
        if path in rules and getattr(route, "requirement", None) is None:
            routes[i] = guard(rules[path], route)


def requirement_of(route: BaseRoute) -> Requirement | None:
    return getattr(route, "requirement", None)


def unguarded(routes: Iterable[BaseRoute]) -> list[str]:
    """Paths of routes (at this level: a Mount's requirement covers what is under it) that carry
    no requirement, or whose app is not the enforcing wrapper."""
    out = []
    for route in routes:
        req = requirement_of(route)
        if not isinstance(req, Requirement) or not isinstance(getattr(route, "app", None), Enforce):
            out.append(getattr(route, "path", repr(route)))
    return out


def route_for(routes: Iterable[BaseRoute], path: str) -> BaseRoute | None:
    """The route of `routes` a GET of `path` goes to (Starlette's own matching)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "path_params": {}}
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


# --- enforcing ------------------------------------------------------------------------------

def control_of(scope: Scope) -> AccessControl | None:
    """The node's access control: `app.state.access` of the app the request came through."""
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "access", None)


def views_of(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "access_views", None)


class Enforce:
    """The ASGI wrapper of a guarded route: refuses what the requirement does not allow."""

    def __init__(self, app: ASGIApp, requirement: Requirement):
        self.app, self.requirement = app, requirement

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = self.requirement
        if scope["type"] != "http" or req.open or scope.get(TRUSTED) is TRUSTED_CALL:
            await self.app(scope, receive, send)
            return
        control = control_of(scope)
        if control is None:  # fail closed: a node without access control serves nothing checked
            await problem(503, "Service Unavailable",
                          "Access control is not ready.")(scope, receive, send)
            return
        if req.kind == "ogc-api":
            await ogc_api(self.app, req, control, scope, receive, send)
        elif req.kind in ENGINE_KINDS:
            scope[ACCESS] = EngineAccess(control)
            await self.app(scope, receive, send)
        elif req.kind in ROLE_KINDS:
            refusal = await role_refusal(req, control, scope)
            await (refusal or self.app)(scope, receive, send)
        else:
            decision = await control.check(scope, None, req.kind)  # type: ignore[arg-type]
            if not decision.allowed:
                answer = req.refusal(decision) if req.refusal else _refusal(decision, control,
                                                                             scope)
                await answer(scope, receive, send)
                return
            await self.app(scope, receive, send)


async def role_refusal(req: Requirement, control: AccessControl, scope: Scope) -> Any:
    """None if the caller has the role, else the problem response to send."""
    headers = {"WWW-Authenticate": 'Bearer realm="geoplat"'} if req.challenge else None
    try:
        p = await control.principal(scope)
    except AuthError as exc:
        return exc.response(headers if exc.status == 401 else None)
    if p is None:
        return AuthError(401, "Unauthorized", req.unauthorized).response(headers)
    ok = {"caller": True, "user": p.is_user,
          "publisher": p.is_user and control.is_privileged(p),
          "admin": control.is_admin(p)}[req.kind]
    if ok:
        return None
    return AuthError(403, "Forbidden", req.forbidden.format(node=control.node_id)).response()


def _refusal(decision: Decision, control: AccessControl, scope: Scope) -> Any:
    headers = {}
    if decision.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="geoplat"' + (
            ', error="invalid_token"' if bearer(scope, token_cookie(control.node_id)) else "")
    return decision.error().response(headers)


class EngineAccess:
    """The check a tile engine asks (`tiles.service.KeyCheck`): token or key (tk or X-Api-Key),
    quota, rate and the level of every layer the request uses; and what to leave out of its
    capabilities documents."""

    _TK = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")  # key values are hex; nothing odd is looked up

    def __init__(self, control: AccessControl):
        self.control = control

    async def __call__(self, scope: Scope, layers: Iterable[str], kind: str = "tiles"
                       ) -> OGCError | None:
        """None to let the request through, else the OGC error to send (401/403/429/503)."""
        layers = list(layers)
        tk = HTTPConnection(scope).query_params.get("tk")
        if tk and not self._TK.match(tk):
            return OGCError("Forbidden", "This API key is unknown or revoked.", None, 403)
        decision = await self.control.check(scope, layers[0] if layers else None,
                                            kind)  # type: ignore[arg-type]
        for layer in layers[1:]:
            if not decision.allowed:
                break
            decision = await self.control.decide(decision.principal, layer)
        if decision.allowed:
            return None
        return OGCError(decision.error().ogc_code, decision.detail or decision.title, None,
                        decision.status)

    async def hidden_fields(self, scope: Scope, layer: str) -> frozenset[str]:
        """The attributes of `layer` this caller may not receive (WMS GetFeatureInfo: the rule
        of the features service, services/access/fields.py)."""
        return await self.control.hidden_fields(scope, layer)

    async def hidden(self, scope: Scope, layers: Iterable[str]) -> set[str]:
        """The layers of `layers` this caller (token, else key owner) may not see (left out of
        capabilities)."""
        return set(layers) & set(await self.control.hidden(await self.control.caller(scope)))


# --- the pygeoapi mount ---------------------------------------------------------------------

COLLECTION = re.compile(r"^/ogc/collections/([^/]+)(/.*)?$")
LISTINGS = {"/ogc": "landing", "/ogc/": "landing", "/ogc/collections": "collections",
            "/ogc/collections/": "collections", "/ogc/openapi": "openapi"}
# a tile of an OGC API tileset: /ogc/collections/{id}/tiles/{tileMatrixSetId}/{z}/{y}/{x}
_TILE_PATH = re.compile(r"/tiles/[^/]+/[^/]+/[^/]+/[^/]+/?$")


# OGC API Processes (services/analysis): running a process and every job route need a caller
PROCESS_CALL = re.compile(r"^/ogc/(jobs(/.*)?|processes/[^/]+/execution/?)$")
PROCESS_CALLER = ("Processes run, and jobs belong to, a signed-in user or the owner of a "
                  "developer key: send a bearer token or an API key (tk).")


async def processes_call(app: ASGIApp, control: AccessControl, scope: Scope, receive: Receive,
                         send: Send) -> None:
    """Execution and jobs: token or key (kind `processes`), never anonymous; the answers are
    the caller's (never cached); which layers a process reads is the process's check
    (services/analysis/caller.py)."""
    decision = await control.check(scope, None, "processes")
    if decision.allowed and decision.principal is None:
        decision = Decision(False, 401, "Unauthorized", PROCESS_CALLER)
    if not decision.allowed:
        await _refusal(decision, control, scope)(scope, receive, send)
        return
    if scope.get("method") in ("POST", "PUT", "PATCH"):
        body = await read_body(scope, receive, control.process_body_bytes)
        if body is None:
            too_large = Decision(False, 413, "Content Too Large",
                                 f"A process execution's body is at most "
                                 f"{control.process_body_bytes} bytes on this node.")
            await too_large.error().response()(scope, receive, send)
            return
        receive = replay(body, receive)
    await app(scope, receive, private_answer(send))


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None when it is (or says it is) over `limit` bytes: a
    Content-Length over it is refused before a byte is read."""
    length = HTTPConnection(scope).headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive_next: Receive) -> Receive:
    """A receive that gives `body` once, then the client's own messages (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive_next()
    return receive


def private_answer(send: Send) -> Send:
    """`send` for an answer that depends on who asks: never kept by a shared cache."""

    async def private_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() != b"cache-control"]
            headers += [(b"cache-control", b"private, no-store"),
                        (b"vary", b"Authorization, Cookie, X-Api-Key")]
            message = {**message, "headers": headers}
        await send(message)

    return private_send


def kind_of(sub: str) -> str:
    if sub.startswith("/tiles"):
        return "tiles"
    if sub.startswith("/items"):
        return "features"
    return "metadata"


def is_page(scope: Scope) -> bool:
    """One of pygeoapi's HTML pages or static files: what pygeoapi answers in HTML (`f=html`, or
    no `f` and `Accept: text/html`), never a tile, MVT or image (issue 11, #4)."""
    path = scope["path"]  # not `HTTPConnection.url`: building the URL costs more than this check
    if path.startswith("/ogc/static/"):
        return True
    if path.startswith("/ogc") and not _TILE_PATH.search(path):
        c = HTTPConnection(scope)
        fmt = c.query_params.get("f")
        return fmt == "html" or (fmt is None and "text/html" in c.headers.get("accept", ""))
    return False


async def ogc_root(request: Request) -> Response:
    """`/ogc` without the slash, a route of the pygeoapi group so that its requirement answers
    it: the filtered landing page for a caller with hidden layers, else the mount's address."""
    return RedirectResponse(request.url.replace(path=request.url.path + "/"))


async def ogc_api(app: ASGIApp, req: Requirement, control: AccessControl, scope: Scope,
                  receive: Receive, send: Send) -> None:
    """Layer levels on pygeoapi: per-layer paths and per-caller filtered listings."""
    path = scope["path"]
    if PROCESS_CALL.match(path):
        await processes_call(app, control, scope, receive, send)
        return
    m = COLLECTION.match(path)
    layer = m.group(1) if m else None
    kind = kind_of(m.group(2) or "") if m else "metadata"
    decision = await control.check(scope, layer if layer in control.levels else None,
                                   kind, page=req.pages and is_page(scope))  # type: ignore[arg-type]
    if not decision.allowed:
        await _refusal(decision, control, scope)(scope, receive, send)
        return
    view = LISTINGS.get(path)
    if view is not None:
        hidden = await control.hidden(decision.principal)
        if hidden:
            views = views_of(scope)
            if views is None:  # never the unfiltered listing
                await problem(503, "Service Unavailable",
                              "Access control is not ready.")(scope, receive, send)
                return
            await views.serve(view, hidden, scope, receive, send)
            return
    if layer in control.non_public:
        # answers that depend on who asks must never be served from a shared cache
        await app(scope, receive, private_answer(send))
        return
    await app(scope, receive, send)
