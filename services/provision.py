"""Build-time preparation of a node's auth: tables, signing key, OIDC clients, node secrets.

Called by `nodes.supervisor.build_node`; returns what the node app needs at run time (it is
written into the node's `node.json`, mode 600, because it holds the node's client secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from services.db import Database, ensure_schema, secret
from services.sso import provider as oidc
from services.sso import signing

PUBLIC_CLIENT = "geoplat-cli"
PUBLIC_REDIRECTS = ["http://127.0.0.1:8765/callback", "http://localhost:8765/callback"]


def node_client_secret(main_db: Database, node_id: str) -> str:
    key = secret(main_db, "node-client-key")
    return hmac.new(key.encode(), f"node-client:{node_id}".encode(), hashlib.sha256).hexdigest()


def upsert_client(db: Database, client_id: str, *, name: str, secret_value: str | None,
                  redirect_uris: list[str], grant_types: list[str], scope: str,
                  auth_method: str, node_id: str | None = None) -> None:
    db.execute(
        "INSERT INTO auth.clients VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client_id) "
        "DO UPDATE SET secret_hash = EXCLUDED.secret_hash, name = EXCLUDED.name, "
        # several deployments (ports) of a node may share its database: keep every URI exact
        "redirect_uris = ARRAY(SELECT DISTINCT u FROM unnest(auth.clients.redirect_uris || "
        "EXCLUDED.redirect_uris) AS u), grant_types = EXCLUDED.grant_types, "
        "scope = EXCLUDED.scope, auth_method = EXCLUDED.auth_method, node_id = EXCLUDED.node_id",
        (client_id, oidc.hash_secret(secret_value) if secret_value else None, name, redirect_uris,
         grant_types, scope, auth_method, node_id))


def prepare_node(settings: Any, node: Any, layers: list[Any], dsn: str, main: Any,
                 main_dsn: str) -> dict[str, Any]:
    """Create auth tables (node and main), register the node's client; the node's auth meta."""
    ensure_schema(main_dsn, main=True)
    if dsn != main_dsn:
        ensure_schema(dsn, main=False)
    main_db = Database(main_dsn, maxconn=2)
    signing.ensure_key(main_db)
    client_id = f"node-{node.id}"
    client_secret = node_client_secret(main_db, node.id)
    upsert_client(main_db, client_id, name=node.title, secret_value=client_secret,
                  redirect_uris=[node.base_url + "/auth/callback"],
                  grant_types=["authorization_code", "refresh_token", "client_credentials"],
                  scope="openid profile email geoplat offline_access register keys",
                  auth_method="client_secret_basic", node_id=node.id)
    if node.tier == "main":
        upsert_client(main_db, PUBLIC_CLIENT, name="geoplat command-line and desktop clients",
                      secret_value=None, redirect_uris=PUBLIC_REDIRECTS,
                      grant_types=["authorization_code", "refresh_token"],
                      scope="openid profile email geoplat offline_access", auth_method="none")
        ensure_demo_developer(main_db, settings)
    issuer = main.base_url + "/sso"
    return {
        "node_id": node.id,
        "is_main": node.tier == "main",
        "main_url": main.base_url,
        "issuer": issuer,
        "jwks_url": issuer + "/jwks",
        "token_url": issuer + "/token",
        "audience": settings.name,
        "client_id": client_id,
        "client_secret": client_secret,
        "main_dsn": main_dsn if node.tier == "main" else None,
        "levels": {layer.id: layer.access for layer in layers},
        "settings": node.auth.model_dump(),
    }


DEMO_USER = "demo"


def demo_file(settings: Any) -> Path:
    return settings.resolve(settings.var_dir) / "demo-developer.json"


def ensure_demo_developer(main_db: Database, settings: Any) -> None:
    """On a fresh install: a developer account `demo` with a server and a browser key."""
    from services.access import apikeys
    from services.sso import accounts

    if accounts.by_name(main_db, DEMO_USER) is not None:
        return
    password = secrets.token_urlsafe(12)
    user = accounts.create(main_db, DEMO_USER, password, "demo@example.invalid",
                           roles=["developer"], via="install")
    server, _ = apikeys.create_key(main_db, "install", user.id, "demo server key", "server",
                                   ["127.0.0.0/8", "::1/128"], actor="install")
    browser, _ = apikeys.create_key(main_db, "install", user.id, "demo browser key", "browser",
                                    [n.base_url for n in settings.nodes], actor="install")
    path = demo_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"username": DEMO_USER, "password": password,
                                "server_key": server, "browser_key": browser}, indent=2))
    os.chmod(path, 0o600)


def demo_banner(settings: Any) -> list[str]:
    """Lines `geoplat up` prints so a newcomer can try the Tianditu-style URLs at once."""
    path = demo_file(settings)
    if not path.exists():
        return []
    demo = json.loads(path.read_text())
    main = next(n for n in settings.nodes if n.tier == "main")
    return [f"demo developer: {demo['username']} / {demo['password']}  (sign in: "
            f"{main.base_url}/sso/login)",
            f"demo API key (server, 127.0.0.1): tk={demo['server_key']}  e.g. "
            f"{main.base_url}/ogc/collections?f=json&tk={demo['server_key']}",
            f"demo API key (browser, the nodes' own pages): tk={demo['browser_key']}"]


def node_key_networks(node: Any) -> list[str]:
    """Where a node's cascade requests come from: loopback, the addresses of its `host` and
    `public_url` (names resolved now; 0.0.0.0 stands for no particular one), and
    `auth.node_key_networks`."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    allowed = {"127.0.0.0/8", "::1/128"}
    for host in {node.host, urlsplit(node.base_url).hostname or ""}:
        try:
            addrs = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addrs = [ipaddress.ip_address(info[4][0]) for info in
                         socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
            except (OSError, ValueError):
                addrs = []
        for ip in addrs:
            if not ip.is_loopback and not ip.is_unspecified:
                allowed.add(f"{ip}/{ip.max_prefixlen}")
    for net in node.auth.node_key_networks:
        allowed.add(str(ipaddress.ip_network(net, strict=False)))
    return sorted(allowed)


def ensure_node_key(main_dsn: str, settings: Any, node: Any) -> str:
    """The server key a node's tile engine sends to its children (the e-map cascade).

    Made once at the main node for a service account `node_<id>`, bound to
    `node_key_networks(node)` (rebound when they change), with quotas and rate no e-map seeding
    reaches; kept in var/nodes/<id>/node-key.json (0600) and reused.
    """
    from services.access import apikeys
    from services.db import Database
    from services.sso import accounts

    path = settings.resolve(settings.var_dir) / "nodes" / node.id / "node-key.json"
    db = Database(main_dsn, maxconn=1)
    allowed = node_key_networks(node)
    if path.exists():
        try:
            kept = json.loads(path.read_text())["key"]
        except (ValueError, KeyError):
            kept = None
        record = apikeys.lookup(db, apikeys.key_hash(kept)) if kept else None
        if record and not record["revoked"]:
            if sorted(record["allowed"]) != sorted(allowed):  # the node moved: rebind its key
                db.execute("UPDATE auth.api_keys SET allowed = %s WHERE key_id = %s",
                           (allowed, record["key_id"]))
            return kept
        # the main database was recreated (or the key revoked): make a new one
    name = f"node_{node.id}"
    user = accounts.by_name(db, name) or accounts.create(db, name, secrets.token_urlsafe(24),
                                                          via="install")
    key, _ = apikeys.create_key(db, "install", user.id, f"{name} e-map cascade", "server", allowed,
                                quotas={k: 10**9 for k in apikeys.KINDS}, rate_per_second=100000,
                                actor="install")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key}))
    os.chmod(path, 0o600)
    return key
