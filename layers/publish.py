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

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from pydantic import ValidationError

from geoplat_settings import PlacesMapping
from layers import field_rules
from layers.catalogue import (
    LEVELS,
    RESERVED,
    LayerLock,
    NodeContext,
    Progress,
    PublishHooks,
    PublishResult,
    _background,
    _bump,
    _check_db_name,
    _checksum,
    _current,
    _noop,
    _point_view,
    _prune,
    _set_catalogue,
    configured_names,
    ensure_catalogue,
    validate_name,
    version_table,
    wait_served,
)
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
from layers.load import create_layer_table, key_and_index
from tiles.seed import invalidate
from tiles.styles import WmsLayerStyle

LOGGER = logging.getLogger("geoplat.publish")

# what the app, the CLI and the tests use from here (the catalogue's names included)
__all__ = [
    "LEVELS", "RESERVED", "LayerLock", "NewLayer", "NodeContext", "Progress", "PublishHooks",
    "PublishResult", "_audit", "_noop", "configured_names", "derive", "list_layers",
    "parse_places", "publish", "retire", "rollback", "validate_name", "versions",
]


def publish(ctx: NodeContext, path: Path, name: str, *, title: str | None = None,
            access: str = "public", crs: str | None = None, keywords: list[str] | None = None,
            layer: str | None = None, all_layers: bool = False, actor: str | None = None,
            progress: Progress = _noop, emap: bool | None = None,
            places: PlacesMapping | bool | None = None,
            field_access: dict[str, str] | None = None,
            style: dict[str, Any] | None = None) -> list[PublishResult]:
    """Publish `path` as layer `name` (or `name_<layer>` for every layer of a GeoPackage).

    `places`: how the layer feeds the node's gazetteer (place search): a mapping, False (not
    at all), True (the default rule: a point layer with a name column gives POIs) or None
    (as the previous version did; the default rule for a new layer). `field_access`:
    attributes stricter than the layer (layers/field_rules.py; None: as the previous version).
    `style`: its WMS / e-map style (tiles/styles.py `WmsLayerStyle`, e.g. graduated classes by
    an attribute; None: as the previous version, the generic style for a new layer)."""
    if access not in LEVELS:
        raise PublishError(f"access must be one of {', '.join(LEVELS)}", 400)
    if emap and access != "public":
        raise PublishError("only public layers can be drawn on the e-map (emap): publish with "
                           "access public, or without emap", 400)
    if style is not None:
        try:
            style = WmsLayerStyle.model_validate(style).model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            problems = "; ".join(printable(e["msg"], 120) for e in exc.errors()[:3])
            raise PublishError(f"style: not a valid style ({problems})", 400) from None
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
                                        actor=actor, progress=progress, emap=emap,
                                        places=places, field_access=field_access,
                                        style=style))
    except PublishError as exc:
        _audit(ctx, "layer.publish", name, actor, ok=False, error=exc.message, source=path.name)
        raise
    finally:
        remove_tree(work)
    return results


def _publish_one(ctx: NodeContext, data_path: Path, source_name: str, work: Path, name: str,
                 src_layer: str | None, *, title: str, access: str, crs: str | None,
                 keywords: list[str], actor: str | None, progress: Progress,
                 emap: bool | None, places: PlacesMapping | bool | None = None,
                 field_access: dict[str, str] | None = None,
                 style: dict[str, Any] | None = None) -> PublishResult:
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
                    _set_places(cur, name, places, set(columns.values()))
                    _set_field_access(cur, name, field_access, columns, access, places)
                    _set_style(cur, name, style, columns)
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


def parse_places(text: str | None) -> PlacesMapping | bool | None:
    """The `places` of a publish request (CLI `--places`, form field `places`): JSON of a
    mapping (`{"kind": "poi", "name": "mc", "category": "lb"}`), `none` (feeds no places),
    `default` (the default rule); empty: unchanged."""
    text = (text or "").strip()
    if not text:
        return None
    if text.lower() in ("none", "false"):
        return False
    if text.lower() == "default":
        return True
    if len(text) > 4000:
        raise PublishError("places: mapping too long", 400)
    try:
        return PlacesMapping.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(printable(e["msg"], 120) for e in exc.errors()[:3])
        raise PublishError(f"places: not a valid mapping ({problems})", 400) from None


