"""Loading vector files into a node's PostGIS, in EPSG:4490, atomically and idempotently.

Each layer becomes `public.<layer id>` with `fid bigint PRIMARY KEY`, `geom geometry(T, 4490)`
and a GIST index. Rows are written with COPY into a staging table that replaces the live table
in one transaction, so readers see the old or the new layer, never a half-loaded one. The
`geoplat_layers` catalogue remembers what was loaded (with a checksum) so a reload of unchanged
input does nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import pyogrio
import shapely
from psycopg2 import sql
from pyproj import CRS, Transformer

from layers.copy_encoder import (
    binary_copy_supported,
    copy_binary,
    copy_csv,
    copy_csv_batches,
    slices,
)

STORAGE_SRID = 4490
RESERVED_COLUMNS = {"fid", "geom"}
_SAFE = re.compile(r"[^a-z0-9_]")

CATALOGUE_DDL = """
CREATE TABLE IF NOT EXISTS geoplat_layers (
    id text PRIMARY KEY,
    title text NOT NULL,
    geometry_type text NOT NULL,
    feature_count bigint NOT NULL,
    bbox double precision[] NOT NULL,
    columns jsonb NOT NULL,
    checksum text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
)
"""


class LoadError(Exception):
    """A file could not be loaded; the previous version of the layer stays as it was."""


@dataclass(frozen=True)
class LayerSpec:
    """What to load: the parts of a layer's settings the loader needs."""

    id: str
    title: str
    path: Path
    geometry_type: str
    source_layer: str | None = None
    id_column: str | None = None


@dataclass(frozen=True)
class LoadResult:
    id: str
    feature_count: int
    bbox: list[float]
    skipped: bool  # unchanged input, nothing written


def upsert_catalogue(cur: Any, layer_id: str, title: str, geometry_type: str, count: int,
                     bbox: list[float], columns: dict[str, str], checksum: str) -> None:
    """Record (or update) a layer in the node's `geoplat_layers` catalogue."""
    cur.execute(
        "INSERT INTO geoplat_layers (id, title, geometry_type, feature_count, bbox, columns, checksum)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " title = EXCLUDED.title, geometry_type = EXCLUDED.geometry_type,"
        " feature_count = EXCLUDED.feature_count, bbox = EXCLUDED.bbox,"
        " columns = EXCLUDED.columns, checksum = EXCLUDED.checksum, loaded_at = now()",
        (layer_id, title, geometry_type, count, bbox, json.dumps(columns, ensure_ascii=False),
         checksum))


def unique_name(base: str, taken: set[str], reserved: Iterable[str], max_len: int) -> str:
    """`base` (already SQL-safe characters) made a valid, unreserved name unique within
    `taken`, which it is added to."""
    if base[0].isdigit():
        base = "c_" + base
    base = base[:max_len]
    if base in reserved:
        base += "_src"
    cand, n = base, 1
    while cand in taken:
        n += 1
        cand = f"{base}_{n}"
    taken.add(cand)
    return cand


def safe_column_name(name: str, taken: set[str]) -> str:
    """An SQL/OGC-safe lowercase name for `name`, unique within `taken`."""
    return unique_name(_SAFE.sub("_", name.strip().lower()) or "col", taken, RESERVED_COLUMNS, 60)


def file_checksum(spec: LayerSpec) -> str:
    h = hashlib.sha256()
    with open(spec.path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps([spec.source_layer, spec.geometry_type, spec.id_column]).encode())
    return h.hexdigest()


_PG_TYPES = {"i": "bigint", "u": "bigint", "f": "double precision", "b": "boolean"}


