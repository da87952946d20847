"""The ASGI application of one node: `create_app(runtime)`.

Run per node as its own process group, e.g.
`uvicorn --factory nodes.asgi:create_app` with GEOPLAT_NODE_DIR=var/nodes/<id> (the directory
holding its runtime file, node.json). pygeoapi reads its config once at import, so one process
group serves exactly one node (nodes/pygeoapi_app.py). `create_app` builds the node's
`NodeServices` once (nodes/container.py), mounts each route group from its router factory, and
gives the Starlette lifespan every background task and every pool and client to close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoplat_settings import NodeRuntime
from nodes.container import NodeServices
from nodes.downloads import Downloads
from nodes.pygeoapi_app import install_catalogue_viewer, load_pygeoapi
from nodes.security_headers import SecurityHeadersMiddleware
from services.access import rules
from services.access.require import guard_group, ogc_root
from services.web.portal import NodeOrigins, Portal, origin_of
from services.web.sdk_routes import PublicReadCors, SdkRoutes
from services.web.status_pages import StatusPages
from tiles.errors import problem

LOGGER = logging.getLogger("geoplat.node")

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
CQL_JSON = ("application/query-cql-json", "application/cql2+json")
PROCESS_EXECUTION = re.compile(r"^/processes/[A-Za-z0-9_-]{1,64}/execution/?$")
JOB_PATH = re.compile(r"^/jobs/[A-Za-z0-9_-]{1,64}/?$")


class GuardMiddleware:
    """Closes what pygeoapi leaves open, and keeps internals out of 5xx answers.

    - the admin API and any write (transactions) are refused whatever the config says;
    - POST is allowed only for CQL2-JSON searches on items;
    - an unhandled error becomes a generic 500 problem document (no SQL, paths or traces).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        refusal = self._refuse(path, method, scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        started = False

        no_body = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, no_body
            if message["type"] == "http.response.start":
                started = True
                if message["status"] in (204, 304):
                    # pygeoapi sends a body with its 204 (empty tile); HTTP forbids one
                    no_body = True
                    message = {**message, "headers": [
                        (k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]}
            elif message["type"] == "http.response.body" and no_body:
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception:
            LOGGER.exception("unhandled error on %s %s", method, path)
            if not started:
                await problem(500, "Internal Server Error",
                              "The request could not be completed.")(scope, receive, send)

    @staticmethod
    def _refuse(path: str, method: str, scope: Scope) -> Response | None:
        sub = path[len("/ogc"):] if path.startswith("/ogc") else None
        if path.startswith(("/sso/", "/auth/")) and method in ("GET", "HEAD", "POST"):
            return None  # sign-on, registration and grant endpoints (services/, issue 4)
        if path.startswith("/registry/") and method in ("GET", "HEAD", "POST"):
            return None  # service registry: its routes check roles and node tokens (issue 5)
        if path.startswith("/api/layers") and method in ("GET", "HEAD", "POST", "DELETE"):
            return None  # layer publishing (layers/web.py, issue 6): its own role checks
        if path == "/api/items/catalogue" and method in ("GET", "HEAD", "POST"):
            return None  # the service-item catalogue upload (issue 15): the publisher's
        if path.startswith("/api/supply/") and method == "POST":
            return None  # change-sets from the children, their review (issue 18): own checks
        if path.startswith("/api/annotations") and method in ("POST", "PUT", "DELETE"):
            return None  # users' annotations (issue 16): their own rules, per owner
        if sub is not None and (sub == "/admin" or sub.startswith("/admin/")):
            return problem(403, "Forbidden", "The configuration API is not available.")
        if method in READ_METHODS:
            return None
        if sub is not None and (PROCESS_EXECUTION.match(sub) and method == "POST" or
                                JOB_PATH.match(sub) and method == "DELETE"):
            return None  # OGC API Processes: run a process, dismiss a job (services/analysis)
        if method == "POST" and sub is not None and sub.rstrip("/").endswith("/items"):
            ctype = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            if ctype.split(";")[0].strip().lower() in CQL_JSON:
                return None
            return problem(415, "Unsupported Media Type",
                           "POST on items is only for CQL2-JSON filters "
                           "(Content-Type: application/query-cql-json); this node accepts no writes.")
        return problem(405, "Method Not Allowed", "This node accepts no writes here.")


def runtime_path() -> Path:
    """The node's directory, from `GEOPLAT_NODE_DIR` (set by nodes/supervisor.py per node)."""
    return Path(os.environ["GEOPLAT_NODE_DIR"]).resolve()


@dataclass(frozen=True)
class RouteGroup:
    """Routes mounted together, each carrying the requirement of its rule
    (services/access/rules.py; `guard_group` refuses a route without one)."""

    name: str
    routes: Sequence[BaseRoute]


def route_groups(services: NodeServices, landing: Any) -> list[RouteGroup]:
    """Every route group of the node app, in mount order, each route with its requirement."""
    sdk = SdkRoutes(services.runtime.server.base_url, services.runtime.node_dir,
                    services.runtime.server.title, cadastre=services.runtime.cadastre,
                    layer_ids=frozenset(layer.id for layer in services.runtime.layers))
    # `/`: the portal for browsers, the landing JSON for scripts (issue 16)
    portal = Portal(sdk, services.runtime.server.summary(), landing,
                    NodeOrigins(services.registry_db, origin_of(services.runtime.server.base_url)),
                    main_url=services.runtime.auth.main_url)
    pages = StatusPages(sdk, services.runtime.server.summary())  # /status, /catalogue
    return [
        RouteGroup("node", guard_group(rules.NODE, [
            Route("/", portal.front), Route("/health", services.health.endpoint),
            Route("/status", pages.status), Route("/catalogue", pages.catalogue)])),
        RouteGroup("ogc", guard_group(rules.OGC, [
            Route("/ogc", ogc_root, methods=["GET", "HEAD", "OPTIONS"]),
            # item downloads (?f=gpkg|shp|csv|kml|fgb) and job result files (issue 17)
            Mount("/ogc", app=Downloads(services.pygeoapi.APP, services.runtime,
                                        services.auth.control, services.pygeoapi))])),
        # WMTS/WMS/TMS and Tianditu routes (issue 3)
        RouteGroup("tiles", guard_group(rules.TILE_SURFACES, services.tile_routes)),
        RouteGroup("registry", guard_group(rules.REGISTRY, services.registry_routes())),
        RouteGroup("auth", services.auth.routes()),  # /sso (main node), /auth: guarded there
        RouteGroup("publish", guard_group(rules.PUBLISHING, services.publish_routes())),
        # place names: Tianditu web services and /api/places (issue 13)
        RouteGroup("places", guard_group(rules.PLACES, services.places_routes())),
        # the JavaScript SDK, its docs and Tianditu's script URL /api (issue 14)
        RouteGroup("sdk", guard_group(rules.SDK, sdk.routes())),
        # routing over the node's roads: /api/route and Tianditu's /drive (issue 15)
        RouteGroup("routing", guard_group(rules.ROUTING, services.routing_routes())),
        # service items and the nearest offices: /api/items, /api/halls/nearest (issue 15)
        RouteGroup("items", guard_group(rules.ITEMS, services.item_routes())),
        # users' annotations: /api/annotations (issue 16)
        RouteGroup("annotations", guard_group(rules.ANNOTATIONS, services.annotation_routes())),
        # data supply between tiers: /api/supply (issue 18)
        RouteGroup("supply", guard_group(rules.SUPPLY, services.supply_routes())),
    ]


def create_app(runtime: NodeRuntime | str | os.PathLike | None = None) -> ASGIApp:
    """The node's app from its runtime (default: the runtime file in `GEOPLAT_NODE_DIR`, as
    `uvicorn --factory nodes.asgi:create_app` calls it)."""
    if not isinstance(runtime, NodeRuntime):
        runtime = NodeRuntime.load(Path(runtime).resolve() if runtime else runtime_path())
    pygeoapi = load_pygeoapi(runtime.node_dir)
    services = NodeServices.build(runtime, pygeoapi)
    install_catalogue_viewer(pygeoapi, services.auth.control)
    node = runtime.server

    async def landing(request: Request) -> Response:
        base = node.base_url
        return JSONResponse({
            "node": node.summary(),
            "links": [
                {"rel": "service-desc", "href": f"{base}/ogc/openapi", "title": "OpenAPI"},
                {"rel": "service-desc", "href": f"{base}/api/places/openapi",
                 "type": "application/vnd.oai.openapi+json;version=3.0",
                 "title": "Place names API (OpenAPI)"},
                {"rel": "service-desc", "href": f"{base}/api/annotations/openapi",
                 "type": "application/vnd.oai.openapi+json;version=3.0",
                 "title": "Annotations API (OpenAPI)"},
                {"rel": "data", "href": f"{base}/ogc/collections", "title": "OGC API collections"},
                {"rel": "ogc-api", "href": f"{base}/ogc", "title": "OGC API landing page"},
                {"rel": "status", "href": f"{base}/health", "title": "Health"},
            ],
        })

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(404, "Not Found", "No such resource on this node.")

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's outermost middleware answers unhandled errors before GuardMiddleware
        # sees them: without this handler that answer is a plain-text 500
        return problem(500, "Internal Server Error", "The request could not be completed.")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.close()

    routes = [route for group in route_groups(services, landing) for route in group.routes]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 500: server_error},
                    lifespan=lifespan)
    app.state.services = services
    services.health.app = app
    guarded = GuardMiddleware(services.auth.wrap(app, services.views))
    # outside the access checks, so that a page of another origin reads their refusals too
    return SecurityHeadersMiddleware(PublicReadCors(guarded))
