"""The catalogue of published layers: names, storage, locks and the serving generation.

Layer names are checked here (reserved database, service and route words; names already
configured), each version's table is `<name>__v<k>` behind a view `<name>`, an advisory lock
per layer refuses a second concurrent publish, and every change bumps the node's serving
generation, which each worker reports once it serves it (`wait_served`). layers/publish.py
builds on these to publish, roll back and retire layers.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from psycopg2 import sql

from geoplat_settings import EMAP_LAYERS, NodeRuntime, PublishSettings
from layers.formats import (
    PublishError,
)
from layers.load import CATALOGUE_DDL, upsert_catalogue
from layers.serving import CHANNEL, POLL_SECONDS

LOGGER = logging.getLogger("geoplat.publish")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,44}$")
# The names a layer may not take, in one place. A published layer `<name>` becomes a table and
# a view in the node's database, an OGC API collection `/ogc/collections/<name>`, a registry
# record, and (rasters, e-map layers) a WMS/WMTS/TMS layer `<name>`: a name that already means
# something in one of those would take that service over (a layer `catalogue` replaced the
# registry's records). The node's own names (compositions, configured layers) come from its
# generated config: `configured_names`.
DATABASE_NAMES = {
    "spatial_ref_sys", "geometry_columns", "geography_columns", "raster_columns",
    "raster_overviews", "topology", "layer", "auth", "public", "information_schema",
    "tiger", "tiger_data", "us_gaz", "us_lex", "us_rules",
}
SERVICE_NAMES = {
    "catalogue",  # the registry's OGC API Records collection (services/registry/local.py)
    *EMAP_LAYERS,  # the government e-map layers
}
# path words of the node's routes and of the OGC APIs it serves: a collection or tile layer of
# that name would be ambiguous in URLs, links and the portal
ROUTE_WORDS = {
    "api", "sdk", "hall", "halls", "cadastre", "processes", "jobs", "collections",
    "conformance", "openapi", "static", "tiles", "wmts", "wms", "tms", "service", "ogc",
    "auth", "sso", "registry", "health", "publish", "places", "route", "geocoder", "search",
    "v2", "administrative", "drive", "admin", "stac", "demo", "items", "coverage", "records",
    "map", "maps", "portal", "status", "login", "logout",
}
RESERVED = DATABASE_NAMES | SERVICE_NAMES | ROUTE_WORDS
LEVELS = ("public", "registered", "restricted")

DDL = """
CREATE TABLE IF NOT EXISTS geoplat_published (
    name text PRIMARY KEY,
    kind text NOT NULL,
    title text NOT NULL,
    access text NOT NULL,
    keywords jsonb NOT NULL DEFAULT '[]',
    emap boolean NOT NULL DEFAULT false,
    current_version int,
    last_version int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- how the layer feeds the node's gazetteer: a PlacesMapping, false (not at all), or NULL (the
-- default: a point layer with a name column gives POIs; services/places/gazetteer.py)
ALTER TABLE geoplat_published ADD COLUMN IF NOT EXISTS places jsonb;
-- attributes stricter than the layer ({column: level}; layers/field_rules.py)
ALTER TABLE geoplat_published ADD COLUMN IF NOT EXISTS field_access jsonb NOT NULL DEFAULT '{}';
-- its WMS / e-map style of its own (tiles/styles.py WmsLayerStyle: classes by an attribute, e.g.
-- a thematic layer's graduated classes); NULL: the generic style of published layers
ALTER TABLE geoplat_published ADD COLUMN IF NOT EXISTS style jsonb;
CREATE TABLE IF NOT EXISTS geoplat_layer_versions (
    name text NOT NULL REFERENCES geoplat_published (name) ON DELETE CASCADE,
    version int NOT NULL,
    storage text NOT NULL,
    geometry_type text NOT NULL,
    feature_count bigint NOT NULL,
    bbox double precision[] NOT NULL,
    columns jsonb NOT NULL,
    checksum text NOT NULL,
    source text NOT NULL,
    source_crs text NOT NULL,
    report jsonb NOT NULL DEFAULT '{}',
    published_by text,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS geoplat_publish_generation (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO geoplat_publish_generation VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS geoplat_publish_workers (
    worker text PRIMARY KEY,
    generation bigint NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now()
);
"""
WORKER_STALE_SECONDS = 6


# (ctx, event, subject, actor, ok, detail): appends to the node's audit trail
AuditHook = Callable[["NodeContext", str, str, "str | None", bool, dict[str, Any]], None]
# (ctx): makes the node's registry records match what it serves after a change
ContextHook = Callable[["NodeContext"], None]  # called with the context after a change
RegistryHook = ContextHook


@dataclass(frozen=True)
class PublishHooks:
    """What the app that assembles the node injects (layers imports no `services`)."""

    audit: AuditHook | None = None
    sync_registry: RegistryHook | None = None
    # (ctx): rebuilds the node's gazetteer (place search) from what it now serves
    refresh_places: ContextHook | None = None
    # (ctx): rebuilds the node's routing topology from the road layers it now serves
    refresh_routing: ContextHook | None = None


@dataclass(frozen=True)
class NodeContext:
    """What publishing needs to know about the node it publishes to."""

    id: str
    dsn: str
    node_dir: Path
    settings: PublishSettings = field(default_factory=PublishSettings)
    config_layers: frozenset[str] = frozenset()  # ids defined in config/layers/<node>.yml
    # every other name the node serves by configuration (compositions, collections, tile layers)
    service_names: frozenset[str] = frozenset()
    cache_dirs: tuple[Path, ...] = ()  # this node's dir and its ancestors' (tile caches)
    base_url: str = ""
    workers: int = 0  # uvicorn workers of the node (a publish waits for each to serve it)
    hooks: PublishHooks = PublishHooks()

    @property
    def work_root(self) -> Path:
        return self.node_dir / "publish-tmp"

    @property
    def raster_dir(self) -> Path:
        return self.node_dir / "rasters"


@dataclass
class PublishResult:
    name: str
    version: int
    kind: str
    feature_count: int
    bbox: list[float]
    report: dict[str, Any]
    urls: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "feature_count": self.feature_count, "bbox": self.bbox, "report": self.report,
                "urls": self.urls}


Progress = Callable[[str, int | None, int | None], None]  # (stage, done, total)


def _noop(stage: str, done: int | None = None, total: int | None = None) -> None:
    return None


def version_table(name: str, version: int) -> str:
    return f"{name}__v{version}"


def ensure_catalogue(conn: Any, workers: int = 0) -> None:
    """The publishing tables; on a node's first publish, also its running workers' reports.

    Running workers report the generation they serve once the table for it exists: they are
    told at once (NOTIFY), and the node's very first publish waits for `workers` of them (or
    three poll intervals when the number is not known), so it too is served when it returns.
    """
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('geoplat.publish.ddl'))")
        cur.execute("SELECT to_regclass('public.geoplat_publish_workers')")
        created = cur.fetchone()[0] is None
        cur.execute(CATALOGUE_DDL)
        cur.execute(DDL)
        if created:
            cur.execute(f"NOTIFY {CHANNEL}")
    if created and _live_pollers(conn):
        import time

        deadline = time.monotonic() + POLL_SECONDS * 3
        while time.monotonic() < deadline:
            if workers:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM geoplat_publish_workers WHERE seen_at >"
                                " now() - make_interval(secs => %s)", (WORKER_STALE_SECONDS,))
                    if cur.fetchone()[0] >= workers:
                        return
            time.sleep(0.05)


def _live_pollers(conn: Any) -> bool:
    """Whether workers of a running node watch this database (layers/serving.py)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'geoplat-publish-poll'")
        return bool(cur.fetchone()[0])


def validate_name(name: str, ctx: NodeContext) -> None:
    if not NAME.fullmatch(name or "") or "__" in name:  # fullmatch: `$` lets "a\n" through
        raise PublishError(f"layer name {name!r} is not a valid identifier: lowercase letters, "
                           "digits and single underscores, starting with a letter, at most 45 "
                           "characters", 400)
    if name in RESERVED or name.startswith(("geoplat", "pg_", "_", "staging")):
        raise PublishError(f"layer name {name!r} collides with a system name or a service of "
                           "the node (reserved); choose another name", 409)
    if name in ctx.config_layers:
        raise PublishError(f"layer name {name!r} is already a configured layer of node {ctx.id} "
                           "(config/layers); choose another name", 409)
    if name in ctx.service_names:
        raise PublishError(f"layer name {name!r} is already a service of node {ctx.id} (a "
                           "composition, collection or tile layer); choose another name", 409)


def configured_names(runtime: NodeRuntime, node_dir: Path) -> frozenset[str]:
    """The names the node serves by configuration: compositions, the configured collections of
    its pygeoapi config and the layers of its base MapProxy config (published layers are in
    neither: they live in the database and `tiles/published/`)."""
    names = {c.id for c in runtime.compositions}
    names |= set(runtime.auth.levels)
    try:
        conf = yaml.safe_load((node_dir / "pygeoapi.yml").read_text(encoding="utf-8")) or {}
        names |= {str(k) for k in conf.get("resources") or {}}
    except OSError:
        pass
    try:
        conf = yaml.safe_load((node_dir / "tiles" / "mapproxy.yaml").read_text(encoding="utf-8"))
    except OSError:
        conf = None

    def walk(layers: list[dict[str, Any]]) -> None:
        for lay in layers or []:
            if lay.get("name"):
                names.add(str(lay["name"]))
            walk(lay.get("layers") or [])

    walk((conf or {}).get("layers") or [])
    return frozenset(names)


def _check_db_name(cur: Any, name: str) -> None:
    cur.execute("SELECT 1 FROM geoplat_published WHERE name = %s", (name,))
    ours = cur.fetchone() is not None
    if ours:
        return
    cur.execute("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s OR (n.nspname = %s)", (name, name))
    if cur.fetchone() is not None:
        raise PublishError(f"layer name {name!r} collides with an existing table or schema", 409)
    cur.execute("SELECT 1 FROM geoplat_layers WHERE id = %s", (name,))
    if cur.fetchone() is not None:
        raise PublishError(f"layer name {name!r} is a loaded configured layer", 409)


class LayerLock:
    """A session advisory lock per (node database, layer): a second publisher is refused."""

    def __init__(self, dsn: str, name: str):
        self.dsn, self.name = dsn, name
        self.conn: Any = None

    def __enter__(self) -> LayerLock:  # noqa: PYI034
        self.conn = psycopg2.connect(self.dsn, application_name="geoplat-publish-lock")
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext('geoplat.layer'), hashtext(%s))",
                        (self.name,))
            if not cur.fetchone()[0]:
                self.conn.close()
                raise PublishError(f"layer {self.name!r} is being published or changed by another "
                                   "request right now; try again when it has finished", 409)
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()  # closing the session releases the lock


