"""`/sso/keys` on the main node: a developer's page to create, list and revoke API keys.

Signed in with the main node's SSO session (the login page); forms are CSRF-protected like
login and registration. The key value is shown once, right after creation (only its hash is
stored). The JSON API behind the same actions is `/sso/api/keys`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.access import apikeys
from services.errors import AuthError
from services.sso import accounts

PATH = "/sso/keys"

KEYS = """<form method="post" action="/sso/logout"><p>{{ user }} ·
<input type="hidden" name="csrf_token" value="{{ csrf }}"><button type="submit">退出 Sign out</button></p></form>
{% if created %}<div role="status" style="border:2px solid #2a2;padding:.5em">
<p>新密钥 New key <b>{{ created.name }}</b> (shown once, copy it now):</p>
<p><code id="new-key">{{ created.value }}</code></p>
<p>Try: <code>{{ base }}/vec_c/wmts?SERVICE=WMTS&amp;REQUEST=GetTile&amp;VERSION=1.0.0&amp;LAYER=vec&amp;STYLE=default&amp;TILEMATRIXSET=c&amp;FORMAT=tiles&amp;TILEMATRIX=3&amp;TILEROW=1&amp;TILECOL=6&amp;tk={{ created.value }}</code></p></div>{% endif %}
{% if message %}<p role="status">{{ message }}</p>{% endif %}
<h2>我的密钥 My keys</h2>
<table border="1" cellpadding="4" style="border-collapse:collapse;width:100%">
<tr><th>id</th><th>name</th><th>kind</th><th>allowed</th><th>daily quotas</th><th>rate/s</th><th>state</th><th></th></tr>
{% for k in keys %}<tr><td><code>{{ k.key_id }}</code></td><td>{{ k.name }}</td><td>{{ k.kind }}</td>
<td>{{ k.allowed | join(", ") }}</td>
<td>{% for kind, n in k.quotas.items() %}{{ kind }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{{ k.rate_per_second }}</td><td>{{ "revoked" if k.revoked_at else "active" }}</td>
<td>{% if not k.revoked_at %}<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}"><input type="hidden" name="action" value="revoke">
<input type="hidden" name="key_id" value="{{ k.key_id }}"><button type="submit">吊销 Revoke</button></form>{% endif %}</td></tr>
{% else %}<tr><td colspan="8">No keys yet.</td></tr>{% endfor %}</table>
<h2>新建密钥 New key</h2>
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}"><input type="hidden" name="action" value="create">
<label>名称 Name <input name="name" maxlength="100" required></label>
<label>类型 Kind <select name="kind"><option value="browser">browser (浏览器端: allowed origins)</option>
<option value="server">server (服务端: allowed IP ranges)</option></select></label>
<label>允许的来源或IP段 Allowed origins or IP ranges, one per line
<textarea name="allowed" rows="3" style="width:100%" placeholder="https://hall.example.gov.cn&#10;203.0.113.0/24" required></textarea></label>
<button type="submit">创建 Create</button></form>"""


class KeysPage:
    """The page; `sso` is the main node's `services.sso.routes.SSO` (session, CSRF, page helpers)."""

    def __init__(self, sso: Any):
        self.sso = sso

    async def page(self, request: Request) -> Response:
        sso = self.sso
        session = sso.session_user(request)
        user = await sso._run(accounts.get, sso.db, session["uid"]) if session else None
        if user is None:
            return RedirectResponse("/sso/login?next=" + PATH, 303)
        if not ("developer" in user.roles or user.platform_admin):
            return await self._render(request, user, status=403,
                                error="API keys are for accounts with the developer role; "
                                      "ask a platform administrator.")
        created, message, error, status = None, "", "", 200
        if request.method == "POST":
            form = await request.form()
            try:
                sso.csrf.verify(request, str(form.get("csrf_token") or ""))
                action = str(form.get("action") or "")
                if action == "create":
                    name = str(form.get("name") or "").strip()[:100] or "key"
                    allowed = [line.strip() for line in str(form.get("allowed") or "").splitlines()
                               if line.strip()][:50]
                    value, record = await sso._run(lambda: apikeys.create_key(
                        sso.db, sso.node.id, user.id, name, str(form.get("kind") or ""),
                        allowed, actor=user.username))
                    created = {"name": record["name"], "value": value}
                elif action == "revoke":
                    key_id = str(form.get("key_id") or "")[:16]
                    done = await sso._run(lambda: apikeys.revoke_key(
                        sso.db, sso.node.id, key_id, user_id=user.id, actor=user.username))
                    if not done:
                        raise AuthError(404, "Not found", "No such active key of yours.")
                    message = f"Key {key_id} revoked."
                else:
                    raise AuthError(400, "Bad request", "Unknown action.")
            except AuthError as exc:
                error, status = exc.detail or exc.title, exc.status
        return await self._render(request, user, created=created, message=message, error=error,
                                  status=status)

    async def _render(self, request: Request, user: Any, *, status: int = 200, error: str = "",
                      created: dict | None = None, message: str = "") -> Response:
        rows = await self.sso._run(lambda: self.sso.db.all(
            "SELECT key_id, name, kind, allowed, quotas, rate_per_second, revoked_at "
            "FROM auth.api_keys WHERE user_id = %s ORDER BY created_at", (user.id,)))
        rows = [{**r, "quotas": apikeys.quotas_of(r["quotas"])} for r in rows]
        return self.sso._page(KEYS, request, title="开发者密钥 Developer keys", status=status,
                              error=error, user=user.username, keys=rows, created=created,
                              message=message, action=PATH, base=self.sso.node.base_url)
