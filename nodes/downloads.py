"""File answers in front of pygeoapi's mount: downloads of items and result files of jobs.

`Downloads` wraps pygeoapi's app (mounted at `/ogc`, so every request has passed the `/ogc`
requirement first, services/access/require.py `ogc_api`) and answers itself:

- `GET /ogc/collections/{id}/items?f=gpkg|shp|csv|kml|fgb`: the items of a feature collection
  as a file, with the items route's `bbox` (CRS84), `filter` (CQL2 text, as pygeoapi parses it),
  `name=value` properties, `q`, `datetime`, `limit` and `crs` (the CRS of the file; default
  CRS84 longitude, latitude). The query is the collection's provider's own (its `_where`: the
  same rules, and the same refusals for restricted attributes), built with the caller's
  attribute rights so that restricted attributes are never written; the rows stream from a
  server-side cursor into GDAL (services/analysis/exports.py, shared with `extract`), then the
  file to the client. Over `analysis.download_limit` features: 413 problem+json naming the
  process `extract`. `f=csv` is ours (WKT for every geometry type; pygeoapi's CSV writes only
  points). Access is the JSON items' (checked before this: an invisible layer gets the answer a
  missing one does).
- `GET /ogc/jobs/{jobId}/results/files/{name}`: a file a job wrote (`extract`), for the job's
  creator or a node admin (another caller: 404, as for the job itself); `name` must be one of
  the files listed in the job's directory, never a path joined from the request.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pygeoapi.plugin import load_plugin
from pygeoapi.provider.base import ProviderGenericError
from pygeoapi.util import (
    filter_dict_by_key_value,
    get_provider_by_type,
    modify_pygeofilter,
    transform_bbox,
)
from pygeofilter.parsers.ecql import parse as parse_ecql_text
from pyproj.exceptions import CRSError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from geoplat_settings import NodeRuntime
from services.access import fields as field_access
from services.analysis import exports
from services.analysis.extract import CRS_OFFERED, OWNER_FILE, crs_code
from services.analysis.queue import results_dir
from services.analysis.store import Jobs
from tiles.errors import problem

LOGGER = logging.getLogger("geoplat.downloads")

ITEMS = re.compile(r"^(?:/ogc)?/collections/([^/]+)/items/?$")
FILES = re.compile(r"^(?:/ogc)?/jobs/([A-Za-z0-9_-]{1,64})/results/files/([^/]{1,200})$")
DOWNLOAD_FORMATS = ("gpkg", "shp", "csv", "kml", "fgb")
RESERVED = {"bbox", "bbox-crs", "crs", "f", "lang", "limit", "offset", "resulttype", "datetime",
            "sortby", "properties", "skipGeometry", "q", "filter", "filter-lang", "filter-crs",
            "tk"}
CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84")


class Refused(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.response = problem(status, title, detail, **extra)


def _bad(detail: str) -> Refused:
    return Refused(400, "Bad Request", detail)


class Downloads:
    """pygeoapi's app, with item downloads and job result files answered here."""

    def __init__(self, app: ASGIApp, runtime: NodeRuntime, control: Any, server: Any):
        """`server`: pygeoapi's `starlette_app` module (its CONFIG, and its API for the
        answer to an unknown collection), read at each request (layers/serving.py swaps them
        when a layer is published)."""
        self.app = app
        self.runtime = runtime
        self.control = control
        self.server = server  # its CONFIG and api_ are swapped when a layer is published

    @property
    def config(self) -> Any:
        return self.server.CONFIG

    @property
    def api(self) -> Any:
        return self.server.api_

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            files = FILES.match(path)
            if files:
                response = await self.result_file(Request(scope, receive), *files.groups())
                await response(scope, receive, send)
                return
            items = ITEMS.match(path)
            if items:
                request = Request(scope, receive)
                if request.query_params.get("f") in DOWNLOAD_FORMATS:
                    response = await self.download(request, items.group(1))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    # --- result files of jobs ---------------------------------------------------------------

    async def result_file(self, request: Request, job_id: str, name: str) -> Response:
        missing = problem(404, "Not Found", "No such file of a job of yours on this node.")
        p = await self.control.caller(request)
        if p is None:  # processes_call let no anonymous caller here; never a file of no one
            return missing
        directory = results_dir(self.runtime.node_dir) / job_id
        owner = await run_in_threadpool(self._owner, job_id, directory)
        if owner is None or not (self.control.is_admin(p) or owner == p.sub):
            return missing
        listing = {f.name: f for f in directory.iterdir()
                   if f.is_file() and not f.name.startswith(".")} if directory.is_dir() else {}
        path = listing.get(name)
        if path is None:
            return missing
        return FileResponse(path, media_type=exports.media_type_of(name), filename=name,
                            headers={"Cache-Control": "private, no-store"})

    def _owner(self, job_id: str, directory: Path) -> str | None:
        jobs = Jobs(self.runtime.dsn)
        try:
            row = jobs.get(job_id)
        finally:
            jobs.close()
        if row is not None:
            return str(row["owner"]) if row["status"] == "successful" else None
        marker = directory / OWNER_FILE  # a run without a job row (the process called directly)
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None

    # --- downloads of items -----------------------------------------------------------------

    async def download(self, request: Request, layer: str) -> Response:
        collections = filter_dict_by_key_value(self.config.get("resources", {}), "type",
                                               "collection")
        try:
            provider_def = get_provider_by_type(collections[layer]["providers"], "feature")
        except Exception:  # noqa: BLE001 (pygeoapi raises its own kinds): not a feature layer
            # the answer of the JSON items to a collection that is not there
            headers, status, content = self.api.get_exception(
                HTTPStatus.NOT_FOUND, {"Content-Type": "application/json"}, "json", "NotFound",
                "Collection not found")
            return Response(content, status, headers=headers)
        rules = self.control.fields.get(layer) or {}
        rights = await self.control.field_rights(request, layer) if rules else frozenset()
        named = field_access.named_in_query(request.query_params,
                                            field_access.hidden(rules, rights))
        if named:
            return field_access.refusal(layer, named).response()
        fmt = str(request.query_params["f"])
        work = results_dir(self.runtime.node_dir).parent / "downloads"
        work.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="items-", dir=work))
        try:
            written = await run_in_threadpool(self._write, request, layer, provider_def, rights,
                                              fmt, directory)
        except Refused as refused:
            shutil.rmtree(directory, ignore_errors=True)
            return refused.response
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return FileResponse(written.path, media_type=written.media_type, filename=written.name,
                            background=BackgroundTask(shutil.rmtree, directory, True))

    def _write(self, request: Request, layer: str, provider_def: dict, rights: frozenset[str],
               fmt: str, directory: Path) -> exports.Written:
        params = request.query_params
        token = field_access.RIGHTS.set(rights)
        try:
            p = load_plugin("provider", provider_def)  # its attributes: the caller's
        finally:
            field_access.RIGHTS.reset(token)
        limit = self.runtime.analysis.download_limit
        asked = params.get("limit")
        if asked is not None:
            try:
                cap = int(asked)
            except ValueError:
                raise _bad("limit: an integer") from None
            if cap < 1:
                raise _bad("limit: 1 or more")
            cap = min(cap, limit)
        else:
            cap = None
        srid = self._srid(params, fmt)
        where = self._where(p, params, provider_def)
        t = p.info.table
        n = self._count(p, where, (cap or limit) + 1)
        if cap is None and n > limit:
            extract = f"{self.runtime.server.base_url}/ogc/processes/extract"
            raise Refused(413, "Content Too Large",
                          f"More than {limit} features match: this node's downloads stop at "
                          f"{limit}. Narrow the bbox or the filter, or run the process "
                          f"`extract` ({extract}/execution), which writes any number of "
                          "features to a file for you.", limit=limit, process="extract",
                          links=[{"rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                                  "href": extract, "title": "the process extract"}])
        names = list(p._attrs)
        columns = [(p.id_field, p.info.columns.get(p.id_field, "integer")),
                   *[(c, p.info.columns[c]) for c in names]]
        geom = t.c[p.geom_field]
        if srid != p.info.srid:
            geom = sa.func.ST_Transform(geom, sa.literal(srid))
        postgis_type = p.info.geometry_type.upper()
        gtype = exports.ogr_geometry_type(postgis_type)
        if gtype.startswith("Multi"):
            geom = sa.func.ST_Multi(geom)
        cols = [sa.func.ST_AsBinary(geom), *[self._column(t.c[c], pgtype)
                                            for c, pgtype in columns]]
        stmt = sa.select(*cols).where(*where).order_by(t.c[p.id_field].asc())
        if cap is not None:
            stmt = stmt.limit(cap)

        def batches() -> Iterator[list[Any]]:
            with p.engine.connect() as conn:
                result = conn.execution_options(stream_results=True,
                                                max_row_buffer=exports.BATCH).execute(stmt)
                for part in result.partitions(exports.BATCH):
                    yield [tuple(r) for r in part]

        data = exports.LayerData(re.sub(r"[^A-Za-z0-9_-]", "_", layer)[:64] or "items", columns,
                                 gtype, batches())
        written = exports.write(fmt, directory, data.name, [data], srid)
        return written[0]

    @staticmethod
    def _column(col: Any, pgtype: str) -> Any:
        expr = exports.select_expression("x", pgtype)
        if expr == "{}::double precision":
            return sa.cast(col, sa.Float)
        if expr == "{}::text":
            return sa.cast(col, sa.Text)
        return col

    @staticmethod
    def _srid(params: Any, fmt: str) -> int:
        raw = params.get("crs")
        if raw is None or raw in CRS84:  # as the items: CRS84 unless asked
            return 4326
        code = crs_code(raw)
        if code is None or code not in CRS_OFFERED:
            raise _bad("crs: CRS84 (the default), EPSG:4490, EPSG:4326, EPSG:3857 or a CGCS2000 "
                       "Gauss-Krüger zone EPSG:4534-4554, as http://www.opengis.net/def/crs/"
                       "EPSG/0/{code}")
        if fmt == "kml" and code not in (4326, 4490):
            raise _bad("crs: KML is always longitude, latitude (WGS 84)")
        return 4326 if fmt == "kml" else code

    @staticmethod
    def _where(p: Any, params: Any, provider_def: dict) -> list[Any]:
        """The provider's own WHERE clauses, with bbox and filter geometries brought into its
        storage CRS as pygeoapi's items route does."""
        storage = provider_def.get("storage_crs") or CRS84[0]
        bbox = None
        if params.get("bbox"):
            try:
                bbox = [float(v) for v in params["bbox"].split(",")]
            except ValueError:
                raise _bad("bbox: 4 numbers minx,miny,maxx,maxy") from None
            if len(bbox) != 4:
                raise _bad("bbox: 4 numbers minx,miny,maxx,maxy")
            try:
                bbox = transform_bbox(bbox, params.get("bbox-crs", CRS84[0]), storage)
            except (CRSError, ValueError):
                raise _bad("bbox-crs: not a CRS this node knows") from None
        filterq = None
        if params.get("filter"):
            if params.get("filter-lang") not in (None, "cql-text", "cql2-text"):
                raise _bad("filter-lang: downloads take CQL2 text (filter-lang=cql2-text)")
            try:
                filterq = modify_pygeofilter(parse_ecql_text(params["filter"]),
                                             filter_crs_uri=params.get("filter-crs", CRS84[0]),
                                             storage_crs_uri=storage,
                                             geometry_column_name=provider_def.get("geom_field"))
            except Exception:  # noqa: BLE001 (the parser raises many kinds)
                raise _bad("filter: bad CQL2 text") from None
        # as pygeoapi: other parameters naming an attribute filter by it, the rest are ignored
        properties = [(k, v) for k, v in params.items() if k not in RESERVED and k in p.fields]
        try:
            return list(p._where(bbox, params.get("datetime"), properties, params.get("q"),
                                 filterq))
        except ProviderGenericError as err:
            raise _bad(err.message) from None

    @staticmethod
    def _count(p: Any, where: list[Any], bound: int) -> int:
        t = p.info.table
        sub = sa.select(sa.literal(1)).select_from(t).where(*where).limit(bound).subquery()
        with p.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())
