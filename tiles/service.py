"""The node's tile services in its ASGI app: WMTS (KVP + REST), WMS, TMS and Tianditu routes.

MapProxy (WSGI, through a2wsgi) does the work; in front of it every request is checked here so
that bad input gets an OGC exception with a fixed message (never a 5xx, never an echo), and the
Tianditu pattern `/{layer}_{c|w}/wmts?...&TILEMATRIX=z&TILEROW=y&TILECOL=x&tk=KEY` is rewritten
to MapProxy's RESTful WMTS path (levels are the same numbers: the `c` grid has a level 0).

Every request is checked once it is valid by the access check of its route: the callable the
node's access wrapper puts in `scope["geoplat.access"]` (services/access/require.py, the
requirement of the tile routes in services/access/rules.py), else the `key_check` hook given to
`tile_routes` (tests, or an app without access control): an async callable
`(scope, layers, kind) -> OGCError | None` with the layers it uses
(WMS LAYERS/QUERY_LAYERS, the WMTS/TMS/Tianditu layer; none for capabilities, kind `metadata`);
an OGCError it returns is sent instead (as the service's exception form). Its `hidden(scope,
layers)` names the layers to leave out of capabilities, which carry the caller's `tk` in every
URL (tiles/capabilities.py). WMS GetMap is bounded to MAX_WMS_PIXELS a side and
MAX_WMS_AREA pixels. WMS GetFeatureInfo on the node's vector WMS layers (`queryable.json` beside
the MapProxy config) is answered here, not by MapProxy (tiles/featureinfo.py), with the
attributes the check's `hidden_fields(scope, layer)` allows; the WMS capabilities mark those
layers queryable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import anyio
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from geoplat_settings import EMAP_LAYERS
from tiles import capabilities, compat, featureinfo
from tiles.errors import OGCError, wms_exception, wmts_exception
from tiles.featureinfo import QueryableLayer, parse_bbox, parse_size, read_queryable
from tiles.grids import GRIDS, MAX_LEVEL
from tiles.held import HeldResponse
from tiles.mapproxy_config import EXT, MAX_WMS_AREA

LOGGER = logging.getLogger("geoplat.tiles")
KeyCheck = Callable[[Scope, Sequence[str], str], Awaitable[OGCError | None]]
ACCESS = "geoplat.access"  # scope key of the route's access check (services/access/require.py)
ROUTE_PATHS = ("/wmts", "/wmts/{rest:path}", "/wms", "/service", "/tms", "/tms/{rest:path}",
               "/{tdt}/wmts")

TILE_EXT = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
LAYER_FORMAT = {"vec": "png", "cva": "png", "cia": "png", "cta": "png", "img": "jpeg", "ter": "jpeg"}
WMS_FORMATS = {"image/png", "image/jpeg", "image/png; mode=8bit", "image/png8"}
TDT_FORMATS = {"tiles", "image/png", "image/jpeg", "png", "jpeg", "jpg"}
_INT = re.compile(r"^\d{1,9}$")
_TDT_PATH = re.compile(r"^/(?P<layer>[^/]+?)_(?P<grid>[^/_]+)/wmts/?$")
_REST = re.compile(r"^/wmts/(?P<layer>[^/]+)/(?P<grid>[^/]+)/(?P<z>[^/]+)/(?P<x>[^/]+)/(?P<y>[^/.]+)\.(?P<ext>[^/]+)$")


def _params(scope: Scope) -> dict[str, str]:
    """Query parameters with upper-case names (OGC KVP names are case-insensitive)."""
    qs = scope.get("query_string", b"").decode("latin-1")
    return {k.upper(): v for k, v in parse_qsl(qs, keep_blank_values=True)}


def check_tile(layer: str, grid: str, z: str, x: str, y: str, *, min_level: int = 0,
               layers: Collection[str] = EMAP_LAYERS) -> tuple[int, int, int]:
    """Validate a tile address; returns (z, x, y) as ints."""
    if layer not in layers:
        raise OGCError("InvalidParameterValue", "Unknown layer.", "LAYER")
    if grid not in GRIDS:
        raise OGCError("InvalidParameterValue", "Unknown tile matrix set (use c or w).",
                       "TILEMATRIXSET")
    if not _INT.match(z) or not (min_level <= int(z) <= MAX_LEVEL):
        raise OGCError("TileOutOfRange" if _INT.match(z) else "InvalidParameterValue",
                       f"TILEMATRIX must be a level from {min_level} to {MAX_LEVEL}.", "TILEMATRIX")
    cols, rows = GRIDS[grid].matrix_size(int(z))
    for name, value, limit in (("TILECOL", x, cols), ("TILEROW", y, rows)):
        if not _INT.match(value):
            raise OGCError("InvalidParameterValue", f"{name} must be a non-negative integer.", name)
        if int(value) >= limit:
            raise OGCError("TileOutOfRange", f"{name} is outside the tile matrix.", name)
    return int(z), int(x), int(y)


def _names(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def check_wms(p: dict[str, str], wms_layers: Collection[str] = EMAP_LAYERS) -> list[str]:
    """Validate the parts of a WMS request MapProxy would otherwise answer loosely; returns
    the layers it uses (LAYERS, QUERY_LAYERS or LAYER; none for GetCapabilities)."""
    request = p.get("REQUEST", "").lower()
    if request not in ("getmap", "getcapabilities", "getfeatureinfo", "getlegendgraphic"):
        raise OGCError("OperationNotSupported", "Unknown or missing REQUEST.", "REQUEST")
    if request == "getcapabilities":
        return []
    if request == "getlegendgraphic":
        layers = _names(p.get("LAYER", ""))
        if len(layers) != 1 or layers[0] not in wms_layers:
            raise OGCError("LayerNotDefined", "Unknown or missing LAYER.", "LAYER")
        return layers
    if request == "getfeatureinfo":
        layers = list(dict.fromkeys(_names(p.get("LAYERS", "")) + _names(p.get("QUERY_LAYERS", ""))))
        if not layers or any(v not in wms_layers for v in layers):
            raise OGCError("LayerNotDefined", "Unknown layer in LAYERS or QUERY_LAYERS.", "LAYERS")
        return layers
    size = parse_size(p)
    if size[0] * size[1] > MAX_WMS_AREA:
        raise OGCError("InvalidParameterValue",
                       f"WIDTH x HEIGHT must be at most {MAX_WMS_AREA} pixels.", "WIDTH")
    parse_bbox(p.get("BBOX", ""))
    if p.get("FORMAT", "").lower() not in WMS_FORMATS:
        raise OGCError("InvalidFormat", "Unsupported FORMAT (use image/png or image/jpeg).", "FORMAT")
    layers = _names(p.get("LAYERS", ""))
    if not layers or any(v not in wms_layers for v in layers):
        raise OGCError("LayerNotDefined", "Unknown layer in LAYERS.", "LAYERS")
    crs = p.get("CRS") or p.get("SRS") or ""
    if crs.upper() not in ("EPSG:4490", "EPSG:3857", "EPSG:4326", "CRS:84", "EPSG:900913"):
        raise OGCError("InvalidSRS" if p.get("VERSION") == "1.1.1" else "InvalidCRS",
                       "Unsupported CRS/SRS.", "CRS")
    return layers


def check_wmts_kvp(p: dict[str, str], layers: Collection[str] = EMAP_LAYERS) -> list[str]:
    """Validate a WMTS KVP request; returns the layer it uses (none for GetCapabilities)."""
    request = p.get("REQUEST", "").lower()
    if request == "getcapabilities":
        return []
    if request != "gettile":
        raise OGCError("OperationNotSupported", "Unknown or missing REQUEST.", "REQUEST")
    fmt = p.get("FORMAT", "").lower()
    if fmt not in ("image/png", "image/jpeg"):
        raise OGCError("InvalidParameterValue", "Unsupported FORMAT.", "FORMAT")
    check_tile(p.get("LAYER", ""), p.get("TILEMATRIXSET", ""), p.get("TILEMATRIX", ""),
               p.get("TILECOL", ""), p.get("TILEROW", ""), layers=layers)
    return [p["LAYER"]]


def yaml_layers(mapproxy_yaml: Path) -> dict[str, str]:
    """Tiled layers of a MapProxy config beyond the e-map ones -> tile extension."""
    import yaml

    conf = yaml.safe_load(Path(mapproxy_yaml).read_text(encoding="utf-8")) or {}
    caches = conf.get("caches") or {}
    out = {}
    for layer in conf.get("layers") or []:
        name, sources = layer.get("name"), layer.get("tile_sources") or []
        if name and name not in LAYER_FORMAT and sources and sources[0] in caches:
            out[name] = EXT.get(caches[sources[0]].get("format", "image/png"), "png")
    return out


@dataclass(frozen=True)
class _Served:
    """One MapProxy app and the layers it serves, swapped as a whole by `reload`."""

    wsgi: Any
    yaml: Path
    tiled: dict[str, str]  # WMTS/TMS layer -> tile extension
    wms: frozenset[str]  # WMS layers
    queryable: Mapping[str, QueryableLayer]  # vector WMS layers: GetFeatureInfo (ours)


class TileService:
    """ASGI app for the tile paths of one node.

    `reload(yaml, tiled, wms)` builds a new MapProxy app (published layers, see
    layers/emap.py) and swaps it in at once: a request reads the served state once when it
    starts, so requests in flight finish on the app they started with.
    """

    def __init__(self, mapproxy_yaml: Path, key_check: KeyCheck | None = None,
                 db: featureinfo.Rows | None = None):
        from a2wsgi import WSGIMiddleware

        self.base_yaml = Path(mapproxy_yaml)
        extra = yaml_layers(self.base_yaml)  # e.g. composite layers (services/registry)
        queryable = read_queryable(self.base_yaml)  # configured layers with `wms: true`
        self.served = _Served(self._make(self.base_yaml), self.base_yaml,
                              {**LAYER_FORMAT, **extra},
                              frozenset(EMAP_LAYERS) | frozenset(extra) | frozenset(queryable),
                              queryable)
        self.db = db  # the node's database, for GetFeatureInfo (none: no layer is queryable)
        # one thread pool for every generation; the WSGI callable is looked up per request
        self.mapproxy = WSGIMiddleware(self._dispatch, workers=8)  # type: ignore[arg-type]
        self.key_check = key_check

    @staticmethod
    def _make(mapproxy_yaml: Path) -> Any:
        from mapproxy.wsgiapp import make_wsgi_app

        compat.install()
        return make_wsgi_app(str(mapproxy_yaml))

    def reload(self, mapproxy_yaml: Path, tiled: dict[str, str] | None = None,
               wms: Collection[str] | None = None) -> None:
        """Serve `mapproxy_yaml` from now on (raises, keeping the old app, if it is invalid)."""
        mapproxy_yaml = Path(mapproxy_yaml)
        app = self._make(mapproxy_yaml)
        tiled = {**LAYER_FORMAT, **yaml_layers(mapproxy_yaml), **(tiled or {})}
        queryable = read_queryable(mapproxy_yaml)
        self.served = _Served(app, mapproxy_yaml, tiled,
                              frozenset(EMAP_LAYERS) | frozenset(wms or ()) | frozenset(tiled)
                              | frozenset(queryable), queryable)
        LOGGER.info("tile service now serves %s", mapproxy_yaml)

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        served = (environ.get("asgi.scope") or {}).get("geoplat.served") or self.served
        return served.wsgi(environ, start_response)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        raw = scope.get("raw_path") or path.encode()
        p = _params(scope)
        wms = path.rstrip("/") == "/wms"
        served = self.served  # this request's app and layers, whatever a reload does meanwhile
        scope = {**scope, "geoplat.served": served}
        version = p.get("VERSION", "1.3.0")
        try:
            if ".." in path or b"%2e" in raw.lower() or "\\" in path or "//" in path:
                raise OGCError("InvalidParameterValue", "Invalid path.", None, 400)
            tdt = _TDT_PATH.match(path)
            if tdt:
                await self._tianditu(tdt["layer"], tdt["grid"], p, scope, receive, send, served)
                return
            if path.endswith("/wmts") and path.count("/") == 2:  # "/{x}/wmts", x not layer_grid
                raise OGCError("InvalidParameterValue", "Unknown layer or tile matrix set.",
                               "LAYER", 404)
            uses: list[str] | None = None  # layers the request uses; None: not a map request
            if wms:
                uses = check_wms(p, served.wms)
            elif path.rstrip("/") in ("/wmts", "/service"):
                if path.rstrip("/") == "/service" and p.get("SERVICE", "").upper() == "WMS":
                    uses = check_wms(p, served.wms)
                    wms = True
                else:
                    uses = check_wmts_kvp(p, served.tiled)
            elif path == "/wmts/1.0.0/WMTSCapabilities.xml":
                uses = []
            elif path.startswith("/wmts/"):
                m = _REST.match(unquote(path))
                if not m:
                    raise OGCError("InvalidParameterValue", "Invalid WMTS RESTful path.", None, 404)
                check_tile(m["layer"], m["grid"], m["z"], m["x"], m["y"], layers=served.tiled)
                if m["ext"] not in TILE_EXT:
                    raise OGCError("InvalidParameterValue", "Unsupported format.", "FORMAT")
                uses = [m["layer"]]
            elif path.rstrip("/") == "/tms" or path.startswith("/tms/"):
                parts = [v for v in unquote(path).split("/") if v][2:]  # after /tms/1.0.0
                uses = parts[:1]
            # a capabilities document (TMS: the service and TileMap documents) or a map/tile
            capabilities_doc = p.get("REQUEST", "").lower() == "getcapabilities" if \
                path.rstrip("/") in ("/wms", "/wmts", "/service") else \
                path == "/wmts/1.0.0/WMTSCapabilities.xml" or (
                    path.startswith("/tms") and len([v for v in path.split("/") if v]) <= 4)
            if uses is not None:
                await self._check(scope, uses, "metadata" if capabilities_doc else "tiles")
            if wms and p.get("REQUEST", "").lower() == "getfeatureinfo":
                await self._featureinfo(p, scope, receive, send, served)
                return
        except OGCError as err:
            resp = wms_exception(err, version) if wms else wmts_exception(err)
            await resp(scope, receive, send)
            return
        transform = None
        if uses is not None and capabilities_doc:
            hidden = await self._hidden(scope, served)
            tk = capabilities.accepted_tk(scope)
            host = _host(scope)
            queryable = frozenset(served.queryable) if wms and self.db is not None else frozenset()
            if tk or hidden or queryable:
                def transform(body: bytes) -> bytes:
                    return capabilities.personalise(body, host=host, tk=tk, hidden=hidden,
                                                    queryable=queryable)
        if path.rstrip("/") == "/wmts":  # MapProxy answers WMTS KVP under /service
            qs = scope.get("query_string", b"")
            if "SERVICE" not in p:
                qs = b"SERVICE=WMTS" + (b"&" + qs if qs else b"")
            scope = {**scope, "path": "/service", "raw_path": b"/service", "query_string": qs}
        await self._mapproxy(scope, receive, send, wms=wms, version=version,
                             transform=transform, personal=uses is not None and capabilities_doc)

    async def _check(self, scope: Scope, layers: Sequence[str], kind: str) -> None:
        """Raise the check's OGCError if the caller may not use `layers` (for `kind`)."""
        check = scope.get(ACCESS) or self.key_check
        if check is not None:
            refusal = await check(scope, layers, kind)
            if refusal is not None:
                raise refusal

    async def _featureinfo(self, p: dict[str, str], scope: Scope, receive: Receive, send: Send,
                           served: _Served) -> None:
        """GetFeatureInfo on the vector WMS layers (tiles/featureinfo.py), with the attributes
        the caller may see: the access check's `hidden_fields`, else none with a level."""
        db = self.db
        req = featureinfo.parse_request(p, served.queryable if db is not None else {})
        assert db is not None  # else no layer was queryable
        hidden_of = getattr(scope.get(ACCESS) or self.key_check, "hidden_fields", None)
        results = []
        for name in req.layers:
            layer = served.queryable[name]
            hidden = frozenset(layer.fields) if hidden_of is None else \
                frozenset(await hidden_of(scope, name))
            try:
                rows = await anyio.to_thread.run_sync(featureinfo.query_features, db, layer,
                                                      req, hidden)
            except Exception:
                LOGGER.exception("GetFeatureInfo on %s failed", name)
                raise OGCError("NoApplicableCode", "The feature information could not be read.",
                               None, 503) from None
            results.append((layer, rows))
        body, media = featureinfo.render(req, results)
        # the attributes depend on who asks: never kept by a shared cache
        await Response(body, media_type=media, headers={
            "Cache-Control": "private, no-store",
            "Vary": "Authorization, Cookie, X-Api-Key"})(scope, receive, send)

    async def _hidden(self, scope: Scope, served: _Served) -> frozenset[str]:
        hidden = getattr(scope.get(ACCESS) or self.key_check, "hidden", None)
        if hidden is None:
            return frozenset()
        return frozenset(await hidden(scope, sorted(set(served.tiled) | served.wms)))

    async def _tianditu(self, layer: str, grid: str, p: dict[str, str], scope: Scope,
                        receive: Receive, send: Send, served: _Served) -> None:
        if layer not in served.tiled or grid not in GRIDS:
            raise OGCError("InvalidParameterValue", "Unknown layer or tile matrix set.",
                           "LAYER", 404)
        request = p.get("REQUEST", "GetTile").lower()
        if request == "getcapabilities":
            # QGIS, given a Tianditu URL, first asks SERVICE=WMS&REQUEST=GetCapabilities;
            # Tianditu answers either with the WMTS capabilities of that route
            if p.get("SERVICE", "WMTS").upper() not in ("WMTS", "WMS"):
                raise OGCError("InvalidParameterValue", "SERVICE must be WMTS.", "SERVICE")
            await self._check(scope, [layer], "metadata")
            tk, host = capabilities.accepted_tk(scope), _host(scope)
            base = f"{_scheme(scope)}://{host}{scope.get('root_path', '')}"

            def transform(body: bytes) -> bytes:
                return capabilities.tianditu(body, base=base, host=host, layer=layer, grid=grid,
                                             min_level=1, tk=tk)

            await self._mapproxy({**scope, "path": "/wmts/1.0.0/WMTSCapabilities.xml",
                                  "raw_path": b"/wmts/1.0.0/WMTSCapabilities.xml",
                                  "query_string": b""}, receive, send, transform=transform,
                                 personal=True)
            return
        if p.get("SERVICE", "WMTS").upper() != "WMTS":
            raise OGCError("InvalidParameterValue", "SERVICE must be WMTS.", "SERVICE")
        if request != "gettile":
            raise OGCError("OperationNotSupported", "Only GetTile and GetCapabilities.", "REQUEST")
        if p.get("LAYER", layer) != layer:
            raise OGCError("InvalidParameterValue", "LAYER does not match the path.", "LAYER")
        if p.get("TILEMATRIXSET", grid) != grid:
            raise OGCError("InvalidParameterValue", "TILEMATRIXSET does not match the path.",
                           "TILEMATRIXSET")
        if p.get("FORMAT", "tiles").lower() not in TDT_FORMATS:
            raise OGCError("InvalidParameterValue", "Unsupported FORMAT.", "FORMAT")
        z, x, y = check_tile(layer, grid, p.get("TILEMATRIX", ""), p.get("TILECOL", ""),
                             p.get("TILEROW", ""), min_level=1, layers=served.tiled)
        await self._check(scope, [layer], "tiles")
        rest = f"/wmts/{layer}/{grid}/{z:02d}/{x}/{y}.{served.tiled[layer]}"
        await self._mapproxy({**scope, "path": rest, "raw_path": rest.encode(), "query_string": b""},
                             receive, send)

    async def _mapproxy(self, scope: Scope, receive: Receive, send: Send, *, wms: bool = False,
                        version: str = "1.3.0", transform: Callable[[bytes], bytes] | None = None,
                        personal: bool = False) -> None:
        """Run MapProxy; a 5xx it produces becomes a generic OGC exception (no internals).

        `transform` rewrites a 200 body (capabilities per caller); `personal` answers are
        marked private and never stored by a shared cache (they may carry the caller's tk).
        """
        state: dict[str, Any] = {"replaced": False, "held": None}

        async def fail() -> None:
            state["replaced"] = True
            err = OGCError("NoApplicableCode", "The tile service could not complete the request.",
                           None, 503)
            resp = wms_exception(err, version) if wms else wmts_exception(err)
            await resp(scope, receive, send)

        async def guarded(message: Message) -> None:
            if state["replaced"]:
                return
            if message["type"] == "http.response.start":
                if message["status"] >= 500:
                    LOGGER.error("MapProxy answered %s for %s", message["status"], scope["path"])
                    await fail()
                    return
                if personal:
                    headers = [(k, v) for k, v in message.get("headers", [])
                               if k.lower() not in (b"cache-control", b"vary", b"etag",
                                                    b"last-modified")]
                    headers += [(b"cache-control", b"private, no-store"),
                                (b"vary", b"Authorization, Cookie, X-Api-Key")]
                    message = {**message, "headers": headers}
                if transform is not None and message["status"] == 200:
                    state["held"] = HeldResponse(message)
                    return
            elif message["type"] == "http.response.body" and state["held"] is not None:
                whole = state["held"].add(message)
                if whole is None:
                    return
                try:
                    body = transform(whole)  # type: ignore[misc]
                except Exception:
                    LOGGER.exception("could not rewrite the capabilities of %s", scope["path"])
                    await fail()
                    return
                await state["held"].send(send, body)
                return
            await send(message)

        await self.mapproxy(scope, receive, guarded)  # type: ignore[arg-type]  # ASGI types


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v.decode("latin-1")
    return ""


