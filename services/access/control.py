"""Access control of a node: who may see which layer, on every surface.

`AccessControl` decides; services/access/require.py enforces it on every route group of the
node app (the rules: services/access/rules.py); `check()` is the hook for other engines of the
node. Levels: `public`, `registered` (any signed-in user, or a valid developer key, which acts
for its owner), `restricted` (a signed-in user with a grant at this node, or node admin /
publisher of this node, or platform admin; a key alone never reaches it).

The caller of a request is its token's principal, else the owner of its valid key
(`Principal.via_key`); `check()` finds it once and keeps it in the scope (`caller()`), so that
listings, capabilities, records and the place-name routes filter for the same caller the
check allowed (`visible()`, `visible_layers()`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from starlette.requests import HTTPConnection
from starlette.types import Scope

from services.access.tokens import Principal, TokenValidator
from services.db import Database
from services.errors import AuthError

Kind = Literal["features", "tiles", "search", "maps", "metadata", "processes"]
TOKEN_COOKIE = "geoplat_at"
CALLER = "geoplat.caller"  # scope key: the caller `check()` decided for (token or key owner)
GRANT_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Decision:
    """The answer for one request and layer: `allowed`, else `status` 401/403/429 and why."""

    allowed: bool
    status: int = 200
    title: str = "OK"
    detail: str = ""
    principal: Principal | None = None

    def error(self) -> AuthError:
        return AuthError(self.status, self.title, self.detail)


ALLOW = Decision(True)


def token_cookie(node_id: str) -> str:
    """Cookie names carry the node: browsers share cookies between ports of one host."""
    return f"{TOKEN_COOKIE}_{node_id}"


def bearer(conn: HTTPConnection | Scope, cookie: str | None = None) -> str | None:
    """The access token of a request: `Authorization: Bearer`, else the node's session cookie."""
    headers = conn.headers if isinstance(conn, HTTPConnection) else HTTPConnection(conn).headers
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    cookies = conn.cookies if isinstance(conn, HTTPConnection) else HTTPConnection(conn).cookies
    return (cookies.get(cookie) or None) if cookie else None


