"""Developer API keys (`tk`, like Tianditu's): created at the main node, checked at every node.

Browser keys are bound to origins (Origin or Referer header), server keys to IP ranges. Each
key has a daily quota per service kind (tiles, features, search: place names and addresses) at
each node and a rate limit. A valid key acts for its owner: it reaches what the owner may see at
`registered` level (never `restricted`, which needs a signed-in token and a grant); a key of a
disabled account is refused, and a deleted account's keys are gone with it. Checks are cheap: the key record is cached in-process for a short TTL (looked up at the
main node over HTTP with the node's client credentials, or in its database on the main node);
usage is counted in memory and flushed to `auth.key_usage` of the node in batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from starlette.requests import HTTPConnection
from starlette.types import Scope

from services.access import audit
from services.access.control import Decision
from services.access.forwarding import CHECKED_KEY, ForwardTrust
from services.access.revocations import POLL_SECONDS, revoke_subject
from services.access.tokens import Principal
from services.db import Database
from services.errors import AuthError

LOGGER = logging.getLogger("geoplat.auth")

KINDS = ("tiles", "features", "search")
DEFAULT_QUOTAS = {"tiles": 100000, "features": 20000, "search": 10000}
DEFAULT_RATE = 50
KEY_TTL = 30.0
FLUSH_SECONDS = 5.0
NEAR_QUOTA = 10  # within this many (or 5 %) of a quota, requests are counted exactly
KEY_SUBJECT = "key:"  # a revoked key in the revocation list: `key:<key_id>` (no user's sub)


def quotas_of(stored: dict[str, Any]) -> dict[str, int]:
    """A key's daily quota of every kind: as stored, a kind the record lacks (a key made before
    the kind existed) at its default."""
    return {**DEFAULT_QUOTAS, **{k: int(v) for k, v in stored.items() if k in KINDS}}


def key_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    user_id: int
    kind: str
    allowed: tuple[str, ...]
    quotas: dict[str, int]
    rate_per_second: int
    revoked: bool
    owner: str = ""  # the owner's username
    owner_active: bool = False  # the owner's account is not disabled (unknown: fail closed)
    public_only: bool = False  # reaches public layers only (a key embedded in public pages)

    @property
    def usable(self) -> bool:
        return not self.revoked and self.owner_active

    def quota(self, kind: str) -> int:
        """The daily quota of `kind` (a record from before the kind existed: the default)."""
        return quotas_of(self.quotas).get(kind, 0)

    def principal(self) -> Principal:
        """The caller a request with this key (and no token) acts as: its owner, by key."""
        return Principal(sub=str(self.user_id), username=self.owner, is_user=False,
                         key_id=self.key_id, public_only=self.public_only)

    def permits(self, origin: str | None, ip: str) -> bool:
        if self.kind == "browser":
            return origin is not None and origin in self.allowed
        try:
            addr = ipaddress.ip_address(ip)
            return any(addr in ipaddress.ip_network(net, strict=False) for net in self.allowed)
        except ValueError:
            return False


# --- management at the main node ----------------------------------------------------------

def create_key(db: Database, node_id: str, user_id: int, name: str, kind: str,
               allowed: list[str], quotas: dict[str, int] | None = None,
               rate_per_second: int = DEFAULT_RATE, actor: str = "",
               public_only: bool = False) -> tuple[str, dict]:
    """A new key; returns (the key value, shown once, and its record). `public_only`: the key
    reaches public layers only, whoever owns it (a key embedded in public pages)."""
    if kind not in ("browser", "server"):
        raise AuthError(422, "Invalid key", "kind is browser or server")
    clean: list[str] = []
    for item in allowed:
        item = str(item).strip()
        if kind == "browser":
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise AuthError(422, "Invalid key", f"not an origin: {item[:80]!r}")
            clean.append(f"{parts.scheme}://{parts.netloc}")
        else:
            try:
                clean.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise AuthError(422, "Invalid key", f"not an IP range: {item[:80]!r}") from None
    if not clean:
        raise AuthError(422, "Invalid key", "a key needs at least one allowed origin or IP range")
    q = {**DEFAULT_QUOTAS, **{k: int(v) for k, v in (quotas or {}).items() if k in KINDS}}
    value = secrets.token_hex(16)
    key_id = value[:8]
    import json

    db.execute("INSERT INTO auth.api_keys (key_id, key_hash, user_id, name, kind, allowed, quotas, "
               "rate_per_second, public_only) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
               (key_id, key_hash(value), user_id, name[:100], kind, clean, json.dumps(q),
                int(rate_per_second), bool(public_only)))
    audit.record(db, node_id, "key.create", actor=actor or str(user_id), subject=key_id,
                 kind=kind, allowed=clean)
    return value, {"key_id": key_id, "name": name, "kind": kind, "allowed": clean, "quotas": q,
                   "rate_per_second": rate_per_second}


def revoke_key(db: Database, node_id: str, key_id: str, *, user_id: int | None,
               actor: str) -> bool:
    sql = "UPDATE auth.api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL"
    args: tuple = (key_id,)
    if user_id is not None:
        sql += " AND user_id = %s"
        args = (key_id, user_id)
    done = db.execute(sql, args) == 1
    if done:
        # the nodes' revocation lists tell their key checkers to fetch the record again
        revoke_subject(db, KEY_SUBJECT + key_id, KEY_TTL)
        audit.record(db, node_id, "key.revoke", actor=actor, subject=key_id)
    return done


def lookup(db: Database, hashed: str) -> dict | None:
    """The record of a key with its owner's username and state (a deleted owner's keys are
    deleted with the account)."""
    row = db.one("SELECT k.key_id, k.user_id, k.kind, k.allowed, k.quotas, k.rate_per_second, "
                 "k.revoked_at IS NOT NULL AS revoked, u.username AS owner, k.public_only, "
                 "NOT u.disabled AS owner_active FROM auth.api_keys k "
                 "JOIN auth.users u ON u.id = k.user_id WHERE k.key_hash = %s", (hashed,))
    return dict(row) if row else None


# --- checking at every node -----------------------------------------------------------------

def request_origin(c: HTTPConnection) -> str | None:
    """The browser origin of a request: `Origin`, else the origin of its `Referer`."""
    origin = c.headers.get("origin")
    if not origin and c.headers.get("referer"):
        parts = urlsplit(c.headers["referer"])
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    return origin


class KeyChecker:
    """Validates `tk` on requests of this node; counts usage; enforces quota and rate."""

    def __init__(self, db: Database, node_id: str, *, main_db: Database | None,
                 node_client: Any, public_requires_key: bool, main_url: str = "",
                 max_age: float = 300, own_origin: str | None = None,
                 revocations: Any = None, forward: ForwardTrust | None = None):
        self.db, self.node_id, self.main_db = db, node_id, main_db
        # a key the node's parent states it checked (services/access/forwarding.py)
        self.forward = forward
        self.main_url, self.node_client = main_url, node_client
        self.public_requires_key = public_requires_key
        self.own_origin = own_origin
        # services.access.revocations.RevocationList: a subject revoked after a key record was
        # fetched (its owner disabled, signed out, a role removed) makes the record fetched again
        self.revocations = revocations
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._counts: dict[tuple[str, str], int] = {}   # unflushed, (key_id, kind)
        self._base: dict[tuple[str, str], tuple[float, int]] = {}  # from the DB, today
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        # how long a cached record is trusted while the main node cannot be reached
        self.max_age = float(max_age)
        self.failing_since: float | None = None  # monotonic time of the first failed lookup

    async def _fetch(self, hashed: str) -> dict | None:
        if self.main_db is not None:
            return await anyio.to_thread.run_sync(lookup, self.main_db, hashed)
        token = await self.node_client.token(scope="keys")
        r = await self.node_client.http.get(self.main_url + "/sso/api/keys/lookup",
                                            params={"hash": hashed}, timeout=3.0,
                                            headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    async def key(self, value: str) -> ApiKey | None:
        hashed = key_hash(value)
        if self.revocations is not None:
            self.revocations.nudge()
            await self.revocations.current(2 * POLL_SECONDS)
        hit = self._cache.get(hashed)
        if hit and time.monotonic() - hit[0] < min(KEY_TTL, self.max_age) and \
                not self._owner_revoked_since(hit):
            return hit[1]
        # one lookup per key at a time: concurrent requests wait for it (no thundering herd)
        pending = self._inflight.get(hashed)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[hashed] = future
        try:
            key = await self._lookup(hashed, hit)
            future.set_result(key)
            return key
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            self._inflight.pop(hashed, None)

    def _owner_revoked_since(self, hit: tuple[float, ApiKey | None]) -> bool:
        """The main node revoked the key, or its owner's tokens (disabled, signed out, a role
        removed), after this record was fetched: fetch it again."""
        key = hit[1]
        if key is None or self.revocations is None:
            return False
        fetched = time.time() - (time.monotonic() - hit[0])
        not_before = self.revocations.not_before
        return any(nb is not None and nb[0] >= fetched for nb in (
            not_before.get(str(key.user_id)), not_before.get(KEY_SUBJECT + key.key_id)))

    async def _lookup(self, hashed: str, hit: tuple[float, ApiKey | None] | None) -> ApiKey | None:
        now = time.monotonic()
        try:
            row = await self._fetch(hashed)
        except (httpx.HTTPError, AuthError, ValueError):
            if self.failing_since is None:
                LOGGER.warning("API keys cannot be looked up at the main node")
                self.failing_since = now
            if hit and now - hit[0] <= self.max_age:
                return hit[1]  # main node unreachable: trust what we knew, for a while
            raise AuthError(503, "Service Unavailable", "Keys cannot be checked just now.") from None
        if self.failing_since is not None:
            LOGGER.warning("API key lookups at the main node work again")
            self.failing_since = None
        key = None
        if row:
            key = ApiKey(row["key_id"], row["user_id"], row["kind"], tuple(row["allowed"]),
                         dict(row["quotas"]), int(row["rate_per_second"]), bool(row["revoked"]),
                         str(row.get("owner") or ""), row.get("owner_active") is True,
                         row.get("public_only") is True)
        if len(self._cache) > 50000:
            self._cache.clear()
        self._cache[hashed] = (now, key)
        return key

    async def probe(self) -> None:
        """After failed lookups: ask the main node about a key nobody has, to learn whether it
        answers again (no traffic may come to do it)."""
        if self.main_db is not None or self.failing_since is None:
            return
        try:
            await self._fetch(key_hash("geoplat-health-probe"))
        except (httpx.HTTPError, AuthError, ValueError):
            return
        LOGGER.warning("API key lookups at the main node work again")
        self.failing_since = None

    def failing_too_long(self) -> bool:
        """Lookups at the main node have failed for longer than records are trusted."""
        return (self.failing_since is not None
                and time.monotonic() - self.failing_since > self.max_age)

    def status(self) -> dict[str, Any]:
        """For /health: key lookups at the main node fail (degraded), or have failed for longer
        than cached records are trusted (down: keys not seen recently are refused)."""
        if self.main_db is not None or self.failing_since is None:
            return {"status": "ok", "cached": len(self._cache)}
        failing = round(time.monotonic() - self.failing_since, 1)
        state = "down" if failing > self.max_age else "degraded"
        return {"status": state, "cached": len(self._cache), "failing_s": failing,
                "reason": "the main node cannot be reached for key lookups" + (
                    f"; cached key records older than {self.max_age:g} s are refused"
                    if state == "down" else "")}

    def _rate_ok(self, key: ApiKey) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(key.key_id, (float(key.rate_per_second), now))
        tokens = min(float(key.rate_per_second), tokens + (now - last) * key.rate_per_second)
        if tokens < 1.0:
            self._buckets[key.key_id] = (tokens, now)
            return False
        self._buckets[key.key_id] = (tokens - 1.0, now)
        return True

    def add_usage(self, key_id: str, kind: str, n: int) -> None:
        """Count `n` requests of a key that this worker did not see (nginx's fast path)."""
        with self._lock:
            self._counts[(key_id, kind)] = self._counts.get((key_id, kind), 0) + n

    async def used_today(self, key_id: str, kind: str) -> int:
        """Requests of `kind` made with the key today (the database's and this worker's)."""
        return await self._used_today(key_id, kind)

    async def _used_today(self, key_id: str, kind: str) -> int:
        now = time.monotonic()
        base = self._base.get((key_id, kind))
        if base is None or now - base[0] > FLUSH_SECONDS:
            if base is not None:  # others keep using the old figure meanwhile
                self._base[(key_id, kind)] = (now, base[1])
            row = await anyio.to_thread.run_sync(lambda: self.db.one(
                "SELECT coalesce(sum(count), 0) AS n FROM auth.key_usage WHERE key_id = %s AND "
                "kind = %s AND day = current_date", (key_id, kind)))
            base = (now, int(row["n"]) if row else 0)
            self._base[(key_id, kind)] = base
        return base[1] + self._counts.get((key_id, kind), 0)

    def _count_exact(self, key_id: str, kind: str, limit: int) -> bool:
        """Count one request in the database if the key is under `limit` today (with this
        worker's uncounted requests of the key added first); False when over quota."""
        with self._lock:
            pending = self._counts.pop((key_id, kind), 0)
        if pending:
            self.db.execute(
                "INSERT INTO auth.key_usage AS u VALUES (%(k)s, current_date, %(kind)s, %(n)s) "
                "ON CONFLICT (key_id, day, kind) DO UPDATE SET count = u.count + EXCLUDED.count",
                {"k": key_id, "kind": kind, "n": pending})
        row = self.db.one(
            "INSERT INTO auth.key_usage AS u SELECT %(k)s, current_date, %(kind)s, 1 "
            "WHERE 1 <= %(limit)s ON CONFLICT (key_id, day, kind) DO UPDATE SET "
            "count = u.count + 1 WHERE u.count < %(limit)s RETURNING count",
            {"k": key_id, "kind": kind, "limit": limit})
        self._base[(key_id, kind)] = (time.monotonic(), int(row["count"]) if row else limit)
        return row is not None

    def _flush_sync(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
        for (key_id, kind), n in counts.items():
            self.db.execute("INSERT INTO auth.key_usage VALUES (%s, current_date, %s, %s) "
                            "ON CONFLICT (key_id, day, kind) DO UPDATE SET "
                            "count = auth.key_usage.count + EXCLUDED.count", (key_id, kind, n))
            self._base.pop((key_id, kind), None)

    async def flush(self) -> None:
        self._last_flush = time.monotonic()
        if self._counts:
            await anyio.to_thread.run_sync(self._flush_sync)

    def own_page(self, c: HTTPConnection) -> bool:
        """What the node's own pages fetch: requests whose Referer/Origin is this node's own
        origin (the pages themselves are exempt by their route's requirement, `page`).

        Pages are for people, not an API, and carry the node's own browser key in the sense
        Tianditu's browser keys do. Like every browser-key binding this rests on headers a
        non-browser client can forge.
        """
        return bool(self.own_origin) and request_origin(c) == self.own_origin

    async def check(self, conn: HTTPConnection | Scope, kind: str, principal: Any, *,
                    page: bool = False) -> Any:
        """The key's part of a request's check (a `Decision`): key valid for this origin or
        address, its owner's account active, within rate and the daily quota of `kind` (counted
        here); allowed, its principal is the token's caller, else the key's owner
        (`ApiKey.principal`), else None (no key, none needed).

        A key this node's parent forwarded with its node token (`ForwardTrust`) is checked as
        a key of an active owner, not revoked, but its binding, rate and quota are not applied
        again: the node the caller asked did, and counted the request there. The accepted
        key's value is kept in the scope (`CHECKED_KEY`), for the node's own children."""
        c = conn if isinstance(conn, HTTPConnection) else HTTPConnection(conn)
        # only place-name queries are forwarded (kind `search`): a statement on any other
        # surface is ignored, whoever makes it
        forwarded = await self.forward.stated_key(c) \
            if self.forward is not None and kind == "search" else None
        value = forwarded or c.query_params.get("tk") or c.headers.get("x-api-key")
        if not value:
            if principal is None and self.public_requires_key and not (page or self.own_page(c)):
                return Decision(False, 401, "Unauthorized",
                                "Send an API key (tk=...) or sign in.")
            return Decision(True, principal=principal)
        try:
            key = await self.key(value)
        except AuthError as exc:
            return Decision(False, exc.status, exc.title, exc.detail)
        if key is None or key.revoked:
            return Decision(False, 403, "Invalid key", "This API key is unknown or revoked.")
        if not key.owner_active:
            return Decision(False, 403, "Invalid key",
                            "The account that owns this API key is disabled.")
        if forwarded:
            c.scope[CHECKED_KEY] = value
            return Decision(True, principal=principal or key.principal())
        origin = request_origin(c)
        ip = c.client.host if c.client else ""
        if not key.permits(origin, ip):
            return Decision(False, 403, "Key not allowed here",
                            "This key is bound to other origins or addresses.")
        if not self._rate_ok(key):
            return Decision(False, 429, "Too Many Requests",
                            f"Rate limit of {key.rate_per_second} requests per second exceeded.")
        if kind in KINDS:
            limit = key.quota(kind)
            used = await self._used_today(key.key_id, kind)
            over = used >= limit
            if not over and limit - used <= max(NEAR_QUOTA, limit // 20):
                # close to the quota: count in the database now, so every worker agrees
                over = not await anyio.to_thread.run_sync(self._count_exact, key.key_id, kind,
                                                          limit)
            elif not over:
                with self._lock:
                    self._counts[(key.key_id, kind)] = self._counts.get((key.key_id, kind), 0) + 1
            if over:
                return Decision(False, 429, "Quota exceeded",
                                f"The daily {kind} quota of this key ({limit}) "
                                "is used up at this node; it resets at midnight.")
            if time.monotonic() - self._last_flush > FLUSH_SECONDS or \
                    sum(self._counts.values()) > 500:
                await self.flush()
        c.scope[CHECKED_KEY] = value
        # a key acts for its owner: the token's caller if there is one, else the owner by key
        return Decision(True, principal=principal or key.principal())
