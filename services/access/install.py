"""Auth of a node app: `/sso` (main node), `/auth` (every node), and the guards around it.

`build_auth(runtime, db, node_dir)` makes the node's auth components once (token validator,
access control, key checker, its OIDC client, the sign-on provider on the main node, the key
fast-path sweeper); the app (nodes/asgi.py) mounts `routes()`, wraps its routes with `wrap()`
and lets its lifespan run `sweeper` and call `close()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.routing import BaseRoute

from geoplat_settings import NodeRuntime
from services.access.apikeys import KeyChecker
from services.access.control import AccessControl, token_cookie
from services.access.fastpath import Sweeper
from services.access.forwarding import ForwardTrust
from services.access.key_links import KeyLinks
from services.access.require import guard_group
from services.access.revocations import RevocationList
from services.access.routes import NodeAuthRoutes, NodeClient
from services.access.rules import AUTH
from services.access.rules import SSO as SSO_RULES
from services.access.tokens import TokenValidator
from services.access.views import FilteredViews
from services.db import Database, secret
from services.sso.provider import Provider
from services.sso.routes import SESSION_COOKIE, SSO, register_locally
from services.sso.signing import Signer
from services.web.guards import CsrfGuard, InputGuard, SecureCookies
from services.web.pages import Csrf


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


@dataclass
class NodeAuthServices:
    """The auth components of one node app (one set per worker process)."""

    runtime: NodeRuntime
    db: Database
    main_db: Database | None
    validator: TokenValidator
    control: AccessControl
    keys: KeyChecker
    node_client: NodeClient
    node_routes: NodeAuthRoutes
    sso: SSO | None
    node_csrf: Csrf
    sweeper: Sweeper | None

    def routes(self) -> list[BaseRoute]:
        """`/sso/*` on the main node, `/auth/*` on every node, each route with its requirement
        (services/access/rules.py)."""
        sso = guard_group(SSO_RULES, self.sso.routes()) if self.sso is not None else []
        return [*sso, *guard_group(AUTH, self.node_routes.routes())]

    def wrap(self, app: Any, views: FilteredViews) -> Any:
        """`app` (the node's Starlette app) with OGC API link keys, CSRF, input and cookie
        guards around it. Its guarded routes find the access control and the per-caller
        listings (`views`, which the publish reloader clears) in `app.state`
        (services/access/require.py)."""
        server = self.runtime.server
        node_id = self.runtime.auth.node_id
        sso_csrf = self.sso.csrf if self.sso is not None else self.node_csrf
        node_csrf = self.node_csrf
        app.state.access, app.state.access_views = self.control, views
        linked = KeyLinks(app, urlsplit(server.base_url).netloc)
        guarded = CsrfGuard(linked, own_origin=server.base_url,
                            cookies=(token_cookie(node_id), SESSION_COOKIE),
                            verifier=lambda path: sso_csrf if path.startswith("/sso/") else node_csrf,
                            db=self.db, node_id=node_id)
        return SecureCookies(InputGuard(guarded, self.db, node_id), server.base_url)

    def close(self) -> None:
        if self.main_db is not None and self.main_db is not self.db:
            self.main_db.close()


def build_auth(runtime: NodeRuntime, db: Database, node_dir: Path | None,
               http: httpx.AsyncClient) -> NodeAuthServices:
    """The node's auth components over its database pool `db` and the app's one HTTP client
    `http` (JWKS, revocations, tokens, key lookups, sign-in; each call sets its own timeout)
    (`node_dir`: where nginx's key fast path lives; None: none)."""
    auth, settings = runtime.auth, runtime.auth.settings
    validator = TokenValidator(auth.issuer, auth.jwks_url, auth.audience, http,
                               cache_seconds=settings.jwks_cache_seconds, store=JwksStore(db),
                               revocations=RevocationList(auth.issuer + "/revocations", http,
                                                          settings.revocation_max_age))
    control = AccessControl(auth.node_id, dict(auth.levels), db, validator,
                            public_requires_key=settings.public_requires_key, fields=auth.fields)
    control.process_body_bytes = int(runtime.analysis.max_upload_mb * (1 << 20) * 4 / 3) + (1 << 20)
    node_secret = secret(db, "node-web")
    main_db = None
    sso = None
    register = None
    if auth.is_main:
        main_db = db if auth.main_dsn in (None, runtime.dsn) else Database(auth.main_dsn)
        provider = Provider(main_db, Signer(main_db), auth.issuer, auth.audience,
                            settings.access_token_ttl, settings.refresh_token_ttl)
        sso = SSO(provider, validator, runtime.server, secret(main_db, "sso-web"), settings)
        sso_db = main_db

        async def register(data: dict, via: str, ip: str) -> Any:
            return await register_locally(sso_db, auth.node_id, data, via, ip)

    routes = NodeAuthRoutes(runtime.server, auth, control, node_secret, http, register,
                            node_dir=node_dir)
    parent = runtime.registry.parent  # the only node that forwards queries to this one
    control.keys = KeyChecker(db, auth.node_id, main_db=main_db, node_client=routes.client,
                              public_requires_key=settings.public_requires_key,
                              main_url=auth.main_url, max_age=settings.revocation_max_age,
                              own_origin=runtime.server.base_url.rstrip("/"),
                              revocations=validator.revocations,
                              forward=ForwardTrust(validator, parent.id if parent else None))
    return NodeAuthServices(
        runtime=runtime, db=db, main_db=main_db, validator=validator, control=control,
        keys=control.keys, node_client=routes.client, node_routes=routes, sso=sso,
        node_csrf=Csrf(node_secret),
        sweeper=Sweeper(node_dir, control.keys) if node_dir is not None else None)
