"""The caller's `tk` in every link of the OGC API JSON documents it fetched with one (issue 11).

pygeoapi builds links from `server.url` and keeps the query only on paging links, so a client
given `…/ogc?tk=KEY` (QGIS, GDAL's OAPIF driver) that follows the landing page's or a
collection's links loses the key and gets 401. `KeyLinks` wraps the node app: on a 200 JSON
answer under `/ogc` to a request with `tk=` (which the access check has accepted, or the
answer would be 401/403), every `href` pointing at this node gets the same `tk`. HTML pages
are the node's own (they need no key) and are left alone.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiles.capabilities import accepted_tk, with_tk
from tiles.held import HeldResponse

JSON_TYPES = ("application/json", "application/geo+json", "application/ld+json",
              "application/schema+json", "application/vnd.oai.openapi+json")
MAX_BODY = 32 * 1024 * 1024  # a larger answer is passed on as it is


def add_tk(doc: Any, host: str, tk: str) -> Any:
    """`doc` with `tk` added to every `href` of this host that lacks one."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k == "href" and isinstance(v, str):
                u = urlsplit(v)
                if u.netloc.lower() == host and "tk" not in dict(parse_qsl(u.query)):
                    v = with_tk(v, tk)
                out[k] = v
            else:
                out[k] = add_tk(v, host, tk)
        return out
    if isinstance(doc, list):
        return [add_tk(v, host, tk) for v in doc]
    return doc


class KeyLinks:
    """ASGI middleware: `tk` into the links of `/ogc` JSON answers (see the module)."""

    def __init__(self, app: ASGIApp, public_host: str):
        self.app, self.host = app, public_host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tk = accepted_tk(scope) if scope["type"] == "http" and \
            scope["path"].startswith("/ogc") else None
        if tk is None:
            await self.app(scope, receive, send)
            return
        held: HeldResponse | None = None

        async def rewriting(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] == 200 and \
                        ctype.split(b";")[0].strip().decode("latin-1") in JSON_TYPES:
                    held = HeldResponse(message)
                    return
            elif message["type"] == "http.response.body" and held is not None:
                body = held.add(message)
                if body is None:
                    return
                if len(body) <= MAX_BODY:
                    try:
                        body = json.dumps(add_tk(json.loads(body), self.host, tk),
                                          ensure_ascii=False).encode()
                    except ValueError:
                        pass  # not JSON after all: sent as it came
                await held.send(send, body, drop=(b"etag", b"cache-control"),  # it holds the key
                                extra=[(b"cache-control", b"private, no-store")])
                return
            await send(message)

        await self.app(scope, receive, rewriting)