def _set_places(cur: Any, name: str, places: PlacesMapping | bool | None,
                columns: set[str]) -> None:
    """Store the layer's gazetteer mapping (see publish); a mapping naming a column the data
    lacks is refused and nothing is published."""
    if places is None:
        return
    if isinstance(places, PlacesMapping):
        missing = sorted(c for c in places.all_columns() if c not in columns)
        if missing:
            raise PublishError("the places mapping names columns the data lacks: "
                               + ", ".join(printable(c, 60) for c in missing[:5]), 400)
        value: str | None = places.model_dump_json(exclude_none=True)
    else:
        value = None if places else "false"
    cur.execute("UPDATE geoplat_published SET places = %s WHERE name = %s", (value, name))


def _set_style(cur: Any, name: str, style: dict[str, Any] | None,
               columns: dict[str, str]) -> None:
    """Store the layer's own style (see publish); a rule on a column the data lacks is refused
    and nothing is published."""
    if style is None:
        return
    missing = sorted({r["field"] for r in style.get("rules", [])} - set(columns))
    if missing:
        raise PublishError("the style's rules name columns the data lacks: "
                           + ", ".join(printable(c, 60) for c in missing[:5]), 400)
    cur.execute("UPDATE geoplat_published SET style = %s WHERE name = %s",
                (json.dumps(style), name))


def _set_field_access(cur: Any, name: str, rules: dict[str, str] | None,
                      columns: dict[str, str], access: str,
                      places: PlacesMapping | bool | None) -> None:
    cur.execute("SELECT field_access FROM geoplat_published WHERE name = %s", (name,))
    row = cur.fetchone()
    stored = field_rules.resolve(rules, row[0] if row else None, columns, access, places)
    cur.execute("UPDATE geoplat_published SET field_access = %s WHERE name = %s",
                (json.dumps(stored), name))


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


@dataclass(frozen=True)
class NewLayer:
    """What `derive` makes a layer that does not exist yet from: `create(cursor, table)`
    creates its (empty) table with `fid`, the columns and `geom`."""
    title: str
    access: str
    geometry_type: str
    columns: dict[str, str]  # column -> original attribute name
    create: Callable[[Any, str], None]


