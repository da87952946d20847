"""The portal's service-status page `/status` and catalogue page `/catalogue` (issue 16).

Both are applications of the SDK rendered as the portal is (services/web/portal.py): a Jinja2
page of `services/web/sdk/pages/` (autoescape, the response's CSP nonce, the node's demo
browser key) with its script (`/sdk/status.js`, `/sdk/catalogue.js`: src/apps/status/,
src/apps/catalogue/, bundled by build.mjs). Everything they show they fetch from the node's
public APIs with the user's cookie (same origin), so what a caller sees is what those APIs
answer that caller:

- `/status`: the federation's health tree below this node (`GET /registry/api/health`, polled)
  with each node's services (the catalogue's records of that node: health, latency, checked);
  for this node's admins the review queue (`GET /registry/api/services?status=pending`,
  approve/reject as same-origin JSON POSTs, which services/web/guards.py CsrfGuard accepts).
- `/catalogue`: the node's OGC API Records (`/ogc/collections/catalogue/items`: q, type,
  origin_node, bbox drawn on a map), paged; a result opens in the portal or copies its URL.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.web.sdk_routes import _ENV, SdkRoutes


class StatusPages:
    """`/status` and `/catalogue` of a node."""

    def __init__(self, sdk: SdkRoutes, node: dict[str, Any]):
        self.sdk = sdk
        self.node = node  # NodeSection.summary(): id, title, tier, parent, extent...

    def _render(self, request: Request, template: str) -> Response:
        values = self.sdk.page_values(request)
        config = {"key": values["key"], "node": values["node"], "title": self.node["title"],
                  "id": self.node["id"], "tier": self.node["tier"],
                  "extent": self.node["extent"]}
        html = _ENV.get_template(template).render(config=config, **values)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    async def status(self, request: Request) -> Response:
        return self._render(request, "pages/status.html")

    async def catalogue(self, request: Request) -> Response:
        return self._render(request, "pages/catalogue.html")
