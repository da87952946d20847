"""The annotation routes of a node (在线标注, issue 16; router factory
`AnnotationRoutes(...).routes()`, mounted by nodes/asgi.py, each under its rule of
services/access/rules.py):

- `GET /api/annotations` (`f=json|geojson|kml`): the caller's annotations (GeoJSON
  FeatureCollection; `geojson` and `kml` as a download); `POST` a GeoJSON Feature
  (`properties.title`, `properties.note`; a Point, LineString or Polygon in CRS84): 201;
- `GET|PUT|DELETE /api/annotations/{annotation_id}`: one of the caller's (PUT: any of
  geometry, title, note); someone else's id answers 404 like an unknown one;
- `POST|DELETE /api/annotations/{annotation_id}/share`: an unguessable share token (kept until
  unshared) / no more sharing;
- `GET /api/annotations/shared/{token}` (`f=json|geojson|kml`): the shared annotation, read-only,
  for anyone with the link;
- `GET /api/annotations/openapi`: the OpenAPI document of these routes.

A user's token is needed (the node's cookie or a bearer token; a developer key is not a user);
cookie-authenticated changes pass services/web/guards.py's CSRF check (same-origin JSON).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.access.control import AccessControl
from services.annotations import api
from services.annotations.export import KML_TYPE, collection, feature, kml
from services.annotations.model import ID, MAX_BODY, TOKEN, AnnotationError, bad, not_found, parse
from services.annotations.store import Annotations
from tiles.errors import ProblemError, problem

LOGGER = logging.getLogger("geoplat.annotations")
GEOJSON = "application/geo+json"
PRIVATE = {"Cache-Control": "private, no-store", "Vary": "Authorization, Cookie"}
FORMATS = ("json", "geojson", "kml")

Handler = Callable[[Request], Awaitable[Response]]


def _api(endpoint: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ProblemError as exc:
            return exc.response()
        except Exception:
            LOGGER.exception("annotation request failed")
            return problem(500, "Internal Server Error", "The request could not be served.")
    return run


def _format(request: Request) -> str:
    f = (request.query_params.get("f") or "json").lower()
    if f not in FORMATS:
        raise bad("f is json, geojson or kml.", "f")
    return f


def _download(f: str, rows: list[dict[str, Any]], *, owner: bool, name: str,
              headers: dict[str, str]) -> Response:
    if f == "kml":
        return Response(kml(rows, name), media_type=KML_TYPE, headers={
            **headers, "Content-Disposition": 'attachment; filename="annotations.kml"'})
    body = collection(rows, owner=owner)
    extra = {"Content-Disposition": 'attachment; filename="annotations.geojson"'} \
        if f == "geojson" else {}
    return JSONResponse(body, media_type=GEOJSON, headers={**headers, **extra})


class AnnotationRoutes:
    def __init__(self, store: Annotations, control: AccessControl, base_url: str):
        self.store, self.control, self.base_url = store, control, base_url

    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [
            Route("/api/annotations/openapi", _api(self.openapi), methods=get),
            Route("/api/annotations/shared/{token}", _api(self.shared), methods=get),
            Route("/api/annotations", _api(self.collection), methods=["GET", "HEAD", "POST"]),
            Route("/api/annotations/{annotation_id}", _api(self.item),
                  methods=["GET", "HEAD", "PUT", "DELETE"]),
            Route("/api/annotations/{annotation_id}/share", _api(self.share),
                  methods=["POST", "DELETE"]),
        ]

    async def _owner(self, request: Request) -> tuple[str, str]:
        """(sub, username) of the signed-in user (the route's rule already required one)."""
        p = await self.control.principal(request)
        if p is None or not p.is_user:
            raise AnnotationError(401, "Unauthorized", "Sign in to keep annotations.")
        return p.sub, p.username

    @staticmethod
    async def _body(request: Request) -> Any:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", GEOJSON):
            raise AnnotationError(415, "Unsupported Media Type",
                                  "Send the annotation as application/json (a GeoJSON Feature).")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise AnnotationError(413, "Content Too Large",
                                  f"An annotation is at most {MAX_BODY} bytes.")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise AnnotationError(413, "Content Too Large",
                                      f"An annotation is at most {MAX_BODY} bytes.")
        try:
            return json.loads(raw)
        except ValueError:
            raise bad("The body is not JSON.") from None

    @staticmethod
    def _id(request: Request) -> str:
        value = request.path_params["annotation_id"]
        if not ID.match(value):
            raise not_found()
        return str(value)

    async def collection(self, request: Request) -> Response:
        sub, username = await self._owner(request)
        if request.method == "POST":
            change = parse(await self._body(request), partial=False)
            row = await anyio.to_thread.run_sync(self.store.create, sub, username, change)
            return JSONResponse(feature(row, owner=True), status_code=201, media_type=GEOJSON,
                                headers={**PRIVATE,
                                         "Location": f"/api/annotations/{row['id']}"})
        f = _format(request)
        rows = await anyio.to_thread.run_sync(self.store.list, sub)
        return _download(f, rows, owner=True, name=f"{username} annotations", headers=PRIVATE)

    async def item(self, request: Request) -> Response:
        sub, _ = await self._owner(request)
        annotation_id = self._id(request)
        if request.method == "DELETE":
            if not await anyio.to_thread.run_sync(self.store.delete, sub, annotation_id):
                raise not_found()
            return Response(status_code=204, headers=PRIVATE)
        if request.method == "PUT":
            change = parse(await self._body(request), partial=True)
            row = await anyio.to_thread.run_sync(self.store.update, sub, annotation_id, change)
        else:
            f = _format(request)
            row = await anyio.to_thread.run_sync(self.store.get, sub, annotation_id)
            if row is not None and f != "json":
                return _download(f, [row], owner=True, name=row["title"], headers=PRIVATE)
        if row is None:
            raise not_found()
        return JSONResponse(feature(row, owner=True), media_type=GEOJSON, headers=PRIVATE)

    async def share(self, request: Request) -> Response:
        sub, _ = await self._owner(request)
        annotation_id = self._id(request)
        action = self.store.share if request.method == "POST" else self.store.unshare
        row = await anyio.to_thread.run_sync(action, sub, annotation_id)
        if row is None:
            raise not_found()
        return JSONResponse(feature(row, owner=True), media_type=GEOJSON, headers=PRIVATE)

    async def shared(self, request: Request) -> Response:
        token = request.path_params["token"]
        f = _format(request)
        row = await anyio.to_thread.run_sync(self.store.shared, token) \
            if TOKEN.match(token) else None
        if row is None:
            raise AnnotationError(404, "Not Found", "No annotation is shared by this link.")
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        if f != "json":
            return _download(f, [row], owner=False, name=row["title"], headers=headers)
        return JSONResponse(feature(row, owner=False), media_type=GEOJSON, headers=headers)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(api.openapi(self.base_url),
                            media_type="application/vnd.oai.openapi+json;version=3.0")
