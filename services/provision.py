"""Build-time provisioning of a node's auth: tables, signing key, OIDC client, cascade key.

`provision_node` is called once by the node's build (`nodes.supervisor.build_node`) and returns
what the node app needs at run time (written into its `node.json`, mode 600: it holds the node's
client secret) and the node's e-map cascade key.

- The **main node** provisions itself locally: it owns the database of accounts and clients.
- **Every other node** only talks HTTP to the main node (services/sso/registration.py): it
  registers its OIDC client with its initial access token (RFC 7591 style), then obtains its
  cascade key with those client credentials. It never holds the main node's database URL.

The initial access token is read from `$GEOPLAT_INITIAL_TOKEN`, else from
`<var>/provision/<node>.token` (0600): `geoplat up` writes that file for the nodes it builds
together with the main node on one host; on another host the operator puts the token printed by
`geoplat sso initial-token --node ID` there. Once registered, a node keeps its credentials in
`<var>/nodes/<id>/oidc-client.json` (0600) and rebuilds without a token while they work and its
URL is unchanged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from services.access import apikeys
from services.access.clients import SyncClientCredentials, TokenUnavailable
from services.db import Database, ensure_schema
from services.sso import accounts, registration, signing
from services.sso.registration import CLIENTS_PATH, NODE_KEY_PATH

LOGGER = logging.getLogger("geoplat.provision")
PUBLIC_CLIENT = "geoplat-cli"
PUBLIC_REDIRECTS = ["http://127.0.0.1:8765/callback", "http://localhost:8765/callback"]
TOKEN_ENV = "GEOPLAT_INITIAL_TOKEN"
DEMO_TOKEN_HOURS = 2.0
MAIN_WAIT_SECONDS = 180.0  # a main node started just before may take this long under load
HTTP_TIMEOUT = 15.0


class ProvisionError(RuntimeError):
    """A node could not be provisioned (the message says what the operator should do)."""


def main_of(settings: Any) -> Any:
    return next(n for n in settings.nodes if n.tier == "main")


def token_file(settings: Any, node: Any) -> Path:
    return settings.resolve(settings.var_dir) / "provision" / f"{node.id}.token"


def _node_file(settings: Any, node: Any, name: str) -> Path:
    return settings.resolve(settings.var_dir) / "nodes" / node.id / name


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def provision_node(settings: Any, node: Any, layers: list[Any], dsn: str, *,
                   cascade: bool) -> tuple[dict[str, Any], str | None]:
    """The node's auth meta and (with `cascade`: it has children or compositions) its key."""
    main = main_of(settings)
    if node.id == main.id:
        client, key = _provision_main(settings, node, dsn, cascade)
    else:
        ensure_schema(dsn, main=False)
        client, key = _provision_remote(settings, node, main, cascade)
    issuer = main.base_url + "/sso"
    return {
        "node_id": node.id,
        "is_main": node.id == main.id,
        "main_url": main.base_url,
        "issuer": issuer,
        "jwks_url": issuer + "/jwks",
        "token_url": issuer + "/token",
        "audience": settings.name,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "main_dsn": dsn if node.id == main.id else None,  # the main node's own database only
        "levels": {layer.id: layer.access for layer in layers},
        "fields": {layer.id: dict(layer.field_access) for layer in layers if layer.field_access},
        "settings": node.auth.model_dump(),
    }, key


# --- the main node: local ------------------------------------------------------------------

def _provision_main(settings: Any, node: Any, dsn: str,
                    cascade: bool) -> tuple[dict[str, Any], str | None]:
    ensure_schema(dsn, main=True)
    db = Database(dsn, maxconn=2)
    signing.ensure_key(db)
    client = registration.register_node_client(db, node.id, node.title,
                                               [node.base_url + "/auth/callback"])
    registration.upsert_client(db, PUBLIC_CLIENT,
                               name="geoplat command-line and desktop clients",
                               secret_value=None, redirect_uris=PUBLIC_REDIRECTS,
                               grant_types=["authorization_code", "refresh_token"],
                               scope="openid profile email geoplat offline_access",
                               auth_method="none")
    ensure_demo_developer(db, settings)
    key = None
    if cascade:
        path = _node_file(settings, node, "node-key.json")
        kept = (_read_json(path) or {}).get("key")
        key, _ = registration.node_key(db, node.id, node.id, node_key_networks(node), kept)
        if key != kept:
            _write_private(path, json.dumps({"key": key}))
    return client, key


