"""OGC API Features provider for geoplat layer tables in PostGIS (read-only).

Axis order: pygeoapi hands `query()` a bbox and CQL geometries already transformed into the
storage CRS's *authority* axis order (EPSG:4490 -> lat,lon), while PostGIS stores lon/lat.
This provider swaps them back, and writes output geometries in the requested CRS's own
axis order (CRS84 lon/lat, EPSG:4326/4490 lat/lon, EPSG:3857 x/y) using PostGIS with
integer SRIDs. ECQL `BBOX(geom, x1, y1, x2, y2)` is not touched by pygeoapi and is read as
CRS84 lon/lat unless it names a CRS. Filters become SQL in nodes/providers/cql.py.

numberMatched: exact when cheap (the unfiltered row count is counted once per table version
per process; a filtered count is exact up to COUNT_LIMIT matches) and omitted otherwise, so
it is never an estimate presented as a fact.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from typing import Any

import sqlalchemy as sa
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    SchemaType,
)
from pygeofilter import ast
from pyproj.exceptions import CRSError
from sqlalchemy import exc as sa_exc

from services.access import fields as field_access

from . import _sql
from .cql import bad, to_sql
from .crs import CRS84_URI, is_lat_first, srid_from_uri
from .queryables import column_titles, install_queryable_titles

__all__ = ["COUNT_LIMIT", "PostGISFeatureProvider", "column_titles", "install_queryable_titles"]

LOGGER = logging.getLogger(__name__)

COUNT_LIMIT = 10_000
_BIGINT = (-(2**63), 2**63 - 1)


def _filter_properties(node: Any) -> set[str]:
    """Every property name a parsed CQL2 filter (pygeofilter AST) refers to."""
    out: set[str] = set()

    def walk(n: Any) -> None:
        if isinstance(n, ast.Attribute):
            out.add(str(n.name))
        elif isinstance(n, ast.Node):
            for child in n.get_sub_nodes():
                walk(child)
        elif isinstance(n, (list, tuple)):
            for child in n:
                walk(child)

    walk(node)
    return out


class _CountCache:
    """Exact unfiltered row counts per table version, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}

    def get(self, conn: sa.Connection, info: _sql.TableInfo) -> int:
        version = conn.execute(
            sa.text(
                "SELECT c.oid::bigint, c.relfilenode::bigint, "
                "pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_xact_tuples_inserted(c.oid), "
                "pg_stat_get_tuples_deleted(c.oid) + pg_stat_get_xact_tuples_deleted(c.oid) "
                "FROM pg_class c WHERE c.oid = to_regclass(:q)"
            ),
            {"q": _sql.regclass_name(info.schema, info.name)},
        ).one()
        key = (str(conn.engine.url), *version)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        n = conn.execute(sa.select(sa.func.count()).select_from(info.table)).scalar_one()
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[:2] != key[:2]}
            self._counts[key] = int(n)
        return int(n)


_COUNTS = _CountCache()


