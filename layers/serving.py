"""Serving published layers without a restart, in every worker of a node.

The node's generated `pygeoapi.yml` holds the configured layers; published layers live in the
node database (`geoplat_published`). Each worker polls `geoplat_publish_generation` (one tiny
query, twice a second, in a daemon thread); when it changes, the worker builds a new pygeoapi
`API` over the base config plus the published resources and swaps it in
(`pygeoapi.starlette_app.api_`, read on every request). Requests already running keep the old
object. Access levels are updated in the same swap: a new or tightened level before the new API
is visible, a removed layer's level only after.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from geoplat_settings import NodeRuntime, Providers

LOGGER = logging.getLogger("geoplat.publish")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
SUPPORTED_CRS = [CRS84, EPSG.format(4490), EPSG.format(4326), EPSG.format(3857)]
POLL_SECONDS = 0.5  # at the latest; a publish's NOTIFY on CHANNEL wakes workers at once
CHANNEL = "geoplat_publish"
HEARTBEAT_SECONDS = 2.0  # publishers treat a worker silent for 6 s as gone


def generation(dsn: str, conn: Any = None) -> int:
    """The node's publish generation (0 before anything was published)."""
    own = conn is None
    if own:
        conn = psycopg2.connect(dsn, application_name="geoplat-publish-poll", connect_timeout=3)
        conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_publish_generation')")
            if cur.fetchone()[0] is None:
                return 0
            cur.execute("SELECT generation FROM geoplat_publish_generation WHERE id = 1")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        if own:
            conn.close()


def resource(name: str, row: dict[str, Any], dsn: str, providers: Providers) -> dict[str, Any]:
    """The pygeoapi collection of one published layer version."""
    bbox = [float(v) for v in row["bbox"]]
    keywords = list(row["keywords"] or []) or [name]
    base = {"type": "collection", "title": row["title"], "description": row["title"],
            "keywords": keywords, "links": [],
            "extents": {"spatial": {"bbox": bbox, "crs": CRS84}}}
    storage: str = row["storage"]
    if storage.startswith("file:"):
        base["providers"] = [{
            "type": "coverage", "name": providers.coverage, "data": storage[5:],
            "options": {"DATA_ENCODING": "COG"},
            "format": {"name": "GTiff", "mimetype": "application/tiff"},
        }]
        return base
    common: dict[str, Any] = {"data": {"dsn": dsn}, "table": storage, "id_field": "fid",
                              "geom_field": "geom"}
    rules = {c: lvl for c, lvl in (row.get("field_access") or {}).items()
             if c in (row.get("columns") or {})}
    if rules:  # attributes stricter than the layer (services/access/fields.py)
        common["field_access"] = rules
    base["providers"] = [
        {"type": "feature", "name": providers.feature, **common,
         "storage_crs": EPSG.format(4490), "crs": SUPPORTED_CRS,
         # original attribute names (the columns are safe names): titles in queryables/schema
         "titles": {k: str(v) for k, v in (row.get("columns") or {}).items()}},
        {"type": "tile", "name": providers.tile, **common,
         "options": {"zoom": {"min": 0, "max": 22}, "schemes": ["WebMercatorQuad"],
                     "max_features": 5000},
         "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"}},
    ]
    return base


