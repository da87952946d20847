"""Publishing a layer: validated, versioned, swapped in atomically, then served and announced.

Storage per layer `<name>`: one table (or COG file for rasters) per version, `<name>__v<k>`,
and a view `<name>` over the current one (for SQL users and the e-map styles). pygeoapi serves
the versioned table directly, so a worker still on the previous configuration keeps reading
the previous version (kept, never dropped while it may be served) until it picks up the new
one: a reader sees the old or the new layer, never a mix or an error.

A publish is one database transaction: the new version's table is created, filled with COPY,
keyed, indexed and analysed, then the view, catalogue and serving generation change, and it
commits. An error or Ctrl-C before the commit rolls everything back: no staging table is left.
An advisory lock per layer refuses a second concurrent publish of the same layer.

`emap` (CLI `--emap`, form field `emap=true`, stored in `geoplat_published.emap`, default off)
draws a public layer on the node's `vec` e-map and offers it as a WMS layer; a non-public layer
with `emap` is refused (400). Public GeoTIFFs are also raster tile layers. Every worker swaps
its tile services when the generation changes (layers/emap.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from psycopg2 import sql

from geoplat_settings import EMAP_LAYERS, NodeRuntime, PublishSettings
from layers.errors import printable
from layers.formats import (
    RASTER_SUFFIXES,
    NeedsMulti,
    PublishError,
    RasterData,
    VectorData,
    gpkg_layers,
    read_vector,
    remove_tree,
    safe_names,
    unpack,
    write_cog,
)
from layers.load import CATALOGUE_DDL, create_layer_table, upsert_catalogue
from layers.serving import CHANNEL, POLL_SECONDS
from tiles.seed import invalidate

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
RegistryHook = Callable[["NodeContext"], None]


@dataclass(frozen=True)
class PublishHooks:
    """What the app that assembles the node injects (layers imports no `services`)."""

    audit: AuditHook | None = None
    sync_registry: RegistryHook | None = None


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


def publish(ctx: NodeContext, path: Path, name: str, *, title: str | None = None,
            access: str = "public", crs: str | None = None, keywords: list[str] | None = None,
            layer: str | None = None, all_layers: bool = False, actor: str | None = None,
            progress: Progress = _noop, emap: bool | None = None) -> list[PublishResult]:
    """Publish `path` as layer `name` (or `name_<layer>` for every layer of a GeoPackage)."""
    if access not in LEVELS:
        raise PublishError(f"access must be one of {', '.join(LEVELS)}", 400)
    if emap and access != "public":
        raise PublishError("only public layers can be drawn on the e-map (emap): publish with "
                           "access public, or without emap", 400)
    path = Path(path)
    work = ctx.work_root / uuid.uuid4().hex
    results: list[PublishResult] = []
    try:
        work.mkdir(parents=True, exist_ok=True)
        validate_name(name, ctx)
        data_path = unpack(path, work, ctx.settings)
        if all_layers and data_path.suffix.lower() == ".gpkg":

            names = gpkg_layers(data_path)
            targets: list[tuple[str, str | None]] = [
                (f"{name}_{safe_names([n])[n]}"[:45], n) for n in names]
            for target, _ in targets:
                validate_name(target, ctx)
        else:
            targets = [(name, layer)]
        for target, src_layer in targets:
            results.append(_publish_one(ctx, data_path, path.name, work, target, src_layer,
                                        title=(title or target) + (f" ({src_layer})" if all_layers else ""),
                                        access=access, crs=crs, keywords=keywords or [],
                                        actor=actor, progress=progress, emap=emap))
    except PublishError as exc:
        _audit(ctx, "layer.publish", name, actor, ok=False, error=exc.message, source=path.name)
        raise
    finally:
        remove_tree(work)
    return results


def _publish_one(ctx: NodeContext, data_path: Path, source_name: str, work: Path, name: str,
                 src_layer: str | None, *, title: str, access: str, crs: str | None,
                 keywords: list[str], actor: str | None, progress: Progress,
                 emap: bool | None) -> PublishResult:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-publish")
    cog_final: Path | None = None
    try:
        ensure_catalogue(conn, ctx.workers)
        with LayerLock(ctx.dsn, name):
            with conn, conn.cursor() as cur:
                _check_db_name(cur, name)
                before = _current(cur, name)
            progress("reading", None, None)
            # hashed in a thread while the file is read (hashlib lets go of the GIL)
            checksum_job = _background(_checksum, data_path)
            raster = data_path.suffix.lower() in RASTER_SUFFIXES
            data: VectorData | RasterData
            if raster:
                data = write_cog(data_path, work / "cog.tif", source_name, crs)
            else:
                try:
                    data = read_vector(data_path, source_name, crs, src_layer)
                except NeedsMulti:
                    data = read_vector(data_path, source_name, crs, src_layer, multi=True)
            checksum = checksum_job.result()
            with conn, conn.cursor() as cur:
                cur.execute("INSERT INTO geoplat_published (name, kind, title, access) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                            (name, "raster" if raster else "vector", title, access))
                cur.execute("SELECT kind, last_version FROM geoplat_published WHERE name = %s "
                            "FOR UPDATE", (name,))
                kind, last = cur.fetchone()
                if kind != ("raster" if raster else "vector"):
                    raise PublishError(f"layer {name!r} is a {kind} layer; publish a {kind} file "
                                       "or choose another name", 409)
                version = last + 1
                if raster:
                    assert isinstance(data, RasterData)
                    ctx.raster_dir.mkdir(parents=True, exist_ok=True)
                    cog_final = ctx.raster_dir / f"{version_table(name, version)}.tif"
                    data.path.replace(cog_final)
                    _to_directory_owner(cog_final)
                    storage, count, bbox = f"file:{cog_final}", 0, data.bbox
                    gtype, columns, report = "Raster", {}, {"bands": data.bands}
                else:
                    assert isinstance(data, VectorData)
                    storage = version_table(name, version)
                    total = data.total
                    done = 0

                    def step(n: int) -> None:
                        nonlocal done
                        done += n
                        progress("loading", done, total)

                    progress("loading", 0, total)
                    cur.execute("SAVEPOINT geoplat_load")
                    try:
                        count, bbox = create_layer_table(cur, storage, data.attrs, data.geoms,
                                                         data.geometry_type, step, data.batches)
                    except NeedsMulti:
                        # a feature is multi-part, or became so when repaired: load it all again
                        # in the Multi type
                        cur.execute("ROLLBACK TO SAVEPOINT geoplat_load")
                        data = read_vector(data_path, source_name, crs, src_layer, multi=True)
                        total, done = data.total, 0
                        progress("loading", 0, total)
                        count, bbox = create_layer_table(cur, storage, data.attrs, data.geoms,
                                                         data.geometry_type, step, data.batches)
                    if count == 0:
                        raise PublishError(f"{source_name}: no feature has a usable geometry")
                    gtype, columns, report = data.geometry_type, data.titles, data.report
                progress("swapping", None, None)
                row = {"geometry_type": gtype, "feature_count": count, "bbox": bbox,
                       "columns": columns, "checksum": checksum}
                cur.execute(
                    "INSERT INTO geoplat_layer_versions (name, version, storage, geometry_type,"
                    " feature_count, bbox, columns, checksum, source, source_crs, report, published_by)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (name, version, storage, gtype, count, bbox,
                     json.dumps(columns, ensure_ascii=False), checksum,
                     source_name + (f":{src_layer}" if src_layer else ""), data.source_crs,
                     json.dumps(report, ensure_ascii=False), actor))
                cur.execute("UPDATE geoplat_published SET title = %s, access = %s, keywords = %s,"
                            " current_version = %s, last_version = %s, updated_at = now(),"
                            " emap = (%s = 'public' AND COALESCE(%s, emap)) WHERE name = %s",
                            (title, access, json.dumps(keywords, ensure_ascii=False), version,
                             version, access, emap, name))
                _point_view(cur, name, None if raster else storage)
                _set_catalogue(cur, name, title, None if raster else row)
                protect = {version} | ({before["version"]} if before and before["version"] else set())
                stale_files = _prune(cur, name, ctx.settings.keep_versions, protect)
                gen = _bump(cur)
            cog_final = None  # committed: the file belongs to the version now
            wait_served(ctx, gen)
            for f in stale_files:
                Path(f).unlink(missing_ok=True)
        result = PublishResult(name, version, "raster" if raster else "vector", count, bbox, report,
                               layer_urls(ctx, name, raster))
        after_change(ctx, "layer.publish", name, actor, bbox, before["bbox"] if before else None,
                     version=version, features=count, source=source_name, report=report)
        return result
    except psycopg2.Error as exc:
        LOGGER.exception("publish of %s failed", name)
        raise PublishError(f"layer {name!r}: the database refused the data "
                           f"({exc.pgcode or 'error'}); nothing was changed", 500) from None
    finally:
        if cog_final is not None:
            cog_final.unlink(missing_ok=True)
        conn.close()


def layer_urls(ctx: NodeContext, name: str, raster: bool) -> dict[str, str]:
    base = ctx.base_url.rstrip("/") + f"/ogc/collections/{name}"
    if raster:
        return {"collection": base, "coverage": base + "/coverage"}
    return {"collection": base, "items": base + "/items",
            "tiles": base + "/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}?f=mvt"}


def _to_directory_owner(path: Path) -> None:
    """Root publishing in-process (a script, a test) gives what it wrote to the node's user,
    who owns the node's directories, so the running node can replace and remove it."""
    if os.geteuid() == 0:
        st = path.parent.stat()
        os.chown(path, st.st_uid, st.st_gid)


