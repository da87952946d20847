"""Which answer `/` gives (services/web/portal.py): the portal page to a browser, the landing
JSON to scripts, whatever the order and weights of the Accept header say."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from services.web.portal import wants_html


def request(accept: str | None, query: str = "") -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "query_string": query.encode()})


@pytest.mark.parametrize(("accept", "query", "html"), [
    # browsers
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", True),  # Chromium
    ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8", "", True),
    ("application/xhtml+xml", "", True),
    ("TEXT/HTML", "", True),
    # scripts
    (None, "", False), ("", "", False), ("*/*", "", False), ("application/json", "", False),
    ("application/geo+json", "", False), ("application/json, text/html", "", False),
    ("text/html;q=0.5, application/json", "", False),
    ("application/json;q=0.1, text/html", "", True),
    ("text/html;q=0", "", False), ("text/html;q=abc", "", False), ("text/*", "", False),
    ("text/html," + "x" * 2000, "", False),  # too long to weigh: the JSON
    # ?f= wins over the header
    ("text/html", "f=json", False), ("application/json", "f=html", True),
    (None, "f=HTML", True), ("text/html", "f=xml", False),
])
def test_wants_html(accept: str | None, query: str, html: bool) -> None:
    assert wants_html(request(accept, query)) is html
