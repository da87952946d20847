"""The COPY encoders (layers/copy_encoder.py): rows go through a real PostGIS COPY and come back
the same (NULLs, awkward text, CJK, big integers, floats, timestamps, geometries)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psycopg2
import pytest
import shapely
from psycopg2 import sql

from layers import copy_encoder
from layers.copy_encoder import EWKB_SRID_FLAG, Ewkb
from nodes.postgres import Cluster, ensure_database, ensure_postgis

SRID = 4490
TEXTS = ["tab\there", "new\nline", "back\\slash", "杭州市西湖区", "quote \" and ' and ,",
         "\\N", "", "carriage\r\nreturn", "emoji 🗺", None]
BIG = [-(2**63), 2**63 - 1, 0, -1, 2**53 + 1, 7, 8, 9, 10, 11]
FLOATS = [0.1, -1e300, 1e-300, math.pi, np.nan, 2.5, -0.0, 1e15 + 0.5, 3.0, 4.0]


@pytest.fixture(scope="module")
def dsn(pg_cluster: Cluster) -> Iterator[str]:
    ensure_database(pg_cluster.dsn(), "geoplat_copy_encoder")
    url = pg_cluster.dsn("geoplat_copy_encoder")
    ensure_postgis(url)
    yield url


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    n = len(TEXTS)
    attrs = pd.DataFrame({
        "t": pd.Series(TEXTS, dtype=object),
        "big": pd.Series(BIG, dtype="int64"),
        "f": pd.Series(FLOATS, dtype="float64"),
        "b": pd.Series([i % 2 == 0 for i in range(n)], dtype=bool),
        "ts": pd.Series(pd.to_datetime(["2024-02-29T12:34:56.123456Z"] * (n - 1) + [None],
                                       utc=True)),
    })
    geoms = np.array([shapely.Point(120 + i * 0.5, 30 - i * 0.25) for i in range(n - 1)]
                     + [shapely.box(120, 30, 120.5, 30.5)], dtype=object)
    return attrs, geoms


def _table(cur, name: str, geometry: str = "Geometry") -> sql.Identifier:
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    cur.execute(sql.SQL("CREATE TABLE {} (fid bigint, t text, big bigint, f double precision,"
                        " b boolean, ts timestamptz, geom geometry({}, 4490))").format(
        sql.Identifier(name), sql.SQL(geometry)))
    return sql.Identifier(name)


def _read(cur, name: str) -> list[tuple]:
    cur.execute(sql.SQL("SELECT fid, t, big, f, b, ts, ST_AsText(geom), ST_SRID(geom) FROM {}"
                        " ORDER BY fid").format(sql.Identifier(name)))
    return cur.fetchall()


def _check(rows: list[tuple], attrs: pd.DataFrame, geoms: np.ndarray, texts: bool = True) -> None:
    assert [r[0] for r in rows] == list(range(1, len(attrs) + 1))
    if texts:
        assert [r[1] for r in rows] == TEXTS
    assert [r[2] for r in rows] == BIG
    for got, want in zip((r[3] for r in rows), FLOATS, strict=True):
        assert (got is None and math.isnan(want)) or got == want
    assert [r[4] for r in rows] == attrs["b"].tolist()
    assert rows[-1][5] is None
    assert rows[0][5].isoformat() == "2024-02-29T12:34:56.123456+00:00"
    assert [r[6] for r in rows] == [g.wkt.replace("POINT (", "POINT(").replace("POLYGON ((", "POLYGON((")
                                    .replace(", ", ",") for g in geoms]
    assert {r[7] for r in rows} == {SRID}


def test_binary_copy_round_trip(dsn: str) -> None:
    attrs, geoms = _frame()
    assert copy_encoder.binary_copy_supported(attrs)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            table = _table(cur, "enc_binary")
            seen: list[int] = []
            count, bbox = copy_encoder.copy_binary(
                cur, table, list(attrs.columns), copy_encoder.slices(attrs, geoms, size=3),
                seen.append, SRID)
            assert count == len(geoms) and sum(seen) == len(geoms) and len(seen) == 4
            assert bbox == [float(v) for v in shapely.total_bounds(geoms)]
            _check(_read(cur, "enc_binary"), attrs, geoms)
    finally:
        conn.close()


def test_ewkb_batches_join_the_wkb_as_read(dsn: str) -> None:
    """A batch of GDAL-read WKB bodies behind one EWKB head loads as the same geometries."""
    attrs, _ = _frame()
    n = len(attrs)
    polys = [shapely.box(100 + i, 20 + i, 100.5 + i, 20.25 + i) for i in range(n)]
    wkb = shapely.to_wkb(np.array(polys, dtype=object), byte_order=1)
    # single polygons stored as MultiPolygon: head = order, type | SRID flag, SRID, one part
    head = (b"\x01" + (6 | EWKB_SRID_FLAG).to_bytes(4, "little") + SRID.to_bytes(4, "little")
            + (1).to_bytes(4, "little"))
    batch = Ewkb(head, list(wkb), tuple(float(v) for v in shapely.total_bounds(polys)))
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            table = _table(cur, "enc_ewkb", "MultiPolygon")
            count, bbox = copy_encoder.copy_binary(cur, table, list(attrs.columns),
                                                   [(attrs, batch)], None, SRID)
            assert count == n and bbox == list(batch.bounds)
            rows = _read(cur, "enc_ewkb")
            assert [r[1] for r in rows] == TEXTS
            assert [shapely.from_wkt(r[6]) for r in rows] == [shapely.MultiPolygon([p]) for p in polys]
    finally:
        conn.close()


def test_csv_copy_round_trip(dsn: str) -> None:
    """The CSV fallback (columns binary COPY does not cover) keeps the same values."""
    attrs, geoms = _frame()
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            table = _table(cur, "enc_csv")
            seen: list[int] = []
            copy_encoder.copy_csv(cur, table, list(attrs.columns), attrs, geoms, seen.append, SRID)
            assert sum(seen) == len(geoms)
            rows = _read(cur, "enc_csv")
            # CSV cannot tell an empty string from the NULL marker's text: only those differ
            assert [r[1] for r in rows] == [None if t == "\\N" else t for t in TEXTS]
            _check(rows, attrs, geoms, texts=False)
    finally:
        conn.close()


def test_binary_rows_packed_in_steps_are_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame({"i": np.arange(n), "f": np.where(np.arange(n) % 7 == 0, np.nan, rng.random(n)),
                          "s": [None if i % 5 == 0 else "值" * (i % 13) for i in range(n)]})
    wkb = shapely.to_wkb(shapely.points(rng.random(n), rng.random(n)))
    fields = ([copy_encoder.field(frame[c]) for c in frame.columns]
              + [copy_encoder.field(pd.Series(wkb), raw=True)])
    whole = copy_encoder.binary_rows(fields)
    monkeypatch.setattr(copy_encoder, "_PACK_BYTES", 1000)
    assert copy_encoder.binary_rows(fields) == whole
    assert len(whole) == sum(2 + sum(4 + max(int(ln[i]), 0) for ln, _ in fields) for i in range(n))


def test_a_failing_batch_reader_fails_the_copy(dsn: str) -> None:
    """An error while reading batches is raised through the COPY, and nothing is stored."""
    attrs, geoms = _frame()

    def batches():
        yield attrs.iloc[:3], geoms[:3]
        raise ValueError("reader broke")

    conn = psycopg2.connect(dsn)
    try:
        with pytest.raises(ValueError, match="reader broke"), conn, conn.cursor() as cur:
            table = _table(cur, "enc_fail")
            copy_encoder.copy_binary(cur, table, list(attrs.columns), batches(), None, SRID)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('enc_fail')")
            assert cur.fetchone()[0] is None
    finally:
        conn.close()
