"""Loading vector files into a node's PostGIS, in EPSG:4490, atomically and idempotently.

Each layer becomes `public.<layer id>` with `fid bigint PRIMARY KEY`, `geom geometry(T, 4490)`
and a GIST index. Rows are written with COPY into a staging table that replaces the live table
in one transaction, so readers see the old or the new layer, never a half-loaded one. The
`geoplat_layers` catalogue remembers what was loaded (with a checksum) so a reload of unchanged
input does nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pyogrio
import shapely
from psycopg2 import sql

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


def safe_column_name(name: str, taken: set[str]) -> str:
    """An SQL/OGC-safe lowercase name for `name`, unique within `taken`."""
    base = _SAFE.sub("_", name.strip().lower()) or "col"
    if base[0].isdigit():
        base = "c_" + base
    base = base[:60]
    if base in RESERVED_COLUMNS:
        base += "_src"
    cand, n = base, 1
    while cand in taken:
        n += 1
        cand = f"{base}_{n}"
    taken.add(cand)
    return cand


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


def _normalise_geometries(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """Valid, non-empty geometries of the declared type (single parts promoted to multi)."""
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    else:
        geoms = geoms.copy()
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
        for i in np.nonzero(kinds == single_id)[0]:
            geoms[i] = multi_ctor([geoms[i]])
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
    except Exception as exc:  # pyogrio raises several DataSourceError kinds
        raise LoadError(f"{spec.path.name}: cannot read: {exc}") from None
    crs = meta.get("crs")
    if crs is None:
        raise LoadError(f"{spec.path.name}: the file declares no CRS")
    from pyproj import CRS

    src = CRS.from_user_input(crs)
    geoms = np.asarray(df.geometry.values, dtype=object)
    if src.to_epsg() not in (4490, 4326):
        from pyproj import Transformer

        tr = Transformer.from_crs(src, CRS.from_epsg(STORAGE_SRID), always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    geoms = _normalise_geometries(geoms, spec.geometry_type)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    attrs = pd.DataFrame(df.drop(columns=df.geometry.name)).loc[keep].reset_index(drop=True)
    return attrs, geoms[keep]


def _copy_rows(cur, table: sql.Identifier, columns: list[str], attrs: pd.DataFrame,
               geoms: np.ndarray, ids: Iterable[int], progress: Callable[[int], None] | None) -> None:
    """COPY attributes and hex EWKB geometries in batches."""
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True, output_dimension=2) if len(geoms) else []
    # shapely writes SRID only when set on the geometry
    if len(geoms) and shapely.get_srid(geoms[0]) != STORAGE_SRID:
        wkb = shapely.to_wkb(shapely.set_srid(geoms, STORAGE_SRID), hex=True, include_srid=True,
                             output_dimension=2)
    frame = attrs.copy()
    frame.insert(0, "fid", list(ids))
    frame["geom"] = wkb
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *columns, "geom"]))
    batch = 50_000
    for start in range(0, len(frame), batch):
        buf = io.StringIO()
        frame.iloc[start:start + batch].to_csv(buf, header=False, index=False, na_rep="\\N")
        buf.seek(0)
        cur.copy_expert(copy_sql.as_string(cur.connection), buf)
        if progress:
            progress(min(batch, len(frame) - start))


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
            _copy_rows(cur, sql.Identifier(staging), columns, attrs, geoms, ids, progress)
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
            cur.execute(
                "INSERT INTO geoplat_layers (id, title, geometry_type, feature_count, bbox, columns, checksum)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " title = EXCLUDED.title, geometry_type = EXCLUDED.geometry_type,"
                " feature_count = EXCLUDED.feature_count, bbox = EXCLUDED.bbox,"
                " columns = EXCLUDED.columns, checksum = EXCLUDED.checksum, loaded_at = now()",
                (spec.id, spec.title, spec.geometry_type, count, bbox,
                 json.dumps({v: str(k) for k, v in rename.items()}, ensure_ascii=False), checksum))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(spec.id)))
        return LoadResult(spec.id, count, [float(b) for b in bbox], skipped=False)
    finally:
        conn.close()


def create_layer_table(cur, table: str, attrs: pd.DataFrame, geoms: np.ndarray, geometry_type: str,
                       progress: Callable[[int], None] | None = None) -> tuple[int, list[float]]:
    """Create and fill `table` (fid, attributes, geom) with COPY, then key, index and ANALYZE it.

    The caller owns the transaction: nothing is visible to others until it commits, and an
    interrupted load leaves nothing behind. Returns (feature count, bbox).
    """
    columns = list(attrs.columns)
    col_defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(attrs[c])))
                for c in columns]
    cur.execute(sql.SQL("CREATE TABLE {} (fid bigint NOT NULL, {} geom geometry({}, {}) NOT NULL)").format(
        sql.Identifier(table), sql.SQL("").join(d + sql.SQL(", ") for d in col_defs),
        sql.SQL(geometry_type), sql.Literal(STORAGE_SRID)))
    _copy_stream(cur, sql.Identifier(table), columns, attrs, geoms, progress)
    # keys and index after the rows: one sort instead of a million index insertions
    cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (fid)").format(
        sql.Identifier(table), sql.Identifier(f"{table}_pkey"[:63])))
    cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
        sql.Identifier(f"{table}_geom_idx"[:63]), sql.Identifier(table)))
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    cur.execute(sql.SQL("SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                        "FROM (SELECT count(*) n, ST_Extent(geom) e FROM {}) x").format(
        sql.Identifier(table)))
    count, *bbox = cur.fetchone()
    return int(count), [float(b) for b in bbox]


class _CsvStream:
    """A file-like CSV source for one COPY, rendered batch by batch as the server asks for it.

    One COPY for all rows lets the server parse and insert a batch while we render the next
    (two processes, two cores), instead of waiting for each batch's COPY to finish.
    """

    def __init__(self, frame: pd.DataFrame, batch: int, progress: Callable[[int], None] | None):
        self.frame, self.batch, self.progress = frame, batch, progress
        self.pos = 0
        self.buf = ""

    def read(self, size: int = -1) -> str:
        while not self.buf and self.pos < len(self.frame):
            part = self.frame.iloc[self.pos:self.pos + self.batch]
            self.buf = part.to_csv(header=False, index=False, na_rep="\\N")
            self.pos += len(part)
            if self.progress:
                self.progress(len(part))
        if size is None or size < 0 or size >= len(self.buf):
            out, self.buf = self.buf, ""
        else:
            out, self.buf = self.buf[:size], self.buf[size:]
        return out

    readline = read


def _copy_stream(cur, table: sql.Identifier, columns: list[str], attrs: pd.DataFrame,
                 geoms: np.ndarray, progress: Callable[[int], None] | None) -> None:
    """COPY fid, attributes and hex EWKB (SRID 4490) of all rows in one streamed statement."""
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    wkb = shapely.to_wkb(shapely.set_srid(geoms, STORAGE_SRID), hex=True, include_srid=True,
                         output_dimension=2)
    frame = attrs.copy()
    frame.insert(0, "fid", np.arange(1, len(geoms) + 1, dtype="int64"))
    frame["geom"] = wkb
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N', FREEZE)").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *columns, "geom"]))
    cur.copy_expert(copy_sql.as_string(cur.connection), _CsvStream(frame, 50_000, progress),
                    size=1 << 20)
