"""Mapbox Vector Tiles from geoplat layer tables in PostGIS, for pygeoapi's tiles API.

One SQL statement per tile, integer SRIDs only: the tile envelope is computed in Python
(morecantile's WebMercatorQuad and WorldCRS84Quad, tiles/grids.py; in the storage CRS, with
the tile buffer) so the GIST index on the stored geometry is used
directly; geometries are clipped and simplified in the storage CRS (tolerance ~ one pixel
at that zoom), features under a pixel are skipped, and at most `max_features` per tile are
kept (largest bounding box first for lines/polygons, then fid).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, ClassVar

import psycopg2
from morecantile import Tile
from psycopg2 import sql as pgsql
from pygeoapi.models.provider.base import LinkType, TileMatrixSetEnum, TileSetMetadata
from pygeoapi.provider.base import ProviderConnectionError
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.tile import ProviderTileNotFoundError
from pygeoapi.util import url_join
from pyproj import Transformer
from sqlalchemy import exc as sa_exc

from services.access import fields as field_access
from tiles.grids import OGC_TMS

from . import _sql
from .crs import CRS84_URI

LOGGER = logging.getLogger(__name__)

WEB_MERCATOR = "WebMercatorQuad"
WORLD_CRS84 = "WorldCRS84Quad"
_MERC_TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)  # thread-safe (pyproj >= 3.1)
_EXTENT = 4096
_BUFFER = 64
_MAX_Z = 24
_POINT_TYPES = {"POINT", "MULTIPOINT"}


def _tile_bounds_lonlat(tms: str, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """lon/lat bounds of a tile (WebMercatorQuad or WorldCRS84Quad, top-left origin)."""
    b = OGC_TMS[tms].xy_bounds(Tile(x, y, z))
    if tms == WORLD_CRS84:
        return b.left, b.bottom, b.right, b.top
    # pyproj directly: morecantile's `bounds` looks its transformer up by CRS, ~1 ms a tile
    minx, miny = _MERC_TO_LONLAT.transform(b.left, b.bottom)
    maxx, maxy = _MERC_TO_LONLAT.transform(b.right, b.top)
    return minx, miny, maxx, maxy


def _matrix_size(tms: str, z: int) -> tuple[int, int]:
    m = OGC_TMS[tms].matrix(z)
    return int(m.matrixWidth), int(m.matrixHeight)


class PostGISMVTProvider(BaseMVTProvider):
    """Vector tiles of one `public.<layer>` table; layer name in the tile = `layer` or table."""

    _sql_cache: ClassVar[dict[tuple, str]] = {}
    _sql_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.dsn, self.schema, self.table, self.id_field, self.geom_field = _sql.table_settings(
            provider_def, self.data)
        self.layer = provider_def.get("layer") or self.table
        opts: dict[str, Any] = dict(getattr(self, "options", None) or {})
        self.options = opts
        zoom = dict(opts.get("zoom") or {})
        self.minzoom = int(zoom.get("min", 0))
        self.maxzoom = min(int(zoom.get("max", 22)), _MAX_Z)
        opts["zoom"] = {"min": self.minzoom, "max": self.maxzoom}
        opts.setdefault("schemes", [WEB_MERCATOR])
        self.schemes = [s for s in opts["schemes"] if s in (WEB_MERCATOR, WORLD_CRS84)]
        self.max_features = int(opts.get("max_features", 5000))
        self.engine = _sql.get_engine(self.dsn)
        self.info = _sql.describe_table(
            self.engine, self.dsn, self.schema, self.table, self.id_field, self.geom_field
        )
        props = provider_def.get("properties") or list(self.info.columns)
        hidden = field_access.hidden(provider_def.get("field_access"))  # this caller's
        self.attrs = [c for c in self.info.columns
                      if c in set(props) and c != self.id_field and c not in hidden]
        self._fields = {
            c: {"type": t["type"]}
            for c, t in self.info.json_schema_fields().items()
            if c in self.attrs
        }
        self._service_url = ""
        self._service_metadata_url = ""

    def __repr__(self) -> str:
        return f"<PostGISMVTProvider> {self.schema}.{self.table}"

    def get_fields(self) -> dict:
        return self._fields

    def get_layer(self) -> str:
        return self.layer

    def get_tiling_schemes(self) -> list:
        by_id = {e.value.tileMatrixSet: e.value for e in TileMatrixSetEnum}
        return [by_id[s] for s in self.schemes if s in by_id]

    def get_tiles_service(self, baseurl=None, servicepath=None, dirpath=None, tile_type=None):
        super().get_tiles_service(baseurl, servicepath, dirpath, tile_type)
        self._service_url = servicepath
        return self.get_tms_links()

    # ---- tiles -------------------------------------------------------------------------

    def _statement(self, conn: Any, tms: str, points: bool) -> str:
        key = (self.dsn, self.schema, self.table, tms, points, tuple(self.attrs), self.layer)
        cached = self._sql_cache.get(key)
        if cached is not None:
            return cached
        out_srid = 4326 if tms == WORLD_CRS84 else 3857
        geom = pgsql.Identifier(self.geom_field)
        fid = pgsql.Identifier(self.id_field)
        attrs = pgsql.SQL(", ").join(
            [pgsql.SQL("{}").format(pgsql.Identifier(c)) for c in self.attrs]
        )
        # clip (with the buffer) and simplify in storage CRS, then transform to tile CRS
        if points:
            shaped = pgsql.SQL("t.{g}").format(g=geom)
            keep = pgsql.SQL("TRUE")
            order = pgsql.SQL("t.{f}").format(f=fid)
        else:
            shaped = pgsql.SQL("ST_Simplify(ST_ClipByBox2D(t.{g}, e.qenv), %(tol)s, false)").format(
                g=geom
            )
            # skip what is under a pixel in both directions (points in mixed layers pass)
            keep = pgsql.SQL(
                "(GeometryType(t.{g}) IN ('POINT','MULTIPOINT') OR "
                "ST_XMax(t.{g}) - ST_XMin(t.{g}) >= %(px)s OR "
                "ST_YMax(t.{g}) - ST_YMin(t.{g}) >= %(px)s)"
            ).format(g=geom)
            order = pgsql.SQL(
                "(ST_XMax(t.{g}) - ST_XMin(t.{g})) * (ST_YMax(t.{g}) - ST_YMin(t.{g})) DESC, t.{f}"
            ).format(g=geom, f=fid)
        if out_srid == self.info.srid:
            to_out = pgsql.SQL("c.shape")
        else:
            to_out = pgsql.SQL("ST_Transform(c.shape, {s})").format(s=pgsql.Literal(out_srid))
        tile_env = (
            pgsql.SQL("ST_TileEnvelope(%(z)s, %(x)s, %(y)s)")
            if tms == WEB_MERCATOR
            else pgsql.SQL("ST_MakeEnvelope(%(tminx)s, %(tminy)s, %(tmaxx)s, %(tmaxy)s, 4326)")
        )
        stmt = (
            pgsql.SQL(
                """
            WITH e AS (
              SELECT ST_MakeEnvelope(%(qminx)s, %(qminy)s, %(qmaxx)s, %(qmaxy)s, {srid}) AS qenv,
                     {tile_env} AS tenv
            ),
            c AS (
              SELECT t.{fid} AS "__mvt_id", t.{fid} AS {fid_attr}{comma}{attrs},
                     {shaped} AS shape
              FROM {table} t, e
              WHERE t.{geom} && e.qenv AND {keep}
              ORDER BY {order}
              LIMIT %(limit)s
            ),
            m AS (
              SELECT c."__mvt_id", c.{fid_attr}{comma}{c_attrs},
                     ST_AsMVTGeom({to_out}, e.tenv, {extent}, {buffer}, true) AS mvtgeom
              FROM c, e
              WHERE c.shape IS NOT NULL AND NOT ST_IsEmpty(c.shape)
            )
            SELECT ST_AsMVT(m.*, %(layer)s, {extent}, 'mvtgeom', '__mvt_id')
            FROM m WHERE m.mvtgeom IS NOT NULL
            """
            )
            .format(
                srid=pgsql.Literal(self.info.srid),
                tile_env=tile_env,
                fid=fid,
                fid_attr=pgsql.Identifier(self.id_field),
                comma=pgsql.SQL(", ") if self.attrs else pgsql.SQL(""),
                attrs=pgsql.SQL(", ").join(
                    [pgsql.SQL("t.{}").format(pgsql.Identifier(c)) for c in self.attrs]
                )
                if self.attrs
                else attrs,
                c_attrs=pgsql.SQL(", ").join(
                    [pgsql.SQL("c.{}").format(pgsql.Identifier(c)) for c in self.attrs]
                )
                if self.attrs
                else attrs,
                shaped=shaped,
                table=pgsql.Identifier(self.schema, self.table),
                geom=geom,
                keep=keep,
                order=order,
                to_out=to_out,
                extent=pgsql.Literal(_EXTENT),
                buffer=pgsql.Literal(_BUFFER),
            )
            .as_string(conn)
        )
        with self._sql_lock:
            self._sql_cache[key] = stmt
        return stmt

    def get_tiles(self, layer=None, tileset=None, z=None, y=None, x=None, format_=None):
        """Encoded MVT bytes, or None for an empty tile (pygeoapi answers 204)."""
        if tileset not in self.schemes:
            raise ProviderTileNotFoundError(user_msg="tile matrix set not supported")
        try:
            z, y, x = int(z), int(y), int(x)
        except (TypeError, ValueError):
            raise ProviderTileNotFoundError(user_msg="tile not found") from None
        width, height = _matrix_size(tileset, z) if 0 <= z <= _MAX_Z else (0, 0)
        if not (self.minzoom <= z <= self.maxzoom and 0 <= x < width and 0 <= y < height):
            raise ProviderTileNotFoundError(user_msg="tile not found")

        minx, miny, maxx, maxy = _tile_bounds_lonlat(tileset, z, x, y)
        margin_x = (maxx - minx) * _BUFFER / _EXTENT
        margin_y = (maxy - miny) * _BUFFER / _EXTENT
        # one pixel of a 256-px tile, in degrees (latitude degrees shrink by cos(lat))
        px = (maxx - minx) / 256.0
        if tileset == WEB_MERCATOR:
            px *= math.cos(math.radians(max(min((miny + maxy) / 2, 85.0), -85.0)))
        params = {
            "z": z,
            "x": x,
            "y": y,
            "tminx": minx,
            "tminy": miny,
            "tmaxx": maxx,
            "tmaxy": maxy,
            "qminx": max(minx - margin_x, -180.0),
            "qminy": max(miny - margin_y, -90.0),
            "qmaxx": min(maxx + margin_x, 180.0),
            "qmaxy": min(maxy + margin_y, 90.0),
            "px": px,
            "tol": px / 2 if z < 16 else 0.0,
            "limit": self.max_features,
            "layer": self.layer,
        }
        if tileset == WEB_MERCATOR:  # ST_Transform to 3857 fails beyond the Mercator limit
            params["qminy"] = max(params["qminy"], -85.0511287798066)
            params["qmaxy"] = min(params["qmaxy"], 85.0511287798066)
        if self.info.srid not in (4490, 4326, 4610, 4214):
            raise ProviderConnectionError(user_msg="layer storage CRS not supported for tiles")
        points = self.info.geometry_type.upper() in _POINT_TYPES
        try:
            raw = self.engine.raw_connection()
            try:
                stmt = self._statement(raw.driver_connection, tileset, points)
                cur = raw.cursor()
                cur.execute(stmt, params)
                row = cur.fetchone()
                cur.close()
                raw.commit()
            finally:
                raw.close()
        except sa_exc.DBAPIError as err:
            _sql.raise_for_db_error(err)
        except psycopg2.Error as err:  # raw cursor errors are not wrapped by SQLAlchemy
            _sql.raise_for_db_error(sa_exc.DBAPIError(None, None, err))
        data = bytes(row[0]) if row and row[0] is not None else b""
        return data or None

    # ---- metadata ----------------------------------------------------------------------

    def _scheme(self, tileset: str):
        for scheme in self.get_tiling_schemes():
            if scheme.tileMatrixSet == tileset:
                return scheme
        raise ProviderTileNotFoundError(user_msg="tile matrix set not supported")

    def get_html_metadata(
        self, dataset, server_url, layer, tileset, title, description, keywords, **kwargs
    ):
        self._scheme(tileset)
        return {
            "id": dataset,
            "title": title,
            "tileset": tileset,
            "collections_path": url_join(
                server_url,
                f"collections/{dataset}/tiles/{tileset}",
                "{tileMatrix}/{tileRow}/{tileCol}?f=mvt",
            ),
            "json_url": url_join(server_url, f"collections/{dataset}/tiles/{tileset}/metadata")
            + "?f=json",
        }

    def get_default_metadata(
        self, dataset, server_url, layer, tileset, title, description, keywords, **kwargs
    ):
        scheme = self._scheme(tileset)
        service_url = url_join(
            server_url,
            f"collections/{dataset}/tiles/{tileset}",
            "{tileMatrix}/{tileRow}/{tileCol}?f=mvt",
        )
        content = TileSetMetadata(
            title=title,
            description=description,
            keywords=keywords,
            crs=scheme.crs,
            tileMatrixSetURI=scheme.tileMatrixSetURI,
        )
        content.links = [
            LinkType(
                href=url_join(server_url, "TileMatrixSets", scheme.tileMatrixSet),
                rel="http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                type_="application/json",
                title=f"{scheme.tileMatrixSet} tile matrix set definition",
            ),
            LinkType(
                href=service_url,
                rel="item",
                type_="application/vnd.mapbox-vector-tile",
                title=f"{tileset} vector tiles for {layer}",
            ),
        ]
        return content.model_dump(exclude_none=True)

    def get_vendor_metadata(
        self, dataset, server_url, layer, tileset, title, description, keywords, **kwargs
    ):
        """TileJSON 3.0 (only meaningful for WebMercatorQuad)."""
        self._scheme(tileset)
        return {
            "tilejson": "3.0.0",
            "name": title or dataset,
            "description": description or "",
            "scheme": "xyz",
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "tiles": [
                url_join(server_url, f"collections/{dataset}/tiles/{tileset}", "{z}/{y}/{x}?f=mvt")
            ],
            "vector_layers": [
                {
                    "id": self.layer,
                    "fields": {
                        k: v["type"]
                        for k, v in {self.id_field: {"type": "integer"}, **self._fields}.items()
                    },
                    "minzoom": self.minzoom,
                    "maxzoom": self.maxzoom,
                }
            ],
            "crs": CRS84_URI
            if tileset == WORLD_CRS84
            else "http://www.opengis.net/def/crs/EPSG/0/3857",
        }