def derive(ctx: NodeContext, name: str, change: Callable[[Any, str], Any], *, source: str,
           actor: str | None = None, event: str = "layer.derive",
           checksum: str | None = None, new: NewLayer | None = None
           ) -> tuple[PublishResult, Any]:
    """A new version of the vector layer `name` made in SQL from its current version: the
    current table is copied to the new version's, `change(cursor, new_table)` changes it (its
    answer is returned with the result) and it is swapped in as a publish swaps in a file's
    (one transaction: readers see the old version or the new; an exception from `change`
    rolls everything back; `rollback` serves the previous version again). Supply (services/
    supply) applies accepted change-sets through this. With `new`, a layer that does not
    exist (or is retired) is made: version 1 (or the next) is `new.create`'s table, changed."""
    if new is not None:
        if new.access not in LEVELS:
            raise PublishError(f"access must be one of {', '.join(LEVELS)}", 400)
        validate_name(name, ctx)
    try:
        with _ready(ctx) as conn, LayerLock(ctx.dsn, name):
            with conn, conn.cursor() as cur:
                before = _current(cur, name)
                title = before["title"] if before else (new.title if new else name)
                if (before is None or not before["version"]) and new is None:
                    raise PublishError(f"no published layer {name!r} on node {ctx.id}", 404)
                if before is None or not before["version"]:
                    assert new is not None
                    cur.execute("INSERT INTO geoplat_published (name, kind, title, access) "
                                "VALUES (%s, 'vector', %s, %s) ON CONFLICT (name) DO NOTHING",
                                (name, new.title, new.access))
                    cur.execute("SELECT kind, last_version FROM geoplat_published "
                                "WHERE name = %s FOR UPDATE", (name,))
                    kind, last = cur.fetchone()
                    old, gtype, columns = None, new.geometry_type, new.columns
                else:
                    cur.execute("SELECT p.kind, p.last_version, v.storage, v.geometry_type,"
                                " v.columns FROM geoplat_published p JOIN geoplat_layer_versions"
                                " v ON v.name = p.name AND v.version = p.current_version"
                                " WHERE p.name = %s FOR UPDATE OF p", (name,))
                    kind, last, old, gtype, columns = cur.fetchone()
                if kind != "vector":
                    raise PublishError(f"layer {name!r} is a {kind} layer: only vector layers "
                                       "change in SQL", 409)
                version = last + 1
                storage = version_table(name, version)
                if old is None:
                    assert new is not None
                    new.create(cur, storage)
                else:
                    cur.execute(sql.SQL("CREATE TABLE {new} (LIKE {old} INCLUDING DEFAULTS); "
                                        "INSERT INTO {new} SELECT * FROM {old}").format(
                        new=sql.Identifier(storage), old=sql.Identifier(old)))
                answer = change(cur, storage)
                key_and_index(cur, storage)
                cur.execute(sql.SQL("SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                    "FROM (SELECT count(*) AS n, ST_Extent(geom) AS e "
                                    "FROM {}) x").format(sql.Identifier(storage)))
                count, *box = cur.fetchone()
                if not count:
                    raise PublishError(f"layer {name!r}: the change leaves no feature", 400)
                bbox = [float(v) for v in box]
                row = {"geometry_type": gtype, "feature_count": count, "bbox": bbox,
                       "columns": columns, "checksum": checksum or ""}
                base = before["version"] if before else None
                report = {"derived_from": base, **({"change": answer}
                                                   if isinstance(answer, dict) else {})}
                cur.execute(
                    "INSERT INTO geoplat_layer_versions (name, version, storage, geometry_type,"
                    " feature_count, bbox, columns, checksum, source, source_crs, report,"
                    " published_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (name, version, storage, gtype, count, bbox,
                     json.dumps(columns, ensure_ascii=False), checksum or "", source, "EPSG:4490",
                     json.dumps(report, ensure_ascii=False, default=str), actor))
                cur.execute("UPDATE geoplat_published SET current_version = %s, last_version = %s,"
                            " updated_at = now() WHERE name = %s", (version, version, name))
                _point_view(cur, name, storage)
                _set_catalogue(cur, name, title, row)
                stale_files = _prune(cur, name, ctx.settings.keep_versions,
                                     {version} | ({base} if base else set()))
                gen = _bump(cur)
            wait_served(ctx, gen)
            for f in stale_files:
                Path(f).unlink(missing_ok=True)
    except psycopg2.Error as exc:
        LOGGER.exception("derive of %s failed", name)
        raise PublishError(f"layer {name!r}: the database refused the change "
                           f"({exc.pgcode or 'error'}); nothing was changed", 500) from None
    result = PublishResult(name, version, "vector", count, bbox, report,
                           layer_urls(ctx, name, False))
    after_change(ctx, event, name, actor, bbox, before["bbox"] if before else None,
                 version=version,
                 features=count, source=source)
    return result, answer


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
    refresh_places(ctx)
    refresh_routing(ctx)


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


def refresh_places(ctx: NodeContext) -> None:
    """Rebuild the node's gazetteer (the injected hook); never fails the caller (the change is
    made: a failed rebuild leaves the previous gazetteer and is logged)."""
    if ctx.hooks.refresh_places is None:
        return
    try:
        ctx.hooks.refresh_places(ctx)
    except Exception:
        LOGGER.exception("gazetteer rebuild failed")


def refresh_routing(ctx: NodeContext) -> None:
    """Rebuild the node's routing topology (the injected hook); never fails the caller."""
    if ctx.hooks.refresh_routing is None:
        return
    try:
        ctx.hooks.refresh_routing(ctx)
    except Exception:
        LOGGER.exception("routing topology rebuild failed")


def sync_registry(ctx: NodeContext) -> None:
    """Hand the node's services to its registry (the injected hook); never fails the caller."""
    if ctx.hooks.sync_registry is None:
        return
    try:
        ctx.hooks.sync_registry(ctx)
    except Exception:
        LOGGER.exception("registry sync failed")
