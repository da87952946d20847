"""OGC API filters (ECQL, CQL2-JSON, parsed by pygeofilter) to SQLAlchemy over one layer table.

Ours, not pygeofilter's SQLAlchemy backend (pygeofilter.backends.sqlalchemy), because that
backend (0.4) would need almost every handler replaced: it builds filter geometries with
`ST_GeomFromEWKT` in the filter's own SRID without the axis swap of lat-first CRSs and
without transforming them into the storage CRS (see nodes/providers/features.py on axis
order), reads `BBOX` without its CRS, maps properties through a field mapping without our
allow-list of exposed columns, lets any function name through to SQL, and maps the temporal
operators wrongly (`BEFORE OR DURING` and `DURING OR AFTER` as `BETWEEN` the period's ends,
`BEFORE`/`AFTER` of a period compared with the whole tuple). Everything not handled here is
refused as a 400 (`adopt`).

Temporal predicates compare an instant-valued column (timestamp, date) with an instant or a
period `[start, end]`, as the relations between intervals are defined by CQL2 (OGC 21-065,
after Allen) and by pygeofilter's own evaluator (`relate_intervals`, an instant being the
interval `[t, t]`), with ECQL's two extra operators as GeoTools' ECQL.md draws them:

    BEFORE            t < start
    AFTER             t > end
    TEQUALS           t = start = end
    DURING            start < t < end        (the ends are BEGINS / ENDS, not DURING)
    BEFORE OR DURING  t <= end               (anything up to the period's end)
    DURING OR AFTER   t >= start             (anything from the period's start on)

A period given with a duration (`start/P1D`, `P1D/end`) is resolved to its two ends first.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

import shapely.geometry
import shapely.ops
import sqlalchemy as sa
from pygeoapi.provider.base import ProviderInvalidQueryError
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pyproj.exceptions import CRSError

from . import _sql
from .crs import is_lat_first, srid_from_uri

_LITERALS = (str, float, int, bool, datetime, date, time)
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


def bad(msg: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(user_msg=msg)


def _period(node: Any, value: Any) -> tuple[Any, Any]:
    """(start, end) SQL values of a temporal predicate's right side: an instant is both ends."""
    if not isinstance(node, values.Interval):
        return value, value
    start, end = value
    if node.start is None or node.end is None:
        raise bad("open periods are not supported in filters")
    if isinstance(node.start, timedelta) and isinstance(node.end, timedelta):
        raise bad("a period needs at least one instant")
    if isinstance(node.start, timedelta):
        start = sa.literal(node.end - node.start)
    if isinstance(node.end, timedelta):
        end = sa.literal(node.start + node.end)
    return start, end


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
        raise bad("unknown CRS in filter") from None


class FilterToSQL(Evaluator):
    """pygeofilter AST -> SQLAlchemy Core expression over one layer table."""

    def __init__(self, info: _sql.TableInfo, allowed: set[str]):
        self.info = info
        self.allowed = allowed

    def _geom_from_shape(self, geom: Any, srid: int, lat_first: bool) -> sa.ColumnElement:
        if geom.is_empty or not shapely.is_valid_input(geom):
            raise bad("empty or invalid geometry in filter")
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
            raise bad("unsupported comparison")
        return ops[op](lhs, rhs)

    @handle(ast.Between)
    def between(self, node, lhs, low, high):
        expr = sa.and_(lhs >= low, lhs <= high)
        return sa.not_(expr) if node.not_ else expr

    @handle(ast.Like)
    def like(self, node, lhs):
        pattern = node.pattern
        if not isinstance(pattern, str):
            raise bad("LIKE needs a text pattern")
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
        """An instant-valued column against an instant or a period (table in the docstring)."""
        op = node.op
        low, high = _period(node.rhs, rhs)
        if op is ast.TemporalComparisonOp.BEFORE:
            return lhs < low
        if op is ast.TemporalComparisonOp.AFTER:
            return lhs > high
        if op is ast.TemporalComparisonOp.TEQUALS:
            return sa.and_(lhs == low, lhs == high)
        if op is ast.TemporalComparisonOp.DURING:
            return sa.and_(lhs > low, lhs < high)
        if op is ast.TemporalComparisonOp.BEFORE_OR_DURING:
            return lhs <= high
        if op is ast.TemporalComparisonOp.DURING_OR_AFTER:
            return lhs >= low
        raise bad("unsupported temporal operator")

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node, lhs, rhs):
        fn = _SPATIAL_FUNCS.get(node.op.name)
        if fn is None:
            raise bad("unsupported spatial operator")
        return fn(lhs, rhs)

    @handle(ast.Relate)
    def relate(self, node, lhs, rhs):
        if not _RELATE_PATTERN.match(str(node.pattern)):
            raise bad("invalid RELATE pattern")
        return sa.func.ST_Relate(lhs, rhs, sa.literal(node.pattern, sa.Text))

    @handle(ast.SpatialDistancePredicate, subclasses=True)
    def distance(self, node, lhs, rhs):
        factor = _METRES.get(str(node.units or "meters").lower())
        if factor is None or not isinstance(node.distance, (int, float)):
            raise bad("unsupported distance or units")
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
            raise bad("BBOX needs four numbers")
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
            raise bad("unknown property in filter")
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
            raise bad("unsupported arithmetic")
        return ops[node.op.value](lhs, rhs)

    @handle(ast.Function)
    def function(self, node, *args):
        fns = {"lower": sa.func.lower, "upper": sa.func.upper, "casei": sa.func.lower}
        fn = fns.get(str(node.name).lower())
        if fn is None or len(args) != 1:
            raise bad("unsupported function in filter")
        return fn(args[0])

    @handle(*_LITERALS)
    def literal(self, node):
        if isinstance(node, bool):
            return sa.literal(node, sa.Boolean)
        return sa.literal(node)

    @handle(values.Interval)
    def interval(self, node, start, end):
        return (start, end)

    @handle(timedelta)
    def duration(self, node):
        return node  # one end of a period given as start/duration or duration/end

    @handle(values.Geometry)
    def geometry(self, node):
        geojson = dict(node.geometry)
        crs_name = (geojson.pop("crs", None) or {}).get("properties", {}).get("name")
        try:
            shape = shapely.geometry.shape(geojson)
        except Exception:  # noqa: BLE001 - shapely raises many types for bad GeoJSON
            raise bad("invalid geometry in filter") from None
        if crs_name:
            try:
                srid, lat_first = srid_from_uri(crs_name), is_lat_first(crs_name)
            except CRSError:
                raise bad("unknown CRS in filter") from None
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
            raise bad("bbox needs four numbers")
        if a <= c and b <= d:
            return self._envelope([a, b, c, d], 4326)
        if a <= b and d <= c:
            return self._envelope([a, d, b, c], 4326)
        raise bad("bbox corners out of order")

    def adopt(self, node, *sub_args):
        raise bad("unsupported filter expression")


def to_sql(filterq: Any, info: _sql.TableInfo, allowed: set[str]) -> sa.ColumnElement:
    """The WHERE clause of a parsed filter over the table of `info` (columns in `allowed`)."""
    return FilterToSQL(info, allowed).evaluate(filterq)
