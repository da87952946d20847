"""`/health` of a node: every component checked for real, each with a status and a reason."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import psycopg2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from geoplat_settings import ServerSection
from services.access.control import AccessControl
from services.access.require import TRUSTED, TRUSTED_CALL
from services.access.revocations import POLL_SECONDS
from services.registry.worker import LOCK_KEY
from services.web.pages import worker_id


class Health:
    """`/health`: every component checked for real, each with a status and a reason.

    database (a query), ogc (pygeoapi answers an internal request), tiles (MapProxy answers its
    capabilities), revocations and keys (how current this node's copies of the main node's
    revocations and key records are), registry (a process of the node holds the registry
    worker's lock). The node is `down` without its database, `degraded` when anything else is
    not ok.
    """

    def __init__(self, node: ServerSection, dsn: str, control: AccessControl | None,
                 pygeoapi: Any, tile_service: Any = None):
        self.node, self.dsn, self.control = node, dsn, control
        self.pygeoapi = pygeoapi  # the imported pygeoapi.starlette_app (nodes/pygeoapi_app.py)
        self.tile_service = tile_service  # tiles.service.TileService (None: no tiles)
        self.app: Any = None  # the node app, for in-process requests (set once it is built)
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()

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

        async def send(message: Message) -> None:
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
        collections = len(self.pygeoapi.CONFIG.get("resources", {}))
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
        service = self.tile_service
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
        if control is not None and control.keys is not None:
            await control.keys.probe()  # only after failed lookups
            checks["keys"] = control.keys.status()
        checks["registry"] = await anyio.to_thread.run_sync(self._registry_check)
        status = "ok" if all(c["status"] == "ok" for c in checks.values()) else (
            "down" if db["status"] == "down" else "degraded")
        body = {"status": status, "node": self.node.summary(), "checks": checks, "worker": worker_id()}
        return JSONResponse(body, status_code=200 if status != "down" else 503,
                            headers={"Cache-Control": "no-store"})
