"""Provisioning nodes over HTTP at the main node (RFC 7591-style dynamic client registration).

A sub-node never touches the main node's database. Its operator gets an **initial access
token** at the main node (`geoplat sso initial-token --node ID`; `geoplat up` issues them itself
for the nodes it builds on one host): random, stored here only as a SHA-256 hash, bound to one
node id, expiring, revocable. With it as a Bearer token the node registers its OIDC client:

    POST /sso/api/clients   {"node_id": "zhejiang", "client_name": "...",
                             "redirect_uris": ["https://zj.example/auth/callback"]}
    -> 201 {"client_id": "node-zhejiang", "client_secret": "...", "client_id_issued_at": ...,
            "client_secret_expires_at": 0, "redirect_uris": [...], "grant_types": [...], ...}

Registering again (a rebuild, `geoplat up` once more, another deployment of the node) returns
the same client and the same secret (derived from a secret of the main node, as before) and adds
the redirect URIs: nodes already running with that secret keep working. The client's grants and
scope are the main node's choice, never the caller's. With its client credentials (client
credentials grant, scope `keys`) the node then obtains its e-map cascade key:

    POST /sso/api/node-key  {"allowed": ["10.0.0.5/32", ...], "key": "<the key it kept>"}
    -> 200 {"key": ...} (kept, rebound to `allowed`) or 201 (a new key)

Every refusal is problem+json (with the RFC 6750/7591 `error` code as an extension member) and
audited (`provision.register`, `provision.node_key`), like the other auth refusals.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.access import apikeys, audit
from services.access.control import bearer
from services.access.tokens import TokenValidator
from services.db import Database, secret
from services.errors import AuthError
from services.sso import accounts
from services.sso.provider import hash_secret
from services.web.pages import client_ip

CLIENTS_PATH = "/sso/api/clients"
NODE_KEY_PATH = "/sso/api/node-key"
# a node's public Ed25519 key for its supply change-sets (issue 18, services/supply/keys.py)
SUPPLY_KEY_PATH = "/sso/api/supply-keys"
NODE_GRANTS = ["authorization_code", "refresh_token", "client_credentials"]
NODE_SCOPE = "openid profile email geoplat offline_access register keys forward"
AUTH_METHOD = "client_secret_basic"
DEFAULT_TOKEN_HOURS = 24.0
MAX_TOKEN_HOURS = 24.0 * 30
MAX_BODY = 16 * 1024
MAX_REDIRECTS = 16
MAX_NETWORKS = 32
NODE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RegistrationError(AuthError):
    """A refusal of the registration or node-key API: status, title, RFC 7591/6750 code."""

    def __init__(self, status: int, title: str, detail: str, error: str):
        super().__init__(status, title, detail, error=error)
        self.error = error


# --- initial access tokens (the main node's database) ---------------------------------------

def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def issue_token(db: Database, main_id: str, node_id: str, *, hours: float = DEFAULT_TOKEN_HOURS,
                actor: str) -> tuple[str, dict[str, Any]]:
    """A new initial access token for `node_id`; returns (the value, shown once, and its record)."""
    if not NODE_ID.match(node_id):
        raise AuthError(422, "Invalid node", "a node id is lower-case letters, digits and '_'")
    if node_id == main_id:
        raise AuthError(422, "Invalid node", "the main node provisions itself, it needs no token")
    if not 0 < hours <= MAX_TOKEN_HOURS:
        raise AuthError(422, "Invalid token", f"a token lives up to {MAX_TOKEN_HOURS:g} hours")
    value = "gpit_" + secrets.token_urlsafe(32)
    hashed = token_hash(value)
    token_id = hashed[:12]
    row = db.one("INSERT INTO auth.initial_tokens (token_id, token_hash, node_id, created_by, "
                 "expires_at) VALUES (%s, %s, %s, %s, now() + %s * interval '1 hour') "
                 "RETURNING token_id, node_id, created_at, expires_at",
                 (token_id, hashed, node_id, actor[:100], hours))
    assert row is not None
    audit.record(db, main_id, "provision.token_issue", actor=actor, subject=node_id,
                 token_id=token_id, hours=hours)
    return value, dict(row)


def revoke_token(db: Database, main_id: str, token_id: str, *, actor: str) -> bool:
    done = db.execute("UPDATE auth.initial_tokens SET revoked_at = now() WHERE token_id = %s "
                      "AND revoked_at IS NULL", (token_id,)) == 1
    if done:
        audit.record(db, main_id, "provision.token_revoke", actor=actor, subject=token_id)
    return done


def token_listing(db: Database, node_id: str | None = None) -> list[dict[str, Any]]:
    return db.all("SELECT token_id, node_id, created_at, created_by, expires_at, revoked_at, "
                  "last_used_at, (revoked_at IS NULL AND expires_at > now()) AS usable "
                  "FROM auth.initial_tokens WHERE %s::text IS NULL OR node_id = %s "
                  "ORDER BY created_at DESC", (node_id, node_id))


def check_token(db: Database, value: str) -> str:
    """The node id an initial access token is bound to; RegistrationError 401 otherwise."""
    row = db.one("SELECT token_id, node_id, revoked_at IS NOT NULL AS revoked, "
                 "expires_at <= now() AS expired FROM auth.initial_tokens WHERE token_hash = %s",
                 (token_hash(value),))
    if row is None:
        raise RegistrationError(401, "Invalid token", "This initial access token is unknown.",
                                "invalid_token")
    if row["revoked"]:
        raise RegistrationError(401, "Invalid token", "This initial access token was revoked.",
                                "invalid_token")
    if row["expired"]:
        raise RegistrationError(401, "Invalid token", "This initial access token has expired.",
                                "invalid_token")
    db.execute("UPDATE auth.initial_tokens SET last_used_at = now() WHERE token_id = %s",
               (row["token_id"],))
    return str(row["node_id"])


# --- the node's OIDC client and cascade key (used by the endpoint and by the main node) -----

def node_client_secret(db: Database, node_id: str) -> str:
    """The node's client secret: derived, so registering again gives the same one."""
    key = secret(db, "node-client-key")
    return hmac.new(key.encode(), f"node-client:{node_id}".encode(), hashlib.sha256).hexdigest()


