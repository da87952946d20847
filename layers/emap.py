"""Published layers on the node's e-map and tile services, in every worker.

- A public vector layer published with `emap` (CLI `--emap`, form field `emap=true`) is drawn
  on top of the node's `vec` e-map and offered as a WMS layer of its own name.
- A public GeoTIFF is offered as a raster tile layer of its own name (WMTS/TMS in the `c` and
  `w` grids, and WMS), besides its OGC API coverage.
- Nothing that is not public reaches the tile services: publishing a non-public layer with
  `emap` is refused (layers/publish.py), and only public layers are selected here.

Each worker's `Reloader` (layers/serving.py) calls `TileReloader.check` when the publish
generation changes: the config for that generation is written once into new files
(tiles/build.py `published_tiles`) and the worker's `TileService` swaps its MapProxy app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg2

from tiles.build import published_tiles

LOGGER = logging.getLogger("geoplat.publish")


def tile_layers(dsn: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(vectors drawn on the e-map, rasters offered as tile layers) now published, public only."""
    conn = psycopg2.connect(dsn, application_name="geoplat-publish-poll", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_published')")
            if cur.fetchone()[0] is None:
                return [], []
            cur.execute("SELECT p.name, p.title, p.kind, p.emap, v.storage, v.geometry_type,"
                        " v.bbox, v.version, v.columns, p.style"
                        " FROM geoplat_published p JOIN geoplat_layer_versions v"
                        " ON v.name = p.name AND v.version = p.current_version"
                        " WHERE p.access = 'public' ORDER BY p.name")
            rows = cur.fetchall()
    finally:
        conn.close()
    vectors = [{"name": r[0], "title": r[1], "geometry_type": r[5], "titles": dict(r[8] or {}),
                "style": r[9]} for r in rows if r[2] == "vector" and r[3]]
    rasters = [{"name": r[0], "title": r[1], "path": r[4][5:], "bbox": list(r[6]),
                "version": r[7]} for r in rows if r[2] == "raster" and r[4].startswith("file:")]
    return vectors, rasters


class TileReloader:
    """Keeps one worker's `TileService` in step with the published layers."""

    def __init__(self, service: Any, node_dir: Path, dsn: str):
        self.service, self.node_dir, self.dsn = service, Path(node_dir), dsn
        self.digest: str | None = None

    def check(self, generation: int) -> bool:
        """Swap in the tile config of `generation` if it differs; True when swapped."""
        vectors, rasters = tile_layers(self.dsn)
        conf = published_tiles(self.node_dir, self.dsn, vectors, rasters, generation)
        if conf.digest == self.digest:
            return False
        if self.digest is None and not vectors and not rasters:
            self.digest = conf.digest  # the service was built from this very config
            return False
        self.service.reload(conf.mapproxy_yaml, conf.tiled, conf.wms)
        self.digest = conf.digest
        return True


def find_tile_service(app: Any) -> Any:
    """The `TileService` among a Starlette app's routes (None when the node has no tiles)."""
    for route in getattr(getattr(app, "router", None), "routes", []):
        service = getattr(getattr(route, "endpoint", None), "service", None)
        if service is not None and hasattr(service, "reload"):
            return service
    return None
