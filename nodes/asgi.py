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
from typing import Any

import psycopg2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tiles.errors import problem
from services.access.require import TRUSTED, TRUSTED_CALL

LOGGER = logging.getLogger("geoplat.node")

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
CQL_JSON = ("application/query-cql-json", "application/cql2+json")


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
    """`/health`: every component checked for real, each with a status and a reason.

    database (a query), ogc (pygeoapi answers an internal request), tiles (MapProxy answers its
    capabilities), revocations and keys (how current this node's copies of the main node's
    revocations and key records are), registry (a process of the node holds the registry
    worker's lock). The node is `down` without its database, `degraded` when anything else is
    not ok.
    """

    def __init__(self, node: dict, dsn: str, app: Any = None):
        self.node, self.dsn, self.app = node, dsn, app
        self.control: Any = None  # services.access.control.AccessControl, once installed
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None

    def _query(self, sql: str) -> Any:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(self.dsn, connect_timeout=3,
                                              application_name="geoplat-health")
                self._conn.autocommit = True
            try:
                with self._conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchone()[0]
            except psycopg2.Error:
                self._conn.close()
                raise

    def _db_check(self) -> dict:
        t0 = time.perf_counter()
        try:
            version = self._query("SELECT postgis_lib_version()")
            return {"status": "ok", "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
                    "postgis": version}
        except psycopg2.Error:
            return {"status": "down", "reason": "database unreachable"}

    def _registry_check(self) -> dict:
        from services.registry.worker import LOCK_KEY

        try:
            held = self._query(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() "
                f"AND l.classid = 0 AND l.objid = {int(LOCK_KEY)} AND l.objsubid = 1")
        except psycopg2.Error:
            return {"status": "down", "reason": "database unreachable"}
        if held:
            return {"status": "ok"}
        return {"status": "degraded", "reason": "no registry worker is running on this node"}

    async def _internal(self, path: str, query: bytes = b"") -> int:
        """Status of a GET answered in-process by the node app, behind access control."""
        status = 0

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": query, "headers": [(b"host", b"localhost")],
                 "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80),
                 TRUSTED: TRUSTED_CALL}  # the node's own probe: past access control, as before
        await self.app(scope, receive, send)
        return status

    async def _ogc_check(self) -> dict:
        import anyio
        from pygeoapi import starlette_app

        collections = len(starlette_app.CONFIG.get("resources", {}))
        try:
            with anyio.fail_after(10):
                status = await self._internal("/ogc/conformance", b"f=json")
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            return {"status": "down", "collections": collections,
                    "reason": f"pygeoapi failed ({type(exc).__name__})"}
        if status != 200:
            return {"status": "down", "collections": collections,
                    "reason": f"pygeoapi answered {status} to /ogc/conformance"}
        return {"status": "ok", "collections": collections}

    def _tiles_check(self) -> dict | None:
        from layers.emap import find_tile_service

        service = find_tile_service(self.app)
        if service is None:
            return None
        status: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/wmts/1.0.0/WMTSCapabilities.xml",
                   "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "localhost",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
                   "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": None,
                   "wsgi.version": (1, 0), "wsgi.multithread": True,
                   "wsgi.multiprocess": True, "wsgi.run_once": False}
        try:
            body = service.served.wsgi(environ, lambda s, h, e=None: status.append(s))
            b"".join(body)
            close = getattr(body, "close", None)
            if close:
                close()
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            return {"status": "down", "reason": f"MapProxy failed ({type(exc).__name__})"}
        if not status or not status[0].startswith("200"):
            return {"status": "down", "reason": f"MapProxy answered {status[:1]}"}
        return {"status": "ok"}

    async def endpoint(self, request: Request) -> Response:
        import anyio

        from services.access.revocations import POLL_SECONDS

        db = await anyio.to_thread.run_sync(self._db_check)
        checks: dict[str, dict] = {"database": db, "ogc": await self._ogc_check()}
        tiles = await anyio.to_thread.run_sync(self._tiles_check)
        if tiles is not None:
            checks["tiles"] = tiles
        control = self.control
        revocations = getattr(getattr(control, "validator", None), "revocations", None)
        if revocations is not None:
            if revocations.failure or revocations.age() > 2 * POLL_SECONDS:
                await revocations.poll()  # no traffic has polled lately: find out now
            checks["revocations"] = revocations.status()
        if getattr(control, "keys", None) is not None:
            await control.keys.probe()  # only after failed lookups
            checks["keys"] = control.keys.status()
        checks["registry"] = await anyio.to_thread.run_sync(self._registry_check)
        status = "ok" if all(c["status"] == "ok" for c in checks.values()) else (
            "down" if db["status"] == "down" else "degraded")
        from services.web.pages import worker_id

        body = {"status": status, "node": self.node, "checks": checks, "worker": worker_id()}
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

    health = Health(meta["node"], meta["dsn"])

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

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's outermost middleware answers unhandled errors before GuardMiddleware
        # sees them: without this handler that answer is a plain-text 500
        return problem(500, "Internal Server Error", "The request could not be completed.")

    from services.access import rules  # who may call what: every route group (issue 12)
    from services.access.require import attach, guard_group, ogc_root
    from tiles.service import tile_routes  # WMTS/WMS/TMS and Tianditu routes (issue 3)

    app = Starlette(routes=[
        *guard_group(rules.NODE, [Route("/", landing), Route("/health", health.endpoint)]),
        *guard_group(rules.OGC, [Route("/ogc", ogc_root, methods=["GET", "HEAD", "OPTIONS"]),
                                 Mount("/ogc", app=starlette_app.APP)]),
        *guard_group(rules.TILE_SURFACES, tile_routes(node_dir)),
    ], exception_handlers={404: not_found, 500: server_error})
    from services.registry.web import install_registry  # service registry (issue 5)

    install_registry(app, meta)
    from layers.web import install_publishing  # /api/layers, /publish, hot reload (issue 6)
    from services.access.install import (
        install_auth,  # /sso, /auth and layer access control (issue 4)
    )
    from services.access.views import FilteredViews

    views = FilteredViews()  # one object: access control serves from it, every reload clears it
    auth_app = install_auth(app, meta, views)
    from services.access import control as access

    health.app, health.control = app, access.current()
    guarded = GuardMiddleware(install_publishing(auth_app, app, meta, node_dir, views))
    attach(app.router.routes, rules.PUBLISHING)  # layers/ does not import services
    return SecurityHeadersMiddleware(guarded)  # type: ignore[return-value]