@contextmanager
def _ready(ctx: NodeContext) -> Iterator[Any]:
    """A connection to the node's database with the publishing tables in place; closed after."""
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-publish")
    try:
        ensure_catalogue(conn)
        yield conn
    finally:
        conn.close()


def versions(ctx: NodeContext, name: str) -> list[dict[str, Any]]:
    with _ready(ctx) as conn, conn.cursor() as cur:
        cur.execute("SELECT v.version, v.feature_count, v.bbox, v.source, v.source_crs,"
                    " v.published_by, v.published_at, v.report, p.current_version = v.version"
                    " FROM geoplat_layer_versions v JOIN geoplat_published p USING (name)"
                    " WHERE v.name = %s ORDER BY v.version DESC", (name,))
        rows = cur.fetchall()
    if not rows:
        raise PublishError(f"no published layer {name!r} on node {ctx.id}", 404)
    return [{"version": r[0], "feature_count": r[1], "bbox": list(r[2]), "source": r[3],
             "source_crs": r[4], "published_by": r[5], "published_at": r[6].isoformat(),
             "report": r[7], "current": bool(r[8])} for r in rows]


def list_layers(ctx: NodeContext) -> list[dict[str, Any]]:
    with _ready(ctx) as conn, conn.cursor() as cur:
        cur.execute("SELECT p.name, p.kind, p.title, p.access, p.keywords, p.current_version,"
                    " v.feature_count, v.bbox FROM geoplat_published p LEFT JOIN"
                    " geoplat_layer_versions v ON v.name = p.name AND v.version = p.current_version"
                    " ORDER BY p.name")
        return [{"name": r[0], "kind": r[1], "title": r[2], "access": r[3], "keywords": r[4],
                 "current_version": r[5], "status": "published" if r[5] else "retired",
                 "feature_count": r[6], "bbox": list(r[7]) if r[7] else None,
                 "urls": layer_urls(ctx, r[0], r[1] == "raster") if r[5] else {}}
                for r in cur.fetchall()]


