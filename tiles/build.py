"""Generating a node's tile configuration: Mapnik XML per e-map layer, hillshade, MapProxy YAML.

Called by the node builder (`nodes.supervisor.build_node`); everything lands in
`var/nodes/<id>/tiles/` (mapfiles hold the database password: mode 0600) and the cache in
`var/nodes/<id>/cache/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from tiles.mapproxy_config import build_mapproxy_config
from tiles.rasters import make_hillshade
from tiles.styles import EMAP_LAYERS, check_no_sensitive, drawable_tables, load_styles, map_xml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STYLES_DIR = PROJECT_ROOT / "config" / "styles"


@dataclass(frozen=True)
class TilePaths:
    node_dir: Path

    @property
    def tiles_dir(self) -> Path:
        return self.node_dir / "tiles"

    @property
    def cache_dir(self) -> Path:
        return self.node_dir / "cache"

    @property
    def mapproxy_yaml(self) -> Path:
        return self.tiles_dir / "mapproxy.yaml"


def loaded_tables(dsn: str) -> set[str]:
    """Layer ids in the node's `geoplat_layers` catalogue."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.geoplat_layers')")
            if cur.fetchone()[0] is None:
                return set()
            cur.execute("SELECT id FROM geoplat_layers")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    tmp.replace(path)


def raster_files(node_id: str, data_dir: Path, out_dir: Path, styles_dir: Path = STYLES_DIR
                 ) -> dict[str, list[Path]]:
    """Imagery and (computed) hillshade files per role for a node."""
    conf = (yaml.safe_load((styles_dir / "rasters.yml").read_text(encoding="utf-8")) or {}).get(node_id, {})
    out: dict[str, list[Path]] = {"imagery": [], "hillshade": []}
    for item in conf.get("imagery", []):
        out["imagery"].append((data_dir / item["file"]).resolve())
    for item in conf.get("hillshade", []):
        dem = (data_dir / item["dem"]).resolve()
        out["hillshade"].append(make_hillshade(dem, out_dir / f"hillshade_{dem.stem}.tif"))
    return out


def build_tiles(node: Any, children: list[Any], layers: list[Any], dsn: str, node_dir: Path,
                data_dir: Path, styles_dir: Path = STYLES_DIR,
                child_key: str | None = None) -> TilePaths:
    """Write mapfiles and the MapProxy config of `node`; returns where they are."""
    from tiles import compat

    paths = TilePaths(node_dir)
    paths.tiles_dir.mkdir(parents=True, exist_ok=True)
    paths.cache_dir.mkdir(parents=True, exist_ok=True)
    style = load_styles(styles_dir / "emap.yml")
    loaded = loaded_tables(dsn)
    tables = drawable_tables(layers, loaded)
    forbidden = {lay.id for lay in layers} - tables
    faces_known = set(compat.register_fonts())
    faces = [f for f in style.fontset.faces if f in faces_known] or ["DejaVu Sans Book"]
    rasters = raster_files(node.id, data_dir, paths.tiles_dir, styles_dir)
    dsn_parts = psycopg2.extensions.parse_dsn(dsn)
    formats = {}
    for lid in EMAP_LAYERS:
        lay = style.layers[lid]
        xml = map_xml(style, lid, tables, dsn_parts,
                      rasters.get(lay.raster, []) if lay.raster else [], faces)
        check_no_sensitive(xml, forbidden)
        _write(paths.tiles_dir / f"{lid}.xml", xml)
        formats[lid] = lay.format
    conf = build_mapproxy_config(node, children, paths.tiles_dir, formats, paths.cache_dir,
                                 child_key)
    _write(paths.mapproxy_yaml, yaml.safe_dump(conf, allow_unicode=True, sort_keys=False))
    validate_mapproxy(paths.mapproxy_yaml)
    from tiles.frontdoor import FrontDoor

    tile_cache = getattr(node, "tile_cache", None)
    FrontDoor(node_dir, node.host, node.port).write_config(
        paths.cache_dir, fast_path=tile_cache is None or tile_cache.backend == "file")
    return paths


def validate_mapproxy(path: Path) -> None:
    """MapProxy's own validation (schema and references); raises ValueError on errors."""
    from mapproxy.config.loader import load_configuration
    from mapproxy.config.validator import validate

    from tiles import compat

    compat.install()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = validate(raw)
    if errors:
        raise ValueError(f"{path}: " + "; ".join(errors))
    load_configuration(str(path)).configured_services()  # builds caches, sources, grids
