"""The routing routes of a node (router factory `RoutingRoutes(router).routes()`; nodes/asgi.py
mounts them, each under its rule of services/access/rules.py: kind `search`, so a token or a
key and the key's `search` quota are checked before an endpoint runs).

- `GET /api/route?from=lon,lat&to=lon,lat&mode=drive|walk`: GeoJSON (services/maps/steps.py);
  bad input is RFC 9457 problem+json (400 malformed or out of range, 422 outside the node's
  extent, too far from every road, or no route), never a 5xx;
- `GET /drive?postStr={...}&type=search`: Tianditu's XML (services/maps/drive.py), bad input in
  its error form there.
The query layer is sync (psycopg2): it runs in the thread pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.maps import drive
from services.maps.errors import BAD_ENUM, BAD_LONLAT, BAD_PARAMETER, MISSING, RouteError, bad
from services.maps.routing import Router
from services.maps.steps import geojson
from tiles.errors import problem

LOGGER = logging.getLogger("geoplat.routing")
MAX_QUERY = 8192
GEOJSON = "application/geo+json"
XML = "application/xml; charset=utf-8"
MODES = {"drive": "fastest", "walk": "walk"}
PATHS = ("/api/route", "/drive")

Handler = Callable[[Request], Awaitable[Response]]


def _lonlat(value: str | None, param: str) -> tuple[float, float]:
    if not value:
        raise bad(MISSING, f"{param} is required (lon,lat).", param)
    parts = value.split(",")
    if len(value) > 60 or len(parts) != 2:
        raise bad(BAD_LONLAT, f"{param} is lon,lat.", param)
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise bad(BAD_LONLAT, f"{param} is lon,lat.", param) from None


class RoutingRoutes:
    def __init__(self, router: Router):
        self.router = router

    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [Route("/api/route", self._api(self.route), methods=get),
                Route("/drive", self._tianditu(self.drive), methods=get)]

    @staticmethod
    def _api(endpoint: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if len(request.scope.get("query_string", b"")) > MAX_QUERY:
                    raise bad(BAD_PARAMETER, "The query string is too long.")
                return await endpoint(request)
            except RouteError as exc:
                return exc.response()
            except Exception:
                LOGGER.exception("route request failed")
                return problem(500, "Internal Server Error", "The route could not be computed.")
        return run

    @staticmethod
    def _tianditu(endpoint: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if len(request.scope.get("query_string", b"")) > MAX_QUERY:
                    raise bad(BAD_PARAMETER, "The query string is too long.")
                return await endpoint(request)
            except RouteError as exc:
                raw = drive.raw_of(request.query_params.get("postStr"))
                return Response(drive.xml_error(raw, exc.infocode), media_type=XML,
                                headers={"Cache-Control": "no-store"})
            except Exception:
                LOGGER.exception("drive request failed")
                return Response(drive.xml_error({}, 3000), status_code=500, media_type=XML,
                                headers={"Cache-Control": "no-store"})
        return run

    async def route(self, request: Request) -> Response:
        p = request.query_params
        mode = p.get("mode") or "drive"
        if mode not in MODES:
            raise bad(BAD_ENUM, "mode is drive or walk.", "mode")
        a, b = _lonlat(p.get("from"), "from"), _lonlat(p.get("to"), "to")
        route = await anyio.to_thread.run_sync(
            lambda: self.router.route([a, b], MODES[mode]))  # type: ignore[arg-type]
        return JSONResponse(geojson(route, mode), media_type=GEOJSON,
                            headers={"Cache-Control": "no-store"})

    async def drive(self, request: Request) -> Response:
        p = request.query_params
        req = drive.parse(p.get("postStr"), p.get("type"))
        started = time.monotonic()
        route = await anyio.to_thread.run_sync(lambda: self.router.route(req.points, req.profile))
        body = drive.xml_answer(req, route, time.monotonic() - started)
        return Response(body, media_type=XML, headers={"Cache-Control": "no-store"})
