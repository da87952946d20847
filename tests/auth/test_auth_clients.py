"""services.access.clients: client-credentials tokens on Authlib's clients, sent through the
caller's httpx client (a real token endpoint on loopback, real httpx clients)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from waiting import wait_for

from nodes import supervisor
from services.access.clients import (
    AsyncOAuth2Client,
    ClientCredentials,
    OAuth2Client,
    SyncClientCredentials,
    TokenUnavailable,
)

ROOT = Path(__file__).resolve().parents[2]

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
                             "expires_in": 30 if scope == "short" else 3600, "scope": scope})


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
    wait_for(lambda: server.started, 30, "token endpoint started", interval=0.05)
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
            # 30 s lifetime, 30 s leeway: less than 30 s are left at once, so it is renewed
            got += [await cc.token("short")]
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


# drives a real node app's ASGI lifespan (startup, then shutdown) in a process of its own
# (pygeoapi reads its config once per process) and reports what the lifespan left behind
LIFESPAN = r"""
import asyncio, json, sys, threading
from starlette.applications import Starlette
from nodes.asgi import create_app

app = create_app(sys.argv[1])
inner = app
while not isinstance(inner, Starlette):
    inner = inner.app  # the middlewares around the node's router
services = inner.state.services

async def main():
    queue, seen = asyncio.Queue(), []
    await queue.put({"type": "lifespan.startup"})

    async def send(message):
        seen.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            seen.append("worker alive" if services.registry_worker.is_alive() else "no worker")
            await queue.put({"type": "lifespan.shutdown"})

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send)
    return seen

seen = asyncio.run(main())
print("LIFE " + json.dumps({"seen": seen, "http_closed": services.http.is_closed,
                            "worker_alive": services.registry_worker.is_alive()}), flush=True)
"""


def test_the_apps_http_client_is_closed_at_shutdown(federation) -> None:
    """The node app's one HTTP client and its registry worker live exactly as long as the
    app's lifespan (nodes/container.py NodeServices)."""
    node_dir = supervisor.node_dir(federation, federation.node("hangzhou"))
    out = subprocess.run([sys.executable, "-c", LIFESPAN, str(node_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("LIFE ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    found = json.loads(lines[-1][5:])
    assert found["seen"] == ["lifespan.startup.complete", "worker alive",
                             "lifespan.shutdown.complete"]
    assert found["http_closed"] is True and found["worker_alive"] is False