def issue_local_tokens(settings: Any, main_dsn: str, nodes: list[Any]) -> None:
    """`geoplat up` of several nodes on one host: an initial access token for each non-main
    node it builds with the main node, in `<var>/provision/<id>.token` (0600, read by its build)."""
    main = main_of(settings)
    db = Database(main_dsn, maxconn=1)
    for node in nodes:
        if node.id != main.id:
            value, _ = registration.issue_token(db, main.id, node.id, hours=DEMO_TOKEN_HOURS,
                                                actor="geoplat up")
            _write_private(token_file(settings, node), value + "\n")


# --- every other node: over HTTP -------------------------------------------------------------

def initial_token(settings: Any, node: Any) -> str | None:
    """The node's initial access token: `$GEOPLAT_INITIAL_TOKEN`, else its token file."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        try:
            value = token_file(settings, node).read_text(encoding="utf-8").strip()
        except OSError:
            value = ""
    return value or None


def _wait_for_main(http: httpx.Client, base: str) -> None:
    """Until the main node's sign-on centre answers (it may have been started just now)."""
    url = base + "/sso/.well-known/openid-configuration"
    try:
        for attempt in Retrying(stop=stop_after_delay(MAIN_WAIT_SECONDS), wait=wait_fixed(0.5),
                                retry=retry_if_exception_type((httpx.HTTPError, ValueError)),
                                reraise=True):
            with attempt:
                http.get(url).raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProvisionError(f"the main node does not answer at {url} ({type(exc).__name__}); "
                             "start it first") from None


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
        return f"{r.status_code} {body.get('title', '')}: {body.get('detail', '')}"
    except ValueError:
        return str(r.status_code)


def _client_token(http: httpx.Client, base: str, client: dict[str, Any],
                  scope: str) -> str | None:
    """A client-credentials token of `client` (services/access/clients.py), None if refused."""
    try:
        return SyncClientCredentials(http, base + "/sso/token", client["client_id"],
                                     client["client_secret"]).token(scope)
    except TokenUnavailable:
        return None


def _register(http: httpx.Client, settings: Any, node: Any, base: str) -> dict[str, Any]:
    path = _node_file(settings, node, "oidc-client.json")
    redirect = node.base_url + "/auth/callback"
    kept = _read_json(path)
    if kept and (kept.get("issuer") != base + "/sso" or kept.get("redirect_uri") != redirect):
        kept = None  # another main node, or this node moved: register again
    token = initial_token(settings, node)
    if token:
        r = http.post(base + CLIENTS_PATH, headers={"Authorization": f"Bearer {token}"},
                      json={"node_id": node.id, "client_name": node.title,
                            "redirect_uris": [redirect], "grant_types": registration.NODE_GRANTS,
                            "token_endpoint_auth_method": registration.AUTH_METHOD})
        if r.status_code == 201:
            body = r.json()
            client = {"client_id": body["client_id"], "client_secret": body["client_secret"],
                      "issuer": base + "/sso", "redirect_uri": redirect}
            _write_private(path, json.dumps(client))
            return client
        refused = _problem(r)
        if not kept:
            raise ProvisionError(f"node {node.id}: the main node refused its registration "
                                 f"({refused}); issue a new token there with `geoplat sso "
                                 f"initial-token --node {node.id}`")
        LOGGER.warning("node %s: registration refused (%s); using its kept credentials",
                       node.id, refused)
    if kept and _client_token(http, base, kept, "keys"):
        return kept
    raise ProvisionError(
        f"node {node.id} is not registered at the main node ({base}): on the main node run "
        f"`geoplat sso initial-token --node {node.id}`, then put the token in "
        f"{token_file(settings, node)} (or ${TOKEN_ENV}) and build again")


def _cascade_key(http: httpx.Client, settings: Any, node: Any, base: str,
                 client: dict[str, Any]) -> str:
    access = _client_token(http, base, client, "keys")
    if access is None:
        raise ProvisionError(f"node {node.id}: the main node refused its client credentials")
    path = _node_file(settings, node, "node-key.json")
    kept = (_read_json(path) or {}).get("key")
    r = http.post(base + NODE_KEY_PATH, headers={"Authorization": f"Bearer {access}"},
                  json={"allowed": node_key_networks(node), "key": kept})
    if r.status_code not in (200, 201):
        raise ProvisionError(f"node {node.id}: no cascade key from the main node ({_problem(r)})")
    key = str(r.json()["key"])
    if key != kept:
        _write_private(path, json.dumps({"key": key}))
    return key


