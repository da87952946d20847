"""Building a node's gazetteer (services.places.schema) from its layers, in one transaction.

`build(dsn, node_id, layers)` (re)creates every row of `geoplat_divisions` and `geoplat_places`:

- divisions of the node's area from data-samples/divisions.csv (services.places.divisions),
  with the boundary, centre and bbox the node's public division layers give (`places:` mapping
  of kind `division`; a city or province without a polygon of its own gets the union of its
  counties' polygons, a division without any gets its townships' or parent's centre);
- every division also as a place (layer NULL: public);
- the features of the mapped layers (config/layers/<node>.yml `places:`) and of the published
  vector layers (a point layer with a name column becomes POIs unless its publisher gave a
  mapping: `geoplat_published.places`, set by layers.publish.publish(places=...)): door plates, roads (merged per name within a county),
  POIs and place names, each with its layer (access rules apply) and its admin chain (the finest
  division boundary containing it, then its code parents).

Readers never see empty tables: the old rows are deleted and the new written in the same
transaction (MVCC: readers see the old rows until it commits); an advisory lock serialises two
builds. Then services.places.indexes.create(cur).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import shapely
from psycopg2 import sql
from pydantic import ValidationError
from shapely.geometry.base import BaseGeometry

from geoplat_settings import LayerSettings, PlacesMapping
from services.places import divisions as div
from services.places import indexes, outlines
from services.places.schema import DDL
from services.places.text import normalise, pinyin_initials, short_name

LOGGER = logging.getLogger("geoplat.places")
LOCK_KEY = 0x67706C61  # "gpla": one gazetteer build at a time per database
BATCH = 2000
NAME_COLUMNS = ("name", "名称", "title", "mc", "NAME", "Name")

Progress = Callable[[str, int, int | None], None]   # (step, done, total or None)




@dataclass(frozen=True)
class Source:
    """One layer feeding the gazetteer."""
    layer: str                     # the layer id: the `layer` of its rows
    table: str                     # the table (configured) or view (published) to read
    access: str
    mapping: PlacesMapping
    columns: dict[str, str]        # source attribute name -> table column
    geometry_type: str
    boundary_note: str | None = None
    checksum: str = ""             # of the loaded data (geoplat_layers)


@dataclass
class BuildResult:
    node: str
    scope: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)   # sources left out, with why
    unchanged: bool = False        # same inputs as the last build: nothing written


def _quiet(step: str, done: int, total: int | None) -> None:
    return None


# --------------------------------------------------------------------------- sources

def _catalogue(cur: Any) -> dict[str, tuple[str, dict[str, str], str]]:
    """layer id -> (geometry type, source attribute -> table column, checksum) from
    geoplat_layers (the loader's and the publisher's catalogue)."""
    cur.execute("SELECT to_regclass('geoplat_layers') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT id, geometry_type, columns, checksum FROM geoplat_layers")
    return {r[0]: (r[1], {str(src): col for col, src in (r[2] or {}).items()}, r[3])
            for r in cur.fetchall()}


def _published(cur: Any) -> list[tuple[str, str, Any, Any]]:
    """Published vector layers now served: (name, access, the publisher's `places`: a mapping,
    false, or None for the default rule, its attribute rules {column: level} or None)."""
    cur.execute("SELECT to_regclass('geoplat_published') IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    # to_jsonb(p): a catalogue made before the `places` column reads as NULL
    cur.execute("SELECT p.name, p.access, to_jsonb(p) -> 'places', to_jsonb(p) -> 'field_access'"
                " FROM geoplat_published p"
                " WHERE p.kind = 'vector' AND p.current_version IS NOT NULL ORDER BY p.name")
    return list(cur.fetchall())


def default_mapping(columns: dict[str, str], geometry_type: str) -> PlacesMapping | None:
    """A published point layer with a name column: POIs (with category/address/phone columns
    if it has them by those names). Anything else feeds nothing unless mapped."""
    if "Point" not in geometry_type:
        return None
    name = next((c for c in NAME_COLUMNS if c in columns), None)
    if name is None:
        return None
    return PlacesMapping(kind="poi", name=name,
                         category="category" if "category" in columns else None,
                         address="address" if "address" in columns else None,
                         phone="phone" if "phone" in columns else None)


def sources(cur: Any, layers: list[LayerSettings], result: BuildResult) -> list[Source]:
    """The node's configured layers with a `places` mapping, then its published layers."""
    cat = _catalogue(cur)
    out: list[Source] = []
    for layer in layers:
        if layer.places is None:
            continue
        if layer.id not in cat:
            result.skipped.append(f"{layer.id}: not loaded")
            continue
        gtype, cols, checksum = cat[layer.id]
        out.append(Source(layer.id, layer.id, layer.access, layer.places, cols, gtype,
                          layer.places.boundary_note, checksum))
    configured = {s.layer for s in out} | {layer.id for layer in layers}
    for s in out:
        missing = [c for c in s.mapping.all_columns() if c not in s.columns]
        if missing:
            raise ValueError(f"layer {s.layer}: places mapping names columns it lacks: {missing}")
    for name, access, given, rules in _published(cur):
        if name in configured or name not in cat:
            continue
        gtype, cols, checksum = cat[name]
        mapping: PlacesMapping | None
        try:
            mapping = (default_mapping(cols, gtype) if given is None or given is True
                       else PlacesMapping.model_validate(given) if given else None)
        except ValidationError:
            result.skipped.append(f"{name}: invalid places mapping")
            continue
        if mapping is None:
            continue
        if any(c not in cols for c in mapping.all_columns()):
            result.skipped.append(f"{name}: places mapping names columns it lacks")
            continue
        if any(cols[c] in (rules or {}) for c in mapping.all_columns()):
            # the gazetteer answers everyone who may see the layer: never a restricted attribute
            result.skipped.append(f"{name}: places mapping reads attributes with access rules")
            continue
        out.append(Source(name, name, access, mapping, cols, gtype, None, checksum))
    return out


