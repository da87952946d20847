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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import pyogrio
import shapely
from psycopg2 import sql

STORAGE_SRID = 4490
EWKB_SRID_FLAG = 0x20000000  # PostGIS extended WKB: the type word says an SRID follows it


@dataclass
class Ewkb:
    """A batch's geometries as EWKB in two pieces per row, not encoded again: `head` + body.

    `head` (byte order, type with the SRID flag, SRID, maybe a part count) is the same for
    every row; `bodies` are the rest of each row's WKB as GDAL read it (layers/formats.py).
    """

    head: bytes
    bodies: list[bytes]
    bounds: tuple[float, float, float, float]  # of the batch's geometries

    def __len__(self) -> int:
        return len(self.bodies)
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


def _normalise_geometries(geoms: np.ndarray, geometry_type: str,
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
        count, bbox = _copy_binary(cur, sql.Identifier(table), columns, batches, progress)
    elif geoms is None:
        raise ValueError("create_layer_table needs geometries or batches")
    elif binary_copy_supported(attrs):
        count, bbox = _copy_binary(cur, sql.Identifier(table), columns, slices(attrs, geoms),
                                   progress)
    else:
        _copy_stream(cur, sql.Identifier(table), columns, attrs, geoms, progress)
        count, bbox = len(geoms), [float(v) for v in shapely.total_bounds(geoms)]
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
    return count, bbox  # counted and measured as the rows went in: no second scan


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


# --- binary COPY: raw EWKB and attributes packed with numpy, no text formatting or hex ------

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_FIXED = {"i": ">i8", "u": ">i8", "f": ">f8", "b": "u1"}


_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL timestamps count from 2000-01-01 UTC


def binary_copy_supported(attrs: pd.DataFrame) -> bool:
    """Binary COPY covers integer, float, boolean, timestamp and text columns."""
    return all(attrs[c].dtype.kind in "iufbOSUM" for c in attrs.columns)


def _field(values: pd.Series, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(lengths with -1 for NULL, flat bytes) of one column in PostgreSQL binary format.

    `raw`: the values are bytes already (EWKB).
    """
    null = values.isna().to_numpy()
    kind = values.dtype.kind
    if kind == "M" and not raw:  # timestamptz: microseconds since 2000-01-01 UTC
        ts = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        us = ts.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
        data = np.ascontiguousarray((us - _EPOCH_2000_US).astype(">i8")).view(np.uint8).reshape(-1, 8)
        return np.where(null, -1, 8).astype(np.int64), (data[~null] if null.any() else data).reshape(-1)
    if raw or kind not in _FIXED:
        obj = values.to_numpy(dtype=object)
        if raw:
            encoded = obj.tolist()
        else:
            encoded = list(map(str.encode, np.where(null, "", obj).astype(str).tolist()))
        lens = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        lens[null] = -1
        return lens, np.frombuffer(b"".join(encoded), dtype=np.uint8)
    if kind == "f":
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        null = np.isnan(arr)
    elif kind == "b":
        arr = values.to_numpy(dtype="bool", na_value=False)
    else:
        arr = values.to_numpy(dtype="int64", na_value=0)
    width = np.dtype(_FIXED[kind]).itemsize
    data = np.ascontiguousarray(arr.astype(_FIXED[kind])).view(np.uint8).reshape(-1, width)
    lens = np.where(null, -1, width).astype(np.int64)
    return lens, (data[~null] if null.any() else data).reshape(-1)


_PACK_BYTES = 1 << 21  # rows packed per step: the scatter indices cost 8 bytes per data byte


def binary_rows(fields: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Rows of a binary COPY stream (no header) from per-column (lengths, flat bytes)."""
    n = len(fields[0][0])
    size = sum(int(d.size) for _, d in fields)
    if size <= _PACK_BYTES or n < 2:
        return _pack(fields)
    step = max(1, n * _PACK_BYTES // size)
    ends = [np.concatenate([[0], np.cumsum(np.maximum(lens, 0))]) for lens, _ in fields]
    parts = []
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        parts.append(_pack([(lens[lo:hi], data[end[lo]:end[hi]])
                            for (lens, data), end in zip(fields, ends, strict=True)]))
    return b"".join(parts)


def _pack(fields: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    return _pack_rows(fields)[0].tobytes()


def ewkb_rows(fields: list[tuple[np.ndarray, np.ndarray]], geoms: Ewkb) -> bytes:
    """Rows of a binary COPY stream whose last column is `geoms`, joined from its pieces.

    The other columns are packed as in `binary_rows`; each row's geometry is the shared head
    and the row's body, so the geometry bytes are copied once, by the join.
    """
    from itertools import chain, pairwise

    n = len(geoms)
    head = np.frombuffer(geoms.head, dtype=np.uint8)
    body_lens = np.fromiter(map(len, geoms.bodies), dtype=np.int64, count=n)
    tail = np.empty((n, 4 + len(head)), dtype=np.uint8)  # the geometry's length, then its head
    tail[:, :4] = (body_lens + len(head)).astype(">i4").view(np.uint8).reshape(n, 4)
    tail[:, 4:] = head
    buf, starts = _pack_rows(fields, tail)
    view = memoryview(buf)
    rows = (view[a:b] for a, b in pairwise(np.append(starts, len(buf)).tolist()))
    return b"".join(chain.from_iterable(zip(rows, geoms.bodies)))


def _pack_rows(fields: list[tuple[np.ndarray, np.ndarray]], tail: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, row starts) of packed rows; `tail` (n, w) bytes end each row as one more column
    whose length word and first bytes it holds (the rest of that column follows the row)."""
    n = len(fields[0][0])
    sizes = np.full(n, 2 + (tail.shape[1] if tail is not None else 0), dtype=np.int64)
    for lens, _ in fields:
        sizes += 4 + np.maximum(lens, 0)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    buf = np.empty(int(sizes.sum()), dtype=np.uint8)
    ncols = np.array([len(fields) + (tail is not None)], dtype=">i2").view(np.uint8)
    buf[starts] = ncols[0]
    buf[starts + 1] = ncols[1]
    pos = starts + 2
    for lens, data in fields:
        buf[pos[:, None] + np.arange(4)] = lens.astype(">i4").view(np.uint8).reshape(n, 4)
        pos = pos + 4
        present = np.maximum(lens, 0)
        if data.size:
            # every byte of column value i goes to pos[i] + its offset within the value
            val_starts = np.zeros(n, dtype=np.int64)
            np.cumsum(present[:-1], out=val_starts[1:])
            buf[np.repeat(pos - val_starts, present) + np.arange(data.size)] = data
        pos = pos + present
    if tail is not None:
        buf[pos[:, None] + np.arange(tail.shape[1])] = tail
    return buf, starts


class _BinaryStream:
    """A file-like binary COPY source; a helper thread reads and packs the next batches.

    While the server stores one batch, the thread reads, checks and packs the next ones
    (two processes, two cores); at most two packed batches wait, so memory stays bounded.
    An error in the thread is raised here; `close` stops the thread (Ctrl-C, failed COPY).
    """

    def __init__(self, batches: Iterable[tuple[pd.DataFrame, np.ndarray]], columns: list[str],
                 progress: Callable[[int], None] | None):
        import queue
        import threading

        self.batches, self.columns, self.progress = iter(batches), columns, progress
        self.pos = 0
        self.buf = memoryview(_PGCOPY_HEADER)
        self.done = False
        self.error: BaseException | None = None  # the reader's, raised through the COPY
        self.bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])  # of all rows packed
        self.queue: Any = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="geoplat-copy-pack", daemon=True)
        self.thread.start()

    def _pack(self, attrs: pd.DataFrame, part: np.ndarray | Ewkb) -> tuple[bytes, int]:
        lo, hi = self.pos, self.pos + len(part)
        fid = pd.Series(np.arange(lo + 1, hi + 1, dtype="int64"))
        fields = [_field(fid)] + [_field(attrs[c].reset_index(drop=True)) for c in self.columns]
        self.pos = hi
        b = np.asarray(part.bounds if isinstance(part, Ewkb) else shapely.total_bounds(part))
        self.bounds = np.concatenate([np.fmin(self.bounds[:2], b[:2]), np.fmax(self.bounds[2:], b[2:])])
        if isinstance(part, Ewkb):
            return ewkb_rows(fields, part), hi - lo
        if shapely.has_z(part).any():
            part = shapely.force_2d(part)
        wkb = shapely.to_wkb(shapely.set_srid(part, STORAGE_SRID), include_srid=True,
                             output_dimension=2)
        return binary_rows([*fields, _field(pd.Series(wkb), raw=True)]), hi - lo

    def _put(self, item: Any) -> bool:
        import queue

        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for attrs, part in self.batches:
                if not self._put(self._pack(attrs, part)):
                    return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _next(self) -> bytes:
        import queue

        while True:
            try:
                item = self.queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError("the batch reader stopped unexpectedly") from None
        if isinstance(item, BaseException):
            self.error = item
            raise item
        if item is None:
            self.done = True
            return b"\xff\xff"  # end of data
        data, n = item
        if self.progress:
            try:
                self.progress(n)
            except BaseException as exc:  # e.g. the client of a progress stream went away
                self.error = exc
                raise
        return data

    def close(self) -> None:
        self.stop.set()

    def read(self, size: int = -1) -> bytes:
        while not len(self.buf) and not self.done:
            self.buf = memoryview(self._next())
        if size is None or size < 0 or size >= len(self.buf):
            out, self.buf = bytes(self.buf), memoryview(b"")
        else:
            out, self.buf = bytes(self.buf[:size]), self.buf[size:]
        return out

    readline = read


def slices(attrs: pd.DataFrame, geoms: np.ndarray, size: int = 50_000
           ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """(attributes, geometries) of a loaded layer in batches."""
    for lo in range(0, len(geoms), size):
        yield attrs.iloc[lo:lo + size], geoms[lo:lo + size]


def _copy_binary(cur: Any, table: sql.Identifier, columns: list[str],
                 batches: Iterable[tuple[pd.DataFrame, np.ndarray]],
                 progress: Callable[[int], None] | None) -> tuple[int, list[float]]:
    """COPY fid, attributes and EWKB (SRID 4490) of all batches in one binary statement;
    returns (rows, bbox).

    Batches are packed as the server asks for data, so a reader feeding `batches` (layers/
    formats.py) reads the next batch while the server stores the previous one.
    """
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *columns, "geom"]))
    stream = _BinaryStream(batches, columns, progress)
    try:
        cur.copy_expert(copy_sql.as_string(cur.connection), stream, size=1 << 20)
    except psycopg2.Error:
        if stream.error is not None:  # psycopg2 reports it as a cancelled COPY
            raise stream.error from None
        raise
    finally:
        stream.close()
    return stream.pos, [float(v) for v in stream.bounds]
