"""`NodeCredential`, the forwarding node's `forward` token (services/access/forwarding.py),
against real token endpoints on loopback: cached, never holding a query up beyond its budget
(a slow token request goes on in the background for the next query), and after a refusal, an
outage or a token without the `forward` scope, quiet for a while (the key then travels as `tk`)
instead of asking again on every query."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest
from federations import free_port

from services.access.clients import ClientCredentials
from services.access.forwarding import FORWARD_SCOPE, NodeCredential


@pytest.fixture
def endpoint() -> Iterator[dict]:
    """A token endpoint whose behaviour the test sets: `mode` ok / slow / refuse / no-scope."""
    state: dict = {"mode": "ok", "requests": [], "n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            state["requests"].append(form)
            state["n"] += 1
            mode = state["mode"]
            if mode == "slow":
                time.sleep(1.0)
            if mode == "refuse":
                status, body = 401, {"error": "invalid_client"}
            else:
                status, body = 200, {
                    "access_token": f"token-{state['n']}", "token_type": "Bearer",
                    "expires_in": 300, "scope": "" if mode == "no-scope" else FORWARD_SCOPE}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/sso/token"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, steps) -> list:
    async def scenario() -> list:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            cred = NodeCredential(ClientCredentials(http, url, "node-zhejiang", "secret"))
            return await steps(cred)
    return asyncio.run(scenario())


def test_fetched_once_then_cached(endpoint) -> None:
    async def steps(cred: NodeCredential) -> list:
        return [await cred.token(1.0) for _ in range(5)]

    assert run(endpoint["url"], steps) == ["token-1"] * 5
    assert len(endpoint["requests"]) == 1
    assert endpoint["requests"][0]["scope"] == [FORWARD_SCOPE]
    assert endpoint["requests"][0]["grant_type"] == ["client_credentials"]


def test_a_slow_token_request_never_holds_a_query_beyond_its_budget(endpoint) -> None:
    endpoint["mode"] = "slow"

    async def steps(cred: NodeCredential) -> list:
        t0 = time.monotonic()
        first = await cred.token(0.1)
        waited = time.monotonic() - t0
        later = await cred.token(3.0)  # the same request, still running, is awaited
        return [first, waited, later, await cred.token(0.1)]

    first, waited, later, cached = run(endpoint["url"], steps)
    assert first is None and waited < 0.6
    assert later == cached == "token-1"
    assert len(endpoint["requests"]) == 1


@pytest.mark.parametrize("mode", ["refuse", "no-scope", "down"])
def test_after_a_failure_no_token_is_asked_for_a_while(endpoint, mode) -> None:
    url = endpoint["url"] if mode != "down" else f"http://127.0.0.1:{free_port()}/sso/token"
    endpoint["mode"] = mode

    async def steps(cred: NodeCredential) -> list:
        out = [await cred.token(2.0)]
        endpoint["mode"] = "ok"  # the endpoint works again, but the node stays quiet
        t0 = time.monotonic()
        out += [await cred.token(2.0) for _ in range(3)]
        out.append(time.monotonic() - t0)
        return out

    *tokens, elapsed = run(url, steps)
    assert tokens == [None] * 4
    assert elapsed < 0.1  # no request was made for them
    assert len(endpoint["requests"]) == (0 if mode == "down" else 1)


def test_no_budget_asks_nothing(endpoint) -> None:
    async def steps(cred: NodeCredential) -> list:
        return [await cred.token(0)]

    assert run(endpoint["url"], steps) == [None]
    assert endpoint["requests"] == []
