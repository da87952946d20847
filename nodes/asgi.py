"""The ASGI application of one node: pygeoapi under /ogc, /health, and the guards around them.

Run per node as its own process group, e.g.
`uvicorn --factory nodes.asgi:create_app` with GEOPLAT_NODE_DIR=var/nodes/<id>.
pygeoapi reads its config once at import, so one process group serves exactly one node.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import psycopg2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

LOGGER = logging.getLogger("geoplat.node")

PROBLEM = "application/problem+json"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
CQL_JSON = ("application/query-cql-json", "application/cql2+json")


def problem(status: int, title: str, detail: str = "") -> JSONResponse:
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


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

        async def guarded_send(message: dict) -> None:
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
        except Exception:  # noqa: BLE001 - last line of defence
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
        if sub is not None and (sub == "/admin" or sub.startswith("/admin/")):
            return problem(403, "Forbidden", "The configuration API is not available.")
        if method in READ_METHODS:
            return None
        if method == "POST" and sub is not None and sub.rstrip("/").endswith("/items"):
            ctype = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            if ctype.split(";")[0].strip().lower() in CQL_JSON:
                return None
            return problem(415, "Unsupported Media Type",
                           "POST on items is only for CQL2-JSON filters "
                           "(Content-Type: application/query-cql-json); this node accepts no writes.")
        return problem(405, "Method Not Allowed", "This node accepts no writes here.")


class Health:
    """`/health`: database reachability and what pygeoapi serves."""

    def __init__(self, node: dict, dsn: str, collections: int):
        self.node, self.dsn, self.collections = node, dsn, collections
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None

    def _db_check(self) -> dict:
        t0 = time.perf_counter()
        try:
            with self._lock:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg2.connect(self.dsn, connect_timeout=3,
                                                  application_name="geoplat-health")
                    self._conn.autocommit = True
                try:
                    with self._conn.cursor() as cur:
                        cur.execute("SELECT postgis_lib_version()")
                        version = cur.fetchone()[0]
                except psycopg2.Error:
                    self._conn.close()
                    raise
            return {"status": "ok", "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
                    "postgis": version}
        except psycopg2.Error:
            return {"status": "down", "detail": "database unreachable"}

    async def endpoint(self, request: Request) -> Response:
        import anyio

        db = await anyio.to_thread.run_sync(self._db_check)
        checks = {"database": db, "ogc": {"status": "ok", "collections": self.collections}}
        status = "ok" if all(c["status"] == "ok" for c in checks.values()) else (
            "down" if db["status"] == "down" else "degraded")
        body = {"status": status, "node": self.node, "checks": checks}
        return JSONResponse(body, status_code=200 if status != "down" else 503,
                            headers={"Cache-Control": "no-store"})


def create_app(node_dir: str | os.PathLike | None = None) -> Starlette:
    """Build the node's app from the files `geoplat` generated in `node_dir`."""
    node_dir = Path(node_dir or os.environ["GEOPLAT_NODE_DIR"]).resolve()
    meta = json.loads((node_dir / "node.json").read_text(encoding="utf-8"))
    os.environ["PYGEOAPI_CONFIG"] = str(node_dir / "pygeoapi.yml")
    os.environ["PYGEOAPI_OPENAPI"] = str(node_dir / "openapi.yml")

    from nodes.providers.crs import install_transformer_cache

    install_transformer_cache()
    from nodes.providers.features import install_queryable_titles

    install_queryable_titles()  # original attribute names as queryable titles (issue 6)
    from nodes.providers import csv_export
    from nodes.security_headers import SecurityHeadersMiddleware
    from nodes.templates import install_page_rendering

    install_page_rendering()  # script-safe JSON, CSP nonces, each API's own config (issue 11)
    csv_export.install()  # ?f=csv without spreadsheet formulas (issue 11)
    from pygeoapi import starlette_app  # reads PYGEOAPI_CONFIG once, at import

    health = Health(meta["node"], meta["dsn"], len(starlette_app.CONFIG.get("resources", {})))

    async def landing(request: Request) -> Response:
        base = meta["node"]["base_url"]
        return JSONResponse({
            "node": meta["node"],
            "links": [
                {"rel": "service-desc", "href": f"{base}/ogc/openapi", "title": "OpenAPI"},
                {"rel": "data", "href": f"{base}/ogc/collections", "title": "OGC API collections"},
                {"rel": "ogc-api", "href": f"{base}/ogc", "title": "OGC API landing page"},
                {"rel": "status", "href": f"{base}/health", "title": "Health"},
            ],
        })

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(404, "Not Found", "No such resource on this node.")

    from services.emap_keys import emap_key_check  # tk on the Tianditu routes (issue 4)
    from tiles.service import tile_routes  # WMTS/WMS/TMS and Tianditu routes (issue 3)

    app = Starlette(routes=[
        Route("/", landing),
        Route("/health", health.endpoint),
        Mount("/ogc", app=starlette_app.APP),
        *tile_routes(node_dir, key_check=emap_key_check),
    ], exception_handlers={404: not_found})
    from services.registry.web import install_registry  # service registry (issue 5)

    install_registry(app, meta)
    from services.app import install_auth  # /sso, /auth and layer access control (issue 4)

    from layers.web import install_publishing  # /api/layers, /publish, hot reload (issue 6)

    guarded = GuardMiddleware(install_publishing(install_auth(app, meta), app, meta, node_dir))
    return SecurityHeadersMiddleware(guarded)  # type: ignore[return-value]
