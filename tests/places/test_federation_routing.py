"""services.places.federation: which children a query concerns, and the fan-out's deadline
(real HTTP servers on loopback: one answers, one hangs past the deadline, one is down)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.access.forwarding import FORWARDED_KEY_HEADER, NODE_TOKEN_HEADER
from services.places.federation import (
    DEADLINE_HEADER,
    Child,
    Fanout,
    credentials,
    deadline_of,
    prefix,
)

ZJ = Child("zhejiang", "http://zj", (118.0, 27.0, 123.3, 31.5), ("330000", "330100"))
HZ = Child("hangzhou", "http://hz", (118.34, 29.18, 120.73, 30.57), ("330100",))


def test_prefix_keeps_the_significant_digits() -> None:
    assert [prefix(c) for c in ("330000", "330100", "330102", "330102001")] == \
        ["33", "3301", "330102", "330102001"]


@pytest.mark.parametrize(("code", "zj", "hz"), [
    ("330102", True, True),        # 上城区: in Hangzhou, so in Zhejiang
    ("156330102", True, True),     # Tianditu's 9-digit form
    ("330102001", True, True),     # a township
    ("330200", True, False),       # 宁波市
    ("330000", True, True),        # the province concerns its cities too
    ("110000", False, False),      # 北京
    (None, False, False),
])
def test_covers_code(code, zj, hz) -> None:
    assert (ZJ.covers_code(code), HZ.covers_code(code)) == (zj, hz)


def test_covers_point_and_bbox() -> None:
    assert HZ.covers_point(120.21, 30.25) and not HZ.covers_point(121.5, 29.9)
    assert HZ.covers_bbox((120.7, 30.5, 121.0, 31.0)) and not HZ.covers_bbox((121, 29, 122, 30))


def test_deadline_shrinks_down_the_tree() -> None:
    assert deadline_of({}) == pytest.approx(2.2)
    assert deadline_of({DEADLINE_HEADER.lower(): "1000"}) == pytest.approx(0.7)
    assert deadline_of({DEADLINE_HEADER.lower(): "99999"}) == pytest.approx(2.2)  # never more
    assert deadline_of({DEADLINE_HEADER.lower(): "junk"}) == pytest.approx(2.2)
    assert deadline_of({DEADLINE_HEADER.lower(): "100"}) == 0.0


def test_credentials_travel_with_the_question() -> None:
    caller = {"authorization": "Bearer abc", "origin": "https://portal.example.cn"}
    # the key this node checked, stated beside this node's own token (no Origin needed)
    assert credentials(caller, None, "k1", "node-token") == (
        {"Authorization": "Bearer abc", NODE_TOKEN_HEADER: "node-token",
         FORWARDED_KEY_HEADER: "k1"}, {})
    # without a node token: as `tk`, with the caller's Origin for a browser key's binding
    assert credentials(caller, None, "k1") == \
        ({"Authorization": "Bearer abc", "origin": "https://portal.example.cn"}, {"tk": "k1"})
    assert credentials({}, "from-cookie", None) == ({"Authorization": "Bearer from-cookie"}, {})
    assert credentials({"authorization": "Basic x"}, None, None) == ({}, {})


@pytest.fixture
def servers() -> Iterator[dict[str, str]]:
    release = threading.Event()
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            if self.server.server_address[1] == slow.server_address[1]:
                release.wait(10)
            body = json.dumps({"type": "FeatureCollection", "features": [],
                               "partial": ["grandchild"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    fast = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    slow = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down_port = s.getsockname()[1]  # closed again: nothing listens there
    threads = [threading.Thread(target=srv.serve_forever, daemon=True) for srv in (fast, slow)]
    for t in threads:
        t.start()
    try:
        yield {"fast": f"http://127.0.0.1:{fast.server_address[1]}",
               "slow": f"http://127.0.0.1:{slow.server_address[1]}",
               "down": f"http://127.0.0.1:{down_port}", "seen": seen}  # type: ignore[dict-item]
    finally:
        release.set()
        for srv in (fast, slow):
            srv.shutdown()
            srv.server_close()


def test_fanout_answers_within_the_deadline_and_names_who_did_not(servers) -> None:
    kids = [Child(n, servers[n], None, ()) for n in ("fast", "slow", "down")]

    async def run():
        async with httpx.AsyncClient() as http:
            t0 = time.monotonic()
            answers = await Fanout(kids, http).ask(kids, "/api/places/geocode", {"address": "x"},
                                                   {"Authorization": "Bearer t"}, 0.8)
            return answers, time.monotonic() - t0

    answers, elapsed = asyncio.run(run())
    assert set(answers.bodies) == {"fast"}
    assert set(answers.partial) == {"slow", "down", "grandchild"}
    assert elapsed < 1.5
    sent = [h for h in servers["seen"] if h.get("Authorization") == "Bearer t"]
    assert sent and all(h[DEADLINE_HEADER] == "800" for h in sent)


def test_no_time_left_asks_nobody(servers) -> None:
    kids = [Child("fast", servers["fast"], None, ())]

    async def run():
        async with httpx.AsyncClient() as http:
            return await Fanout(kids, http).ask(kids, "/x", {}, {}, 0.05)

    answers = asyncio.run(run())
    assert answers.bodies == {} and answers.partial == ("fast",)
    assert servers["seen"] == []
