"""The main node's `/sso` routes: discovery, JWKS, authorize + login page, token, revoke,
userinfo, logout, and the registration API that other nodes forward to."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from authlib.oauth2 import OAuth2Error
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from geoplat_settings import NodeAuth, ServerSection
from services.access import apikeys, audit
from services.access.control import bearer
from services.access.revocations import listing, revoke_subject
from services.access.tokens import TokenValidator
from services.errors import (
    AuthError,
    BadRequest,
    Forbidden,
    NotFound,
    ProblemError,
    route_group,
    with_headers,
)
from services.models import json_object
from services.sso import accounts
from services.sso.keys_page import PATH as KEYS_PATH
from services.sso.keys_page import KeysPage
from services.sso.models import KeyRequest
from services.sso.provider import Provider, oauth2_request
from services.sso.registration import NodeRegistration
from services.web.pages import LOGIN, LOGOUT, MESSAGE, Csrf, client_ip, render

SESSION_COOKIE = "geoplat_sso"
SESSION_SECONDS = 8 * 3600
# userinfo's refusals say which token failed (RFC 6750 section 3)
INVALID_TOKEN = {ProblemError: with_headers({"WWW-Authenticate": 'Bearer error="invalid_token"'})}


class SSO:
    def __init__(self, provider: Provider, validator: TokenValidator, node: ServerSection,
                 secret: str, settings: NodeAuth):
        self.p, self.validator, self.node = provider, validator, node
        self.db = provider.db
        self.base = node.base_url + "/sso"
        self.csrf = Csrf(secret)
        self.sessions = URLSafeTimedSerializer(secret, salt="geoplat-sso-session")
        self.settings = settings

    def routes(self) -> list[BaseRoute]:
        return route_group([
            Route("/sso/.well-known/openid-configuration", self.discovery),
            Route("/sso/jwks", self.jwks),
            Route("/sso/authorize", self.authorize, methods=["GET"]),
            Route("/sso/login", self.login, methods=["GET", "POST"]),
            Route("/sso/token", self.token, methods=["POST"]),
            Route("/sso/revoke", self.revoke, methods=["POST"]),
            *route_group([Route("/sso/userinfo", self.userinfo, methods=["GET", "POST"])],
                         INVALID_TOKEN),
            Route("/sso/logout", self.logout, methods=["GET", "POST"]),
            Route("/sso/api/users", self.api_register, methods=["POST"]),
            Route("/sso/keys", KeysPage(self).page, methods=["GET", "POST"]),
            Route("/sso/revocations", self.revocations, methods=["GET"]),
            Route("/sso/api/keys", self.keys, methods=["GET", "POST"]),
            Route("/sso/api/keys/lookup", self.key_lookup, methods=["GET"]),
            Route("/sso/api/keys/{key_id}/revoke", self.key_revoke, methods=["POST"]),
            # node provisioning over HTTP: client registration, cascade key (issue 12)
            *NodeRegistration(self.db, self.node.id, self.validator).routes(),
        ])

    # --- helpers ---------------------------------------------------------------------------

    def _page(self, template: str, request: Request, *, title: str, status: int = 200,
              **values: Any) -> Response:
        csrf, cookies = self.csrf.issue(request)
        return render(template, title=title, node_title=self.node.title, status=status,
                      csrf=csrf, cookies=cookies, **values)

    def session_user(self, request: Request) -> dict | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self.sessions.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and "uid" in data else None

    async def _run(self, func: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args)

    # --- endpoints -------------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(self.p.metadata(self.base), headers={"Cache-Control": "max-age=300"})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(await self._run(self.p.signer.jwks),
                            headers={"Cache-Control": "max-age=60"})

    async def authorize(self, request: Request) -> Response:
        req = await oauth2_request(request, self.node.base_url)
        try:
            grant = await self._run(self.p.get_consent_grant, req, None)
        except ValueError:
            # Authlib echoes the redirect_uri in its error description and refuses to build
            # one holding `"` or `\\` (ValueError): the request is bad, not the server
            return render(MESSAGE, title="Invalid authorization request", status=400,
                          node_title=self.node.title,
                          message="invalid_request: the redirect_uri is not registered for "
                                  "this client")
        except OAuth2Error as error:
            if getattr(error, "redirect_uri", None):  # client and redirect_uri were verified
                return await self._run(self.p.handle_error_response, req, error)
            return render(MESSAGE, title="Invalid authorization request", status=400,
                          node_title=self.node.title,
                          message=f"{error.error}: {error.description or ''}")
        session = self.session_user(request)
        user = await self._run(accounts.get, self.db, session["uid"]) if session else None
        if user is None:
            return self._page(LOGIN, request, title="登录 Sign in", action="/sso/login",
                              next=str(request.query_params),
                              register_url=self.node.base_url + "/auth/register")
        req.user = user
        return await self._run(lambda: self.p.create_authorization_response(req, user, grant))

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page(LOGIN, request, title="登录 Sign in", action="/sso/login",
                              next=request.query_params.get("next", ""),
                              register_url=self.node.base_url + "/auth/register")
        form = await request.form()
        nxt = str(form.get("next") or "")
        try:
            self.csrf.verify(request, str(form.get("csrf_token") or ""))
        except AuthError as exc:
            return self._page(LOGIN, request, title="登录 Sign in", status=403, error=exc.detail,
                              action="/sso/login", next=nxt,
                              register_url=self.node.base_url + "/auth/register")
        username = str(form.get("username") or "")[:64]
        ip = client_ip(request)
        try:
            user = await self._run(lambda: accounts.authenticate(
                self.db, username, str(form.get("password") or ""),
                threshold=self.settings.lockout_threshold,
                lockout_minutes=self.settings.lockout_minutes))
        except AuthError as exc:
            event = "login.locked" if exc.extra.get("locked") else "login.fail"
            await self._run(lambda: audit.record(self.db, self.node.id, event, actor=username,
                                                 ok=False, ip=ip))
            return self._page(LOGIN, request, title="登录 Sign in", status=exc.status,
                              error=exc.detail, action="/sso/login", next=nxt,
                              register_url=self.node.base_url + "/auth/register")
        await self._run(lambda: audit.record(self.db, self.node.id, "login.ok",
                                             actor=user.username, ip=ip))
        # `next` is only ever a query string for our own /sso/authorize: no open redirect.
        response: Response
        if nxt == KEYS_PATH:  # the developer keys page
            response = RedirectResponse(KEYS_PATH, status_code=303)
        elif nxt:
            query = urlencode(parse_qsl(nxt, keep_blank_values=True))
            response = RedirectResponse("/sso/authorize?" + query, status_code=303)
        else:
            response = render(MESSAGE, title="已登录 Signed in", node_title=self.node.title,
                              message=f"Signed in as {user.username}.")
        response.set_cookie(SESSION_COOKIE, self.sessions.dumps({"uid": user.id,
                                                                 "at": int(time.time())}),
                            max_age=SESSION_SECONDS, httponly=True, samesite="lax", path="/sso")
        return response

    async def token(self, request: Request) -> Response:
        req = await oauth2_request(request, self.node.base_url)
        return await self._run(self.p.create_token_response, req)

    async def revoke(self, request: Request) -> Response:
        req = await oauth2_request(request, self.node.base_url)
        return await self._run(self.p.create_endpoint_response, "revocation", req)

    async def userinfo(self, request: Request) -> Response:
        principal = await self._bearer(request)
        user = await self._run(accounts.get, self.db, principal.sub) if principal.is_user else None
        if user is None:
            raise AuthError(401, "Invalid token", "No user for this token.")
        return JSONResponse(dict(self.p.user_info(user, principal.claims.get("scope", ""))))

    async def logout(self, request: Request) -> Response:
        """RP-initiated logout. Signing out changes state, so it is a POST of our own form
        (CSRF token checked); a GET with a session shows that form."""
        session = self.session_user(request)
        params = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
            if session:
                self.csrf.verify(request, params.get("csrf_token"))
        elif session:
            keep = {k: params[k] for k in ("client_id", "post_logout_redirect_uri", "state")
                    if k in params}
            return self._page(LOGOUT, request, title="退出 Sign out", action="/sso/logout",
                              params=keep, message="Sign out of the federation?")
        if session:
            await self._run(lambda: self.db.execute(
                "UPDATE auth.refresh_tokens SET revoked = true WHERE user_id = %s", (session["uid"],)))
            # single sign-out: the user's access tokens stop working at every node too
            await self._run(revoke_subject, self.db, session["uid"],
                            self.settings.access_token_ttl)
            await self._run(lambda: audit.record(self.db, self.node.id, "logout",
                                                 actor=str(session["uid"]), ip=client_ip(request)))
        target = await self._run(self._post_logout_target, params)
        if target:
            response: Response = RedirectResponse(target, 303)
        else:
            response = render(MESSAGE, title="已退出 Signed out", node_title=self.node.title,
                              message="You are signed out of the federation.")
        response.delete_cookie(SESSION_COOKIE, path="/sso")
        return response

    def _post_logout_target(self, q: dict[str, str]) -> str | None:
        """OIDC RP-initiated logout: `post_logout_redirect_uri` is followed only when it lies on
        the origin of one of the registered redirect URIs of `client_id` (no open redirect)."""
        from urllib.parse import urlencode, urlsplit

        uri, client_id = q.get("post_logout_redirect_uri"), q.get("client_id")
        if not uri or not client_id or len(uri) > 2000:
            return None
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return None
        row = self.db.one("SELECT redirect_uris FROM auth.clients WHERE client_id = %s",
                          (client_id,))
        origins = {f"{urlsplit(r).scheme}://{urlsplit(r).netloc}"
                   for r in (row["redirect_uris"] if row else [])}
        if f"{parts.scheme}://{parts.netloc}" not in origins:
            return None
        state = q.get("state")
        if state:
            uri += ("&" if parts.query else "?") + urlencode({"state": state[:500]})
        return uri

    async def revocations(self, request: Request) -> Response:
        """Access tokens revoked before expiry, for the nodes' validators (`after`: last id)."""
        try:
            after = int(request.query_params.get("after") or 0)
        except ValueError:
            raise BadRequest("after is an integer") from None
        rows = await self._run(listing, self.db, max(0, after))
        return JSONResponse({"revocations": rows}, headers={"Cache-Control": "no-store"})

    async def api_register(self, request: Request) -> Response:
        """Registration forwarded by a node (client-credentials token with scope `register`)."""
        principal = await self._bearer(request, "Nodes forward registrations with a token.")
        if principal.is_user or "register" not in principal.claims.get("scope", "").split():
            raise Forbidden("Only federation nodes may forward registrations.")
        data = await json_object(request)
        via = principal.client_id.removeprefix("node-")
        return await register_locally(self.db, self.node.id, data, via,
                                      str(data.get("client_ip") or ""))


    async def _bearer(self, request: Request, missing: str = "Send a bearer token.") -> Any:
        """The validated principal of the request's `Authorization: Bearer` token."""
        token = bearer(request)
        if not token:
            raise AuthError(401, "Unauthorized", missing)
        return await self.validator.validate(token)

    async def _developer(self, request: Request) -> Any:
        p = await self._bearer(request)
        if not p.is_user or not ("developer" in p.roles or p.platform_admin):
            raise AuthError(403, "Forbidden", "API keys are for accounts with the developer role.")
        return p

    async def keys(self, request: Request) -> Response:
        """A developer lists (GET) or creates (POST {name, kind, allowed, quotas}) API keys."""
        p = await self._developer(request)
        if request.method == "GET":
            rows = await self._run(lambda: self.db.all(
                "SELECT key_id, name, kind, allowed, quotas, rate_per_second, created_at, "
                "revoked_at FROM auth.api_keys WHERE user_id = %s ORDER BY created_at",
                (int(p.sub),)))
            return JSONResponse({"keys": [{k: (v.isoformat() if hasattr(v, "isoformat") else
                                               apikeys.quotas_of(v) if k == "quotas" else v)
                                           for k, v in r.items()} for r in rows]})
        try:
            raw = await request.json()
        except ValueError:
            raise BadRequest("A JSON object is expected.") from None
        data = KeyRequest.parse(raw)
        value, record = await self._run(lambda: apikeys.create_key(
            self.db, self.node.id, int(p.sub), str(data.name or "key"), str(data.kind or ""),
            data.allowed, data.quotas, data.rate_per_second, actor=p.username))
        return JSONResponse({**record, "key": value}, status_code=201)

    async def key_revoke(self, request: Request) -> Response:
        p = await self._developer(request)
        done = await self._run(lambda: apikeys.revoke_key(
            self.db, self.node.id, request.path_params["key_id"],
            user_id=None if p.platform_admin else int(p.sub), actor=p.username))
        if not done:
            raise AuthError(404, "Not Found", "No such active key of yours.")
        return JSONResponse({"key_id": request.path_params["key_id"], "revoked": True})

    async def key_lookup(self, request: Request) -> Response:
        """For nodes (client credentials, scope `keys`): the record of a key by its hash."""
        p = await self._bearer(request)
        if p.is_user or "keys" not in p.claims.get("scope", "").split():
            raise Forbidden("Only federation nodes look keys up.")
        row = await self._run(apikeys.lookup, self.db, request.query_params.get("hash", ""))
        if row is None:
            raise NotFound("No such key.")
        return JSONResponse(row, headers={"Cache-Control": "no-store"})


async def register_locally(db: Any, node_id: str, data: dict, via: str, ip: str) -> Response:
    """Store a registration at the main node and audit it (both outcomes; a refusal is raised
    on, as the AuthError accounts.register gave)."""
    try:
        user = await anyio.to_thread.run_sync(accounts.register, db, data, via)
    except AuthError as exc:
        reason = exc.title
        await anyio.to_thread.run_sync(lambda: audit.record(
            db, node_id, "registration", actor=str(data.get("username", ""))[:64], ok=False,
            ip=ip, via=via, reason=reason))
        raise
    await anyio.to_thread.run_sync(lambda: audit.record(
        db, node_id, "registration", actor=user.username, subject=str(user.id), ip=ip, via=via))
    return JSONResponse({"id": user.id, "username": user.username, "registered_via": via},
                        status_code=201)


def authorize_url(base: str, params: dict[str, str]) -> str:
    return f"{base}/authorize?{urlencode(params)}"