def upsert_client(db: Database, client_id: str, *, name: str, secret_value: str | None,
                  redirect_uris: list[str], grant_types: list[str], scope: str,
                  auth_method: str, node_id: str | None = None) -> list[str]:
    """Create or update a client; returns all its redirect URIs."""
    row = db.one(
        "INSERT INTO auth.clients VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client_id) "
        "DO UPDATE SET secret_hash = EXCLUDED.secret_hash, name = EXCLUDED.name, "
        # several deployments (ports) of a node may share its database: keep every URI exact
        "redirect_uris = ARRAY(SELECT DISTINCT u FROM unnest(auth.clients.redirect_uris || "
        "EXCLUDED.redirect_uris) AS u), grant_types = EXCLUDED.grant_types, "
        "scope = EXCLUDED.scope, auth_method = EXCLUDED.auth_method, node_id = EXCLUDED.node_id "
        "RETURNING redirect_uris",
        (client_id, hash_secret(secret_value) if secret_value else None, name, redirect_uris,
         grant_types, scope, auth_method, node_id))
    return sorted(row["redirect_uris"]) if row else list(redirect_uris)


def register_node_client(db: Database, node_id: str, name: str,
                         redirect_uris: list[str]) -> dict[str, Any]:
    """The node's client `node-<id>` (made or updated): the RFC 7591 response body."""
    client_id = f"node-{node_id}"
    client_secret = node_client_secret(db, node_id)
    uris = upsert_client(db, client_id, name=name, secret_value=client_secret,
                         redirect_uris=redirect_uris, grant_types=NODE_GRANTS, scope=NODE_SCOPE,
                         auth_method=AUTH_METHOD, node_id=node_id)
    return {"client_id": client_id, "client_secret": client_secret,
            "client_id_issued_at": int(time.time()), "client_secret_expires_at": 0,
            "client_name": name, "redirect_uris": uris, "grant_types": NODE_GRANTS,
            "response_types": ["code"], "scope": NODE_SCOPE,
            "token_endpoint_auth_method": AUTH_METHOD, "node_id": node_id}