def _rows(cur: Any, s: Source, geom_sql: str) -> Iterator[dict[str, Any]]:
    """The source's features: fid, mapped parts by part name, the rest in `extra`, `wkb`."""
    parts = s.mapping.columns()
    fields = [sql.SQL("{} AS {}").format(sql.Identifier(s.columns[col]), sql.Identifier(part))
              for part, col in parts.items()]
    fields += [sql.SQL("{} AS {}").format(sql.Identifier(s.columns[col]), sql.Identifier(f"x{i}"))
               for i, col in enumerate(s.mapping.extra)]
    named = cur.connection.cursor(name=f"gz_{s.layer}"[:60],
                                  cursor_factory=psycopg2.extras.RealDictCursor)
    named.itersize = BATCH
    named.execute(sql.SQL("SELECT fid, {fields} ST_AsBinary({geom}) AS wkb FROM {table}").format(
        fields=sql.SQL("").join(f + sql.SQL(", ") for f in fields),
        geom=sql.SQL(geom_sql), table=sql.Identifier(s.table)))
    try:
        yield from named
    finally:
        named.close()


def _text(v: Any) -> str | None:
    if v is None:
        return None
    t = str(v).strip()
    return t or None


# --------------------------------------------------------------------------- divisions

def _division_geometry(cur: Any, srcs: list[Source], result: BuildResult
                       ) -> outlines.LayerGeometry:
    """Polygons by 1999/2023 code as the layers give them, points by division code, notes."""
    lg = outlines.LayerGeometry()
    polys, points, notes = lg.polys, lg.points, lg.notes
    for s in srcs:
        if s.mapping.kind != "division":
            continue
        if s.access != "public":
            # a division's boundary is public (admin lookups): never draw it from a closed layer
            result.skipped.append(f"{s.layer}: division layer is not public")
            continue
        assert s.mapping.level is not None
        for r in _rows(cur, s, "geom"):
            code = div.normalise_code(_text(r["code"]) or "", s.mapping.level)
            if code is None:
                continue
            g = shapely.from_wkb(bytes(r["wkb"]))
            if g.geom_type in ("Polygon", "MultiPolygon"):
                polys.setdefault(code, []).append(g)
                lg.names[code] = _text(r.get("name")) or code
                note = _text(r.get("note")) or s.boundary_note
                if note:
                    notes[code] = note
            else:
                points[code] = g
    return lg


