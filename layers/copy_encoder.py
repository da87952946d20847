"""PostgreSQL COPY encoders for layer rows: binary COPY packed with numpy, and a CSV fallback.

This is why publishing beats ogr2ogr (bench/publish.py): a batch's attributes become
per-column (lengths, flat bytes) arrays and are scattered into one buffer with numpy, and
GDAL's WKB bodies are joined behind a shared EWKB head without being encoded again; the
rows of all batches go through one COPY statement, packed by a helper thread while the
server stores the previous batch.

Binary format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4 -
a header, then per row an int16 field count and per field an int32 length (-1 for NULL)
followed by the value in the type's binary send format (big-endian int8/float8, bool byte,
timestamptz as microseconds since 2000-01-01 UTC, text as UTF-8, geometry as EWKB).
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, pairwise
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import shapely
from psycopg2 import sql

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


def copy_csv_batches(cur: Any, table: sql.Identifier, columns: list[str], attrs: pd.DataFrame,
                     geoms: np.ndarray, ids: Iterable[int], progress: Callable[[int], None] | None,
                     srid: int) -> None:
    """COPY fid (`ids`), attributes and hex EWKB geometries (SRID `srid`) in batches of CSV,
    one statement per batch (the loader of configured layers, layers/load.py)."""
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True, output_dimension=2) if len(geoms) else []
    # shapely writes SRID only when set on the geometry
    if len(geoms) and shapely.get_srid(geoms[0]) != srid:
        wkb = shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True,
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


class CsvStream:
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


def copy_csv(cur: Any, table: sql.Identifier, columns: list[str], attrs: pd.DataFrame,
             geoms: np.ndarray, progress: Callable[[int], None] | None, srid: int) -> None:
    """COPY fid, attributes and hex EWKB (SRID `srid`) of all rows in one streamed CSV statement
    (the fallback for columns binary COPY does not cover)."""
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    wkb = shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True,
                         output_dimension=2)
    frame = attrs.copy()
    frame.insert(0, "fid", np.arange(1, len(geoms) + 1, dtype="int64"))
    frame["geom"] = wkb
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N', FREEZE)").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *columns, "geom"]))
    cur.copy_expert(copy_sql.as_string(cur.connection), CsvStream(frame, 50_000, progress),
                    size=1 << 20)



# --- binary COPY: raw EWKB and attributes packed with numpy, no text formatting or hex ------

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_FIXED = {"i": ">i8", "u": ">i8", "f": ">f8", "b": "u1"}


_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL timestamps count from 2000-01-01 UTC


def binary_copy_supported(attrs: pd.DataFrame) -> bool:
    """Binary COPY covers integer, float, boolean, timestamp and text columns."""
    return all(attrs[c].dtype.kind in "iufbOSUM" for c in attrs.columns)


def field(values: pd.Series, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
    n = len(geoms)
    head = np.frombuffer(geoms.head, dtype=np.uint8)
    body_lens = np.fromiter(map(len, geoms.bodies), dtype=np.int64, count=n)
    tail = np.empty((n, 4 + len(head)), dtype=np.uint8)  # the geometry's length, then its head
    tail[:, :4] = (body_lens + len(head)).astype(">i4").view(np.uint8).reshape(n, 4)
    tail[:, 4:] = head
    buf, starts = _pack_rows(fields, tail)
    view = memoryview(buf)  # type: ignore[arg-type]  # numpy arrays are buffers
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


class BinaryStream:
    """A file-like binary COPY source; a helper thread reads and packs the next batches.

    While the server stores one batch, the thread reads, checks and packs the next ones
    (two processes, two cores); at most two packed batches wait, so memory stays bounded.
    An error in the thread is raised here; `close` stops the thread (Ctrl-C, failed COPY).
    """

    def __init__(self, batches: Iterable[tuple[pd.DataFrame, np.ndarray | Ewkb]], columns: list[str],
                 progress: Callable[[int], None] | None, srid: int):
        self.batches, self.columns, self.progress = iter(batches), columns, progress
        self.srid = srid
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
        fields = [field(fid)] + [field(attrs[c].reset_index(drop=True)) for c in self.columns]
        self.pos = hi
        b = np.asarray(part.bounds if isinstance(part, Ewkb) else shapely.total_bounds(part))
        self.bounds = np.concatenate([np.fmin(self.bounds[:2], b[:2]), np.fmax(self.bounds[2:], b[2:])])
        if isinstance(part, Ewkb):
            return ewkb_rows(fields, part), hi - lo
        if shapely.has_z(part).any():
            part = shapely.force_2d(part)
        wkb = shapely.to_wkb(shapely.set_srid(part, self.srid), include_srid=True,
                             output_dimension=2)
        return binary_rows([*fields, field(pd.Series(wkb), raw=True)]), hi - lo

    def _put(self, item: Any) -> bool:
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
        finally:  # a stopped COPY: the batch reader lets go of its file now (in this thread)
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()

    def _next(self) -> bytes:
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


def copy_binary(cur: Any, table: sql.Identifier, columns: list[str],
                batches: Iterable[tuple[pd.DataFrame, np.ndarray | Ewkb]],
                progress: Callable[[int], None] | None, srid: int) -> tuple[int, list[float]]:
    """COPY fid, attributes and EWKB (SRID `srid`) of all batches in one binary statement;
    returns (rows, bbox).

    Batches are packed as the server asks for data, so a reader feeding `batches` (layers/
    formats.py) reads the next batch while the server stores the previous one.
    """
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *columns, "geom"]))
    stream = BinaryStream(batches, columns, progress, srid)
    try:
        cur.copy_expert(copy_sql.as_string(cur.connection), stream, size=1 << 20)
    except psycopg2.Error:
        if stream.error is not None:  # psycopg2 reports it as a cancelled COPY
            raise stream.error from None
        raise
    finally:
        stream.close()
    return stream.pos, [float(v) for v in stream.bounds]
