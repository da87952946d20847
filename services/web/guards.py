"""Request guards attached to whole route groups of a node (issue 11, items 9, 10 and 14).

- `InputGuard`: NUL bytes and text that is not UTF-8 (invalid, overlong, lone surrogates) in
  the path, the query, form and JSON bodies of the JSON APIs and /ogc are refused with a 400
  problem document, and the attempt is audited (PostgreSQL text can hold neither, so they used
  to end as 500s with nothing recorded).
- `CsrfGuard`: a state-changing request that a cookie authenticates (the node's token cookie,
  the main node's SSO session) must carry the CSRF token (`X-CSRF-Token` header, `csrf_token`
  query parameter or form field; in a multipart form, before the file), or be JSON sent from
  this node's own `Origin`. Requests with
  an `Authorization` header, or without those cookies, cannot be forged by another site.
- `SecureCookies`: every cookie gets `Secure` when the node's public URL is https.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import anyio
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.access import audit
from services.access.rules import CLIENT_AUTHENTICATED
from services.errors import AuthError, problem

LOGGER = logging.getLogger("geoplat.auth")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_API = ("/auth/", "/sso/", "/registry/", "/api/", "/ogc")
CSRF_GROUPS = ("/auth/", "/sso/", "/registry/api/", "/api/", "/ogc/processes/", "/ogc/jobs/")
# OAuth endpoints authenticate the client in the request itself (RFC 6749/7009), never a cookie:
# the routes whose requirement is `client` (services/access/rules.py)
CSRF_EXEMPT = CLIENT_AUTHENTICATED
MAX_INSPECTED = 8 * 1024 * 1024  # larger bodies are the routes' to refuse (they have limits)
ESCAPES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def text_fault(raw: bytes) -> str | None:
    """Why `raw` is not acceptable text (a NUL byte, not UTF-8), or None."""
    if b"\x00" in raw:
        return "a NUL byte"
    try:
        raw.decode("utf-8")  # strict: also refuses overlong forms and encoded surrogates
    except UnicodeDecodeError:
        return "bytes that are not UTF-8"
    return None


def urlencoded_fault(raw: bytes) -> str | None:
    """A fault in any name or value of an `a=b&c=d` string (query or form body)."""
    fault = text_fault(raw)
    if fault:
        return fault
    for part in re.split(rb"[&;]", raw):
        fault = text_fault(unquote_to_bytes(part.replace(b"+", b" ")))
        if fault:
            return fault
    return None


def _bad_string(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_bad_string(k) or _bad_string(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_string(v) for v in value)
    return False


def json_fault(raw: bytes) -> str | None:
    """NUL or a lone surrogate escaped in a JSON document (`"\\u0000"`, `"\\ud800"`)."""
    fault = text_fault(raw)
    if fault or not ESCAPES.search(raw):
        return fault
    try:
        doc = json.loads(raw)
    except ValueError:
        return None  # malformed JSON: the route answers its own 400
    return "an escaped NUL or lone surrogate" if _bad_string(doc) else None


def media_type(scope: Scope) -> str:
    raw = dict(scope.get("headers") or []).get(b"content-type", b"")
    return raw.decode("latin-1").split(";")[0].strip().lower()


def is_json(ctype: str) -> bool:
    return ctype in ("application/json", "application/query-cql-json") or ctype.endswith("+json")


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, unless it grows over MAX_INSPECTED: (what was read, complete)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_INSPECTED:
            return b"".join(chunks), False


MULTIPART_PREFIX = 64 * 1024  # a form's csrf_token comes before its file (our pages put it first)


class _Found(Exception):
    """Stops the multipart parser once the token (or the first file) has been seen."""


async def multipart_token(scope: Scope, receive: Receive) -> tuple[str, bytes, bool]:
    """The `csrf_token` field of a multipart body, read from its beginning only.

    Returns (token or "", what was read, whether that is the whole body): the route reads the
    rest, so an upload is never buffered here. Parsing stops at the token, at the first file
    part, or after MULTIPART_PREFIX bytes.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    raw = dict(scope.get("headers") or []).get(b"content-type", b"")
    _, opts = parse_options_header(raw)
    if b"boundary" not in opts:
        return "", b"", False
    state: dict[str, Any] = {"name": b"", "file": False, "buf": b"", "hname": b"",
                             "hvalue": b"", "disposition": b"", "token": ""}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        if state["hname"].lower() == b"content-disposition":
            state["disposition"] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished() -> None:
        _, params = parse_options_header(state["disposition"])
        if params.get(b"filename") is not None:
            raise _Found  # files come after the token in our forms
        state["name"], state["buf"] = params.get(b"name", b""), b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["buf"] += data[start:end]

    def on_part_end() -> None:
        if state["name"] == b"csrf_token":
            state["token"] = state["buf"].decode("utf-8", "replace")
            raise _Found
        state["disposition"] = b""

    parser = MultipartParser(opts[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    chunks: list[bytes] = []
    size, complete = 0, False
    while size <= MULTIPART_PREFIX:
        message = await receive()
        if message["type"] != "http.request":
            complete = True
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        try:
            parser.write(chunk)
        except _Found:
            complete = not message.get("more_body", False)
            break
        except Exception:  # noqa: BLE001 - a malformed body has no token; the route answers it
            complete = not message.get("more_body", False)
            break
        if not message.get("more_body", False):
            complete = True
            break
    return state["token"], b"".join(chunks), complete


def replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that first gives back what was read, then the rest of the stream."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return again


class InputGuard:
    """400 problem+json (audited) for NUL and non-UTF-8 text on the JSON APIs and /ogc."""

    def __init__(self, app: ASGIApp, db: Any, node_id: str):
        self.app, self.db, self.node_id = app, db, node_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(JSON_API):
            await self.app(scope, receive, send)
            return
        where, fault = "path", text_fault(unquote_to_bytes(scope.get("raw_path") or b""))
        if fault is None:
            where, fault = "query", urlencoded_fault(scope.get("query_string") or b"")
        ctype = media_type(scope)
        if fault is None and scope["method"] in UNSAFE and (
                is_json(ctype) or ctype == "application/x-www-form-urlencoded"):
            body, complete = await read_body(receive)
            receive = replay(body, complete, receive)
            if complete:
                where = "body"
                fault = json_fault(body) if is_json(ctype) else urlencoded_fault(body)
        if fault is None:
            await self.app(scope, receive, send)
            return
        await self._audit(scope, where, fault)
        await problem(400, "Bad request", f"The request {where} contains {fault}; "
                      "text must be UTF-8 without NUL characters.")(scope, receive, send)

    async def _audit(self, scope: Scope, where: str, fault: str) -> None:
        c = HTTPConnection(scope)
        raw_path = (scope.get("raw_path") or scope["path"].encode("utf-8", "replace"))[:500]
        await anyio.to_thread.run_sync(lambda: audit.record(
            self.db, self.node_id, "request.bad_input", ok=False,
            ip=c.client.host if c.client else None, method=scope["method"],
            path=raw_path.decode("latin-1"), where=where, reason=fault,
            query=(scope.get("query_string") or b"")[:500].decode("latin-1"),
            user_agent=c.headers.get("user-agent", "")[:300]))


class CsrfGuard:
    """Cookie-authenticated state changes need the CSRF token, or JSON from our own Origin."""

    def __init__(self, app: ASGIApp, *, own_origin: str, cookies: tuple[str, ...],
                 verifier: Callable[[str], Any], db: Any = None, node_id: str = ""):
        self.app, self.cookies, self.verifier = app, cookies, verifier
        parts = urlsplit(own_origin)
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.db, self.node_id = db, node_id

    def _needs_check(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            return False
        path = scope["path"]
        if not path.startswith(CSRF_GROUPS) or path in CSRF_EXEMPT:
            return False
        c = HTTPConnection(scope)
        if c.headers.get("authorization"):
            return False  # another site cannot make a browser send this header
        return any(c.cookies.get(name) for name in self.cookies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._needs_check(scope):
            await self.app(scope, receive, send)
            return
        c = HTTPConnection(scope)
        token = c.headers.get("x-csrf-token") or c.query_params.get("csrf_token")
        ctype = media_type(scope)
        if not token and ctype == "application/x-www-form-urlencoded":
            body, complete = await read_body(receive)
            receive = replay(body, complete, receive)
            if complete:
                from urllib.parse import parse_qs

                token = (parse_qs(body.decode("utf-8", "replace")).get("csrf_token") or [""])[0]
        elif not token and ctype == "multipart/form-data":
            token, prefix, complete = await multipart_token(scope, receive)
            receive = replay(prefix, complete, receive)
        origin = (c.headers.get("origin") or "").lower()
        ok = False
        if token:
            try:
                self.verifier(scope["path"]).verify(c, token)  # signed, bound to the cookie
                ok = True
            except AuthError:
                ok = False
        elif is_json(ctype) and origin == self.origin:
            ok = True
        if ok:
            await self.app(scope, receive, send)
            return
        if self.db is not None:
            ip = c.client.host if c.client else None
            await anyio.to_thread.run_sync(lambda: audit.record(
                self.db, self.node_id, "csrf.refused", ok=False, ip=ip, method=scope["method"],
                path=scope["path"][:500], origin=origin[:200], content_type=ctype[:100]))
        await problem(403, "CSRF check failed",
                      "A signed-in browser request that changes something must come from this "
                      "site's own pages (send the CSRF token, or JSON from this origin), or use "
                      "a bearer token.")(scope, receive, send)


class SecureCookies:
    """Adds `Secure` to every Set-Cookie when the node's public URL is https."""

    def __init__(self, app: ASGIApp, public_url: str):
        self.app = app
        self.on = urlsplit(public_url).scheme == "https"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.on or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secure_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for k, v in message.get("headers", []):
                    if k.lower() == b"set-cookie" and b"; secure" not in v.lower():
                        v += b"; Secure"
                    headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secure_send)
