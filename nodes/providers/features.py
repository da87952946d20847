"""OGC API Features provider for geoplat layer tables in PostGIS (read-only).

Axis order: pygeoapi hands `query()` a bbox and CQL geometries already transformed into the
storage CRS's *authority* axis order (EPSG:4490 -> lat,lon), while PostGIS stores lon/lat.
This provider swaps them back, and writes output geometries in the requested CRS's own
axis order (CRS84 lon/lat, EPSG:4326/4490 lat/lon, EPSG:3857 x/y) using PostGIS with
integer SRIDs. ECQL `BBOX(geom, x1, y1, x2, y2)` is not touched by pygeoapi and is read as
CRS84 lon/lat unless it names a CRS.

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
from datetime import date, datetime, time, timedelta
from typing import Any

import shapely.geometry
import shapely.ops
import sqlalchemy as sa
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    SchemaType,
)
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pyproj.exceptions import CRSError
from sqlalchemy import exc as sa_exc

from . import _sql
from .crs import CRS84_URI, is_lat_first, srid_from_uri

LOGGER = logging.getLogger(__name__)

COUNT_LIMIT = 10_000
_BIGINT = (-(2**63), 2**63 - 1)
_LITERALS = (str, float, int, bool, datetime, date, time, timedelta)
_RELATE_PATTERN = re.compile(r"^[0-9TF*]{9}$")
_METRES = {
    "meters": 1.0,
    "metres": 1.0,
    "m": 1.0,
    "kilometers": 1000.0,
    "km": 1000.0,
    "feet": 0.3048,
    "statute miles": 1609.344,
    "miles": 1609.344,
    "nautical miles": 1852.0,
}
_SPATIAL_FUNCS = {
    "INTERSECTS": sa.func.ST_Intersects,
    "DISJOINT": sa.func.ST_Disjoint,
    "CONTAINS": sa.func.ST_Contains,
    "WITHIN": sa.func.ST_Within,
    "TOUCHES": sa.func.ST_Touches,
    "CROSSES": sa.func.ST_Crosses,
    "OVERLAPS": sa.func.ST_Overlaps,
    "EQUALS": sa.func.ST_Equals,
}


def _bad(msg: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(user_msg=msg)


def _crs_of_filter_value(name: str | None) -> tuple[int, bool]:
    """SRID and lat-first flag for a CRS named in a filter (default CRS84 lon/lat).

    A short `EPSG:n` is read x/y (lon/lat) as GeoServer and most ECQL writers mean it;
    URN/URL forms follow the authority axis order, as pygeoapi writes them.
    """
    if not name:
        return 4326, False
    text = str(name).strip()
    m = re.fullmatch(r"(?i)epsg:(\d{1,6})", text)
    if m:
        return int(m.group(1)), False
    try:
        return srid_from_uri(text), is_lat_first(text)
    except CRSError:
        raise _bad("unknown CRS in filter") from None


class _FilterToSQL(Evaluator):
    """pygeofilter AST -> SQLAlchemy Core expression over one layer table."""

    def __init__(self, info: _sql.TableInfo, allowed: set[str]):
        self.info = info
        self.allowed = allowed

    def _geom_from_shape(self, geom: Any, srid: int, lat_first: bool) -> sa.ColumnElement:
        if geom.is_empty or not shapely.is_valid_input(geom):
            raise _bad("empty or invalid geometry in filter")
        if lat_first:
            geom = shapely.ops.transform(lambda a, b, *z: (b, a), geom)
        expr = sa.func.ST_GeomFromText(sa.literal(geom.wkt, sa.Text), sa.literal(srid))
        if srid != self.info.srid:
            expr = sa.func.ST_Transform(expr, sa.literal(self.info.srid))
        return expr

    @handle(ast.Not)
    def not_(self, node, sub):
        return sa.not_(sub)

    @handle(ast.And)
    def and_(self, node, lhs, rhs):
        return sa.and_(lhs, rhs)

    @handle(ast.Or)
    def or_(self, node, lhs, rhs):
        return sa.or_(lhs, rhs)

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node, lhs, rhs):
        op = node.op.value
        ops = {
            "=": lambda a, b: a == b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        if op not in ops:
            raise _bad("unsupported comparison")
        return ops[op](lhs, rhs)

    @handle(ast.Between)
    def between(self, node, lhs, low, high):
        expr = sa.and_(lhs >= low, lhs <= high)
        return sa.not_(expr) if node.not_ else expr

    @handle(ast.Like)
    def like(self, node, lhs):
        pattern = node.pattern
        if not isinstance(pattern, str):
            raise _bad("LIKE needs a text pattern")
        # translate the filter's wildcards to SQL's, escaping SQL's own
        out = []
        for ch in pattern:
            if ch == node.wildcard:
                out.append("%")
            elif ch == node.singlechar:
                out.append("_")
            elif ch in "%_\\":
                out.append("\\" + ch)
            else:
                out.append(ch)
        text = sa.cast(lhs, sa.Text)
        expr = (text.ilike if node.nocase else text.like)("".join(out), escape="\\")
        return sa.not_(expr) if node.not_ else expr

    @handle(ast.In)
    def in_(self, node, lhs, *options):
        expr = lhs.in_([o for o in options])
        return sa.not_(expr) if node.not_ else expr

    @handle(ast.IsNull)
    def null(self, node, lhs):
        return lhs.is_not(None) if node.not_ else lhs.is_(None)

    @handle(ast.TemporalPredicate, subclasses=True)
    def temporal(self, node, lhs, rhs):
        op = node.op.value
        if isinstance(rhs, tuple):
            low, high = rhs
        else:
            low = high = rhs
        if op in ("BEFORE", "T_BEFORE"):
            return lhs < low
        if op in ("AFTER", "T_AFTER"):
            return lhs > high
        if op in ("TEQUALS", "T_EQUALS"):
            return lhs == low
        if op in ("DURING", "T_DURING", "T_INTERSECTS", "BEFORE OR DURING", "DURING OR AFTER"):
            return sa.and_(lhs >= low, lhs <= high)
        raise _bad("unsupported temporal operator")

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node, lhs, rhs):
        fn = _SPATIAL_FUNCS.get(node.op.name)
        if fn is None:
            raise _bad("unsupported spatial operator")
        return fn(lhs, rhs)

    @handle(ast.Relate)
    def relate(self, node, lhs, rhs):
        if not _RELATE_PATTERN.match(str(node.pattern)):
            raise _bad("invalid RELATE pattern")
        return sa.func.ST_Relate(lhs, rhs, sa.literal(node.pattern, sa.Text))

    @handle(ast.SpatialDistancePredicate, subclasses=True)
    def distance(self, node, lhs, rhs):
        factor = _METRES.get(str(node.units or "meters").lower())
        if factor is None or not isinstance(node.distance, (int, float)):
            raise _bad("unsupported distance or units")
        metres = float(node.distance) * factor

        def geog(g):
            if self.info.srid != 4326:
                g = sa.func.ST_Transform(g, sa.literal(4326))
            return sa.func.geography(g)

        expr = sa.func.ST_DWithin(geog(lhs), geog(rhs), sa.literal(metres))
        return sa.not_(expr) if node.op.name == "BEYOND" else expr

    @handle(ast.BBox)
    def bbox(self, node, lhs):
        srid, lat_first = _crs_of_filter_value(node.crs)
        coords = [node.minx, node.miny, node.maxx, node.maxy]
        if not all(isinstance(c, (int, float)) for c in coords):
            raise _bad("BBOX needs four numbers")
        if lat_first:
            coords = [coords[1], coords[0], coords[3], coords[2]]
        return sa.func.ST_Intersects(lhs, self._envelope(coords, srid))

    def _envelope(self, coords: list[float], srid: int) -> sa.ColumnElement:
        minx, miny, maxx, maxy = (float(c) for c in coords)
        env = sa.func.ST_MakeEnvelope(
            sa.literal(minx), sa.literal(miny), sa.literal(maxx), sa.literal(maxy), sa.literal(srid)
        )
        if srid != self.info.srid:
            env = sa.func.ST_Transform(env, sa.literal(self.info.srid))
        return env

    @handle(ast.Attribute)
    def attribute(self, node):
        name = node.name
        if name in ("geometry", self.info.geom_field):
            return self.info.table.c[self.info.geom_field]
        if name not in self.allowed:
            raise _bad("unknown property in filter")
        return self.info.table.c[name]

    @handle(ast.Arithmetic, subclasses=True)
    def arithmetic(self, node, lhs, rhs):
        ops = {
            "+": lambda a, b: a + b,
            "-": lambda a, b: a - b,
            "*": lambda a, b: a * b,
            "/": lambda a, b: a / b,
        }
        if node.op.value not in ops:
            raise _bad("unsupported arithmetic")
        return ops[node.op.value](lhs, rhs)

    @handle(ast.Function)
    def function(self, node, *args):
        fns = {"lower": sa.func.lower, "upper": sa.func.upper, "casei": sa.func.lower}
        fn = fns.get(str(node.name).lower())
        if fn is None or len(args) != 1:
            raise _bad("unsupported function in filter")
        return fn(args[0])

    @handle(*_LITERALS)
    def literal(self, node):
        if isinstance(node, bool):
            return sa.literal(node, sa.Boolean)
        return sa.literal(node)

    @handle(values.Interval)
    def interval(self, node, start, end):
        return (start, end)

    @handle(values.Geometry)
    def geometry(self, node):
        geojson = dict(node.geometry)
        crs_name = (geojson.pop("crs", None) or {}).get("properties", {}).get("name")
        try:
            shape = shapely.geometry.shape(geojson)
        except Exception:  # noqa: BLE001 - shapely raises many types for bad GeoJSON
            raise _bad("invalid geometry in filter") from None
        if crs_name:
            try:
                srid, lat_first = srid_from_uri(crs_name), is_lat_first(crs_name)
            except CRSError:
                raise _bad("unknown CRS in filter") from None
        else:
            srid, lat_first = 4326, False
        return self._geom_from_shape(shape, srid, lat_first)

    @handle(values.Envelope)
    def envelope(self, node):
        # pygeofilter fills Envelope(x1, x2, y1, y2) positionally: from CQL2-JSON's
        # {"bbox": [minx, miny, maxx, maxy]} and from ECQL's ENVELOPE(minx maxx maxy miny).
        # Take the reading that gives an ordered box, CQL2-JSON first.
        a, b, c, d = node.x1, node.x2, node.y1, node.y2
        if not all(isinstance(v, (int, float)) for v in (a, b, c, d)):
            raise _bad("bbox needs four numbers")
        if a <= c and b <= d:
            return self._envelope([a, b, c, d], 4326)
        if a <= b and d <= c:
            return self._envelope([a, d, b, c], 4326)
        raise _bad("bbox corners out of order")

    def adopt(self, node, *sub_args):
        raise _bad("unsupported filter expression")


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


def column_titles(value: Any) -> dict[str, str]:
    """The provider option `titles` ({column: original attribute name}), non-text entries dropped."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and v}


