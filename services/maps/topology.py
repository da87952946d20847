"""Building a node's routing topology (services.maps.schema) from its road layers.

`build(dsn, node_id, layers)`: the layers with a `routing:` mapping (config/layers/*.yml,
geoplat_settings/routing.py) are read from the node's database, noded (services.maps.noding),
costed (seconds from the speed of each road class; one-way where the layer's column says so;
walking at the walking speed both ways, not on roads closed to pedestrians) and written to
`geoplat_route_edges`/`geoplat_route_vertices` in one transaction under an advisory lock: the
old rows are deleted and the new written before the commit, so routing never sees an empty
network. A build whose inputs (the layers' data checksums and mappings, this builder's code)
are those of the last one writes nothing.

When: at the end of every layer load (nodes/federation.py, as the gazetteer) and after every
publish, rollback and retire (`PublishHooks.refresh_routing`, nodes/publishing.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import shapely
from psycopg2 import sql

from geoplat_settings import LayerSettings, RoutingMapping
from services.maps import noding
from services.maps.schema import CREATE_GRAPH, DDL, INDEXES, TABLES

LOGGER = logging.getLogger("geoplat.routing")
LOCK_KEY = 0x67726F75  # "grou": one topology build at a time per database
ONE_WAY = {"yes", "true", "1", "t", "y", "是"}
AGAINST = {"-1", "reverse"}
MAJOR_KMH = 40.0  # roads at least this fast carry long routes (services/maps/routing.py)
_CODE = Path(__file__).parent


@dataclass(frozen=True)
class RoadSource:
    layer: str                 # layer id (its table)
    mapping: RoutingMapping
    columns: dict[str, str]    # source attribute -> table column
    checksum: str = ""


@dataclass
class BuildResult:
    node: str
    edges: int = 0
    vertices: int = 0
    seconds: float = 0.0
    unchanged: bool = False
    skipped: list[str] = field(default_factory=list)


def sources(cur: Any, layers: list[LayerSettings], result: BuildResult) -> list[RoadSource]:
    """The node's loaded public layers that have a `routing:` mapping (columns checked)."""
    cur.execute("SELECT to_regclass('geoplat_layers') IS NOT NULL")
    cat: dict[str, tuple[dict[str, str], str]] = {}
    if cur.fetchone()[0]:
        cur.execute("SELECT id, columns, checksum FROM geoplat_layers")
        cat = {r[0]: ({str(src): col for col, src in (r[1] or {}).items()}, r[2])
               for r in cur.fetchall()}
    out = []
    for layer in layers:
        if layer.routing is None:
            continue
        if layer.id not in cat:
            result.skipped.append(f"{layer.id}: not loaded")
            continue
        if layer.access != "public":  # a route line shows the roads: anyone may ask for one
            result.skipped.append(f"{layer.id}: not public")
            continue
        cols, checksum = cat[layer.id]
        missing = [c for c in layer.routing.columns() if c not in cols]
        if missing:
            raise ValueError(f"layer {layer.id}: routing mapping names columns it lacks: {missing}")
        out.append(RoadSource(layer.id, layer.routing, cols, checksum))
    return out


def inputs_checksum(srcs: list[RoadSource]) -> str:
    h = hashlib.sha256()
    for s in srcs:
        h.update(json.dumps([s.layer, s.checksum, s.mapping.model_dump()], sort_keys=True,
                            ensure_ascii=False).encode())
    for name in ("topology.py", "noding.py", "schema.py"):
        h.update((_CODE / name).read_bytes())
    return h.hexdigest()