def clean_networks(allowed: Any) -> list[str]:
    if not isinstance(allowed, list) or not 1 <= len(allowed) <= MAX_NETWORKS:
        raise RegistrationError(400, "Invalid request",
                                f"allowed is a list of 1-{MAX_NETWORKS} IP ranges",
                                "invalid_request")
    try:
        return sorted({str(ipaddress.ip_network(str(n), strict=False)) for n in allowed})
    except ValueError:
        raise RegistrationError(400, "Invalid request", "allowed holds IP ranges only",
                                "invalid_request") from None


def node_key(db: Database, main_id: str, node_id: str, allowed: list[str],
             kept: str | None) -> tuple[str, bool]:
    """The server key a node's tile engine sends to its children (the e-map cascade).

    One service account `node_<id>` per node; its key is bound to `allowed` (rebound when they
    change), with quotas and rate no e-map seeding reaches. `kept`, the key the node already
    holds, is returned again if it is still this node's and not revoked. (key, made now).
    """
    name = f"node_{node_id}"
    user = accounts.by_name(db, name)
    if kept and user is not None:
        record = apikeys.lookup(db, apikeys.key_hash(kept))
        if record and not record["revoked"] and record["user_id"] == user.id:
            if sorted(record["allowed"]) != sorted(allowed):  # the node moved: rebind its key
                db.execute("UPDATE auth.api_keys SET allowed = %s WHERE key_id = %s",
                           (allowed, record["key_id"]))
            return kept, False
        # the main database was recreated (or the key revoked): make a new one
    user = user or accounts.create(db, name, secrets.token_urlsafe(24), via="install")
    key, _ = apikeys.create_key(db, main_id, user.id, f"{name} e-map cascade", "server", allowed,
                                quotas={k: 10**9 for k in apikeys.KINDS}, rate_per_second=100000,
                                actor="install")
    return key, True


