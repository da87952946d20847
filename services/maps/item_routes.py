"""The service-item routes of a node (issue 15; router factory `ItemRoutes(...).routes()`,
mounted by nodes/asgi.py, each under its rule of services/access/rules.py):

- `GET /api/items?q=&limit=`: fuzzy item search (services/maps/halls.py), without `q` the whole
  catalogue in its order; `GET /api/items/{code}`: the item with its offices and their
  opening status;
- `GET /api/halls/nearest?item=&lon=&lat=&limit=&open_now=&mode=drive|walk&at=`: the offices
  handling the item, ranked by travel time (GeoJSON FeatureCollection); `at` (ISO 8601, local
  time if no offset) evaluates the opening hours then instead of now;
- `POST /api/items/catalogue` (publisher role; multipart `file`: .csv or .xlsx): replaces the
  catalogue (services/maps/items.py), audited (`items.publish`, refusals too);
  `GET /api/items/catalogue`: its versions.
Token or key with the `search` quota for the reads, as the routing routes. Bad input is RFC
9457 problem+json, never a 5xx with internals.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from layers.formats import PublishError, remove_tree
from layers.web import Upload
from services.access import audit
from services.db import Database
from services.maps import items
from services.maps.errors import BAD_ENUM, BAD_PARAMETER, MISSING, RouteError, bad
from services.maps.halls import MAX_LIMIT, MAX_SEARCH, Halls, item_json
from services.maps.routes import MAX_QUERY
from services.places.text import MAX_TEXT
from tiles.errors import ProblemError, problem

LOGGER = logging.getLogger("geoplat.items")
GEOJSON = "application/geo+json"
MODES = {"drive": "fastest", "walk": "walk"}
MAX_UPLOAD = 5 * 1024 * 1024
PATHS = ("/api/items", "/api/items/catalogue", "/api/items/{code}", "/api/halls/nearest")
NO_STORE = {"Cache-Control": "no-store"}
TITLES = {400: "Bad Request", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type"}

Handler = Callable[[Request], Awaitable[Response]]


class Publisher(Protocol):
    """What the upload needs of the node's access control (nodes/publishing.ControlAccess)."""

    async def principal(self, request: Request) -> Any: ...

    def verify_csrf(self, request: Request, token: str | None) -> None: ...


def _number(value: str | None, param: str) -> float:
    if value is None or value == "":
        raise bad(MISSING, f"{param} is required.", param)
    try:
        if len(value) > 30:
            raise ValueError
        return float(value)
    except ValueError:
        raise bad(BAD_PARAMETER, f"{param} is a number.", param) from None