def _read(cur: Any, s: RoadSource) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """(geometries, (fid, kind, name, oneway) per feature) of one road layer."""
    m = s.mapping

    def col(c: str | None) -> sql.Composable:
        return sql.Identifier(s.columns[c]) if c else sql.SQL("NULL")

    cur.execute(sql.SQL("SELECT fid, {}::text, {}::text, {}::text, ST_AsBinary(geom) FROM {}"
                        " WHERE geom IS NOT NULL").format(
        col(m.kind), col(m.name), col(m.oneway), sql.Identifier(s.layer)))
    geoms, attrs = [], []
    for fid, kind, name, oneway, wkb in cur.fetchall():
        geoms.append(shapely.from_wkb(bytes(wkb)))
        attrs.append((fid, kind, name, oneway))
    return geoms, attrs


def _direction(value: str | None) -> int:
    """1: only along the digitised direction, -1: only against it, 0: both."""
    v = (value or "").strip().lower()
    return 1 if v in ONE_WAY else -1 if v in AGAINST else 0


def _copy(cur: Any, table: str, columns: list[str], rows: Any) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v).replace("\\", "\\\\")
                            .replace("\t", " ").replace("\n", " ").replace("\r", " ")
                            for v in row) + "\n")
    buf.seek(0)
    cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))), buf)


def _write(cur: Any, srcs: list[RoadSource], result: BuildResult) -> None:
    geoms: list[Any] = []
    attrs: list[tuple[Any, ...]] = []
    owner: list[RoadSource] = []
    for s in srcs:
        g, a = _read(cur, s)
        geoms += g
        attrs += a
        owner += [s] * len(g)
    net = noding.node(geoms)
    rows = []
    hexes = shapely.to_wkb(net.pieces, hex=True, include_srid=False)
    for i in range(len(net.pieces)):
        road = int(net.road[i])
        fid, kind, name, oneway = attrs[road]
        m = owner[road].mapping
        kmh = m.speeds_kmh.get(kind or "", m.default_speed_kmh)
        speed = kmh / 3.6
        length = float(net.length_m[i])
        seconds = length / speed
        d = _direction(oneway)
        walk = -1.0 if (kind or "") in m.no_walking else length / (m.walk_speed_kmh / 3.6)
        rows.append((i + 1, int(net.source[i]), int(net.target[i]),
                     seconds if d >= 0 else -1.0, seconds if d <= 0 else -1.0, walk, length,
                     name, kind, d, owner[road].layer, fid, "t" if kmh >= MAJOR_KMH else "f",
                     f"SRID=4490;{hexes[i]}"))
    _copy(cur, "geoplat_route_edges",
          ["id", "source", "target", "cost", "reverse_cost", "walk_cost", "length_m", "name",
           "kind", "oneway", "layer", "source_fid", "major", "geom"], rows)
    _copy(cur, "geoplat_route_vertices", ["id", "geom"],
          ((i + 1, f"SRID=4490;POINT({float(x)!r} {float(y)!r})")
           for i, (x, y) in enumerate(net.vertices)))
    result.edges, result.vertices = len(rows), len(net.vertices)


# a temporary table, analysed: a CTE over the function's rows is estimated at 5 rows and
# joined by a nested loop (11 s on the sample network)
_PARTS = """
CREATE TEMP TABLE geoplat_route_parts ON COMMIT DROP AS
SELECT node, component FROM {components}(%s)
"""
_MAIN = """
UPDATE geoplat_route_edges e SET {flag} = true
FROM geoplat_route_parts ps, geoplat_route_parts pt
WHERE ps.node = e.source AND pt.node = e.target AND ps.component = %(big)s
  AND pt.component = %(big)s AND ({open})
"""


