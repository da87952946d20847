"""The SDK's browser acceptance (issue 14): Debian's chromium (tests/support/browser_support.py)
against the shared federation; pages come from the nodes' own /sdk/examples, or from a loopback
server of the test for another origin. Helpers: tests/support/sdk_pages.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from browser_support import browser  # noqa: F401  (a fixture: pytest finds it here)
from tianditu_support import door_plates, service_halls

from nodes import settings as settings_mod
from services.provision import demo_file


@pytest.fixture(scope="session")
def dev_key(federation: settings_mod.FederationSettings, main_db: Any) -> str:
    """A developer's own browser key for every node's origin: it acts for its owner (reaches
    `registered` layers: Hangzhou's door plates), unlike the public-only key in the nodes'
    pages; the pages take it as `?tk=`."""
    from services.access import apikeys
    from services.sso import accounts

    user = accounts.create(main_db, "sdk_own_key_dev", "sdk-own-key-password-1",
                           roles=["developer"])
    key, _ = apikeys.create_key(main_db, "test", user.id, "sdk tests", "browser",
                                [n.base_url for n in federation.nodes], actor="test")
    return key


@pytest.fixture(scope="module")
def halls() -> Any:
    """The sample's service halls (the Hangzhou `poi` layer)."""
    return service_halls()


@pytest.fixture(scope="module")
def plates() -> Any:
    """The sample's door plates (the Hangzhou `addresses` layer)."""
    return door_plates()


@pytest.fixture(scope="module")
def demo(federation: settings_mod.FederationSettings) -> dict[str, str]:
    """The demo developer `geoplat up` made: its server and browser keys."""
    return json.loads(demo_file(federation).read_text(encoding="utf-8"))


class _Page(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_origin() -> Iterator[Any]:
    """A loopback HTTP server of the test (another origin than any node's) serving one page:
    call it with the HTML, get the page's URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(html: str) -> str:
        handler = type("Page", (_Page,), {"html": html.encode()})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()