def _titled_queryables(api: Any, dataset: Any, status: Any, content: Any) -> Any:
    """pygeoapi's JSON queryables with each property's title taken from the `titles` option."""
    if status != 200 or not isinstance(content, (str, bytes)):
        return content
    providers = ((api.config.get("resources") or {}).get(dataset) or {}).get("providers") or []
    titles: dict[str, str] = {}
    for p in providers:
        if p.get("type") == "feature":
            titles = column_titles(p.get("titles"))
            break
    if not titles:
        return content
    try:
        doc = json.loads(content)
    except ValueError:  # the HTML page: it shows names and types only
        return content
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        return content
    for name, spec in props.items():
        if name in titles and isinstance(spec, dict):
            spec["title"] = titles[name]
    from pygeoapi.util import to_json

    return to_json(doc, api.pretty_print)


_queryables_installed = False


def install_queryable_titles() -> None:
    """Make `/collections/{id}/queryables` show the original attribute names as titles.

    pygeoapi 0.21 writes `title: <name>` for every queryable whatever the provider's fields
    say (its `/schema` passes our fields through, titles included); this wraps its handler,
    looked up per request by the Starlette app, to put the `titles` option in. Idempotent.
    """
    global _queryables_installed
    if _queryables_installed:
        return
    import functools

    from pygeoapi.api import itemtypes

    original = itemtypes.get_collection_queryables

    @functools.wraps(original)
    def get_collection_queryables(api: Any, request: Any, dataset: Any = None) -> tuple:
        headers, status, content = original(api, request, dataset)
        return headers, status, _titled_queryables(api, dataset, status, content)

    itemtypes.get_collection_queryables = get_collection_queryables
    _queryables_installed = True


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
        self._attrs = [c for c in self.info.columns if c in exposed and c != self.id_field]
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
            raise _bad("unsupported crs") from None
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
            raise _bad("bbox needs 4 or 6 numbers")
        a, b, c, d = (float(v) for v in bbox)
        # pygeoapi transformed the bbox into the storage CRS's authority axis order
        minx, miny, maxx, maxy = (b, a, d, c) if is_lat_first(self.storage_crs) else (a, b, c, d)
        if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
            raise _bad("bbox coordinates must be finite numbers")
        if minx > maxx or miny > maxy:
            # boxes across the antimeridian are not supported: no layer here crosses it
            raise _bad("bbox: the lower corner must not exceed the upper corner")
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
            raise _bad(f"invalid value for property {name}") from None
        return str(value)

    def _where(self, bbox, datetime_, properties, q, filterq) -> list[sa.ColumnElement]:
        t = self.info.table
        where: list[sa.ColumnElement] = []
        if bbox:
            where.append(self._bbox_clause(bbox))
        for name, value in properties or []:
            if name not in self._allowed:
                raise _bad("unknown property")
            where.append(t.c[name] == self._typed(name, value))
        if datetime_ and self.time_field:
            if self.time_field not in self.info.columns:
                raise _bad("time field not available")
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
            try:
                where.append(_FilterToSQL(self.info, self._allowed).evaluate(filterq))
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
                raise _bad("invalid filter") from None
        return where

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
        if select_properties:
            unknown = set(select_properties) - self._allowed
            if unknown:
                raise _bad("unknown properties specified")
            names = [c for c in self._attrs if c in set(select_properties)]
        else:
            names = list(self._attrs)
        order = []
        for s in sortby or []:
            prop = s.get("property")
            if prop not in self._allowed:
                raise _bad("bad sort property")
            col = t.c[prop]
            order.append(col.desc() if s.get("order") == "-" else col.asc())
        order.append(t.c[self.id_field].asc())  # stable paging
        offset, limit = max(int(offset or 0), 0), max(int(limit if limit is not None else 10), 0)

        cols = [t.c[self.id_field].label("__id"), *[t.c[n] for n in names]]
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