def _host(scope: Scope) -> str:
    """The host (and port) the caller used, as MapProxy writes it into its URLs."""
    host = _header(scope, b"host")
    if not host and scope.get("server"):
        h, port = scope["server"]
        host = f"{h}:{port}" if port else h
    return host.lower()


def _scheme(scope: Scope) -> str:
    return str(scope.get("scheme") or "http")


async def _raise_as_ogc(service: TileService, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await service(scope, receive, send)
    except OGCError as err:
        await wmts_exception(err)(scope, receive, send)


def tile_routes(node_dir: str | Path, key_check: KeyCheck | None = None,
                db: featureinfo.Rows | None = None) -> list[Route]:
    """Starlette routes of the tile services, or none when the node has no tile config;
    `db` (the node's database) answers GetFeatureInfo."""
    yaml_path = Path(node_dir) / "tiles" / "mapproxy.yaml"
    if not yaml_path.exists():
        return []
    service = TileService(yaml_path, key_check, db)

    class _App:  # a class instance, so Starlette treats it as a raw ASGI app
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await _raise_as_ogc(service, scope, receive, send)

    app = _App()
    app.service = service  # type: ignore[attr-defined]
    return [Route(p, app) for p in ROUTE_PATHS]


def tile_route_paths() -> tuple[str, ...]:
    """The paths of the routes `tile_routes` makes (for the access rules of each)."""
    return ROUTE_PATHS