def _limit(value: str | None, default: int, most: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise bad(BAD_PARAMETER, f"limit is 1 to {most}.", "limit")
    return int(value)


def _bool(value: str | None, param: str) -> bool:
    v = (value or "").lower()
    if v in ("", "false", "0", "no"):
        return False
    if v in ("true", "1", "yes"):
        return True
    raise bad(BAD_ENUM, f"{param} is true or false.", param)


def _at(value: str | None, tz: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        if len(value) > 40:
            raise ValueError
        t = dt.datetime.fromisoformat(value)
        t = t.replace(tzinfo=tz) if t.tzinfo is None else t
        if not 2000 <= t.astimezone(tz).year <= 2100:
            raise ValueError
    except (ValueError, OverflowError):
        raise bad(BAD_PARAMETER, "at is an ISO 8601 date and time (years 2000 to 2100).",
                  "at") from None
    return t


class ItemRoutes:
    def __init__(self, halls: Halls, *, dsn: str = "", node_id: str = "",
                 access: Publisher | None = None, work_root: Path | None = None,
                 poi_layer: str = "poi", db: Database | None = None):
        self.halls, self.dsn, self.node_id, self.access = halls, dsn, node_id, access
        self.work_root, self.poi_layer, self.db = work_root, poi_layer, db

    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [Route("/api/items", self._api(self.search), methods=get),
                Route("/api/items/catalogue", self._api(self.catalogue),
                      methods=["GET", "POST"]),
                Route("/api/items/{code}", self._api(self.item), methods=get),
                Route("/api/halls/nearest", self._api(self.nearest), methods=get)]

    @staticmethod
    def _api(endpoint: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if len(request.scope.get("query_string", b"")) > MAX_QUERY:
                    raise bad(BAD_PARAMETER, "The query string is too long.")
                return await endpoint(request)
            except RouteError as exc:
                return exc.response()
            except items.ItemsError as exc:
                return problem(exc.status, TITLES.get(exc.status, "Bad Request"), exc.detail,
                               **exc.extra())
            except ProblemError as exc:  # the upload's (layers.web.Upload) and access's
                return exc.response()
            except Exception:
                LOGGER.exception("items request failed")
                return problem(500, "Internal Server Error", "The request could not be served.")
        return run

    async def search(self, request: Request) -> Response:
        p = request.query_params
        q = p.get("q") or ""
        if len(q) > MAX_TEXT:
            raise bad(BAD_PARAMETER, f"q is at most {MAX_TEXT} characters.", "q")
        limit = _limit(p.get("limit"), 20, MAX_SEARCH)
        if q.strip():
            hits = await anyio.to_thread.run_sync(lambda: self.halls.search(q, limit))
        else:
            entries = await anyio.to_thread.run_sync(self.halls.index)
            hits = [item_json(e.row) for e in entries[:limit]]
        return JSONResponse({"items": hits, "count": len(hits)}, headers=NO_STORE)

    async def item(self, request: Request) -> Response:
        code = request.path_params["code"]
        if not items.CODE.match(code):
            raise bad(BAD_PARAMETER, "An item code is 2 to 32 capital letters or digits.", "code")
        found = await anyio.to_thread.run_sync(lambda: self.halls.item(code))
        if found is None:
            return problem(404, "Not Found", "No service item has this code.")
        return JSONResponse(found, headers=NO_STORE)

    async def nearest(self, request: Request) -> Response:
        p = request.query_params
        code = p.get("item") or ""
        if not code:
            raise bad(MISSING, "item is required (an item code).", "item")
        if not items.CODE.match(code):
            raise bad(BAD_PARAMETER, "An item code is 2 to 32 capital letters or digits.", "item")
        lon, lat = _number(p.get("lon"), "lon"), _number(p.get("lat"), "lat")
        mode = p.get("mode") or "drive"
        if mode not in MODES:
            raise bad(BAD_ENUM, "mode is drive or walk.", "mode")
        limit = _limit(p.get("limit"), 10, MAX_LIMIT)
        open_first = _bool(p.get("open_now"), "open_now")
        at = _at(p.get("at"), self.halls.hours.tz)
        body = await anyio.to_thread.run_sync(lambda: self.halls.nearest(
            code, lon, lat, limit=limit, open_first=open_first,
            profile=MODES[mode], at=at))  # type: ignore[arg-type]
        return JSONResponse(body, media_type=GEOJSON, headers=NO_STORE)

    # --- the publisher's upload -------------------------------------------------------------

    def _audit(self, actor: str | None, ok: bool, **detail: Any) -> None:
        if self.db is not None:
            audit.record(self.db, self.node_id, "items.publish", actor=actor,
                         subject="service-items", ok=ok, **detail)

    async def catalogue(self, request: Request) -> Response:
        if self.access is None or self.work_root is None:
            return problem(503, "Service Unavailable", "This node takes no catalogue uploads.")
        principal = await self.access.principal(request)  # the rule checked the role
        actor = getattr(principal, "username", None)
        if request.method == "GET":
            rows = await anyio.to_thread.run_sync(self._versions)
            return JSONResponse({"versions": rows}, headers=NO_STORE)
        work = self.work_root / ("items-" + uuid.uuid4().hex)
        up = Upload(work, MAX_UPLOAD)
        source = ""
        try:
            try:
                await up.read(request)
                assert up.file is not None  # read() refuses an upload without a file
                source = up.raw_filename.decode("utf-8", "backslashreplace")[:200]
                if request.headers.get("authorization", "")[:7].lower() != "bearer ":
                    self.access.verify_csrf(request, up.fields.get("csrf_token"))
                file = up.file

                def run() -> dict[str, Any]:
                    tables = items.read_rows(file, up.filename)
                    return items.replace(self.dsn, tables, source=source, actor=actor,
                                         poi_layer=self.poi_layer)

                out = await anyio.to_thread.run_sync(run)
            except (items.ItemsError, PublishError) as exc:
                detail = exc.detail if isinstance(exc, items.ItemsError) else exc.message
                await anyio.to_thread.run_sync(lambda: self._audit(
                    actor, False, error=detail, source=source))
                raise
        finally:
            remove_tree(work)
        await anyio.to_thread.run_sync(lambda: self._audit(actor, True, source=source, **out))
        return JSONResponse(out, status_code=200 if out.get("unchanged") else 201,
                            headers=NO_STORE)

    def _versions(self) -> list[dict[str, Any]]:
        if self.db is None:
            return []
        with self.db.cursor() as cur:
            cur.execute("SELECT to_regclass('geoplat_items_versions') IS NOT NULL AS ok")
            if not cur.fetchone()["ok"]:
                return []
            cur.execute("SELECT version, source, actor, checksum, items, offices, created_at"
                        " FROM geoplat_items_versions ORDER BY version DESC LIMIT 100")
            return [{**dict(r), "created_at": r["created_at"].isoformat()}
                    for r in cur.fetchall()]