def _chain(rows: dict[str, div.DivisionRow], code: str) -> dict[str, str | None]:
    chain: dict[str, str | None] = {}
    for d in [rows[code], *div.ancestors(rows, code)] if code in rows else []:
        chain[d.kind] = d.name
        chain[f"{d.kind}_code"] = d.code
    return chain


ADMIN_COLS = ("province", "province_code", "city", "city_code", "county", "county_code",
              "township", "township_code")


def _insert_divisions(cur: Any, drows: list[dict[str, Any]], all_rows: dict[str, div.DivisionRow]
                      ) -> None:
    def wkb(g: BaseGeometry | None) -> bytes | None:
        return None if g is None else shapely.to_wkb(g)

    values = [(d["code"], d["name"], normalise(d["name"]), short_name(d["name"]), d["kind"],
               d["parent_code"], wkb(d["centre"]),
               wkb(shapely.box(*d["bbox"])) if d["bbox"] else None, wkb(d["boundary"]),
               d["note"], div.SOURCE) for d in drows]
    psycopg2.extras.execute_values(
        cur, "INSERT INTO geoplat_divisions (code, name, name_norm, short_name, kind, parent_code,"
             " centre, bbox, boundary, boundary_note, source) VALUES %s", values,
        template="(%s, %s, %s, %s, %s, %s, ST_SetSRID(ST_GeomFromWKB(%s), 4490),"
                 " ST_SetSRID(ST_GeomFromWKB(%s), 4490), ST_SetSRID(ST_GeomFromWKB(%s), 4490),"
                 " %s, %s)", page_size=500)
    places = []
    for d in drows:
        ch = _chain(all_rows, d["code"])
        short = short_name(d["name"])
        places.append((d["kind"], d["name"], normalise(d["name"]), pinyin_initials(d["name"]),
                       [normalise(short)] if short != d["name"] else [],
                       *(ch.get(c) for c in ADMIN_COLS), d["code"], shapely.to_wkb(d["centre"])))
    psycopg2.extras.execute_values(
        cur, "INSERT INTO geoplat_places (kind, name, name_norm, pinyin, aliases, "
             + ", ".join(ADMIN_COLS) + ", source_id, geom) VALUES %s", places,
        template="(" + ", ".join(["%s"] * 14) + ", ST_SetSRID(ST_GeomFromWKB(%s), 4490))",
        page_size=500)


# --------------------------------------------------------------------------- features

_NUMBER = re.compile(r"\d+")
PLACE_COLS = ("kind", "name", "name_norm", "pinyin", "address", "address_norm", "road", "road_norm",
              "number", "number_int", "category", "phone", "layer", "source_id", "extra")


def _number_int(number: str | None) -> int | None:
    m = _NUMBER.search(normalise(number)) if number else None
    return int(m.group()) if m and len(m.group()) < 9 else None


def _place_values(s: Source, r: dict[str, Any]) -> tuple[Any, ...] | None:
    m = s.mapping
    address, road, number = _text(r.get("address")), _text(r.get("road")), _text(r.get("number"))
    name = _text(r.get("name"))
    if name is None and m.kind == "address":     # a door plate is named by road and number
        name = road + number if road and number else address
    if name is None:
        return None
    category = _text(r.get("category")) or m.category_default
    return (m.kind, name, normalise(name), pinyin_initials(name), address, normalise(address) if address else None,
            road, normalise(road) if road else None, number, _number_int(number), category,
            _text(r.get("phone")), s.layer, str(r["fid"]),
            json.dumps({col: r[f"x{i}"] for i, col in enumerate(m.extra)
                        if r[f"x{i}"] is not None}, ensure_ascii=False, default=str))


