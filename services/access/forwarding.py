"""A node forwarding a caller's query to its children, with the developer key it has checked.

A node that fans a place-name query out to its children (services/places/federation.py) has
already checked the caller's key: its origin or IP binding against the caller, its rate, and
its `search` quota, counted once. Sending the key to the children as `tk` would make each of
them check it again: the quota counted at every node that answers, a server key needing to
allow the forwarding node's address, a browser key's origin check seeing no Origin.

So the parent proves itself and states the key:

- `X-Geoplat-Node-Token`: the parent's own client-credentials access token from the main node's
  SSO, scope `forward` only (a token that could do nothing else if a child replayed it:
  registrations, key lookups and registry pushes each need their own scope), fetched lazily and
  cached (`NodeCredential`, on `ClientCredentials`);
- `X-Geoplat-Forwarded-Key`: the key's value. The value, not the key id: the child looks the
  record up itself as for a direct key (cached by hash; from the main node), so it refuses a
  revoked key or a disabled owner's key and learns the owner from the main node rather than
  from the parent. The value is what `tk` carried to the children before; in a header it stays
  out of the children's query strings and logs.

The child (`ForwardTrust`) trusts the statement only with a valid token of its own parent:
signature and issuer/audience against the main node's cached JWKS (no call per request, as
services/access/tokens.py), `gty=client_credentials`, client `node-<parent id>` (the only node
that forwards to it), scope `forward`, and only on the place-name routes (kind `search`: no
other request is forwarded). Then the key acts for its owner at `registered` level as a direct
key does, but its quota, rate and origin/IP binding are not applied again. Without
such a token the header is ignored: a caller cannot state a key it does not hold, or have a
node launder one (a node forwards only the key its own check accepted, `CHECKED_KEY`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import httpx
from starlette.requests import HTTPConnection

from services.access.clients import ClientCredentials, TokenUnavailable
from services.errors import AuthError

LOGGER = logging.getLogger("geoplat.auth")

FORWARD_SCOPE = "forward"
NODE_TOKEN_HEADER = "X-Geoplat-Node-Token"
FORWARDED_KEY_HEADER = "X-Geoplat-Forwarded-Key"
# scope key: the value of the developer key this request's check accepted (direct or forwarded)
CHECKED_KEY = "geoplat.checked_key"
KEY_VALUE = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")  # key values are hex; nothing odd is looked up
MAX_TOKEN = 8192
RETRY_SECONDS = 30.0  # after a failed token request, forward the old way (`tk`) this long


class ForwardTrust:
    """At a child: the key its parent states it has checked, if the request proves it comes
    from the parent (`validator`: the node's TokenValidator; `parent_id`: None at the main
    node, which has no parent and so trusts no statement)."""

    def __init__(self, validator: Any, parent_id: str | None):
        self.validator, self.parent_id = validator, parent_id

    async def stated_key(self, conn: HTTPConnection) -> str | None:
        """The forwarded key's value; None when the request states none or does not carry a
        valid `forward` token of this node's parent (the statement is then ignored)."""
        if self.parent_id is None:
            return None
        stated = conn.headers.get(FORWARDED_KEY_HEADER)
        token = conn.headers.get(NODE_TOKEN_HEADER)
        if not stated or not token or len(token) > MAX_TOKEN or not KEY_VALUE.match(stated):
            return None
        try:
            p = await self.validator.validate(token.strip())
        except AuthError:
            return None  # forged, expired, revoked or unverifiable: as if no key was sent
        claims = p.claims
        if (p.is_user or claims.get("gty") != "client_credentials"
                or p.client_id != f"node-{self.parent_id}"
                or FORWARD_SCOPE not in str(claims.get("scope", "")).split()):
            return None
        return stated


class NodeCredential:
    """At a parent: its `forward` token for the children, or None (then the key travels as
    `tk`, checked again by each child, as before).

    Fetched on first use and cached by `ClientCredentials` (renewed 30 s before expiry). The
    request waits at most `budget` seconds for a token request: one still running goes on in
    the background for the next query. After a refusal or an unreachable main node no token is
    asked for `RETRY_SECONDS`, so an outage costs no query any time.
    """

    def __init__(self, credentials: ClientCredentials):
        self.credentials = credentials
        self._task: asyncio.Task | None = None
        self._quiet_until = 0.0

    async def token(self, budget: float) -> str | None:
        if time.monotonic() < self._quiet_until or budget <= 0:
            return None
        task = self._task
        if task is None or task.done():
            task = self._task = asyncio.ensure_future(self._fetch())
        try:
            return await asyncio.wait_for(asyncio.shield(task), budget)
        except TimeoutError:
            return None

    async def _fetch(self) -> str | None:
        try:
            token = await self.credentials.token(FORWARD_SCOPE)
        except (TokenUnavailable, httpx.HTTPError) as exc:
            self._failed(f"no {FORWARD_SCOPE} token from the main node ({exc})")
            return None
        if FORWARD_SCOPE not in self.credentials.granted(FORWARD_SCOPE):
            # a node client registered before the scope existed: registering again adds it
            self.credentials.forget(FORWARD_SCOPE)
            self._failed(f"the main node grants this node no {FORWARD_SCOPE!r} scope")
            return None
        return token

    def _failed(self, why: str) -> None:
        LOGGER.warning("forwarding keys to child nodes as tk for %.0f s: %s", RETRY_SECONDS, why)
        self._quiet_until = time.monotonic() + RETRY_SECONDS

    def forget(self) -> None:
        """Drop the cached token (a child refused it)."""
        self.credentials.forget(FORWARD_SCOPE)
