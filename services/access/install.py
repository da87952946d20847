"""Assembling auth into a node app: `/sso` (main node), `/auth` (every node), enforcement."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.access import control as access
from services.access.apikeys import KeyChecker
from services.access.control import AccessControl
from services.access.require import guard_group
from services.access.routes import NodeAuthRoutes
from services.access.rules import AUTH
from services.access.rules import SSO as SSO_RULES
from services.access.tokens import TokenValidator
from services.access.views import FilteredViews
from services.db import Database, secret


class JwksStore:
    """The last JWKS fetched from the main node, in this node's `auth.secrets`."""

    def __init__(self, db: Database):
        self.db = db

    def load(self) -> dict | None:
        row = self.db.one("SELECT value FROM auth.secrets WHERE name = 'jwks-cache'")
        return json.loads(row["value"]) if row else None

    def save(self, jwks: dict) -> None:
        self.db.execute("INSERT INTO auth.secrets VALUES ('jwks-cache', %s) ON CONFLICT (name) "
                        "DO UPDATE SET value = EXCLUDED.value", (json.dumps(jwks),))


class ClosesHttp:
    """ASGI wrapper: closes the app's HTTP client once the server has shut the app down."""

    def __init__(self, app: Any, http: httpx.AsyncClient):
        self.app, self.http = app, http

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def closing_send(message: dict) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.http.aclose()
            await send(message)

        await self.app(scope, receive, closing_send)


def install_auth(app: Any, meta: dict[str, Any], views: FilteredViews | None = None) -> Any:
    """Add the auth routes to the Starlette `app`, give its guarded routes the node's access
    control (`app.state.access`, services/access/require.py), and return it wrapped.

    `views` renders the per-caller listings; whoever swaps pygeoapi's config (layers.serving)
    must hold the same object to clear it, so the caller passes it in.
    """
    auth = meta["auth"]
    settings = auth["settings"]
    db = Database(meta["dsn"])
    from services.access.revocations import RevocationList

    # the app's one client for calls to the main node (JWKS, revocations, tokens, key lookups,
    # sign-in); each call sets its own timeout; closed at shutdown (ClosesHttp below)
    http = httpx.AsyncClient(timeout=5.0)
    validator = TokenValidator(auth["issuer"], auth["jwks_url"], auth["audience"], http,
                               cache_seconds=settings["jwks_cache_seconds"], store=JwksStore(db),
                               revocations=RevocationList(auth["issuer"] + "/revocations", http,
                                                          settings["revocation_max_age"]))
    control = AccessControl(auth["node_id"], auth["levels"], db, validator,
                            public_requires_key=settings["public_requires_key"])
    access.install(control)
    node_secret = secret(db, "node-web")
    register_locally = None
    main_db = None
    sso = None
    if auth["is_main"]:
        from services.sso.provider import Provider
        from services.sso.routes import SSO
        from services.sso.routes import register_locally as reg
        from services.sso.signing import Signer

        main_db = db if auth["main_dsn"] == meta["dsn"] else Database(auth["main_dsn"])
        provider = Provider(main_db, Signer(main_db), auth["issuer"], auth["audience"],
                            settings["access_token_ttl"], settings["refresh_token_ttl"])
        sso = SSO(provider, validator, meta["node"], secret(main_db, "sso-web"), settings)
        app.router.routes.extend(guard_group(SSO_RULES, sso.routes()))

        async def register_locally(data: dict, via: str, ip: str) -> Any:
            return await reg(main_db, auth["node_id"], data, via, ip)

    routes = NodeAuthRoutes(meta["node"], auth, control, node_secret, http, register_locally)
    control.keys = KeyChecker(db, auth["node_id"], main_db=main_db if auth["is_main"] else None,
                              auth=auth, node_client=routes.client,
                              public_requires_key=settings["public_requires_key"],
                              own_origin=meta["node"]["base_url"].rstrip("/"))
    app.router.routes.extend(guard_group(AUTH, routes.routes()))
    import os
    from pathlib import Path

    from services.access.fastpath import Sweeper, SweeperLifespan

    node_dir = os.environ.get("GEOPLAT_NODE_DIR")  # learned keys for nginx's fast path
    sweeper = Sweeper(Path(node_dir), control.keys) if node_dir else None
    from urllib.parse import urlsplit

    from services.access.key_links import KeyLinks  # tk into OGC API links (issue 11)
    from services.sso.routes import SESSION_COOKIE
    from services.web.guards import CsrfGuard, InputGuard, SecureCookies
    from services.web.pages import Csrf

    node_csrf = Csrf(node_secret)
    sso_csrf = sso.csrf if sso is not None else node_csrf
    app.state.access, app.state.access_views = control, views or FilteredViews()  # require.py
    linked = KeyLinks(app, urlsplit(meta["node"]["base_url"]).netloc)
    guarded = CsrfGuard(linked, own_origin=meta["node"]["base_url"],
                        cookies=(access.token_cookie(auth["node_id"]), SESSION_COOKIE),
                        verifier=lambda path: sso_csrf if path.startswith("/sso/") else node_csrf,
                        db=db, node_id=auth["node_id"])
    return ClosesHttp(SweeperLifespan(SecureCookies(InputGuard(guarded, db, auth["node_id"]),
                                                    meta["node"]["base_url"]), sweeper), http)