def _insert_points(cur: Any, s: Source, progress: Progress) -> int:
    """Door plates, POIs and place names of one source (polygons: a point on their surface)."""
    geom = "geom" if "Point" in s.geometry_type else "ST_PointOnSurface(geom)"
    if "MultiPoint" in s.geometry_type:
        geom = "ST_GeometryN(geom, 1)"
    batch: list[tuple[Any, ...]] = []
    n = 0
    template = "(" + ", ".join(["%s"] * len(PLACE_COLS)) + ", ST_SetSRID(ST_GeomFromWKB(%s), 4490))"
    query = f"INSERT INTO geoplat_places ({', '.join(PLACE_COLS)}, geom) VALUES %s"
    for r in _rows(cur.connection.cursor(), s, geom):
        v = _place_values(s, r)
        if v is None:
            continue
        batch.append((*v, bytes(r["wkb"])))
        if len(batch) >= BATCH:
            psycopg2.extras.execute_values(cur, query, batch, template=template, page_size=BATCH)
            n += len(batch)
            batch.clear()
            progress(s.layer, n, None)
    if batch:
        psycopg2.extras.execute_values(cur, query, batch, template=template, page_size=BATCH)
        n += len(batch)
    progress(s.layer, n, n)
    return n


def _insert_roads(cur: Any, s: Source, progress: Progress) -> int:
    """Road segments merged per name within the county their midpoint is in."""
    cur.execute("CREATE TEMP TABLE _gz_roads (name text, fid text, geom geometry) ON COMMIT DROP")
    name_col = s.columns[s.mapping.name or "name"]
    cur.execute(sql.SQL("INSERT INTO _gz_roads SELECT btrim({n}::text), fid::text, geom FROM {t}"
                        " WHERE nullif(btrim({n}::text), '') IS NOT NULL").format(
        n=sql.Identifier(name_col), t=sql.Identifier(s.table)))
    cur.execute("""
        WITH located AS (
            SELECT r.name, r.fid, r.geom,
                   (SELECT d.code FROM geoplat_divisions d
                     WHERE d.kind = 'county' AND d.boundary IS NOT NULL
                       AND ST_Intersects(d.boundary, ST_PointOnSurface(r.geom)) LIMIT 1) AS county
              FROM _gz_roads r),
        merged AS (
            SELECT name, county, min(fid) AS fid, count(*) AS parts,
                   ST_LineMerge(ST_Union(geom)) AS shape FROM located GROUP BY name, county)
        INSERT INTO geoplat_places (kind, name, name_norm, road, road_norm, layer, source_id,
                                    extra, geom, shape)
        SELECT 'road', name, '', name, NULL, %(layer)s, fid,
               jsonb_build_object('segments', parts),
               ST_SetSRID(ST_ClosestPoint(shape, ST_Centroid(shape)), 4490),
               ST_SetSRID(shape, 4490)
          FROM merged
        RETURNING id, name""", {"layer": s.layer})
    ids = cur.fetchall()
    # normalised text from Python (text.normalise is Python): one UPDATE from VALUES
    psycopg2.extras.execute_values(
        cur, "UPDATE geoplat_places p SET name_norm = v.norm, road_norm = v.norm, pinyin = v.py"
             " FROM (VALUES %s) AS v (id, norm, py) WHERE p.id = v.id",
        [(i, normalise(name), pinyin_initials(name)) for i, name in ids], page_size=BATCH)
    cur.execute("DROP TABLE _gz_roads")
    progress(s.layer, len(ids), len(ids))
    return len(ids)


def _assign_admin(cur: Any, rows: dict[str, div.DivisionRow]) -> None:
    """Each feature place's admin chain: the finest division boundary containing its point,
    then that division's code parents."""
    cur.execute("""
        CREATE TEMP TABLE _gz_admin ON COMMIT DROP AS
        SELECT p.id, (SELECT d.code FROM geoplat_divisions d
                       WHERE d.boundary IS NOT NULL AND ST_Intersects(d.boundary, p.geom)
                       ORDER BY array_position(ARRAY['township', 'county', 'city', 'province'],
                                               d.kind) LIMIT 1) AS code
          FROM geoplat_places p WHERE p.layer IS NOT NULL""")
    cur.execute("SELECT DISTINCT code FROM _gz_admin WHERE code IS NOT NULL")
    chains = [(c, *(_chain(rows, c).get(k) for k in ADMIN_COLS)) for (c,) in cur.fetchall()]
    if chains:
        psycopg2.extras.execute_values(
            cur, "UPDATE geoplat_places p SET " + ", ".join(f"{k} = v.{k}" for k in ADMIN_COLS)
                 + " FROM _gz_admin a, (VALUES %s) AS v (code, " + ", ".join(ADMIN_COLS) + ")"
                 " WHERE a.id = p.id AND a.code = v.code", chains, page_size=BATCH)
    cur.execute("DROP TABLE _gz_admin")