def _provision_remote(settings: Any, node: Any, main: Any,
                      cascade: bool) -> tuple[dict[str, Any], str | None]:
    base = main.base_url
    with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as http:
        _wait_for_main(http, base)
        try:
            client = _register(http, settings, node, base)
            key = _cascade_key(http, settings, node, base, client) if cascade else None
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise ProvisionError(f"node {node.id}: provisioning at {base} failed "
                                 f"({type(exc).__name__})") from None
    return client, key


# --- the demo developer ----------------------------------------------------------------------

DEMO_USER = "demo"


def demo_file(settings: Any) -> Path:
    return settings.resolve(settings.var_dir) / "demo-developer.json"


# the page key is shared by every visitor of the nodes' pages: the per-key rate and daily quotas
# meant for one developer's application would stop the portal for everyone after a few hundred
# visits, so it gets a crowd's (it reaches public layers only; nginx's fast path limits each
# learned key at its rate class too)
PAGE_KEY_RATE = 5000
PAGE_KEY_QUOTAS = {"tiles": 50_000_000, "features": 5_000_000, "search": 2_000_000}


def ensure_demo_developer(main_db: Database, settings: Any) -> None:
    """On a fresh install: a developer account `demo` with a server and a browser key."""
    if accounts.by_name(main_db, DEMO_USER) is not None:
        _page_key_public_only(main_db, settings)
        return
    password = secrets.token_urlsafe(12)
    user = accounts.create(main_db, DEMO_USER, password, "demo@example.invalid",
                           roles=["developer"], via="install")
    server, _ = apikeys.create_key(main_db, "install", user.id, "demo server key", "server",
                                   ["127.0.0.0/8", "::1/128"], actor="install")
    # embedded in the nodes' own public pages (/sdk/, /hall, /cadastre, /): anyone can copy it,
    # so it reaches public layers only, never what its owner may see as a registered user
    browser, _ = apikeys.create_key(main_db, "install", user.id, "demo browser key", "browser",
                                    [n.base_url for n in settings.nodes], actor="install",
                                    public_only=True, quotas=PAGE_KEY_QUOTAS,
                                    rate_per_second=PAGE_KEY_RATE)
    _write_private(demo_file(settings), json.dumps(
        {"username": DEMO_USER, "password": password, "server_key": server,
         "browser_key": browser}, indent=2))


def _page_key_public_only(main_db: Database, settings: Any) -> None:
    """An install from before public-only keys: its demo browser key becomes public-only, with
    the page key's rate and quotas."""
    try:
        browser = json.loads(demo_file(settings).read_text())["browser_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    main_db.execute("UPDATE auth.api_keys SET public_only = true, rate_per_second = "
                    "greatest(rate_per_second, %s), quotas = quotas || %s::jsonb WHERE "
                    "key_hash = %s AND (NOT public_only OR rate_per_second < %s)",
                    (PAGE_KEY_RATE, json.dumps(PAGE_KEY_QUOTAS), apikeys.key_hash(str(browser)),
                     PAGE_KEY_RATE))


def demo_banner(settings: Any) -> list[str]:
    """Lines `geoplat up` prints so a newcomer can try the Tianditu-style URLs at once."""
    path = demo_file(settings)
    if not path.exists():
        return []
    demo = json.loads(path.read_text())
    main = main_of(settings)
    return [(f"demo developer: {demo['username']} / {demo['password']}  (sign in: "
             f"{main.base_url}/sso/login)"),
            (f"demo API key (server, 127.0.0.1): tk={demo['server_key']}  e.g. "
             f"{main.base_url}/ogc/collections?f=json&tk={demo['server_key']}"),
            f"demo API key (browser, the nodes' own pages): tk={demo['browser_key']}"]


def node_key_networks(node: Any) -> list[str]:
    """Where a node's cascade requests come from: loopback, the addresses of its `host` and
    `public_url` (names resolved now; 0.0.0.0 stands for no particular one), and
    `auth.node_key_networks`."""
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