class AccessControl:
    """Decisions for one node: its layers' levels, its grants, tokens of its federation."""

    def __init__(self, node_id: str, levels: dict[str, str], db: Database,
                 validator: TokenValidator, *, public_requires_key: bool = False,
                 fields: Mapping[str, Mapping[str, str]] | None = None):
        self.node_id, self.levels, self.db, self.validator = node_id, dict(levels), db, validator
        # layer -> {attribute: level}: attributes stricter than their layer (services/access/fields.py)
        self.fields: dict[str, dict[str, str]] = {k: dict(v) for k, v in (fields or {}).items() if v}
        self.public_requires_key = public_requires_key
        # the largest body a process execution may send (require.processes_call; read before
        # pygeoapi, which would hold any size in memory): base64 of analysis.max_upload_mb + 1 MiB
        self.process_body_bytes = 64 << 20
        self._grant_cache: dict[str, tuple[float, frozenset[str]]] = {}
        self.keys: Any = None  # services.access.apikeys.KeyChecker, when installed

    @property
    def non_public(self) -> set[str]:
        return {k for k, v in self.levels.items() if v != "public"}

    @property
    def grantable(self) -> frozenset[str]:
        """Layers a user may request a grant for: restricted ones, and those with restricted
        attributes (the grant shows those attributes)."""
        return frozenset({k for k, v in self.levels.items() if v == "restricted"} |
                         {k for k, f in self.fields.items() if "restricted" in f.values()})

    async def principal(self, conn: HTTPConnection | Scope) -> Principal | None:
        """The caller, or None when anonymous; AuthError 401 for a bad token."""
        scope = conn.scope if isinstance(conn, HTTPConnection) else conn
        if "geoplat.principal" in scope:
            return scope["geoplat.principal"]
        token = bearer(conn, token_cookie(self.node_id))
        p = await self.validator.validate(token) if token else None
        scope["geoplat.principal"] = p
        return p

    def _granted_sync(self, sub: str) -> frozenset[str]:
        rows = self.db.all("SELECT DISTINCT layer_id FROM auth.grants WHERE user_sub = %s AND "
                           "status = 'approved' AND (expires_at IS NULL OR expires_at > now())",
                           (sub,))
        return frozenset(r["layer_id"] for r in rows)

    async def granted(self, p: Principal) -> frozenset[str]:
        """Restricted layers of this node the principal holds a live grant for."""
        hit = self._grant_cache.get(p.sub)
        now = time.monotonic()
        if hit and now - hit[0] < GRANT_CACHE_SECONDS:
            return hit[1]
        layers = await anyio.to_thread.run_sync(self._granted_sync, p.sub)
        self._grant_cache[p.sub] = (now, layers)
        if len(self._grant_cache) > 10000:
            self._grant_cache.clear()
        return layers

    def is_admin(self, p: Principal) -> bool:
        return p.is_user and (p.platform_admin or p.has(self.node_id, "admin"))

    def is_privileged(self, p: Principal) -> bool:
        return p.platform_admin or p.has(self.node_id, "admin") or p.has(self.node_id, "publisher")

    async def decide(self, p: Principal | None, layer_id: str, level: str | None = None) -> Decision:
        level = level or self.levels.get(layer_id, "public")
        if level == "public":
            return Decision(True, principal=p)
        if p is None:
            return Decision(False, 401, "Unauthorized",
                            "This layer needs a signed-in user; send a bearer token or an API "
                            "key (tk).")
        if level == "registered":
            if p.is_user or (p.via_key and not p.public_only):
                return Decision(True, principal=p)  # a developer key acts for its owner
            if p.via_key:
                return Decision(False, 401, "Unauthorized",
                                "This layer needs a signed-in user or a developer key; the key "
                                "sent reaches public layers only.")
            return Decision(False, 403, "Forbidden", "This layer is for signed-in users.")
        if p.via_key:
            return Decision(False, 401, "Unauthorized",
                            "This layer is restricted: it needs a signed-in user's bearer token "
                            "and a grant; an API key alone never reaches it.")
        if p.is_user and (self.is_privileged(p) or layer_id in await self.granted(p)):
            return Decision(True, principal=p)
        return Decision(False, 403, "Forbidden",
                        "This layer is restricted; request a grant from the node that provides it.")

    async def hidden(self, p: Principal | None) -> frozenset[str]:
        """Layers this caller must not even see named."""
        out = set()
        for layer in self.non_public:
            if not (await self.decide(p, layer)).allowed:
                out.add(layer)
        return frozenset(out)

    def set_levels(self, levels: dict[str, str],
                   fields: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """New layer levels and attribute levels (a publish reload): cached grant decisions
        are made again."""
        self.levels = levels
        if fields is not None:
            self.fields = {k: dict(v) for k, v in fields.items() if v}
        self._grant_cache.clear()

    async def field_rights(self, conn: HTTPConnection | Scope, layer_id: str) -> frozenset[str]:
        """The attribute levels of `layer_id` the caller of this request may see: a subset of
        {"registered", "restricted"} (public attributes are everyone's)."""
        p = await self.caller(conn)
        return frozenset([lvl for lvl in ("registered", "restricted")
                          if (await self.decide(p, layer_id, lvl)).allowed])

    async def hidden_fields(self, conn: HTTPConnection | Scope, layer_id: str) -> frozenset[str]:
        """The attributes of `layer_id` this request's caller must not receive."""
        rules = self.fields.get(layer_id)
        if not rules:
            return frozenset()
        rights = await self.field_rights(conn, layer_id)
        return frozenset(f for f, lvl in rules.items() if lvl not in rights)

    async def check(self, conn: HTTPConnection | Scope, layer_id: str | None, kind: Kind,
                    level: str | None = None, *, page: bool = False) -> Decision:
        """Token, API key/quota and layer level for one request (layer None: no layer).

        `page`: the request is one of the node's own HTML pages (the route's requirement says
        which are, services.access.require.is_page): no key is needed for it."""
        scope = conn.scope if isinstance(conn, HTTPConnection) else conn
        try:
            p = await self.principal(conn)
        except AuthError as exc:
            return Decision(False, exc.status, exc.title, exc.detail)
        if self.keys is not None:
            key_decision = await self.keys.check(conn, kind, p, page=page)
            if not key_decision.allowed:
                return key_decision
            p = key_decision.principal  # the token's caller, else the key's owner
        elif self.public_requires_key and p is None:
            return Decision(False, 401, "Unauthorized", "Send an API key (tk) or a bearer token.")
        scope[CALLER] = p
        if layer_id is None:
            return Decision(True, principal=p)
        return await self.decide(p, layer_id, level)

    async def caller(self, conn: HTTPConnection | Scope) -> Principal | None:
        """Who `check()` allowed this request for (the token's user, or a key's owner); before a
        check, or for a bad token: the token's principal, or None."""
        scope = conn.scope if isinstance(conn, HTTPConnection) else conn
        if CALLER in scope:
            return scope[CALLER]
        try:
            return await self.principal(conn)
        except AuthError:
            return None

    async def visible(self, request: HTTPConnection | Scope, layer_ids: list[str]) -> list[str]:
        """The subset of `layer_ids` the caller may see (for capabilities documents)."""
        hidden = await self.hidden(await self.caller(request))
        return [layer for layer in layer_ids if layer not in hidden]

    async def visible_layers(self, request: HTTPConnection | Scope) -> frozenset[str]:
        """The layers of this node the caller of an allowed request may see: what a query over
        several layers (the place-name routes' `visible`) may draw results from."""
        hidden = await self.hidden(await self.caller(request))
        return frozenset(layer for layer in self.levels if layer not in hidden)