def _checksum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _background(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` started in a thread; `.result()` waits for it (and raises what it raised)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="geoplat-publish")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _bump(cur: Any) -> int:
    """The next serving generation; workers listening are notified when the transaction commits."""
    cur.execute("UPDATE geoplat_publish_generation SET generation = generation + 1 WHERE id = 1"
                " RETURNING generation")
    generation = int(cur.fetchone()[0])
    cur.execute(f"NOTIFY {CHANNEL}")
    return generation


def wait_served(ctx: NodeContext, generation: int, timeout: float = 15.0) -> bool:
    """Wait until every live worker of the node serves `generation` (True), or time out.

    Workers report the generation they serve (layers/serving.py); a node that is not running
    has no live workers, and the change is served when it starts. While a running node's
    workers are still starting, it waits for as many as the node has (`workers` of node.json).
    """
    import time

    expected = ctx.workers
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-publish")
    conn.autocommit = True
    try:
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FILTER (WHERE generation < %s), count(*)"
                            " FROM geoplat_publish_workers"
                            " WHERE seen_at > now() - make_interval(secs => %s)",
                            (generation, WORKER_STALE_SECONDS))
                behind, live = cur.fetchone()
                if behind == 0 and (live == 0 or live >= expected):
                    return True
            if time.monotonic() > deadline:
                LOGGER.warning("not every worker serves generation %s after %s s", generation, timeout)
                return False
            time.sleep(0.05)
    finally:
        conn.close()


def _point_view(cur: Any, name: str, table: str | None) -> None:
    cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(name)))
    if table:
        cur.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
            sql.Identifier(name), sql.Identifier(table)))


def _set_catalogue(cur: Any, name: str, title: str, version: dict[str, Any] | None) -> None:
    """`geoplat_layers` (the node's loaded-layer catalogue) follows the current version."""
    if version is None:
        cur.execute("DELETE FROM geoplat_layers WHERE id = %s", (name,))
        return
    upsert_catalogue(cur, name, title, version["geometry_type"], version["feature_count"],
                     version["bbox"], version["columns"], version["checksum"])


def _prune(cur: Any, name: str, keep: int, protect: set[int]) -> list[str]:
    """Drop versions beyond the newest `keep` (never those in `protect`); returns raster files."""
    cur.execute("SELECT version, storage FROM geoplat_layer_versions WHERE name = %s "
                "ORDER BY version DESC", (name,))
    rows = cur.fetchall()
    kept = set(protect)
    for v, _ in rows:
        if len(kept) >= keep:
            break
        kept.add(v)
    files = []
    for v, storage in rows:
        if v in kept:
            continue
        if storage.startswith("file:"):
            files.append(storage[5:])
        else:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(storage)))
        cur.execute("DELETE FROM geoplat_layer_versions WHERE name = %s AND version = %s", (name, v))
    return files


def _current(cur: Any, name: str) -> dict[str, Any] | None:
    cur.execute("SELECT p.title, p.access, p.current_version, v.bbox FROM geoplat_published p "
                "LEFT JOIN geoplat_layer_versions v ON v.name = p.name AND v.version = p.current_version "
                "WHERE p.name = %s", (name,))
    row = cur.fetchone()
    if row is None:
        return None
    return {"title": row[0], "access": row[1], "version": row[2],
            "bbox": list(row[3]) if row[3] else None}