# --------------------------------------------------------------------------- build

def area_scope(area_code: str | None) -> str | None:
    """A node's `area_code` (330000, 330100, 330102) as a code prefix ('33', '3301', '330102');
    None: unknown (then the node's division layers tell)."""
    if not area_code:
        return None
    if area_code[2:] == "0000":
        return area_code[:2]
    return area_code[:4] if area_code[4:] == "00" else area_code


def inputs_checksum(srcs: list[Source], scope: str | None, divisions_csv: Path) -> str:
    """What a build depends on: the sources' data and mappings, the division file, the area,
    and the code that turns them into rows (this module, the text normaliser)."""
    h = hashlib.sha256()
    code = [Path(__file__), Path(__file__).with_name("text.py"), Path(div.__file__)]
    for p in [divisions_csv, *code]:
        h.update(p.read_bytes() if p.exists() else b"-")
    h.update(json.dumps([scope, [(s.layer, s.table, s.access, s.checksum,
                                  s.mapping.model_dump(mode="json")) for s in srcs]],
                        sort_keys=True).encode())
    return h.hexdigest()


def build(dsn: str, node_id: str, layers: list[LayerSettings], *, area_code: str | None = None,
          divisions_csv: Path = div.DIVISIONS_CSV, progress: Progress = _quiet,
          force: bool = False) -> BuildResult:
    """(Re)build the node's gazetteer in one transaction (see the module docstring); nothing
    is written when its inputs are those of the last build, unless `force`."""
    started = time.monotonic()
    conn = psycopg2.connect(dsn, application_name="geoplat-gazetteer")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.execute(DDL)
            result = BuildResult(node_id, "")
            srcs = sources(cur, layers, result)
            all_rows = div.load(divisions_csv)
            scope = area_scope(area_code)
            checksum = inputs_checksum(srcs, scope, divisions_csv)
            cur.execute("SELECT checksum FROM geoplat_places_build WHERE id = 1")
            last = cur.fetchone()
            if last and last[0] == checksum and not force:
                result.unchanged = True
                return result
            if scope is None:
                codes = []
                for s in srcs:
                    if s.mapping.kind == "division" and s.mapping.level in ("county", "township"):
                        cur.execute(sql.SQL("SELECT DISTINCT {}::text FROM {}").format(
                            sql.Identifier(s.columns[s.mapping.code or "code"]),
                            sql.Identifier(s.table)))
                        codes += [c for (c,) in cur.fetchall() if c and c[:1] != "0"]
                scope = div.scope_of(codes)
            result.scope = scope
            rows = div.in_scope(all_rows, scope)
            drows = outlines.division_rows(rows, scope, _division_geometry(cur, srcs, result))
            cur.execute("DELETE FROM geoplat_places")
            cur.execute("DELETE FROM geoplat_divisions")
            _insert_divisions(cur, drows, all_rows)
            for d in drows:
                result.counts[d["kind"]] = result.counts.get(d["kind"], 0) + 1
            progress("divisions", len(drows), len(drows))
            for s in srcs:
                if s.mapping.kind == "division":
                    continue
                n = (_insert_roads(cur, s, progress) if s.mapping.kind == "road"
                     else _insert_points(cur, s, progress))
                result.counts[s.mapping.kind] = result.counts.get(s.mapping.kind, 0) + n
            _assign_admin(cur, all_rows)
            indexes.create(cur)
            cur.execute("INSERT INTO geoplat_places_build (id, checksum, counts) VALUES (1, %s, %s)"
                        " ON CONFLICT (id) DO UPDATE SET checksum = EXCLUDED.checksum,"
                        " counts = EXCLUDED.counts, built_at = now()",
                        (checksum, json.dumps(result.counts)))
            cur.execute("REVOKE ALL ON geoplat_places, geoplat_divisions, geoplat_places_build"
                        " FROM PUBLIC")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE geoplat_places")
            cur.execute("ANALYZE geoplat_divisions")
    finally:
        conn.close()
    result.seconds = round(time.monotonic() - started, 2)
    LOGGER.info("gazetteer of %s: %s in %.1f s", node_id, result.counts, result.seconds)
    return result
