"""Shared PostGIS plumbing for the providers: engines per DSN, table descriptions, errors.

pygeoapi instantiates a provider per request, so everything costly (engine, pool, column
reflection) is cached per process here; a provider instance only looks things up.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderQueryError,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine

LOGGER = logging.getLogger(__name__)

# JSON Schema types of the attribute column types our loader writes (plus a few friends)
_JSON_TYPES = {
    "text": "string",
    "character varying": "string",
    "character": "string",
    "uuid": "string",
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "double precision": "number",
    "real": "number",
    "numeric": "number",
    "boolean": "boolean",
    "date": "string",
    "timestamp without time zone": "string",
    "timestamp with time zone": "string",
}
_TEXT_TYPES = {"text", "character varying", "character"}
_INT_TYPES = {"smallint", "integer", "bigint"}
_FORMATS = {
    "date": "date",
    "timestamp without time zone": "date-time",
    "timestamp with time zone": "date-time",
}

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def dsn_from_data(data: Any) -> str:
    """The DSN out of a provider's `data` (a URL string, `{dsn: ...}` or pygeoapi's dict)."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        if data.get("dsn"):
            return str(data["dsn"])
        if data.get("host") or data.get("dbname"):
            url = URL.create(
                "postgresql",
                username=data.get("user"),
                password=data.get("password"),
                host=data.get("host"),
                port=int(data["port"]) if data.get("port") else None,
                database=data.get("dbname"),
            )
            return url.render_as_string(hide_password=False)
    raise ProviderConnectionError(user_msg="provider data source is not configured")


def get_engine(dsn: str) -> Engine:
    """One SQLAlchemy engine (and pool) per DSN per process (re-made after a fork)."""
    key = (os.getpid(), dsn)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            url = sa.engine.make_url(dsn)
            if url.drivername in ("postgresql", "postgres"):
                url = url.set(drivername="postgresql+psycopg2")
            engine = sa.create_engine(
                url,
                pool_size=int(os.environ.get("GEOPLAT_PG_POOL_SIZE", "5")),
                max_overflow=10,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={
                    "application_name": "geoplat-pygeoapi",
                    # a runaway query must not pin a worker forever
                    "options": "-c statement_timeout={}".format(
                        int(os.environ.get("GEOPLAT_PG_STATEMENT_TIMEOUT_MS", "30000"))
                    ),
                },
            )
            _engines[key] = engine
    return engine