def _pg_type(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamptz"
    return _PG_TYPES.get(series.dtype.kind, "text")


def normalise_geometries(geoms: np.ndarray, geometry_type: str,
                          invalid: np.ndarray | None = None) -> np.ndarray:
    """Valid, non-empty geometries of the declared type (single parts promoted to multi).

    `invalid`: the caller's `~is_valid(geoms)` when it has it (validity is costly).
    """
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
        invalid = None
    else:
        geoms = geoms.copy()
    if invalid is None:
        invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    if geometry_type.startswith("Multi"):
        single = geometry_type[5:]
        kinds = shapely.get_type_id(geoms)
        single_id = {"Point": 0, "LineString": 1, "Polygon": 3}[single]
        multi_ctor = {
            "Point": shapely.multipoints,
            "LineString": shapely.multilinestrings,
            "Polygon": shapely.multipolygons,
        }[single]
        singles = np.nonzero(kinds == single_id)[0]
        if len(singles):
            geoms[singles] = multi_ctor(geoms[singles], indices=np.arange(len(singles)))
        # make_valid may yield collections; keep only the declared kind of parts
        for i in np.nonzero(shapely.get_type_id(geoms) == 7)[0]:
            parts = [p for p in shapely.get_parts(geoms[i]) if p.geom_type in (single, geometry_type)]
            flat = [q for p in parts for q in shapely.get_parts(p)]
            geoms[i] = multi_ctor(flat) if flat else None
    return geoms


def read_layer(spec: LayerSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a layer, check its CRS and return (attributes, geometries in EPSG:4490)."""
    try:
        meta = pyogrio.read_info(spec.path, layer=spec.source_layer)
        df = pyogrio.read_dataframe(spec.path, layer=spec.source_layer)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several DataSourceError kinds
        raise LoadError(f"{spec.path.name}: cannot read: {exc}") from None
    crs = meta.get("crs")
    if crs is None:
        raise LoadError(f"{spec.path.name}: the file declares no CRS")
    src = CRS.from_user_input(crs)
    geoms = np.asarray(df.geometry.values, dtype=object)
    if src.to_epsg() not in (4490, 4326):
        tr = Transformer.from_crs(src, CRS.from_epsg(STORAGE_SRID), always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    geoms = normalise_geometries(geoms, spec.geometry_type)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    attrs = pd.DataFrame(df.drop(columns=df.geometry.name)).loc[keep].reset_index(drop=True)
    return attrs, geoms[keep]



def load_layer(dsn: str, spec: LayerSpec, *, force: bool = False,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> LoadResult:
    """Load one layer; a no-op when the catalogue already holds the same input."""
    checksum = file_checksum(spec)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(CATALOGUE_DDL)
            cur.execute("SELECT checksum, feature_count, bbox FROM geoplat_layers WHERE id = %s",
                        (spec.id,))
            row = cur.fetchone()
            cur.execute("SELECT to_regclass(%s)", (f"public.{spec.id}",))
            exists = cur.fetchone()[0] is not None
        if row and row[0] == checksum and exists and not force:
            return LoadResult(spec.id, row[1], list(row[2]), skipped=True)

        attrs, geoms = read_layer(spec)
        if len(geoms) == 0:
            raise LoadError(f"{spec.path.name}: no features with geometry")
        if on_total:
            on_total(len(geoms))
        taken: set[str] = set()
        rename = {c: safe_column_name(str(c), taken) for c in attrs.columns}
        attrs = attrs.rename(columns=rename)
        if spec.id_column:
            if spec.id_column not in rename:
                raise LoadError(f"{spec.path.name}: id column {spec.id_column!r} not found")
            ids = pd.to_numeric(attrs[rename[spec.id_column]], errors="raise").astype("int64")
            if ids.duplicated().any():
                raise LoadError(f"{spec.path.name}: id column {spec.id_column!r} is not unique")
            ids = ids.tolist()
        else:
            ids = range(1, len(attrs) + 1)
        columns = list(attrs.columns)
        staging = f"_staging_{spec.id}"[:63]
        col_defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(attrs[c])))
                    for c in columns]
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
            cur.execute(sql.SQL("CREATE TABLE {} (fid bigint PRIMARY KEY, {} geom geometry({}, {}) NOT NULL)").format(
                sql.Identifier(staging),
                sql.SQL("").join(d + sql.SQL(", ") for d in col_defs),
                sql.SQL(spec.geometry_type), sql.Literal(STORAGE_SRID)))
            copy_csv_batches(cur, sql.Identifier(staging), columns, attrs, geoms, ids, progress,
                             STORAGE_SRID)
            cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                sql.Identifier(f"{spec.id}_geom_idx_new"[:63]), sql.Identifier(staging)))
            cur.execute(sql.SQL("SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                "FROM (SELECT count(*) n, ST_Extent(geom) e FROM {}) x").format(
                sql.Identifier(staging)))
            count, *bbox = cur.fetchone()
            # the swap: readers block for the instant of the rename, then see the new table
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(spec.id)))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(staging), sql.Identifier(spec.id)))
            cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(f"{spec.id}_geom_idx_new"[:63]), sql.Identifier(f"{spec.id}_geom_idx"[:63])))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                sql.Identifier(spec.id), sql.Identifier(f"{staging}_pkey"[:63]),
                sql.Identifier(f"{spec.id}_pkey"[:63])))
            upsert_catalogue(cur, spec.id, spec.title, spec.geometry_type, count, bbox,
                             {v: str(k) for k, v in rename.items()}, checksum)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(spec.id)))
        return LoadResult(spec.id, count, [float(b) for b in bbox], skipped=False)
    finally:
        conn.close()


def create_layer_table(cur, table: str, attrs: pd.DataFrame, geoms: np.ndarray | None,
                       geometry_type: str, progress: Callable[[int], None] | None = None,
                       batches: Iterable[tuple[pd.DataFrame, np.ndarray]] | None = None
                       ) -> tuple[int, list[float]]:
    """Create and fill `table` (fid, attributes, geom) with COPY, then key, index and ANALYZE it.

    `batches` (attributes, geometries), if given, are the rows, read as they are loaded;
    `attrs` then only gives the columns and their types.

    The caller owns the transaction: nothing is visible to others until it commits, and an
    interrupted load leaves nothing behind. Returns (feature count, bbox).
    """
    columns = list(attrs.columns)
    col_defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(attrs[c])))
                for c in columns]
    cur.execute(sql.SQL("CREATE TABLE {} (fid bigint NOT NULL, {} geom geometry({}, {}) NOT NULL)").format(
        sql.Identifier(table), sql.SQL("").join(d + sql.SQL(", ") for d in col_defs),
        sql.SQL(geometry_type), sql.Literal(STORAGE_SRID)))
    if batches is not None:
        count, bbox = copy_binary(cur, sql.Identifier(table), columns, batches, progress,
                                  STORAGE_SRID)
    elif geoms is None:
        raise ValueError("create_layer_table needs geometries or batches")
    elif binary_copy_supported(attrs):
        count, bbox = copy_binary(cur, sql.Identifier(table), columns, slices(attrs, geoms),
                                  progress, STORAGE_SRID)
    else:
        copy_csv(cur, sql.Identifier(table), columns, attrs, geoms, progress, STORAGE_SRID)
        count, bbox = len(geoms), [float(v) for v in shapely.total_bounds(geoms)]
    key_and_index(cur, table)
    return count, bbox  # counted and measured as the rows went in: no second scan


def key_and_index(cur: Any, table: str) -> None:
    """Primary key on fid, GIST index on geom and a quick ANALYZE of a filled layer table."""
    # keys and index after the rows: one sort instead of a million index insertions
    cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (fid)").format(
        sql.Identifier(table), sql.Identifier(f"{table}_pkey"[:63])))
    cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
        sql.Identifier(f"{table}_geom_idx"[:63]), sql.Identifier(table)))
    # statistics from a small sample now (the planner's first queries), in milliseconds instead
    # of a tenth of a second per 100,000 rows; autovacuum analyses again after the commit
    cur.execute("SET LOCAL default_statistics_target = 10")
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    cur.execute("RESET default_statistics_target")


