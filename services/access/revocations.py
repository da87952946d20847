"""Revoking access tokens before they expire, across the federation.

Access tokens are JWTs checked locally at every node, so revoking one needs a list the nodes
can consult. The main node keeps `auth.token_revocations`: a single token (its `jti`, from
RFC 7009 revocation of an access token) or every token of a user issued before a moment
(sign-out at the main node, a disabled account, a removed role). Entries live only until the
tokens they cover have expired. `GET /sso/revocations?after=<id>` lists them (like a CRL it
names no secret: token ids, user ids, and `key:<id>` for revoked API keys, whose ids are the
first 8 of their 32 hex digits). Each node's `RevocationList` polls it every
`POLL_SECONDS` in the background (never on a request's path) and the token validator refuses
what it covers. If the main node is unreachable the list keeps what it had, says so in the
node's `/health` (degraded), and once its copy is older than `max_age` seconds (the node's
`auth.revocation_max_age`) tokens are refused until a poll succeeds again (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx

from services.db import Database

LOGGER = logging.getLogger("geoplat.auth")
POLL_SECONDS = 3.0


def issued_at(claims: dict[str, Any]) -> float:
    """When a token was issued: `iat_ms` (our tokens, services/sso/provider.py) tells a sign-in
    from a sign-out in the same second; `iat` otherwise."""
    ms = claims.get("iat_ms")
    if isinstance(ms, int) and not isinstance(ms, bool):
        return ms / 1000
    return float(claims.get("iat", 0))


def revoke_token(db: Database, jti: str, exp: float) -> None:
    db.execute("INSERT INTO auth.token_revocations (jti, expires_at) VALUES "
               "(%s, to_timestamp(%s))", (jti, exp))


def revoke_subject(db: Database, sub: str | int, ttl_seconds: float) -> None:
    """Every access token of `sub` issued until now (they live at most `ttl_seconds`)."""
    now = time.time()
    db.execute("INSERT INTO auth.token_revocations (sub, not_before, expires_at) VALUES "
               "(%s, %s, to_timestamp(%s))", (str(sub), now, now + ttl_seconds + 60))


def listing(db: Database, after: int, limit: int = 5000) -> list[dict[str, Any]]:
    """Unexpired entries with an id above `after`, oldest first."""
    return db.all("SELECT id, jti, sub, not_before, extract(epoch from expires_at)::float8 AS exp "
                  "FROM auth.token_revocations WHERE id > %s AND expires_at > now() "
                  "ORDER BY id LIMIT %s", (after, limit))


class RevocationList:
    """A node's copy of the main node's revocations, refreshed in the background."""

    def __init__(self, url: str, http: httpx.AsyncClient, max_age: float = 300.0):
        self.url, self.max_age = url, max_age
        self.http = http  # the app's client
        self.last_ok: float | None = None  # monotonic time of the last successful poll
        self.started = time.monotonic()
        self.failure = ""  # why the last poll failed ("" after a success)
        self.after = 0
        self.jti: dict[str, float] = {}          # jti -> exp
        self.not_before: dict[str, tuple[float, float]] = {}  # sub -> (issued before, exp)
        self._polled = 0.0
        self._task: asyncio.Task | None = None

    def age(self) -> float:
        """Seconds since the copy was last known current (since start before the first poll)."""
        return time.monotonic() - (self.last_ok if self.last_ok is not None else self.started)

    async def fresh(self) -> bool:
        """Current enough to trust; False means the node must refuse tokens (fail closed).

        Only a copy older than `max_age` costs the request a poll (a worker that was idle for
        a while, or an outage: then at most one try per second).
        """
        if self.age() <= self.max_age:
            return True
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):  # poll() logs; a timeout is a failure too
                await asyncio.wait_for(asyncio.shield(task), 4.0)
        elif time.monotonic() - self._polled >= 1.0:
            self._polled = time.monotonic()
            await self.poll()
        return self.age() <= self.max_age

    def status(self) -> dict[str, Any]:
        """For /health: ok, degraded (the last poll failed), or down (older than max_age)."""
        age = round(self.age(), 1)
        if self.failure and age > self.max_age:
            return {"status": "down", "age_s": age, "max_age_s": self.max_age,
                    "reason": f"revocation list older than {self.max_age:g} s "
                              f"({self.failure}); tokens are refused"}
        if self.failure:
            return {"status": "degraded", "age_s": age, "max_age_s": self.max_age,
                    "reason": f"revocation list not refreshed: {self.failure}"}
        return {"status": "ok", "age_s": age, "max_age_s": self.max_age}

    def covers(self, claims: dict[str, Any]) -> bool:
        self._maybe_poll()
        jti = claims.get("jti")
        if isinstance(jti, str) and jti in self.jti:
            return True
        nb = self.not_before.get(str(claims.get("sub")))
        return nb is not None and issued_at(claims) <= nb[0]

    def nudge(self) -> None:
        """Poll soon if the copy is due (traffic that validates no token, e.g. API keys whose
        owner may have been disabled, keeps the list current too)."""
        self._maybe_poll()

    async def current(self, within: float) -> None:
        """Make sure the copy is at most `within` seconds old if the main node answers (an idle
        worker's first API key request waits for one poll; steady traffic never does, the
        background polls keep the copy younger). A failing poll is only logged."""
        if self.age() <= within:
            return
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 3.0)
        elif time.monotonic() - self._polled >= 1.0:
            self._polled = time.monotonic()
            await self.poll()

    def _maybe_poll(self) -> None:
        if time.monotonic() - self._polled < POLL_SECONDS or \
                (self._task is not None and not self._task.done()):
            return
        self._polled = time.monotonic()
        try:
            self._task = asyncio.get_running_loop().create_task(self.poll())
        except RuntimeError:  # no loop (a synchronous caller): next time
            pass

    async def poll(self) -> None:
        try:
            while True:
                r = await self.http.get(self.url, params={"after": self.after}, timeout=3.0)
                r.raise_for_status()
                rows = r.json()["revocations"]
                self.apply(rows)
                if len(rows) < 5000:
                    break
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            reason = f"main node unreachable ({type(exc).__name__})"
            if not self.failure:  # once per outage, not every 3 s
                LOGGER.warning("revocation list not refreshed from %s: %s", self.url, reason)
            self.failure = reason
            return
        if self.failure:
            LOGGER.warning("revocation list refreshed again from %s", self.url)
        self.failure, self.last_ok = "", time.monotonic()

    def apply(self, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        for row in rows:
            self.after = max(self.after, int(row["id"]))
            if row.get("jti"):
                self.jti[str(row["jti"])] = float(row["exp"])
            elif row.get("sub") is not None and row.get("not_before") is not None:
                sub, old = str(row["sub"]), self.not_before.get(str(row["sub"]), (0.0, 0.0))
                self.not_before[sub] = (max(old[0], float(row["not_before"])),
                                        max(old[1], float(row["exp"])))
        self.jti = {k: v for k, v in self.jti.items() if v > now}
        self.not_before = {k: v for k, v in self.not_before.items() if v[1] > now}
