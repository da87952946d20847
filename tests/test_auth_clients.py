"""services.access.clients: client-credentials tokens on Authlib's clients, sent through the
caller's httpx client (a real token endpoint on loopback, real httpx clients)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.access.clients import (
    AsyncOAuth2Client,
    ClientCredentials,
    OAuth2Client,
    SyncClientCredentials,
    TokenUnavailable,
)
from services.access.install import ClosesHttp

SECRET = "s3cret-value"


class TokenEndpoint:
    """Issues numbered tokens; `expires_in` per scope; counts requests and what they sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.requests.append({**{k: str(v) for k, v in form.items()},
                              "authorization": request.headers.get("authorization", "")})
        expected = httpx.BasicAuth("node-test", SECRET)._auth_header
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        scope = form.get("scope")
        if scope == "refused":
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        if scope == "broken":
            return Response("upstream down", status_code=502)
        return JSONResponse({"access_token": f"token-{len(self.requests)}", "token_type": "Bearer",
                             "expires_in": 31 if scope == "short" else 3600, "scope": scope})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[TokenEndpoint, str]]:
    issued = TokenEndpoint()
    app = Starlette(routes=[Route("/token", issued.token, methods=["POST"])])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "token endpoint did not start"
        time.sleep(0.05)
    yield issued, f"http://127.0.0.1:{port}/token"
    server.should_exit = True
    thread.join(timeout=10)


def test_authlib_clients_are_httpx_clients() -> None:
    """Our clients send Authlib's requests through an httpx client: Authlib must build httpx's
    (Authlib 1.9 switches to the `httpx2` fork when that is installed)."""
    assert issubclass(AsyncOAuth2Client, httpx.AsyncClient)
    assert issubclass(OAuth2Client, httpx.Client)


def test_async_tokens_cached_per_scope_renewed_before_expiry(endpoint) -> None:
    issued, url = endpoint
    issued.requests.clear()

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            cc = ClientCredentials(http, url, "node-test", SECRET)
            got = [await cc.token("register"), await cc.token("register"), await cc.token("keys")]
            # 31 s lifetime, 30 s leeway: renewed once less than 30 s are left
            got += [await cc.token("short")]
            await asyncio.sleep(1.1)
            got += [await cc.token("short")]
            cc.forget("register")
            got += [await cc.token("register")]
            concurrent = await asyncio.gather(*(cc.token("together") for _ in range(5)))
            assert len(set(concurrent)) == 1
            return got

    got = asyncio.run(scenario())
    assert got[0] == got[1] != got[2]
    assert got[3] != got[4]
    assert got[5] not in got[:5]
    scopes = [r["scope"] for r in issued.requests]
    assert scopes == ["register", "keys", "short", "short", "register", "together"]
    assert all(r["grant_type"] == "client_credentials" for r in issued.requests)
    assert all(r["authorization"].startswith("Basic ") for r in issued.requests)


def test_async_refusals_and_outages(endpoint) -> None:
    _issued, url = endpoint

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            with pytest.raises(TokenUnavailable, match="invalid_scope"):
                await ClientCredentials(http, url, "node-test", SECRET).token("refused")
            with pytest.raises(TokenUnavailable, match="invalid_client"):
                await ClientCredentials(http, url, "node-test", "wrong").token("register")
            with pytest.raises(TokenUnavailable):
                await ClientCredentials(http, url, "node-test", SECRET).token("broken")
            dead = f"http://127.0.0.1:{_free_port()}/token"
            with pytest.raises(httpx.ConnectError):
                await ClientCredentials(http, dead, "node-test", SECRET).token("register")

    asyncio.run(scenario())


def test_sync_tokens_for_the_worker_thread(endpoint) -> None:
    issued, url = endpoint
    issued.requests.clear()
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        cc = SyncClientCredentials(http, url, "node-test", SECRET)
        first = cc.token("geoplat")
        assert cc.token("geoplat") == first
        cc.forget("geoplat")
        assert cc.token("geoplat") != first
        with pytest.raises(TokenUnavailable, match="invalid_scope"):
            cc.token("refused")
    assert [r["scope"] for r in issued.requests] == ["geoplat", "geoplat", "refused"]


def test_the_apps_http_client_is_closed_at_shutdown() -> None:
    """install_auth's client is closed once the server has shut the app down (ClosesHttp)."""

    async def hello(request: Request) -> Response:
        return Response("ok")

    http = httpx.AsyncClient(timeout=5.0)
    app = ClosesHttp(Starlette(routes=[Route("/", hello)]), http)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    assert not http.is_closed
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive() and http.is_closed
