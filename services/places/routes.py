"""The place-name routes of a node: Tianditu's web-service URLs and our /api/places (router
factory `PlacesRoutes(places, base_url).routes()`; nodes/asgi.py mounts them, each route under
its rule of services/access/rules.py: kind `search`, so token or key and the key's `search`
quota are checked before an endpoint runs).

Both styles share one query layer (`services.places.query.Places`, sync, run in the thread
pool). `visible` is the set of the node's layers the caller may see: the caller the access check
decided for (its token's user, or a developer key's owner), `AccessControl.visible_layers`.
Bad input never reaches the database: the Tianditu routes answer Tianditu's error form (HTTP
200, `status.infocode` 2001-2007; 400 for an unknown queryType-13 category, as Tianditu), ours
RFC 9457 problem+json; an unexpected failure is logged and answered without internals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.access.control import token_cookie
from services.access.forwarding import CHECKED_KEY, NodeCredential
from services.access.require import control_of
from services.places import api, tianditu, tianditu_shapes
from services.places.errors import BAD_ENUM, BAD_PARAMETER, MISSING, PlacesInputError
from services.places.federated import Ask, FederatedPlaces, api_params
from services.places.federation import Child, Fanout, credentials, deadline_of
from services.places.model import (
    DIVISION_KINDS,
    Division,
    Geocoded,
    Place,
    Reversed,
    SearchResult,
)
from tiles.errors import problem

LOGGER = logging.getLogger("geoplat.places")
# bytes of query string (nginx lets request lines up to 64 KB through to the app and answers a
# JSON 414 beyond: tiles/templates/nginx.conf.j2)
MAX_QUERY = 64 * 1024
TOKEN_BUDGET_S = 1.0  # the most a query waits for this node's first `forward` token
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
TIANDITU_PATHS = ("/geocoder", "/v2/search", "/search", "/v2/administrative", "/administrative")
API_PATHS = ("/api/places/geocode", "/api/places/reverse", "/api/places/search",
             "/api/places/suggest", "/api/places/admin/{code}", "/api/places/openapi")


class PlacesQuery(Protocol):
    """What the routes need of `services.places.query.Places` (signatures: common contract)."""

    def geocode(self, text: str, *, visible: frozenset[str], limit: int = 5) -> Geocoded: ...
    def reverse(self, lon: float, lat: float, *, visible: frozenset[str],
                max_distance_m: float = 500) -> Reversed: ...
    def search(self, q: str | None, *, visible: frozenset[str],
               bbox: tuple[float, float, float, float] | None = None,
               near: tuple[float, float] | None = None, radius_m: float | None = None,
               admin: str | None = None, polygon: list[tuple[float, float]] | None = None,
               categories: list[str] | None = None, kinds: tuple[str, ...] | None = None,
               limit: int = 10, offset: int = 0, statistics: bool = False) -> SearchResult: ...
    def admin(self, keyword: str, *, children: int = 0, geometry: bool = False
              ) -> list[Division]: ...
    def suggest(self, q: str, *, visible: frozenset[str], limit: int = 10) -> list[Place]: ...


async def visible_layers(request: Request) -> frozenset[str]:
    """The node's layers this caller may see (nothing when the node has no access control:
    only public division rows are then returned)."""
    control = control_of(request.scope)
    if control is None:
        return frozenset()
    return frozenset(await control.visible_layers(request.scope))


def tdt_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def params_of(request: Request) -> dict[str, str]:
    if len(request.scope.get("query_string", b"")) > MAX_QUERY:
        raise PlacesInputError(BAD_PARAMETER, "The query string is too long.")
    return dict(request.query_params)


Handler = Callable[[Request], Awaitable[Response]]
ErrorForm = Callable[[int, str], dict[str, Any]]


class PlacesRoutes:
    """`places`: this node's query layer; `children` and `http`: the child nodes a query may
    concern and the app's HTTP client (services.places.federation), none on a leaf node;
    `forwarding`: this node's token for stating to its children the key it checked
    (services/access/forwarding.py; None: the key travels as `tk`)."""

    def __init__(self, places: PlacesQuery, base_url: str, *, node_id: str = "",
                 children: list[Child] | None = None, http: httpx.AsyncClient | None = None,
                 forwarding: NodeCredential | None = None):
        self.places, self.base_url, self.node_id = places, base_url.rstrip("/"), node_id
        self.forwarding = forwarding
        kids = list(children or [])
        self.fed = FederatedPlaces(places, kids,  # type: ignore[arg-type]
                                   Fanout(kids, http) if http is not None and kids else None)

    async def ask(self, request: Request) -> Ask:
        """The caller's credentials and the time left, for the children a query concerns: the
        key this node's check accepted (`tk`, `X-Api-Key`, or stated by this node's parent) is
        stated with this node's `forward` token, so that the children neither count it again
        nor apply its origin/IP binding to this node."""
        started = time.monotonic()
        deadline = deadline_of(request.headers)
        cookie = request.cookies.get(token_cookie(self.node_id)) if self.node_id else None
        key = request.scope.get(CHECKED_KEY)
        token = None
        if key and self.forwarding is not None and self.fed.fanout is not None:
            token = await self.forwarding.token(min(TOKEN_BUDGET_S, deadline / 3))
        headers, params = credentials(request.headers, cookie, key, token)
        return Ask(headers, params, max(0.0, deadline - (time.monotonic() - started)))

    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        t, a = self._tianditu, self._api
        return [
            Route("/geocoder", t(self.geocoder, tianditu_shapes.geocoder_error), methods=get),
            Route("/v2/search", t(self.search_v2, tianditu_shapes.search_error), methods=get),
            Route("/search", t(self.search_v1, tianditu_shapes.search_error), methods=get),
            Route("/v2/administrative", t(self.admin_v2, tianditu_shapes.admin_v2_error),
                  methods=get),
            Route("/administrative", t(self.admin_v1, tianditu_shapes.admin_v1_error),
                  methods=get),
            Route("/api/places/geocode", a(self.geocode), methods=get),
            Route("/api/places/reverse", a(self.reverse), methods=get),
            Route("/api/places/search", a(self.search), methods=get),
            Route("/api/places/suggest", a(self.suggest), methods=get),
            Route("/api/places/admin/{code}", a(self.admin), methods=get),
            Route("/api/places/openapi", self.openapi, methods=get),
        ]

    # --- error forms ----------------------------------------------------------------------

    @staticmethod
    def _tianditu(endpoint: Handler, form: ErrorForm) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except PlacesInputError as exc:
                # Tianditu answers a bad category of queryType 13 with HTTP 400 (movk-mapbox)
                status = 400 if exc.locator == "dataTypes" and exc.infocode == BAD_ENUM else 200
                return tdt_json(form(exc.infocode, exc.message), status)
            except Exception:
                LOGGER.exception("place-name request failed: %s", request.url.path)
                return tdt_json(form(3000, "服务器错误"), 500)
        return run

    @staticmethod
    def _api(endpoint: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except PlacesInputError as exc:
                return exc.response()
            except Exception:
                LOGGER.exception("place-name request failed: %s", request.url.path)
                return problem(500, "Internal Server Error", "The request could not be completed.")
        return run

    # --- Tianditu ---------------------------------------------------------------------------

    async def geocoder(self, request: Request) -> Response:
        p = params_of(request)
        if "postStr" in p:  # reverse: postStr={'lon':..,'lat':..,'ver':1}&type=geocode
            if p.get("type", "geocode") != "geocode":
                raise PlacesInputError(BAD_ENUM, "type is geocode.", param="type")
            lon, lat = tianditu.parse_reverse(tianditu.decode(p["postStr"], "postStr"))
            r = await self.fed.reverse(lon, lat, visible=await visible_layers(request),
                                       max_distance_m=500, ask=await self.ask(request))
            return tdt_json(tianditu_shapes.reverse(r))
        if "ds" not in p:
            raise PlacesInputError(MISSING, "ds (geocode) or postStr (reverse) is missing.",
                                   param="ds")
        keyword = tianditu.parse_geocode(tianditu.decode(p["ds"], "ds"))
        g = await self.fed.geocode(keyword, visible=await visible_layers(request), limit=5,
                                   ask=await self.ask(request))
        return tdt_json(tianditu_shapes.geocode(g, keyword))

    async def _search(self, request: Request, legacy: bool) -> Response:
        p = params_of(request)
        if p.get("type", "query") != "query":
            raise PlacesInputError(BAD_ENUM, "type is query.", param="type")
        req = tianditu.parse_search(tianditu.decode(p.get("postStr"), "postStr"), legacy=legacy)
        visible, ask = await visible_layers(request), await self.ask(request)

        async def one_search(cats: list[str] | None) -> SearchResult:
            args = req.query_args(cats)
            return await self.fed.search(req.keyword, visible=visible, ask=ask,
                                         api_params=api_params(req.keyword, args), **args)

        if req.data_types and len(req.data_types) > 1:
            results = {}
            for label, cats in req.data_types:
                results[label] = await one_search(list(cats))
            return tdt_json(tianditu_shapes.grouped(results, req))
        res = await one_search(list(req.data_types[0][1]) if req.data_types else None)
        return tdt_json(tianditu_shapes.search(res, req))

    async def search_v2(self, request: Request) -> Response:
        return await self._search(request, legacy=False)

    async def search_v1(self, request: Request) -> Response:
        return await self._search(request, legacy=True)

    async def admin_v2(self, request: Request) -> Response:
        p = params_of(request)
        req = tianditu.parse_admin_v2(p.get("keyword"), p.get("childLevel"), p.get("extensions"))
        if len(req.keyword) == 1 and not req.by_code:  # Tianditu: suggestions only
            typed, _ = await self.fed.suggest(req.keyword, visible=frozenset(), limit=20,
                                              ask=await self.ask(request))
            return tdt_json(tianditu_shapes.admin_v2_suggestions(
                [p for p in typed if p.kind in DIVISION_KINDS]))
        found, _ = await self.fed.admin(req.keyword, children=req.children,
                                        geometry=req.geometry, ask=await self.ask(request))
        return tdt_json(tianditu_shapes.admin_v2(found, geometry=req.geometry))

    async def admin_v1(self, request: Request) -> Response:
        p = params_of(request)
        req = tianditu.parse_admin_v1(tianditu.decode(p.get("postStr"), "postStr"))
        found, _ = await self.fed.admin(req.keyword, children=req.children,
                                        geometry=req.geometry, ask=await self.ask(request))
        return tdt_json(tianditu_shapes.admin_v1(found, geometry=req.geometry,
                                                 parents=req.parents))

    # --- /api/places ----------------------------------------------------------------------

    @staticmethod
    def _geojson(body: dict[str, Any], crs: str) -> JSONResponse:
        return JSONResponse(body, media_type=GEOJSON, headers={
            "Content-Crs": f"<{crs}>", "Cache-Control": "private, no-store",
            "Vary": "Authorization, Cookie, X-Api-Key"})

    async def geocode(self, request: Request) -> Response:
        p = params_of(request)
        crs = api.crs_of(p)
        address = api.text(p, "address", required=True)
        assert address is not None
        limit = api.integer(p, "limit", 5, 1, 20)
        g = await self.fed.geocode(address, visible=await visible_layers(request), limit=limit,
                                   ask=await self.ask(request))
        return self._geojson(api.geocoded(g, crs), crs)

    async def reverse(self, request: Request) -> Response:
        p = params_of(request)
        crs = api.crs_of(p)
        lon, lat = api.point_of(p)
        max_d = api.integer(p, "max_distance", 500, 1, 5000)
        r = await self.fed.reverse(lon, lat, visible=await visible_layers(request),
                                   max_distance_m=max_d, ask=await self.ask(request))
        return self._geojson(api.reversed_(r, crs), crs)

    async def search(self, request: Request) -> Response:
        p = params_of(request)
        crs = api.crs_of(p)
        args = api.search_args(p)
        q = args.pop("q")
        res = await self.fed.search(q, visible=await visible_layers(request),
                                    ask=await self.ask(request), api_params=api_params(q, args), **args)
        body = api.collection([api.place_feature(x, crs) for x in res.places], res.partial,
                              numberMatched=res.total,
                              links=api.page_links(f"{self.base_url}/api/places/search", p,
                                                   args["offset"], args["limit"], res.total))
        if res.statistics:
            body["statistics"] = [{"name": c.name, "code": c.code, "count": c.count,
                                   "lon": c.lon, "lat": c.lat, "leaf": c.leaf}
                                  for c in res.statistics]
        if res.area is not None:
            body["area"] = api.division_feature(res.area, crs)
        return self._geojson(body, crs)

    async def suggest(self, request: Request) -> Response:
        p = params_of(request)
        crs = api.crs_of(p)
        q = api.text(p, "q", required=True)
        assert q is not None
        limit = api.integer(p, "limit", 10, 1, api.MAX_LIMIT)
        found, partial = await self.fed.suggest(q, visible=await visible_layers(request),
                                                limit=limit, ask=await self.ask(request))
        return self._geojson(api.collection([api.place_feature(x, crs) for x in found],
                                            partial), crs)

    async def admin(self, request: Request) -> Response:
        p = params_of(request)
        crs = api.crs_of(p)
        code = api.text({"code": request.path_params.get("code", "")}, "code", required=True)
        assert code is not None
        children = api.integer(p, "children", 0, 0, api.MAX_CHILDREN)
        geometry = api.boolean(p, "geometry")
        found, partial = await self.fed.admin(tianditu.admin_code(code), children=children,
                                              geometry=geometry, ask=await self.ask(request))
        if not found:
            return problem(404, "Not Found", "No administrative division has this code or name.")
        return self._geojson(api.collection([api.division_feature(d, crs) for d in found],
                                            partial), crs)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(api.openapi(self.base_url), media_type=OPENAPI)
