"""The gazetteer of a node of the shared test federation (built by services.places.gazetteer
from the node's layers) copied into a private database, for query-layer tests that change or
grow the tables (100k generated rows) without touching the running nodes.
"""

from __future__ import annotations

import io
from typing import Any

import psycopg2
from psycopg2.extras import execute_values

from services.places import indexes, schema
from services.places.text import normalise, pinyin_initials

COLUMNS = ("kind", "name", "name_norm", "aliases", "pinyin", "address", "address_norm", "road",
           "road_norm", "number", "number_int", "category", "phone", "province",
           "province_code", "city", "city_code", "county", "county_code", "township",
           "township_code", "layer", "source_id", "geom", "shape")
TABLES = ("geoplat_divisions", "geoplat_places")


def copy_from(src_dsn: str, cur: Any, extra_rows: list[tuple] | None = None) -> None:
    """Create both tables with `cur` (replacing what they held), fill them with the rows of
    the database at `src_dsn` and `extra_rows` (from `row()`), then services.places.indexes."""
    cur.execute("DROP TABLE IF EXISTS geoplat_places, geoplat_divisions")
    cur.execute(schema.DDL)
    src = psycopg2.connect(src_dsn)
    try:
        with src.cursor() as scur:
            for table in TABLES:
                buf = io.StringIO()
                scur.copy_expert(f"COPY {table} TO STDOUT", buf)
                buf.seek(0)
                cur.copy_expert(f"COPY {table} FROM STDIN", buf)
    finally:
        src.close()
    cur.execute("SELECT setval(pg_get_serial_sequence('geoplat_places', 'id'),"
                " (SELECT coalesce(max(id), 0) + 1 FROM geoplat_places), false)")
    if extra_rows:
        template = "(" + ", ".join(["%s"] * (len(COLUMNS) - 2)) + \
            ", ST_GeomFromText(%s, 4490), ST_GeomFromText(%s, 4490))"
        execute_values(cur, f"INSERT INTO geoplat_places ({', '.join(COLUMNS)}) VALUES %s",
                       extra_rows, template=template, page_size=2000)
    indexes.create(cur)


def row(**values: Any) -> tuple:
    """A geoplat_places row (generated rows of the scale tests; geom and shape as WKT)."""
    values.setdefault("name_norm", normalise(values["name"]))
    values.setdefault("pinyin", pinyin_initials(values["name"]))
    values.setdefault("aliases", [])
    return tuple(values.get(c) for c in COLUMNS)