@dataclass(frozen=True)
class TableInfo:
    """What a provider needs to know about one layer table (cached per process)."""

    schema: str
    name: str
    id_field: str
    geom_field: str
    srid: int
    geometry_type: str
    columns: dict[str, str]  # attribute column -> PostgreSQL type name (no geometry)
    id_type: str
    table: sa.Table = field(compare=False, hash=False)

    @property
    def id_is_integer(self) -> bool:
        return self.id_type in _INT_TYPES

    @property
    def text_columns(self) -> list[str]:
        return [c for c, t in self.columns.items() if t in _TEXT_TYPES]

    def json_schema_fields(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for name, pgtype in self.columns.items():
            if name == self.id_field:
                continue
            spec = {"type": _JSON_TYPES.get(pgtype, "string")}
            if pgtype in _FORMATS:
                spec["format"] = _FORMATS[pgtype]
            out[name] = spec
        return out

    def col(self, name: str) -> sa.ColumnElement:
        return self.table.c[name]


def regclass_name(schema: str, table: str) -> str:
    """A quoted `schema.table` for to_regclass() (passed as a bound value, never spliced)."""
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


_COLUMNS_SQL = sa.text(
    """
    SELECT a.attname AS name,
           format_type(a.atttypid, NULL) AS type,
           t.typname AS udt,
           postgis_typmod_srid(a.atttypmod) AS srid,
           postgis_typmod_type(a.atttypmod) AS gtype
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = to_regclass(:qualified) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)

_table_cache: dict[tuple[str, str, str, str, str], TableInfo] = {}
_table_lock = threading.Lock()


def describe_table(
    engine: Engine, dsn: str, schema: str, table: str, id_field: str, geom_field: str
) -> TableInfo:
    """Reflect a layer table once per process (one catalogue query, no automap)."""
    key = (dsn, schema, table, id_field, geom_field)
    info = _table_cache.get(key)
    if info is not None:
        return info
    with _table_lock:
        info = _table_cache.get(key)
        if info is not None:
            return info
        qualified = regclass_name(schema, table)
        try:
            with engine.connect() as conn:
                rows = conn.execute(_COLUMNS_SQL, {"qualified": qualified}).mappings().all()
                srid_row = None
                if rows and any(r["name"] == geom_field for r in rows):
                    srid_row = next(r for r in rows if r["name"] == geom_field)
                    srid = int(srid_row["srid"] or 0)
                    if srid == 0:  # unconstrained column: ask the data
                        got = conn.execute(
                            sa.select(sa.func.ST_SRID(sa.column(geom_field)))
                            .select_from(sa.table(table, schema=schema))
                            .limit(1)
                        ).scalar()
                        srid = int(got or 4326)
        except sa_exc.OperationalError as err:
            LOGGER.error("cannot reach database for %s.%s: %s", schema, table, err)
            raise ProviderConnectionError(user_msg="data source unavailable") from None
        if not rows:
            LOGGER.error("table %s.%s not found", schema, table)
            raise ProviderConnectionError(user_msg="collection data not available")
        by_name = {r["name"]: r for r in rows}
        if geom_field not in by_name or by_name[geom_field]["udt"] != "geometry":
            raise ProviderConnectionError(user_msg="collection has no geometry column")
        if id_field not in by_name:
            raise ProviderConnectionError(user_msg="collection has no id column")
        columns = {r["name"]: r["type"] for r in rows if r["name"] != geom_field}
        # Generic types keep SQLAlchemy from adding casts; geometry is handled with func.*
        sa_cols = []
        for name, pgtype in columns.items():
            if pgtype in _INT_TYPES:
                coltype: Any = sa.BigInteger()
            elif pgtype in ("double precision", "real", "numeric"):
                coltype = sa.Float()
            elif pgtype == "boolean":
                coltype = sa.Boolean()
            else:
                coltype = sa.Text()
            sa_cols.append(sa.Column(name, coltype, key=name))
        sa_cols.append(sa.Column(geom_field, sa.types.NullType(), key=geom_field))
        sa_table = sa.Table(table, sa.MetaData(), *sa_cols, schema=schema)
        info = TableInfo(
            schema=schema,
            name=table,
            id_field=id_field,
            geom_field=geom_field,
            srid=srid,
            geometry_type=str((srid_row["gtype"] if srid_row is not None else None) or "Geometry"),
            columns=columns,
            id_type=columns[id_field],
            table=sa_table,
        )
        _table_cache[key] = info
        return info


def clear_table_cache() -> None:
    """Forget reflected tables (after a layer is reloaded with a new schema)."""
    with _table_lock:
        _table_cache.clear()


# SQLSTATE classes a client can cause with a well-formed but unsuitable request
_CLIENT_SQLSTATES = ("42883", "42804", "42P18", "XX000")


def raise_for_db_error(err: Exception) -> None:
    """Turn a database error into a pygeoapi error without leaking SQL or the DSN."""
    orig = getattr(err, "orig", None)
    code = getattr(orig, "pgcode", None) or ""
    LOGGER.error("database error (%s): %s", code, orig if orig is not None else err)
    if isinstance(err, sa_exc.OperationalError) and code.startswith("57014"):
        raise ProviderQueryError(user_msg="query took too long") from None
    if isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError)) and not code:
        raise ProviderConnectionError(user_msg="data source unavailable") from None
    if code and (code.startswith("22") or code in _CLIENT_SQLSTATES):
        raise ProviderInvalidQueryError(
            user_msg="query could not be evaluated against this collection "
            "(check value types and geometries)"
        ) from None
    raise ProviderQueryError(user_msg="query error") from None


def table_settings(provider_def: dict, data: Any) -> tuple[str, str, str, str, str]:
    """(dsn, schema, table, id field, geometry field) of a provider definition."""
    table = provider_def.get("table")
    if not table:
        raise RuntimeError("provider needs 'table'")
    return (dsn_from_data(data), provider_def.get("schema", "public"), table,
            provider_def.get("id_field") or "fid", provider_def.get("geom_field", "geom"))