def published(dsn: str, providers: Providers) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(resources, levels) of the layers currently published in the node database."""
    conn = psycopg2.connect(dsn, application_name="geoplat-publish-poll", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_published')")
            if cur.fetchone()[0] is None:
                return {}, {}
            cur.execute("SELECT p.name, p.title, p.access, p.keywords, v.storage, v.bbox,"
                        " v.columns, p.field_access"
                        " FROM geoplat_published p JOIN geoplat_layer_versions v"
                        " ON v.name = p.name AND v.version = p.current_version ORDER BY p.name")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        conn.close()
    return ({r["name"]: resource(r["name"], r, dsn, providers) for r in rows},
            {r["name"]: r["access"] for r in rows})


def field_rules_of(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """{layer: {column: level}} of the given pygeoapi resources (their providers' rules)."""
    out = {}
    for name, res in resources.items():
        for provider in res.get("providers") or []:
            if provider.get("field_access"):
                out[name] = dict(provider["field_access"])
                break
    return out


def merged(base: dict[str, Any], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config = dict(base)
    config["resources"] = {**base.get("resources", {}),
                           **{k: v for k, v in resources.items() if k not in base.get("resources", {})}}
    return config


def full_config(node_dir: Path, dsn: str, runtime: NodeRuntime | None = None
                ) -> tuple[dict[str, Any], dict[str, str]]:
    """The node's whole pygeoapi config (configured + published) and its access levels
    (`runtime`: the node's, default read from `node_dir`)."""
    base = yaml.safe_load((node_dir / "pygeoapi.yml").read_text(encoding="utf-8"))
    runtime = runtime or NodeRuntime.load(node_dir)
    resources, levels = published(dsn, runtime.providers)
    return merged(base, resources), {**levels, **runtime.auth.levels}


class Reloader:
    """Keeps this worker's pygeoapi and access levels in step with the published layers."""

    def __init__(self, dsn: str, providers: Providers, server: Any, control: Any = None,
                 views: Any = None, tiles: Any = None):
        # server: the imported `pygeoapi.starlette_app` (it reads its config when imported, so
        # the app that assembles the node imports it and hands it over)
        self.dsn, self.providers, self.server = dsn, providers, server
        self.control, self.views = control, views
        self.tiles = tiles  # layers.emap.TileReloader of this worker, if the node serves tiles
        self.base_config = copy.deepcopy(server.CONFIG)
        self.base_levels = dict(control.levels) if control is not None else {}
        self.base_fields = dict(control.fields) if control is not None else {}
        self.seen = -1
        self.published_levels: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: Any = None
        self._reported = 0.0
        self._can_report = False  # geoplat_publish_workers exists (created by the first publish)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def check(self) -> bool:
        """Reload when the generation changed; True when a new API was swapped in."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(self.dsn, application_name="geoplat-publish-poll",
                                              connect_timeout=3)
                self._conn.autocommit = True
                with self._conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")  # publishers notify at commit
            try:
                gen = generation(self.dsn, self._conn)
                changed = gen != self.seen
                if changed:
                    resources, levels = published(self.dsn, self.providers)
                    self._swap(resources, levels)
                    self._swap_tiles(gen)
                    self.seen = gen
                if (changed or time.monotonic() - self._reported > HEARTBEAT_SECONDS
                        or not self._can_report) and self._reportable(gen):
                    self._report(gen)
            except psycopg2.Error:
                self._conn.close()
                raise
            return changed

    def _reportable(self, gen: int) -> bool:
        # report even generation 0 as soon as the table exists: a node's first publish must
        # wait for its workers like every other one (layers/publish.py wait_served)
        if not self._can_report:
            with self._conn.cursor() as cur:
                cur.execute("SELECT to_regclass('public.geoplat_publish_workers')")
                self._can_report = cur.fetchone()[0] is not None
        return self._can_report

    def _report(self, gen: int) -> None:
        """Tell publishers which generation this worker serves (they wait for all workers)."""
        with self._conn.cursor() as cur:
            cur.execute("INSERT INTO geoplat_publish_workers (worker, generation, seen_at)"
                        " VALUES (%s, %s, now()) ON CONFLICT (worker) DO UPDATE SET"
                        " generation = EXCLUDED.generation, seen_at = now()", (self.worker, gen))
        self._reported = time.monotonic()

    def _build(self, resources: dict[str, dict[str, Any]], base: dict[str, Any] | None = None
               ) -> tuple[dict[str, Any], dict[str, Any], Any]:
        from pygeoapi.api import API
        from pygeoapi.openapi import get_oas

        config = merged(self.base_config if base is None else base, resources)
        oas = get_oas(config)
        return config, oas, API(config, oas)

    def _loadable(self, resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The published resources pygeoapi can load, each tried alone (a COG deleted by hand,
        a provider that fails to open): one broken layer must not keep every other publish
        of the node from being served. The broken ones are logged and left out."""
        alone = {**self.base_config, "resources": {}}
        good = {}
        for name, res in resources.items():
            try:
                self._build({name: res}, alone)
            except Exception:
                LOGGER.exception("published layer %s cannot be loaded; it is not served until "
                                 "it is published again, rolled back or retired", name)
                continue
            good[name] = res
        return good

    def _swap(self, resources: dict[str, dict[str, Any]], levels: dict[str, str]) -> None:
        try:
            config, oas, api = self._build(resources)
        except Exception:  # noqa: BLE001 - any provider's failure: find and leave out the bad ones
            config, oas, api = self._build(self._loadable(resources))
        levels = {k: v for k, v in levels.items() if k not in self.base_levels}
        if self.control is not None:
            # stricter of old and new until the new API is in place
            rank = {"public": 0, "registered": 1, "restricted": 2}
            interim = dict(self.control.levels)
            for k, v in levels.items():
                if rank[v] >= rank.get(interim.get(k, "public"), 0):
                    interim[k] = v
            self.control.set_levels(interim)
        self.server.CONFIG = config
        self.server.OPENAPI = oas
        self.server.api_ = api
        if self.views is not None:
            self.views.clear()  # services.access.views.FilteredViews: per-caller listings rebuilt
        if self.control is not None:
            fields = {k: v for k, v in field_rules_of(resources).items()
                      if k not in self.base_levels}
            self.control.set_levels({**levels, **self.base_levels}, {**fields, **self.base_fields})
        self.published_levels = levels
        LOGGER.info("serving %d published layers", len(resources))

    def _swap_tiles(self, gen: int) -> None:
        if self.tiles is None:
            return
        try:
            self.tiles.check(gen)
        except psycopg2.Error:
            raise
        except Exception:  # a bad tile config must not stop features serving; the old one stays
            LOGGER.exception("reloading the tile services for generation %s failed", gen)

    def run(self) -> None:
        import select

        while not self._stop.is_set():
            try:
                conn = self._conn
                if conn is None or conn.closed:
                    self._stop.wait(POLL_SECONDS)
                elif select.select([conn], [], [], POLL_SECONDS)[0]:
                    conn.poll()  # a publish committed: reload now, not at the next poll
                    conn.notifies.clear()
                if not self._stop.is_set():
                    self.check()
            except Exception:
                LOGGER.exception("reloading published layers failed")
                self._stop.wait(POLL_SECONDS)

    def start(self) -> None:
        try:
            self.check()
        except Exception:
            LOGGER.exception("loading published layers failed")
        self._thread = threading.Thread(target=self.run, name="geoplat-publish-reload",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and close the connection (the app's lifespan calls it)."""
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()