def rollback(ctx: NodeContext, name: str, version: int | None = None, *,
             actor: str | None = None) -> dict[str, Any]:
    """Serve an earlier kept version again (default: the one before the current)."""
    try:
        with _ready(ctx) as conn, LayerLock(ctx.dsn, name), conn, conn.cursor() as cur:
            before = _current(cur, name)
            if before is None:
                raise PublishError(f"no published layer {name!r} on node {ctx.id}", 404)
            if version is None:
                cur.execute("SELECT max(version) FROM geoplat_layer_versions WHERE name = %s"
                            " AND version < %s", (name, before["version"] or 1 << 30))
                version = cur.fetchone()[0]
                if version is None:
                    raise PublishError(f"layer {name!r} has no earlier version to roll back to", 409)
            cur.execute("SELECT storage, geometry_type, feature_count, bbox, columns, checksum"
                        " FROM geoplat_layer_versions WHERE name = %s AND version = %s",
                        (name, version))
            row = cur.fetchone()
            if row is None:
                raise PublishError(f"layer {name!r} has no kept version {version}", 404)
            storage = row[0]
            v = {"geometry_type": row[1], "feature_count": row[2], "bbox": list(row[3]),
                 "columns": row[4], "checksum": row[5]}
            cur.execute("UPDATE geoplat_published SET current_version = %s, updated_at = now()"
                        " WHERE name = %s", (version, name))
            raster = storage.startswith("file:")
            _point_view(cur, name, None if raster else storage)
            _set_catalogue(cur, name, before["title"], None if raster else v)
            gen = _bump(cur)
    except psycopg2.Error as exc:
        raise PublishError(f"layer {name!r}: rollback failed ({exc.pgcode or 'error'}); "
                           "nothing was changed", 500) from None
    wait_served(ctx, gen)
    after_change(ctx, "layer.rollback", name, actor, v["bbox"], before["bbox"], version=version)
    return {"name": name, "version": version, "previous_version": before["version"]}


