"""The nodes' supply signing keys (issue 18).

Every node that supplies data holds an Ed25519 key of its own (`<node dir>/supply-key.pem`,
0600, made at its first build and kept). It registers the public half at the main node with its
client credentials (scope `keys`: `POST /sso/api/supply-keys`, services/sso/registration.py);
a parent verifies a child's change-set with the key the main node holds for that child
(`GET /sso/api/supply-keys/{node}`), never with a key the change-set brings along.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import OKPKey

from services.access.clients import SyncClientCredentials, TokenUnavailable
from services.db import Database
from services.sso.registration import SUPPLY_KEY_PATH
from services.supply import changeset as cs_mod

KEY_FILE = "supply-key.pem"
CACHE_SECONDS = 60.0


class KeyUnavailable(RuntimeError):
    """The main node holds no supply key for that node, or does not answer."""


def node_key(path: Path) -> OKPKey:
    """The node's key from `path`, made there (0600) on first use."""
    try:
        return cs_mod.load_private(path.read_bytes())
    except FileNotFoundError:
        pass
    key = cs_mod.new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(cs_mod.private_pem(key))
    return key


def register(auth: Any, key: OKPKey, timeout: float = 15.0) -> None:
    """Register the public key at the main node: locally on the main node itself, else over
    HTTP with the node's client credentials (`auth` is its runtime's AuthSection)."""
    public = cs_mod.public_jwk(key)
    if auth.is_main:
        db = Database(auth.main_dsn, maxconn=1)
        try:
            db.execute("INSERT INTO auth.supply_keys (node_id, public_jwk) VALUES (%s, %s) "
                       "ON CONFLICT (node_id) DO UPDATE SET public_jwk = EXCLUDED.public_jwk",
                       (auth.node_id, json.dumps(
                           {**public, "kid": auth.node_id, "use": "sig"})))
        finally:
            db.close()
        return
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        try:
            token = SyncClientCredentials(http, auth.token_url, auth.client_id,
                                          auth.client_secret).token("keys")
        except TokenUnavailable as exc:
            raise KeyUnavailable(f"the main node refused this node's client credentials "
                                 f"({exc})") from None
        r = http.post(auth.main_url + SUPPLY_KEY_PATH, json={"jwk": public},
                      headers={"Authorization": f"Bearer {token}"})
        if r.status_code not in (200, 201):
            raise KeyUnavailable(f"the main node refused this node's supply key "
                                 f"({r.status_code})")


class KeyDirectory:
    """The children's public keys, as the main node holds them (cached a minute)."""

    def __init__(self, main_url: str, timeout: float = 10.0):
        self.main_url, self.timeout = main_url.rstrip("/"), timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def public_jwk(self, node_id: str) -> dict[str, Any]:
        with self._lock:
            hit = self._cache.get(node_id)
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            r = httpx.get(f"{self.main_url}{SUPPLY_KEY_PATH}/{node_id}", timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise KeyUnavailable(f"the main node does not answer ({type(exc).__name__})"
                                 ) from None
        if r.status_code != 200:
            raise KeyUnavailable(f"the main node holds no supply key of node {node_id}")
        jwk = dict(r.json())
        with self._lock:
            self._cache[node_id] = (time.monotonic(), jwk)
        return jwk
