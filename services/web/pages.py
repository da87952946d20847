"""Small HTML pages (login, registration, messages) and CSRF protection for their forms.

CSRF: a random token in an HttpOnly SameSite=Strict cookie, and the same token, signed, in a
hidden form field; a POST must carry both and they must match (double submit, signed).
"""

from __future__ import annotations

import hmac
import secrets
from contextvars import ContextVar
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.errors import AuthError

CSRF_COOKIE = "geoplat_csrf"
ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

BASE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{{ title }} · {{ node_title }}</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}label{display:block;margin:.6em 0}
input{width:100%;padding:.3em}.error{color:#a00}</style></head><body>
<h1>{{ title }}</h1><p>{{ node_title }}</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if fields %}<ul class="error">{% for k, v in fields.items() %}<li>{{ k }}: {{ v }}</li>{% endfor %}</ul>{% endif %}
{{ body }}
</body></html>"""

LOGIN = """<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>用户名 User name <input name="username" autocomplete="username" required></label>
<label>密码 Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">登录 Sign in</button></form>
<p><a href="{{ register_url }}">注册 Register</a></p>"""

REGISTER = """<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
{% if next %}<input type="hidden" name="next" value="{{ next }}">{% endif %}
<label>用户名 User name <input name="username" value="{{ values.username }}" required></label>
<label>电子邮件 E-mail <input name="email" type="email" value="{{ values.email }}" required></label>
<label>显示名称 Display name <input name="display_name" value="{{ values.display_name }}"></label>
<label>密码 Password (10+) <input name="password" type="password" autocomplete="new-password" required></label>
<button type="submit">注册 Register</button></form>"""

LOGOUT = """<p>{{ message }}</p><form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
{% for k, v in params.items() %}<input type="hidden" name="{{ k }}" value="{{ v }}">{% endfor %}
<button type="submit">退出 Sign out</button></form>"""

MESSAGE = """<p>{{ message }}</p>{% if link %}<p><a href="{{ link }}">{{ link_text }}</a></p>{% endif %}"""


def render(template: str, *, title: str, node_title: str, status: int = 200,
           error: str = "", fields: dict | None = None, cookies: dict[str, str] | None = None,
           **values: Any) -> HTMLResponse:
    body = ENV.from_string(template).render(**values)
    html = ENV.from_string(BASE).render(title=title, node_title=node_title, error=error,
                                        fields=fields or {}, body=_Markup(body))
    response = HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"})
    for name, value in (cookies or {}).items():
        response.set_cookie(name, value, httponly=True, samesite="strict", path="/")
    return response


def _Markup(text: str) -> Any:
    from markupsafe import Markup

    return Markup(text)  # already escaped by the inner template


class Csrf:
    def __init__(self, secret: str):
        self.serializer = URLSafeTimedSerializer(secret, salt="geoplat-csrf")

    def issue(self, request: Request) -> tuple[str, dict[str, str]]:
        """(form token, cookies to set)."""
        raw = request.cookies.get(CSRF_COOKIE)
        cookies = {}
        if not raw or len(raw) < 20:
            raw = secrets.token_urlsafe(24)
            cookies[CSRF_COOKIE] = raw
        return self.serializer.dumps(raw), cookies

    def verify(self, request: Request, form_token: str | None) -> None:
        raw = request.cookies.get(CSRF_COOKIE) or ""
        try:
            signed = self.serializer.loads(form_token or "", max_age=3600)
        except BadSignature:
            signed = None
        if not raw or not isinstance(signed, str) or not hmac.compare_digest(signed, raw):
            raise AuthError(403, "CSRF check failed",
                            "The form has expired or did not come from this site; reload it.")


_WORKER: tuple[int, str] = (0, "")


def worker_id() -> str:
    """Which worker process answered (opaque, not the pid): lets clients tell workers apart."""
    import hashlib
    import os

    global _WORKER
    if _WORKER[0] != os.getpid():  # computed once per process (also after a fork)
        _WORKER = (os.getpid(), hashlib.sha256(
            f"{os.uname().nodename}:{os.getpid()}".encode()).hexdigest()[:12])
    return _WORKER[1]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def execute_as_caller(original: Any, api_function: Any, request: Request, var: ContextVar,
                            value: Any, *args: Any, **kwargs: Any) -> Response:
    """pygeoapi's `execute_from_starlette` (`original`) with `var` set to `value` inside the
    API function (pygeoapi runs it in a thread pool without copying context variables, so it
    is set in the thread); the answer is this caller's: never kept by shared caches."""

    def call(*a: Any, **k: Any) -> Any:
        token = var.set(value)
        try:
            return api_function(*a, **k)
        finally:
            var.reset(token)

    response: Response = await original(call, request, *args, **kwargs)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Vary"] = "Authorization, Cookie, X-Api-Key"
    return response