def _main_parts(cur: Any) -> None:
    """Flag the edges a point may snap to: for driving, the largest strongly connected part
    (one-way streets respected: from any of its edges every other one can be reached, so no
    point is trapped in a one-way dead end), also without the roads closed to pedestrians; for
    walking, the largest connected part."""
    cur.execute("SELECT count(*) FROM geoplat_route_edges")
    if not cur.fetchone()[0]:
        return
    graphs = {
        "drive_main": ("pgr_strongComponents", "cost >= 0 OR reverse_cost >= 0",
                       "SELECT id, source, target, cost, reverse_cost FROM geoplat_route_edges"),
        "street_main": ("pgr_strongComponents", "walk_cost >= 0",
                        ("SELECT id, source, target, cost, reverse_cost FROM geoplat_route_edges"
                         " WHERE walk_cost >= 0")),
        "walk_main": ("pgr_connectedComponents", "walk_cost >= 0",
                      ("SELECT id, source, target, walk_cost AS cost, walk_cost AS reverse_cost"
                       " FROM geoplat_route_edges WHERE walk_cost >= 0")),
    }
    for flag, (components, open_, edges) in graphs.items():
        cur.execute(sql.SQL(_PARTS).format(components=sql.Identifier(components.lower())),
                    (edges,))
        cur.execute("ANALYZE geoplat_route_parts")
        cur.execute("SELECT component FROM geoplat_route_parts GROUP BY component"
                    " ORDER BY count(*) DESC, component LIMIT 1")
        big = cur.fetchone()
        if big is not None:
            cur.execute(sql.SQL(_MAIN).format(flag=sql.Identifier(flag), open=sql.SQL(open_)),
                        {"big": big[0]})
        cur.execute("DROP TABLE geoplat_route_parts")


def build(dsn: str, node_id: str, layers: list[LayerSettings], *, force: bool = False
          ) -> BuildResult:
    """(Re)build the node's routing topology (module docstring); nothing is written when its
    inputs are those of the last build, unless `force`."""
    started = time.monotonic()
    result = BuildResult(node_id)
    conn = psycopg2.connect(dsn, application_name="geoplat-routing")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.execute(DDL)
            srcs = sources(cur, layers, result)
            checksum = inputs_checksum(srcs)
            cur.execute("SELECT checksum FROM geoplat_route_build WHERE id = 1")
            last = cur.fetchone()
            if last and last[0] == checksum and not force:
                result.unchanged = True
                return result
            cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgrouting'")
            if srcs and cur.fetchone() is None:
                # an external server whose administrator has not created it (README): the
                # node serves everything else; /api/route answers that there is no network
                LOGGER.warning("routing topology of %s skipped: the pgrouting extension is "
                               "missing (CREATE EXTENSION pgrouting, as a superuser)", node_id)
                result.skipped.append("pgrouting extension missing")
                return result  # no build recorded: the next one, with the extension, runs
            cur.execute("DELETE FROM geoplat_route_edges")
            cur.execute("DELETE FROM geoplat_route_vertices")
            cur.execute("DELETE FROM geoplat_route_graph")
            if srcs:
                _write(cur, srcs, result)
            cur.execute(CREATE_GRAPH)
            cur.execute(INDEXES)
            _main_parts(cur)
            result.seconds = round(time.monotonic() - started, 2)
            figures = {"edges": result.edges, "vertices": result.vertices,
                       "seconds": result.seconds, "layers": [s.layer for s in srcs]}
            cur.execute("INSERT INTO geoplat_route_build (id, checksum, figures) VALUES (1, %s, %s)"
                        " ON CONFLICT (id) DO UPDATE SET checksum = EXCLUDED.checksum,"
                        " figures = EXCLUDED.figures, built_at = now()",
                        (checksum, json.dumps(figures)))
            cur.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(
                sql.SQL(", ").join(map(sql.Identifier, TABLES))))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE geoplat_route_edges")
            cur.execute("ANALYZE geoplat_route_graph")
    finally:
        conn.close()
    result.seconds = round(time.monotonic() - started, 2)
    LOGGER.info("routing topology of %s: %d edges, %d vertices in %.1f s", node_id,
                result.edges, result.vertices, result.seconds)
    return result


def edge_count(cur: Any) -> int:
    cur.execute("SELECT to_regclass('geoplat_route_edges') IS NOT NULL")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'geoplat_route_edges'::regclass")
    n = cur.fetchone()[0]
    return int(n) if n and n > 0 else 0


