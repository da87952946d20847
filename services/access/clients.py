"""This node as an OAuth client of the main node, on Authlib's httpx clients.

Authlib's `AsyncOAuth2Client` / `OAuth2Client` do the protocol: the token request, client
authentication (`client_secret_basic`), PKCE S256, and for the client-credentials grant a new
token `leeway` seconds before the old one expires. They send through the app's one
`httpx.AsyncClient` (the worker thread's one `httpx.Client`): they open no connections of
their own, so timeouts, `trust_env` and the connection pool are the caller's.

`ClientCredentials` (one per OAuth client and app) caches a token per scope: the node's
registrations forwarded to the main node (`register`), API-key lookups (`keys`), place-name
queries forwarded to its children with the key it checked (`forward`,
services/access/forwarding.py), the registry push to the parent (`geoplat`, from the worker
thread: `SyncClientCredentials`).
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` fork and warns when it falls back to httpx, which is what
    # the project runs on; tests/test_auth_clients.py fails if its clients stop being httpx's
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

LEEWAY = 30  # seconds before expiry when a cached token is replaced
TIMEOUT = 5.0


class TokenUnavailable(Exception):
    """No token: the token endpoint refused (an OAuth error, a non-JSON answer) or failed."""


class _NoTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """The Authlib clients send through the app's client; their own transport is never used."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("an OAuth client sent without the app's httpx client")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("an OAuth client sent without the app's httpx client")


class AppOAuth2Client(AsyncOAuth2Client):
    """Authlib's async OAuth 2 client, sending through `http` (the app's client)."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float = TIMEOUT, **kwargs: Any):
        super().__init__(timeout=timeout, trust_env=False, follow_redirects=False,
                         transport=_NoTransport(), **kwargs)
        self.http = http

    async def send(self, request: httpx.Request, *, stream: bool = False, auth: Any = None,
                   follow_redirects: Any = None) -> httpx.Response:
        # the request was built here (timeout extension, client auth); only the sending is shared
        return await self.http.send(request, stream=stream, auth=auth, follow_redirects=False)


class SyncAppOAuth2Client(OAuth2Client):
    """Authlib's sync OAuth 2 client, sending through `http` (a thread's client)."""

    def __init__(self, http: httpx.Client, *, timeout: float = TIMEOUT, **kwargs: Any):
        super().__init__(timeout=timeout, trust_env=False, follow_redirects=False,
                         transport=_NoTransport(), **kwargs)
        self.http = http

    def send(self, request: httpx.Request, *, stream: bool = False, auth: Any = None,
             follow_redirects: Any = None) -> httpx.Response:
        return self.http.send(request, stream=stream, auth=auth, follow_redirects=False)


def _access_token(token: Any) -> str:
    value = token.get("access_token") if isinstance(token, dict) else None
    if not isinstance(value, str) or not value:
        raise TokenUnavailable("the token endpoint answered no access_token")
    return value


class ClientCredentials:
    """Client-credentials access tokens of one OAuth client, one cached token per scope.

    `token(scope)` returns the cached token, or a new one once it is within `leeway` seconds
    of expiry (Authlib's `ensure_active_token`); `forget(scope)` drops it (e.g. after a 401:
    the main node rotated its keys). Errors: `TokenUnavailable` for a refusal by the token
    endpoint, `httpx.HTTPError` when it cannot be reached.
    """

    def __init__(self, http: httpx.AsyncClient, token_url: str, client_id: str,
                 client_secret: str, *, leeway: int = LEEWAY, timeout: float = TIMEOUT):
        self.http, self.token_url = http, token_url
        self.client_id, self.client_secret = client_id, client_secret
        self.leeway, self.timeout = leeway, timeout
        self._clients: dict[str, AppOAuth2Client] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _client(self, scope: str) -> AppOAuth2Client:
        client = self._clients.get(scope)
        if client is None:
            client = self._clients[scope] = AppOAuth2Client(
                self.http, timeout=self.timeout, client_id=self.client_id,
                client_secret=self.client_secret, scope=scope, token_endpoint=self.token_url,
                grant_type="client_credentials", leeway=self.leeway)
        return client

    async def token(self, scope: str) -> str:
        client = self._client(scope)
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:  # concurrent first requests share one token request
            try:
                if not client.token:
                    await client.fetch_token()
                else:
                    await client.ensure_active_token(client.token)
            except (OAuthError, httpx.HTTPStatusError, ValueError) as exc:
                client.token = None
                raise TokenUnavailable(str(exc)) from None
            return _access_token(client.token)

    def granted(self, scope: str) -> frozenset[str]:
        """The scopes the main node granted the cached token of `scope` (none cached: empty)."""
        client = self._clients.get(scope)
        token = client.token if client is not None else None
        value = token.get("scope") if isinstance(token, dict) else None
        return frozenset(value.split()) if isinstance(value, str) else frozenset()

    def forget(self, scope: str) -> None:
        client = self._clients.get(scope)
        if client is not None:
            client.token = None


class SyncClientCredentials:
    """`ClientCredentials` for a thread with a sync `httpx.Client` (the registry worker)."""

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: str,
                 *, leeway: int = LEEWAY, timeout: float = TIMEOUT):
        self.http, self.token_url = http, token_url
        self.client_id, self.client_secret = client_id, client_secret
        self.leeway, self.timeout = leeway, timeout
        self._clients: dict[str, SyncAppOAuth2Client] = {}
        self._lock = threading.Lock()

    def _client(self, scope: str) -> SyncAppOAuth2Client:
        client = self._clients.get(scope)
        if client is None:
            client = self._clients[scope] = SyncAppOAuth2Client(
                self.http, timeout=self.timeout, client_id=self.client_id,
                client_secret=self.client_secret, scope=scope, token_endpoint=self.token_url,
                grant_type="client_credentials", leeway=self.leeway)
        return client

    def token(self, scope: str) -> str:
        with self._lock:
            client = self._client(scope)
            try:
                if not client.token:
                    client.fetch_token()
                else:
                    client.ensure_active_token(client.token)
            except (OAuthError, httpx.HTTPStatusError, ValueError) as exc:
                client.token = None
                raise TokenUnavailable(str(exc)) from None
            return _access_token(client.token)

    def forget(self, scope: str) -> None:
        with self._lock:
            client = self._clients.get(scope)
            if client is not None:
                client.token = None