def _redirect_uris(value: Any) -> list[str]:
    """Absolute http(s) URLs without userinfo or fragment, compared exactly at sign-in."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REDIRECTS:
        raise RegistrationError(400, "Invalid client metadata",
                                f"redirect_uris is a list of 1-{MAX_REDIRECTS} URLs",
                                "invalid_redirect_uri")
    out = []
    for uri in value:
        parts = urlsplit(uri) if isinstance(uri, str) and len(uri) <= 2000 else None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or parts.username is not None or parts.fragment or "#" in uri
                or any(ord(c) < 33 or c == "\x7f" for c in uri)):
            raise RegistrationError(400, "Invalid client metadata",
                                    "each redirect URI is an absolute http(s) URL without "
                                    "userinfo or fragment", "invalid_redirect_uri")
        out.append(uri)
    return out


def _metadata(data: Any) -> tuple[str, str, list[str]]:
    """(node id, client name, redirect URIs) from the posted client metadata."""
    if not isinstance(data, dict):
        raise RegistrationError(400, "Invalid client metadata", "A JSON object is expected.",
                                "invalid_client_metadata")
    node_id = data.get("node_id")
    if not isinstance(node_id, str) or not NODE_ID.match(node_id):
        raise RegistrationError(400, "Invalid client metadata",
                                "node_id (the registering node's id) is required",
                                "invalid_client_metadata")
    name = data.get("client_name", f"node {node_id}")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise RegistrationError(400, "Invalid client metadata", "client_name is 1-200 characters",
                                "invalid_client_metadata")
    grants = data.get("grant_types", NODE_GRANTS)
    if not isinstance(grants, list) or not set(grants) <= set(NODE_GRANTS):
        raise RegistrationError(400, "Invalid client metadata",
                                "grant_types of a node are " + ", ".join(NODE_GRANTS),
                                "invalid_client_metadata")
    if data.get("token_endpoint_auth_method", AUTH_METHOD) != AUTH_METHOD:
        raise RegistrationError(400, "Invalid client metadata",
                                f"token_endpoint_auth_method of a node is {AUTH_METHOD}",
                                "invalid_client_metadata")
    return node_id, name, _redirect_uris(data.get("redirect_uris"))


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise RegistrationError(413, "Content Too Large", f"at most {MAX_BODY} bytes",
                                "invalid_request")
    try:
        return json.loads(body)
    except ValueError:
        raise RegistrationError(400, "Invalid client metadata", "A JSON object is expected.",
                                "invalid_client_metadata") from None


class NodeRegistration:
    """`POST /sso/api/clients` and `POST /sso/api/node-key` of the main node."""

    def __init__(self, db: Database, main_id: str, validator: TokenValidator):
        self.db, self.main_id, self.validator = db, main_id, validator

    def routes(self) -> list[Route]:
        return [Route(CLIENTS_PATH, self.register, methods=["POST"]),
                Route(NODE_KEY_PATH, self.node_key, methods=["POST"]),
                Route(SUPPLY_KEY_PATH, self.supply_key, methods=["POST"]),
                Route(SUPPLY_KEY_PATH + "/{node_id}", self.supply_key_of, methods=["GET"])]

    async def _run(self, func: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args)

    async def _refused(self, request: Request, event: str, exc: AuthError,
                       actor: str | None = None, subject: str | None = None) -> Response:
        await self._run(lambda: audit.record(
            self.db, self.main_id, event, actor=actor, subject=subject, ok=False,
            ip=client_ip(request), reason=exc.detail, status=exc.status))
        headers = None
        if exc.status == 401:
            code = exc.extra.get("error", "invalid_token")
            headers = {"WWW-Authenticate": f'Bearer error="{code}"'
                       if code != "invalid_request" else "Bearer"}
        return exc.response(headers)

    async def register(self, request: Request) -> Response:
        """RFC 7591 client registration of a node, with its initial access token."""
        token_node = subject = None
        try:
            token = bearer(request)
            if not token:
                raise RegistrationError(401, "Unauthorized", "Send the node's initial access "
                                        "token as a bearer token.", "invalid_request")
            token_node = await self._run(check_token, self.db, token)
            node_id, name, uris = _metadata(await _json_body(request))
            subject = node_id
            if node_id != token_node:
                raise RegistrationError(403, "Forbidden", "This initial access token is for "
                                        "another node.", "invalid_token")
            if node_id == self.main_id:
                raise RegistrationError(403, "Forbidden", "The main node's own client is not "
                                        "registered over HTTP.", "invalid_client_metadata")
            body = await self._run(register_node_client, self.db, node_id, name, uris)
        except AuthError as exc:
            return await self._refused(request, "provision.register", exc, token_node, subject)
        await self._run(lambda: audit.record(
            self.db, self.main_id, "provision.register", actor=token_node,
            subject=body["client_id"], ip=client_ip(request), redirect_uris=body["redirect_uris"]))
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store",
                                                            "Pragma": "no-cache"})

    async def _node_client(self, request: Request, what: str) -> tuple[str, str]:
        """(client id, node id) of a node's client-credentials token with scope `keys`."""
        token = bearer(request)
        if not token:
            raise RegistrationError(401, "Unauthorized", "Send the node's access token "
                                    "(client credentials, scope keys).", "invalid_request")
        principal = await self.validator.validate(token)
        client_id = principal.client_id
        if principal.is_user or "keys" not in principal.claims.get("scope", "").split():
            raise RegistrationError(403, "Forbidden", f"Only federation nodes obtain {what}.",
                                    "insufficient_scope")
        row = await self._run(lambda: self.db.one(
            "SELECT node_id FROM auth.clients WHERE client_id = %s", (client_id,)))
        node_id = row["node_id"] if row else None
        if not node_id:
            raise RegistrationError(403, "Forbidden", "This client is not a node.",
                                    "insufficient_scope")
        return client_id, node_id

    async def node_key(self, request: Request) -> Response:
        """A node's e-map cascade key, for its client credentials (scope `keys`)."""
        client_id = None
        try:
            client_id, node_id = await self._node_client(request, "node keys")
            data = await _json_body(request)
            if not isinstance(data, dict):
                raise RegistrationError(400, "Invalid request", "A JSON object is expected.",
                                        "invalid_request")
            allowed = clean_networks(data.get("allowed"))
            kept = data.get("key")
            if kept is not None and not isinstance(kept, str):
                raise RegistrationError(400, "Invalid request", "key is a string",
                                        "invalid_request")
            key, made = await self._run(node_key, self.db, self.main_id, node_id, allowed,
                                        kept or None)
        except AuthError as exc:
            return await self._refused(request, "provision.node_key", exc, client_id)
        await self._run(lambda: audit.record(
            self.db, self.main_id, "provision.node_key", actor=client_id, subject=key[:8],
            ip=client_ip(request), made=made, allowed=allowed))
        return JSONResponse({"key": key, "key_id": key[:8], "allowed": allowed},
                            status_code=201 if made else 200,
                            headers={"Cache-Control": "no-store"})

    async def supply_key(self, request: Request) -> Response:
        """A node registers the public key it signs its supply change-sets with (issue 18):
        `{"jwk": {"kty": "OKP", "crv": "Ed25519", "x": ...}}`; parents read it from here."""
        client_id = None
        try:
            client_id, node_id = await self._node_client(request, "supply keys")
            data = await _json_body(request)
            jwk = data.get("jwk") if isinstance(data, dict) else None
            if not (isinstance(jwk, dict) and jwk.get("kty") == "OKP"
                    and jwk.get("crv") == "Ed25519" and isinstance(jwk.get("x"), str)
                    and re.fullmatch(r"[A-Za-z0-9_-]{43}", jwk["x"])):
                raise RegistrationError(400, "Invalid request", "jwk is the node's public "
                                        "Ed25519 key (kty OKP, crv Ed25519, x)",
                                        "invalid_request")
            public = {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": node_id,
                      "use": "sig"}
            made = await self._run(lambda: self.db.one(
                "INSERT INTO auth.supply_keys (node_id, public_jwk) VALUES (%s, %s) "
                "ON CONFLICT (node_id) DO UPDATE SET public_jwk = EXCLUDED.public_jwk, "
                "registered_at = CASE WHEN auth.supply_keys.public_jwk = EXCLUDED.public_jwk "
                "THEN auth.supply_keys.registered_at ELSE now() END "
                "RETURNING (xmax = 0) AS made", (node_id, json.dumps(public))))
        except AuthError as exc:
            return await self._refused(request, "provision.supply_key", exc, client_id)
        await self._run(lambda: audit.record(
            self.db, self.main_id, "provision.supply_key", actor=client_id, subject=node_id,
            ip=client_ip(request)))
        return JSONResponse(public, status_code=201 if made and made["made"] else 200,
                            headers={"Cache-Control": "no-store"})

    async def supply_key_of(self, request: Request) -> Response:
        """The public supply key of a node (a public key: anyone may read it)."""
        node_id = request.path_params["node_id"]
        row = await self._run(lambda: self.db.one(
            "SELECT public_jwk FROM auth.supply_keys WHERE node_id = %s", (node_id,)))
        if row is None:
            return AuthError(404, "Not Found", f"Node {node_id[:64]!r} has registered no "
                             "supply key.").response()
        return JSONResponse(row["public_jwk"], headers={"Cache-Control": "no-cache"})