class PostGISFeatureProvider(BaseProvider):
    """Read-only feature provider over one `public.<layer>` table of a geoplat node."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.titles = column_titles(provider_def.get("titles"))
        self.dsn, self.schema, self.table, self.id_field, self.geom_field = _sql.table_settings(
            provider_def, self.data)
        self.storage_crs = provider_def.get("storage_crs", CRS84_URI)
        self.count_limit = int(provider_def.get("count_limit", COUNT_LIMIT))
        self.engine = _sql.get_engine(self.dsn)
        self.info = _sql.describe_table(
            self.engine, self.dsn, self.schema, self.table, self.id_field, self.geom_field
        )
        exposed = set(self.properties) if self.properties else set(self.info.columns)
        # attributes this request's caller may not see (services/access/fields.py): never
        # selected, described, searched by `q`, filtered or sorted by
        self.hidden = field_access.hidden(provider_def.get("field_access"))
        self._attrs = [c for c in self.info.columns
                       if c in exposed and c != self.id_field and c not in self.hidden]
        self._allowed = set(self._attrs) | {self.id_field}
        self._fields = self.get_fields()

    def __repr__(self) -> str:
        return f"<PostGISFeatureProvider> {self.schema}.{self.table}"

    # ---- description -------------------------------------------------------------------

    def get_fields(self) -> dict:
        fields = {self.id_field: {"type": "integer" if self.info.id_is_integer else "string"}}
        allf = self.info.json_schema_fields()
        fields.update({c: allf[c] for c in self._attrs})
        for name, spec in fields.items():
            if name in self.titles:
                spec["title"] = self.titles[name]
        return fields

    def get_schema(self, schema_type: SchemaType = SchemaType.item):
        props = {k: dict(v) for k, v in self.fields.items()}
        props["geometry"] = {"$ref": "https://geojson.org/schema/Geometry.json"}
        return (
            "application/geo+json",
            {
                "$schema": "http://json-schema.org/draft/2019-09/schema",
                "type": "object",
                "properties": props,
            },
        )

    # ---- SQL pieces --------------------------------------------------------------------

    def _geometry_out(self, crs_transform_spec: Any) -> sa.ColumnElement:
        target = crs_transform_spec.target_crs_uri if crs_transform_spec else self.storage_crs
        try:
            srid, lat_first = srid_from_uri(target), is_lat_first(target)
        except CRSError:
            raise bad("unsupported crs") from None
        geom: sa.ColumnElement = self.info.table.c[self.geom_field]
        if srid != self.info.srid:
            geom = sa.func.ST_Transform(geom, sa.literal(srid))
        if lat_first:
            geom = sa.func.ST_FlipCoordinates(geom)
        digits = 9 if srid in (4326, 4490, 4610, 4214) or lat_first else 3
        return sa.func.ST_AsGeoJSON(geom, sa.literal(digits)).label("__geojson")

    def _bbox_clause(self, bbox: list) -> sa.ColumnElement:
        if len(bbox) == 6:
            bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
        if len(bbox) != 4:
            raise bad("bbox needs 4 or 6 numbers")
        a, b, c, d = (float(v) for v in bbox)
        # pygeoapi transformed the bbox into the storage CRS's authority axis order
        minx, miny, maxx, maxy = (b, a, d, c) if is_lat_first(self.storage_crs) else (a, b, c, d)
        if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
            raise bad("bbox coordinates must be finite numbers")
        if minx > maxx or miny > maxy:
            # boxes across the antimeridian are not supported: no layer here crosses it
            raise bad("bbox: the lower corner must not exceed the upper corner")
        env = sa.func.ST_MakeEnvelope(
            sa.literal(minx),
            sa.literal(miny),
            sa.literal(maxx),
            sa.literal(maxy),
            sa.literal(self.info.srid),
        )
        geom = self.info.table.c[self.geom_field]
        if self.info.geometry_type.upper() == "POINT":
            # for points, box overlap is intersection, and skips the per-row geometry test
            return geom.op("&&")(env)
        return sa.func.ST_Intersects(geom, env)

    def _typed(self, name: str, value: Any) -> Any:
        pgtype = self.info.columns[name]
        try:
            if pgtype in ("smallint", "integer", "bigint"):
                v = int(value)
                if not _BIGINT[0] <= v <= _BIGINT[1]:
                    raise ValueError
                return v
            if pgtype in ("double precision", "real", "numeric"):
                return float(value)
            if pgtype == "boolean":
                if str(value).lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return str(value).lower() in ("true", "1")
        except (TypeError, ValueError):
            raise bad(f"invalid value for property {name}") from None
        return str(value)

    def _where(self, bbox, datetime_, properties, q, filterq) -> list[sa.ColumnElement]:
        t = self.info.table
        where: list[sa.ColumnElement] = []
        if bbox:
            where.append(self._bbox_clause(bbox))
        for name, value in properties or []:
            self._refuse_hidden([name])
            if name not in self._allowed:
                raise bad("unknown property")
            where.append(t.c[name] == self._typed(name, value))
        if datetime_ and self.time_field:
            if self.time_field not in self.info.columns:
                raise bad("time field not available")
            col = t.c[self.time_field]
            if "/" in datetime_:
                start, end = datetime_.split("/", 1)
                if start not in ("..", ""):
                    where.append(col >= sa.literal(start))
                if end not in ("..", ""):
                    where.append(col <= sa.literal(end))
            else:
                where.append(col == sa.literal(datetime_))
        if q:
            terms = [w for w in str(q).replace(",", " ").split() if w][:8]
            text_cols = [c for c in self.info.text_columns if c in self._allowed]
            for term in terms:
                esc = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                if text_cols:
                    where.append(
                        sa.or_(*[t.c[c].ilike(f"%{esc}%", escape="\\") for c in text_cols])
                    )
                else:
                    where.append(sa.false())
        if filterq is not None:
            self._refuse_hidden(_filter_properties(filterq))
            try:
                where.append(to_sql(filterq, self.info, self._allowed))
            except ProviderInvalidQueryError:
                raise
            except (
                TypeError,
                ValueError,
                AttributeError,
                KeyError,
                NotImplementedError,
                sa_exc.ArgumentError,
            ) as err:
                LOGGER.info("filter rejected: %s", err)
                raise bad("invalid filter") from None
        return where

    def _refuse_hidden(self, names: Any) -> None:
        named = sorted({n for n in names if n in self.hidden})
        if named:
            raise bad(f"property {', '.join(named)} is restricted: it needs a grant for this "
                      "layer (or a signed-in user) to be filtered, sorted or selected")

    def _feature(self, row: Any, names: list[str], skip_geometry: bool) -> dict:
        m = row._mapping
        props = {n: m[n] for n in names}
        geom = None if skip_geometry or m.get("__geojson") is None else json.loads(m["__geojson"])
        return {"type": "Feature", "id": m["__id"], "geometry": geom, "properties": props}

    # ---- queries -----------------------------------------------------------------------

    def query(
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list | None = None,
        datetime_: str | None = None,
        properties: list | None = None,
        sortby: list | None = None,
        select_properties: list | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq=None,
        crs_transform_spec=None,
        **kwargs,
    ) -> dict:
        t = self.info.table
        where = self._where(bbox, datetime_, properties, q, filterq)
        self._refuse_hidden([s.get("property") for s in sortby or []])
        if select_properties:
            self._refuse_hidden(select_properties)
            unknown = set(select_properties) - self._allowed
            if unknown:
                raise bad("unknown properties specified")
            names = [c for c in self._attrs if c in set(select_properties)]
        else:
            names = list(self._attrs)
        order = []
        for s in sortby or []:
            prop = s.get("property")
            if prop not in self._allowed:
                raise bad("bad sort property")
            col = t.c[prop]
            order.append(col.desc() if s.get("order") == "-" else col.asc())
        order.append(t.c[self.id_field].asc())  # stable paging
        offset, limit = max(int(offset or 0), 0), max(int(limit if limit is not None else 10), 0)

        cols: list[Any] = [t.c[self.id_field].label("__id"), *[t.c[n] for n in names]]
        if not skip_geometry:
            cols.append(self._geometry_out(crs_transform_spec))
        # page over ids first: PostgreSQL would otherwise build the output (GeoJSON!) of
        # every row skipped by OFFSET
        page = (
            sa.select(t.c[self.id_field].label("__k"))
            .where(*where)
            .order_by(*order)
            .offset(offset)
            .limit(limit)
            .subquery("page")
        )
        stmt = (
            sa.select(*cols)
            .join_from(t, page, t.c[self.id_field] == page.c["__k"])
            .order_by(*order)
        )
        result: dict[str, Any] = {"type": "FeatureCollection", "features": []}
        try:
            with self.engine.connect() as conn:
                if resulttype == "hits":
                    result["numberMatched"] = conn.execute(
                        sa.select(sa.func.count()).select_from(t).where(*where)
                    ).scalar_one()
                    result["numberReturned"] = 0
                    return result
                rows = conn.execute(stmt).all() if limit > 0 else []
                result["features"] = [self._feature(r, names, skip_geometry) for r in rows]
                matched = self._number_matched(conn, where, offset, len(rows), limit)
        except sa_exc.DBAPIError as err:
            _sql.raise_for_db_error(err)
        if matched is not None:
            result["numberMatched"] = matched
        result["numberReturned"] = len(result["features"])
        return result

    def _number_matched(self, conn, where, offset: int, returned: int, limit: int) -> int | None:
        if returned < limit and (returned > 0 or offset == 0):
            return offset + returned  # the last page tells the total for free
        if not where:
            return _COUNTS.get(conn, self.info)
        capped = (
            sa.select(sa.literal(1))
            .select_from(self.info.table)
            .where(*where)
            .limit(self.count_limit + 1)
            .subquery()
        )
        n = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        return int(n) if n <= self.count_limit else None

    def _parse_id(self, identifier: Any) -> Any:
        if self.info.id_is_integer:
            s = str(identifier).strip()
            if not re.fullmatch(r"[+-]?\d{1,19}", s):
                raise ProviderItemNotFoundError(user_msg="identifier not found")
            v = int(s)
            if not _BIGINT[0] <= v <= _BIGINT[1]:
                raise ProviderItemNotFoundError(user_msg="identifier not found")
            return v
        return str(identifier)

    def get(self, identifier: Any, crs_transform_spec=None, **kwargs) -> dict:
        fid = self._parse_id(identifier)
        t = self.info.table
        idc = t.c[self.id_field]
        prev_q = sa.select(sa.func.max(idc)).where(idc < fid).scalar_subquery()
        next_q = sa.select(sa.func.min(idc)).where(idc > fid).scalar_subquery()
        stmt = sa.select(
            idc.label("__id"),
            *[t.c[n] for n in self._attrs],
            self._geometry_out(crs_transform_spec),
            prev_q.label("__prev"),
            next_q.label("__next"),
        ).where(idc == fid)
        try:
            with self.engine.connect() as conn:
                row = conn.execute(stmt).first()
        except sa_exc.DBAPIError as err:
            _sql.raise_for_db_error(err)
        if row is None:
            raise ProviderItemNotFoundError(user_msg="identifier not found")
        feature = self._feature(row, self._attrs, False)
        m = row._mapping
        feature["prev"] = m["__prev"] if m["__prev"] is not None else m["__id"]
        feature["next"] = m["__next"] if m["__next"] is not None else m["__id"]
        return feature

    # ---- no writes ---------------------------------------------------------------------

    def create(self, item):
        raise ProviderInvalidQueryError(user_msg="collection is read-only")

    def update(self, identifier, item):
        raise ProviderInvalidQueryError(user_msg="collection is read-only")

    def delete(self, identifier):
        raise ProviderInvalidQueryError(user_msg="collection is read-only")
