"""What keeps a node's HTML pages from running anyone else's script.

- `script_json` (services/web/scriptsafe.py, re-exported here): the one encoder for values
  written into a `<script>` (JSON with `<`, `>`, `&`, `'`, U+2028 and U+2029 as `\\u` escapes, so
  no value can close the script, open a comment or end a line). pygeoapi's templates get it
  as `script_json` and as their own `to_json` (nodes/templates.py `install_page_rendering`).
- `SecurityHeadersMiddleware`: every response gets `X-Content-Type-Options` and
  `Referrer-Policy`; every HTML response a Content-Security-Policy with a fresh nonce per
  response (inline scripts run only with that nonce) and `X-Frame-Options`.

pygeoapi renders in an executor thread that never sees the request, so its templates write a
per-process secret marker (`csp_nonce`) that this middleware replaces with the response's
nonce. Our own Starlette pages read the nonce from `scope[NONCE_SCOPE_KEY]`.
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.web.portal import ORIGINS_SCOPE_KEY  # a page's other nodes (connect/img-src)
from services.web.scriptsafe import script_json

__all__ = ["NONCE_MARKER", "NONCE_SCOPE_KEY", "SecurityHeadersMiddleware", "script_json"]

NONCE_SCOPE_KEY = "geoplat.csp_nonce"
# never sent to anyone: each response carries its own nonce in its place. Marker and nonce
# have the same length, so the body's Content-Length stays right (HEAD included).
NONCE_MARKER = secrets.token_hex(16)


def content_security_policy(nonce: str, origins: tuple[str, ...] = ()) -> str:
    # style-src keeps 'unsafe-inline': pygeoapi's pages and Leaflet's popups use style
    # attributes, and styles cannot run script. Scripts: our origin, or this response's nonce.
    extra = "".join(f" {o}" for o in origins if ORIGIN.fullmatch(o))
    return ("default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{extra}; "
            "font-src 'self' data:; "
            f"connect-src 'self'{extra}; "
            "object-src 'none'; "
            "base-uri 'self'; "
            "frame-ancestors 'self'")


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")  # scheme://host[:port], no more

ALWAYS = [(b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"strict-origin-when-cross-origin")]
ALWAYS_NAMES = {name for name, _ in ALWAYS}
HTML_ONLY = {b"content-security-policy", b"x-frame-options"}


class SecurityHeadersMiddleware:
    """Security headers on every response; CSP with a per-response nonce on HTML."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_hex(16)
        scope[NONCE_SCOPE_KEY] = nonce
        marker, value = NONCE_MARKER.encode(), nonce.encode()
        start: Message | None = None
        chunks: list[bytes] = []

        async def secured_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in ALWAYS_NAMES]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if not ctype.lower().startswith(b"text/html"):
                    await send({**message, "headers": headers + ALWAYS})
                    return
                # one policy for every page, whatever the page itself said
                headers = [(k, v) for k, v in headers if k.lower() not in HTML_ONLY] + ALWAYS + [
                    (b"content-security-policy", content_security_policy(
                        nonce, tuple(scope.get(ORIGINS_SCOPE_KEY, ()))).encode()),
                    (b"x-frame-options", b"SAMEORIGIN")]
                message = {**message, "headers": headers}
                if any(k.lower() == b"content-encoding" for k, _ in headers):
                    await send(message)  # compressed: no nonce goes in, its scripts will not run
                    return
                start = message  # held until the body is complete (a marker may span chunks)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await send(start)
                await send({"type": "http.response.body",
                            "body": b"".join(chunks).replace(marker, value)})
                return
            await send(message)

        await self.app(scope, receive, secured_send)