def retire(ctx: NodeContext, name: str, *, actor: str | None = None,
           purge: bool = False) -> dict[str, Any]:
    """Stop serving a layer (its versions are kept for a later rollback unless `purge`)."""
    files: list[str] = []
    with _ready(ctx) as conn, LayerLock(ctx.dsn, name), conn, conn.cursor() as cur:
        before = _current(cur, name)
        if before is None:
            raise PublishError(f"no published layer {name!r} on node {ctx.id}", 404)
        cur.execute("UPDATE geoplat_published SET current_version = NULL, updated_at = now()"
                    " WHERE name = %s", (name,))
        _point_view(cur, name, None)
        _set_catalogue(cur, name, before["title"], None)
        if purge:
            # workers may still serve the current version for up to a second: keep nothing
            # but let the tables go only after the generation bump is seen (dropped below)
            cur.execute("SELECT storage FROM geoplat_layer_versions WHERE name = %s", (name,))
            files = [r[0] for r in cur.fetchall()]
        gen = _bump(cur)
    wait_served(ctx, gen)
    if purge and files:
        with _ready(ctx) as conn, conn, conn.cursor() as cur:
            for storage in files:
                if storage.startswith("file:"):
                    Path(storage[5:]).unlink(missing_ok=True)
                else:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(storage)))
            cur.execute("DELETE FROM geoplat_published WHERE name = %s", (name,))
    after_change(ctx, "layer.retire", name, actor, None, before["bbox"], purge=purge)
    return {"name": name, "retired_version": before["version"], "purged": purge}


# --- after a change: audit, tile caches, registry ------------------------------------------

def _union(a: list[float] | None, b: list[float] | None) -> tuple[float, float, float, float] | None:
    boxes = [x for x in (a, b) if x]
    if not boxes:
        return None
    return (min(x[0] for x in boxes), min(x[1] for x in boxes),
            max(x[2] for x in boxes), max(x[3] for x in boxes))


def after_change(ctx: NodeContext, event: str, name: str, actor: str | None,
                 new_bbox: list[float] | None, old_bbox: list[float] | None, **detail: Any) -> None:
    """Audit, invalidate cached e-map tiles in old ∪ new bbox, refresh the node's registry."""
    _audit(ctx, event, name, actor, **detail)
    _drop_tile_caches(ctx, name, detail.get("version") if new_bbox else None)
    box = _union(new_bbox, old_bbox)
    if box and ctx.cache_dirs:
        try:

            invalidate([d for d in ctx.cache_dirs if d.exists()], box)
        except Exception:
            LOGGER.exception("tile cache invalidation after %s %s failed", event, name)
    sync_registry(ctx)


def _drop_tile_caches(ctx: NodeContext, name: str, current: int | None) -> None:
    """Remove a raster layer's tile caches of versions no longer served (layers/emap.py)."""
    cache = ctx.node_dir / "cache"
    if not cache.is_dir():
        return
    keep = f"{name}__v{current}_" if current is not None else None
    for d in cache.glob(f"{name}__v*_*"):
        if keep is None or not d.name.startswith(keep):
            remove_tree(d)


def _audit(ctx: NodeContext, event: str, name: str, actor: str | None, ok: bool = True,
           **detail: Any) -> None:
    """Append to the node's audit trail; never fails the caller.

    Names and texts may come from a hostile request (NUL, control characters): escaped, so
    the refusal is recorded rather than failing to be.
    """
    name = printable(name or "", 200)
    detail = {k: printable(v, 500) if isinstance(v, str) else v for k, v in detail.items()}
    if ctx.hooks.audit is None:
        return
    try:
        ctx.hooks.audit(ctx, event, name, actor, ok, detail)
    except Exception:
        LOGGER.exception("audit of %s %s failed", event, name)


def sync_registry(ctx: NodeContext) -> None:
    """Hand the node's services to its registry (the injected hook); never fails the caller."""
    if ctx.hooks.sync_registry is None:
        return
    try:
        ctx.hooks.sync_registry(ctx)
    except Exception:
        LOGGER.exception("registry sync failed")
