"""Routes under `/registry` and the per-caller view of the catalogue in pygeoapi.

- `GET  /registry/api/services[?status=]`: this node's external services, and published layers' records awaiting review or rejected (its admins, publishers)
- `POST /registry/api/services`: register an external service ({url, type?, title?, ...})
- `POST /registry/api/services/{id}/{approve|reject|retire}`: review (this node's admins)
- `POST /registry/api/push`, `POST /registry/api/sync`: from direct child nodes only
- `GET  /registry/api/health`: the health tree of the federation below this node, and `push`:
  this node's upward federation (waiting, parked and refused changes; the reasons for its admins)
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from geoplat_settings import NodeView
from services.access.control import AccessControl
from services.db import Database
from services.errors import AuthError, BadRequest, problem, route_group
from services.registry import federation, health, review
from services.registry.models import ServiceRegistration
from services.registry.provider import ANONYMOUS, VIEWER, Viewer
from services.web.pages import client_ip, execute_as_caller

MAX_BODY = 64 * 1024 * 1024


async def viewer_of(control: AccessControl, request: Request) -> Viewer:
    p = await control.caller(request)  # the token's user, else a developer key's owner
    if p is not None and p.via_key:  # `registered` records, unless a public-only key
        return ANONYMOUS if p.public_only else Viewer(is_user=True)  # no role or grant by key
    if p is None or not p.is_user:
        return ANONYMOUS
    privileged = frozenset(r.split(":", 1)[0] for r in p.roles
                           if r.endswith((":admin", ":publisher")))
    return Viewer(is_user=True, platform_admin=p.platform_admin, privileged_nodes=privileged,
                  granted=await control.granted(p))


def execute_with_viewer(original: Any, control: AccessControl) -> Any:
    """Wrap pygeoapi's `execute_from_starlette`: catalogue calls run with the caller's VIEWER.

    pygeoapi runs the API function in a thread pool without copying context variables, so the
    viewer is set inside the function that runs in the thread.
    """

    async def execute(api_function: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        if request.path_params.get("collection_id") != "catalogue":
            return await original(api_function, request, *args, **kwargs)
        viewer = await viewer_of(control, request)
        return await execute_as_caller(original, api_function, request, VIEWER, viewer,
                                       *args, **kwargs)

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute


class RegistryRoutes:
    """The `/registry` routes of a node (a router factory: `routes()` given its dependencies)."""

    def __init__(self, view: NodeView, db: Database, control: AccessControl):
        self.view, self.db, self.control = view, db, control
        self.node_id = view.server.id

    def routes(self) -> list[BaseRoute]:
        return route_group([
            Route("/registry/api/services", self.services, methods=["GET", "POST"]),
            Route("/registry/api/services/{record_id}/{action}", self.decide, methods=["POST"]),
            Route("/registry/api/push", self.push, methods=["POST"]),
            Route("/registry/api/sync", self.sync, methods=["POST"]),
            Route("/registry/api/health", self.health, methods=["GET"]),
        ])

    async def _user(self, request: Request, *, admin_only: bool) -> Any:
        p = await self.control.principal(request)
        if p is None:
            raise AuthError(401, "Unauthorized", "Sign in, or send a bearer token.")
        ok = self.control.is_admin(p) if admin_only else (
            p.is_user and self.control.is_privileged(p))
        if not ok:
            raise AuthError(403, "Forbidden", "Only this node's administrators" + (
                "" if admin_only else " and publishers") + " may do this.")
        return p

    async def _json(self, request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise BadRequest("The request body is too large.", "Payload too large", 413)
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest("A JSON body is expected.") from None

    async def services(self, request: Request) -> Response:
        p = await self._user(request, admin_only=False)
        if request.method == "GET":
            status = request.query_params.get("status") or None
            rows = await anyio.to_thread.run_sync(
                lambda: review.listing(self.db, self.node_id, status))
            return JSONResponse({"services": rows}, headers={"Cache-Control": "no-store"})
        data = ServiceRegistration.parse(await self._json(request))
        rec = await anyio.to_thread.run_sync(lambda: review.register_external(
            self.db, self.view, data.url or "", wanted=data.type,
            title=data.title, description=data.description,
            keywords=data.keywords, access=data.access or "public",
            actor=p.username or p.sub, ip=client_ip(request)))
        return JSONResponse(rec, status_code=201)

    async def decide(self, request: Request) -> Response:
        p = await self._user(request, admin_only=True)
        rec = await anyio.to_thread.run_sync(lambda: review.decide(
            self.db, self.view, request.path_params["record_id"],
            request.path_params["action"], actor=p.username or p.sub,
            ip=client_ip(request)))
        return JSONResponse(rec)

    async def _node_call(self, request: Request, fn: Any) -> Response:
        p = await self.control.principal(request)
        if p is None:
            raise AuthError(401, "Unauthorized", "Pushes need a node's token.")
        body = await self._json(request)
        result = await anyio.to_thread.run_sync(lambda: fn(self.db, self.view, p, body))
        return JSONResponse(result)

    async def push(self, request: Request) -> Response:
        return await self._node_call(request, federation.apply_push)

    async def sync(self, request: Request) -> Response:
        return await self._node_call(request, federation.apply_sync)

    async def health(self, request: Request) -> Response:
        try:
            p = await self.control.principal(request)
        except AuthError:
            p = None
        details = p is not None and self.control.is_admin(p)

        def read() -> tuple[dict[str, Any], dict[str, Any]]:
            parent = self.view.registry.parent
            return (health.health_tree(self.db, self.view),
                    health.push_state(self.db, parent.id if parent else None, details=details))

        tree, push = await anyio.to_thread.run_sync(read)
        return JSONResponse({"node": self.node_id, "tree": tree, "push": push},
                            headers={"Cache-Control": "no-store",
                                     "Vary": "Authorization, Cookie"})


__all__ = ["RegistryRoutes", "execute_with_viewer", "problem"]
