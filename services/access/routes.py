"""Routes every node serves under `/auth`: registration (forwarded to the main node), sign-in
through the main node (OIDC relying party), the caller's identity, and access grants."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from authlib.integrations.base_client import OAuthError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from geoplat_settings import AuthSection, ServerSection
from services.access import audit, grants
from services.access import fastpath as emap_fastpath
from services.access.apikeys import request_origin
from services.access.clients import AppOAuth2Client, ClientCredentials, TokenUnavailable
from services.access.control import CALLER, AccessControl, token_cookie
from services.access.emap import fold_nginx_usage
from services.access.models import GrantDecision
from services.errors import AuthError, BadRequest, Unauthorized, ogc_exception, route_group
from services.models import json_object
from services.web.pages import LOGOUT, MESSAGE, REGISTER, Csrf, client_ip, render

STATE_COOKIE = "geoplat_oidc_state"



DEFAULT_AFTER_LOGIN = "/ogc"
# the portal's view lives in the URL's fragment (`/#c=...&l=...`, which browsers never send), so
# its sign-in link carries path, query and fragment: room for a view of many layers, while the
# state cookie (base64 of it) stays well under browsers' 4 KB per cookie
MAX_NEXT = 2048


def local_path(value: str | None) -> str:
    """Where to go after signing in: a path on this node (`/publish?x=1`, `/#c=120,30&z=12`),
    else /ogc.

    Never another site: no scheme or host, no `//` or `/\\` (browsers read both as a host),
    no control characters; at most MAX_NEXT characters.
    """
    if (not value or len(value) > MAX_NEXT or not value.startswith("/")
            or value[1:2] in ("/", "\\")
            or any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in value)):
        return DEFAULT_AFTER_LOGIN
    return value


class MainUnavailable(AuthError):
    def __init__(self) -> None:
        super().__init__(503, "Service Unavailable",
                         "The main node, where accounts are kept, cannot be reached; nothing was "
                         "stored. Please try again later.")


class NodeClient:
    """This node as an OAuth client of the main node (client credentials), for forwarding.

    Tokens per scope come from `ClientCredentials` (Authlib), requests go through `http`, the
    app's one client.
    """

    def __init__(self, auth: AuthSection, http: httpx.AsyncClient):
        self.auth, self.http = auth, http
        self.credentials = ClientCredentials(http, auth.token_url, auth.client_id,
                                             auth.client_secret, timeout=5.0)

    async def token(self, scope: str = "register") -> str:
        """A client-credentials token; MainUnavailable if refused, httpx.HTTPError if down."""
        try:
            return await self.credentials.token(scope)
        except TokenUnavailable:
            raise MainUnavailable() from None

    async def forward_registration(self, data: dict[str, Any]) -> httpx.Response:
        try:
            token = await self.token()
            return await self.http.post(self.auth.main_url + "/sso/api/users", json=data,
                                        headers={"Authorization": f"Bearer {token}"},
                                        timeout=5.0)
        except (httpx.HTTPError, ValueError, KeyError):
            raise MainUnavailable() from None


class NodeAuthRoutes:
    def __init__(self, node: ServerSection, auth: AuthSection, control: AccessControl,
                 secret: str, http: httpx.AsyncClient, register_locally: Any = None,
                 node_dir: Path | None = None):
        self.node, self.auth, self.control = node, auth, control
        self.node_dir = node_dir  # learned keys for nginx's fast path (None: no fast path)
        self.db = control.db
        self.csrf = Csrf(secret)
        self.http = http
        self.client = NodeClient(auth, http)
        # the OIDC relying party: Authlib builds the authorization URL (PKCE S256) and the code
        # exchange; the state and verifier travel in this node's cookie, not a server session
        self.oidc = AppOAuth2Client(
            http, timeout=5.0, client_id=auth.client_id, client_secret=auth.client_secret,
            scope="openid profile geoplat", redirect_uri=node.base_url + "/auth/callback",
            code_challenge_method="S256", token_endpoint=auth.token_url)
        self.register_locally = register_locally  # set on the main node

    def routes(self) -> list[BaseRoute]:
        return route_group([
            Route("/auth/register", self.register, methods=["GET", "POST"]),
            Route("/auth/login", self.login, methods=["GET"]),
            Route("/auth/callback", self.callback, methods=["GET"]),
            Route("/auth/logout", self.logout, methods=["GET", "POST"]),
            Route("/auth/me", self.me, methods=["GET"]),
            Route("/auth/check", self.check, methods=["GET"]),
            Route("/auth/grants", self.grants, methods=["GET", "POST"]),
            Route("/auth/grants/{grant_id:int}/{action}", self.decide, methods=["POST"]),
            Route("/auth/audit", self.audit, methods=["GET"]),
            Route("/auth/usage", self.usage, methods=["GET"]),
        ])

    def _form_page(self, request: Request, *, status: int = 200, error: str = "",
                   fields: dict | None = None, values: dict | None = None,
                   back: str = "") -> Response:
        csrf, cookies = self.csrf.issue(request)
        return render(REGISTER, title="注册 Register", node_title=self.node.title,
                      status=status, error=error, fields=fields, csrf=csrf, cookies=cookies,
                      action="/auth/register", values=values or {}, next=back)

    async def register(self, request: Request) -> Response:
        if request.method == "GET":
            back = request.query_params.get("next")
            return self._form_page(request, back=local_path(back) if back else "")
        is_json = request.headers.get("content-type", "").split(";")[0].strip() == "application/json"
        if is_json:
            data = await json_object(request)
        else:
            form = await request.form()
            data = {k: v for k, v in form.items() if isinstance(v, str)}
            try:
                self.csrf.verify(request, data.get("csrf_token"))
            except AuthError as exc:
                return self._form_page(request, status=403, error=exc.detail)
        # where the sign-in link of the success page (and a form shown again) leads back to
        back = local_path(data["next"]) if isinstance(data.get("next"), str) and data["next"] \
            else ""
        fields = {k: str(data.get(k) or "")[:300] for k in
                  ("username", "email", "display_name", "password")}
        fields["client_ip"] = client_ip(request)
        try:
            if self.register_locally is not None:
                response = await self.register_locally(fields, self.node.id, fields["client_ip"])
                status, body = response.status_code, _json(response.body)
            else:
                r = await self.client.forward_registration(fields)
                status, body = r.status_code, _json(r.content)
                if status >= 500:
                    raise MainUnavailable()
        except AuthError as exc:
            if is_json:
                raise
            return self._form_page(request, status=exc.status, error=exc.detail,
                                   fields=exc.extra.get("fields"), values={k: fields[k] for k in ("username", "email", "display_name")},
                                   back=back)
        if is_json:
            return JSONResponse(body, status_code=status,
                                media_type="application/json" if status < 400 else
                                "application/problem+json")
        if status == 201:
            return render(MESSAGE, title="注册成功 Registered", node_title=self.node.title,
                          status=201, message=f"Account {body.get('username')} created.",
                          link="/auth/login" + ("?" + urlencode({"next": back}) if back else ""),
                          link_text="Sign in")
        return self._form_page(request, status=status, error=str(body.get("detail", "")),
                               fields=body.get("fields"),
                               values={k: fields[k] for k in ("username", "email", "display_name")},
                               back=back)

    async def _main_reachable(self) -> bool:
        try:
            r = await self.http.get(self.auth.issuer + "/.well-known/openid-configuration",
                                    timeout=2.0)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def login(self, request: Request) -> Response:
        if not await self._main_reachable():
            raise MainUnavailable()
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        back = base64.urlsafe_b64encode(local_path(request.query_params.get("next")).encode()
                                        ).decode()
        url, _ = self.oidc.create_authorization_url(self.auth.issuer + "/authorize",
                                                    state=state, code_verifier=verifier)
        response = RedirectResponse(url, 302)
        response.set_cookie(STATE_COOKIE, f"{state}.{verifier}.{back}", max_age=600,
                            httponly=True, samesite="lax", path="/auth")
        return response

    async def callback(self, request: Request) -> Response:
        state, _, rest = (request.cookies.get(STATE_COOKIE) or "").partition(".")
        verifier, _, back = rest.partition(".")
        if not state or not secrets.compare_digest(state, request.query_params.get("state", "")):
            raise BadRequest("The sign-in state does not match; start again.")
        try:
            token = dict(await self.oidc.fetch_token(code=request.query_params.get("code", ""),
                                                     code_verifier=verifier))
            access_token, expires_in = str(token["access_token"]), int(token["expires_in"])
        except (OAuthError, httpx.HTTPStatusError, ValueError, KeyError, TypeError):
            raise Unauthorized("The main node did not issue a token.", title="Sign-in failed") from None
        except httpx.HTTPError:
            raise MainUnavailable() from None
        finally:
            self.oidc.token = None  # the client is shared by every sign-in: keep no user's token
        try:
            target = local_path(base64.urlsafe_b64decode(back.encode()).decode())
        except ValueError:
            target = DEFAULT_AFTER_LOGIN
        response = RedirectResponse(target, 303)
        response.set_cookie(token_cookie(self.node.id), access_token, max_age=expires_in,
                            httponly=True, samesite="lax", path="/")
        response.delete_cookie(STATE_COOKIE, path="/auth")
        return response

    async def logout(self, request: Request) -> Response:
        """GET: a page with the sign-out form; POST (CSRF-checked by services.web.guards): sign out
        here, then at the main node."""
        if request.method == "GET":
            csrf, cookies = self.csrf.issue(request)
            return render(LOGOUT, title="退出 Sign out", node_title=self.node.title,
                          cookies=cookies, csrf=csrf, action="/auth/logout", params={},
                          message="Sign out of this node and the federation?")
        back = {"client_id": self.auth.client_id,
                "post_logout_redirect_uri": self.node.base_url.rstrip("/") + "/"}
        target = self.auth.issuer + "/logout?" + urlencode(back)
        response: Response
        if "application/json" in request.headers.get("accept", ""):
            # a page's script (the portal) signs out with fetch, which cannot read a redirect
            # to another origin: it is told where the federation's sign-out continues
            response = JSONResponse({"location": target}, headers={"Cache-Control": "no-store"})
        else:
            response = RedirectResponse(target, 303)
        response.delete_cookie(token_cookie(self.node.id), path="/")
        return response

    async def _principal(self, request: Request) -> Any:
        p = await self.control.principal(request)
        if p is None:
            raise AuthError(401, "Unauthorized", "Send a bearer token.")
        return p

    async def me(self, request: Request) -> Response:
        p = await self._principal(request)
        hidden = await self.control.hidden(p)
        return JSONResponse({"sub": p.sub, "username": p.username, "roles": sorted(p.roles),
                             "node": self.node.id,
                             "layers": sorted(set(self.control.levels) - hidden)})

    async def check(self, request: Request) -> Response:
        """For nginx `auth_request` on the cached-tile fast path: 204 if the original request
        (its `X-Original-URI` query carries `tk`) may use `layer` for `kind`, else the problem
        (`f=ogc`: the OGC exception)."""
        from urllib.parse import urlsplit

        await fold_nginx_usage(self.control.keys, self.node_dir)  # keyed tiles nginx sent on a cached allow
        original = request.headers.get("x-original-uri", "")
        scope = dict(request.scope)
        scope["query_string"] = urlsplit(original).query.encode("latin-1", "replace")
        scope.pop("geoplat.principal", None)
        scope.pop(CALLER, None)
        layer = request.query_params.get("layer") or None
        kind = request.query_params.get("kind") or "tiles"
        if kind not in ("tiles", "features", "search", "maps", "metadata"):
            raise BadRequest("unknown kind")
        decision = await self.control.check(scope, layer, kind)  # type: ignore[arg-type]
        if decision.allowed:
            if kind == "tiles" and (decision.principal is None or decision.principal.via_key):
                await self._learn(scope, layer)
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        if request.query_params.get("f") == "ogc":  # nginx sends it as the tile's answer

            return ogc_exception(decision.status, decision.error().ogc_code,
                                 decision.detail or decision.title)
        return decision.error().response()

    async def _learn(self, scope: Scope, layer: str | None) -> None:
        """A keyed tile allowed without a token: let nginx answer this exact case itself."""
        node_dir = self.node_dir
        keys = self.control.keys
        c = HTTPConnection(scope)
        value = c.query_params.get("tk") or c.headers.get("x-api-key")
        if not node_dir or keys is None or not value or c.headers.get("authorization"):
            return
        key = await keys.key(value)  # cached by the check that just allowed it
        if key is None or not key.usable:
            return
        case = emap_fastpath.case_of(value, layer, key.kind, request_origin(c),
                                     c.client.host if c.client else "")
        if case is not None:
            await anyio.to_thread.run_sync(emap_fastpath.learn, node_dir, case, value)

    async def _admin(self, request: Request) -> Any:
        p = await self._principal(request)
        if not self.control.is_admin(p):
            raise AuthError(403, "Forbidden", "Only this node's administrators read its audit.")
        return p

    async def audit(self, request: Request) -> Response:
        """This node's audit trail, newest first (`event`, `actor`, `since`, `limit`)."""
        from datetime import datetime

        q = request.query_params
        await self._admin(request)
        since = q.get("since") or None
        if since is not None:
            try:
                datetime.fromisoformat(since)
            except ValueError:
                raise BadRequest("since is an ISO 8601 timestamp") from None
        limit = _int_param(q, "limit", 100, 1, 1000)
        rows = await anyio.to_thread.run_sync(lambda: audit.query(
            self.db, event=q.get("event") or None, actor=q.get("actor") or None,
            since=since, limit=limit))
        return JSONResponse({"node": self.node.id, "events": [
            {**r, "at": r["at"].isoformat()} for r in rows]})

    async def usage(self, request: Request) -> Response:
        """Requests per API key, day and kind counted at this node (`key_id`, `days`)."""
        q = request.query_params
        await self._admin(request)
        days = _int_param(q, "days", 7, 1, 366)
        key_id = q.get("key_id") or None
        rows = await anyio.to_thread.run_sync(lambda: self.db.all(
            "SELECT key_id, day, kind, count FROM auth.key_usage WHERE "
            "day > current_date - %s AND (%s::text IS NULL OR key_id = %s) "
            "ORDER BY day DESC, key_id, kind LIMIT 10000", (days, key_id, key_id)))
        return JSONResponse({"node": self.node.id, "usage": [
            {**r, "day": r["day"].isoformat()} for r in rows]})

    async def grants(self, request: Request) -> Response:
        p = await self._principal(request)
        if not p.is_user:
            raise AuthError(403, "Forbidden", "Grants are for users.")
        if request.method == "GET":
            admin = self.control.is_admin(p)
            everyone = admin and request.query_params.get("all") in ("1", "true")
            rows = await anyio.to_thread.run_sync(lambda: grants.listing(
                self.db, user_sub=None if everyone else p.sub,
                status=request.query_params.get("status") or None))
            return JSONResponse({"grants": [grants.jsonable(r) for r in rows]})
        data = await json_object(request)
        row = await anyio.to_thread.run_sync(lambda: grants.request_grant(
            self.db, self.node.id, p, str(data.get("layer") or ""),
            str(data.get("reason") or ""), self.control.grantable))
        return JSONResponse(grants.jsonable(row), status_code=201)

    async def decide(self, request: Request) -> Response:
        p = await self._principal(request)
        if not self.control.is_admin(p):
            raise AuthError(403, "Forbidden", "Only this node's administrators decide grants.")
        try:
            raw = await request.json() if await request.body() else {}
        except ValueError:
            raise BadRequest("A JSON object is expected.") from None
        body = GrantDecision.of(raw)
        days, expires = body.days, body.expires_at
        row = await anyio.to_thread.run_sync(lambda: grants.decide(
            self.db, self.node.id, request.path_params["grant_id"],
            request.path_params["action"], p.username or p.sub,
            days=days if days is not None else self.auth.settings.grant_default_days,
            expires_at=str(expires) if expires else None))
        return JSONResponse(grants.jsonable(row))


def _json(raw: bytes) -> dict:
    import json

    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int_param(q: Any, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], else a 400 problem."""
    try:
        value = int(q.get(name) or default)
    except ValueError:
        raise BadRequest(f"{name} is an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} is between {low} and {high}")
    return value
