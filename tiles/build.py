"""Generating a node's tile configuration: Mapnik XML per e-map layer, hillshade, MapProxy YAML.

Called by the node builder (`nodes.supervisor.build_node`); everything lands in
`var/nodes/<id>/tiles/` (mapfiles hold the database password: mode 0600) and the cache in
`var/nodes/<id>/cache/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from geoplat_settings import EMAP_LAYERS
from tiles import compat
from tiles.featureinfo import QUERYABLE, QueryableLayer, queryable_text, read_queryable
from tiles.frontdoor import FrontDoor
from tiles.mapproxy_config import build_mapproxy_config, xml_text
from tiles.rasters import make_hillshade
from tiles.styles import (
    WmsLayerStyle,
    check_no_sensitive,
    drawable_tables,
    load_styles,
    map_xml,
    published_layer,
    published_style,
    raster_layer_xml,
    single_map_xml,
    with_published,
)

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


def node_dem(node_id: str, data_dir: Path, configured: str | None,
             styles_dir: Path = STYLES_DIR) -> str:
    """The DEM a node's `slope` reads (absolute path): `analysis.dem` if set (relative to the
    data dir), else the first hillshade DEM of the node in rasters.yml; '' when it has none."""
    if configured:
        return str((data_dir / configured).resolve())
    conf = (yaml.safe_load((styles_dir / "rasters.yml").read_text(encoding="utf-8")) or {}).get(node_id, {})
    dems = [item["dem"] for item in conf.get("hillshade", []) if item.get("dem")]
    return str((data_dir / dems[0]).resolve()) if dems else ""


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
                child_key: str | None = None,
                compositions: list[dict] | None = None) -> TilePaths:
    """Write mapfiles and the MapProxy config of `node`; returns where they are."""
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
                                 child_key, compositions)
    queryable = add_wms_layers(conf, [lay for lay in layers if getattr(lay, "wms", False)],
                               tables, forbidden, paths.tiles_dir, dsn_parts, style.wms)
    _write(paths.tiles_dir / QUERYABLE, queryable_text(queryable), 0o644)
    _write(paths.mapproxy_yaml, yaml.safe_dump(conf, allow_unicode=True, sort_keys=False))
    validate_mapproxy(paths.mapproxy_yaml)
    tile_cache = getattr(node, "tile_cache", None)
    FrontDoor(node_dir, node.host, node.port).write_config(
        paths.cache_dir, fast_path=tile_cache is None or tile_cache.backend == "file")
    return paths


def add_wms_layers(conf: dict[str, Any], layers: list[Any], tables: set[str],
                   forbidden: set[str], tiles_dir: Path, dsn_parts: dict[str, str],
                   styles: Mapping[str, WmsLayerStyle] | None = None
                   ) -> dict[str, QueryableLayer]:
    """Configured layers with `wms: true` as WMS layers of their own name (never a table the
    e-map may not draw: not loaded, not public or sensitive); returns what GetFeatureInfo
    queries for them (tiles/featureinfo.py)."""
    taken = {lay["name"] for lay in conf["layers"]}
    queryable: dict[str, QueryableLayer] = {}
    for lay in layers:
        if lay.id not in tables or lay.id in taken:
            continue
        own = (styles or {}).get(lay.id)
        xml = single_map_xml([published_style(lay.id, lay.geometry_type, own)],
                             [published_layer(lay.id, dsn_parts, own)])
        check_no_sensitive(xml, forbidden)
        _write(tiles_dir / f"wms_{lay.id}.xml", xml)
        conf["sources"][f"wms_{lay.id}"] = {"type": "mapnik",
                                            "mapfile": str(tiles_dir / f"wms_{lay.id}.xml"),
                                            "multithreaded": True, "transparent": True}
        conf["layers"].append({"name": lay.id, "title": xml_text(lay.title),
                               "sources": [f"wms_{lay.id}"]})
        queryable[lay.id] = QueryableLayer(lay.id, lay.id, lay.title, dict(lay.field_access))
    return queryable


def validate_mapproxy(path: Path) -> None:
    """MapProxy's own validation (schema and references); raises ValueError on errors."""
    from mapproxy.config.loader import load_configuration
    from mapproxy.config.validator import validate

    compat.install()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = validate(raw)
    if errors:
        raise ValueError(f"{path}: " + "; ".join(errors))
    load_configuration(str(path)).configured_services()  # builds caches, sources, grids


# --- published layers on the e-map (driven by layers/emap.py in every worker) --------------

@dataclass(frozen=True)
class PublishedTiles:
    """A MapProxy config with the node's published layers, and what it serves besides the e-map."""

    mapproxy_yaml: Path
    tiled: dict[str, str]  # published raster tile layer -> tile extension
    wms: tuple[str, ...]  # published WMS layers
    digest: str


def published_tiles(node_dir: Path, dsn: str, vectors: list[dict[str, Any]],
                    rasters: list[dict[str, Any]], generation: int) -> PublishedTiles:
    """The node's tile config plus published layers, in new files under `tiles/published/`.

    `vectors` ({name, title, geometry_type}) are public layers published with `emap`: drawn on
    top of `vec` and offered as a WMS layer each; `rasters` ({name, title, path, version}) are
    public GeoTIFFs offered as tile layers (WMTS/TMS in both grids, and WMS). The files are
    derived from the node's generated mapfiles and MapProxy config and are never rewritten
    once a worker may read them: a new generation gets a new directory, named by generation
    and content digest (identical content, identical files, whichever worker writes them).
    """
    paths = TilePaths(node_dir)
    base_text = paths.mapproxy_yaml.read_text(encoding="utf-8")
    vec_xml = paths.tiles_dir / "vec.xml"
    spec = json.dumps([vectors, rasters], sort_keys=True, default=str)
    digest = hashlib.sha256((base_text + vec_xml.read_text(encoding="utf-8") + spec)
                            .encode()).hexdigest()[:12]
    if not vectors and not rasters:
        return PublishedTiles(paths.mapproxy_yaml, {}, (), digest)
    root = paths.tiles_dir / "published"
    out = root / f"g{generation}-{digest}"
    tiled = {r["name"]: "png" for r in rasters}
    wms = tuple(v["name"] for v in vectors) + tuple(tiled)
    result = PublishedTiles(out / "mapproxy.yaml", tiled, wms, digest)
    if result.mapproxy_yaml.exists():
        return result
    tmp = root / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dsn_parts = psycopg2.extensions.parse_dsn(dsn)
    conf = yaml.safe_load(base_text)
    caches, sources, layers = conf["caches"], conf["sources"], conf["layers"]
    if vectors:
        owns = [WmsLayerStyle.model_validate(v["style"]) if v.get("style") else None
                for v in vectors]  # a layer's own style (classes), stored when published
        styles = [published_style(v["name"], v["geometry_type"], own)
                  for v, own in zip(vectors, owns, strict=True)]
        lays = [published_layer(v["name"], dsn_parts, own) for v, own in zip(vectors, owns, strict=True)]
        _write(tmp / "vec.xml", with_published(vec_xml.read_text(encoding="utf-8"), styles, lays))
        for src in sources.values():
            if src.get("type") == "mapnik" and Path(src["mapfile"]) == vec_xml:
                src["mapfile"] = str(out / "vec.xml")
        for v, st, lay in zip(vectors, styles, lays, strict=True):
            _write(tmp / f"pub_{v['name']}.xml", single_map_xml([st], [lay]))
            sources[f"pub_{v['name']}"] = {"type": "mapnik", "mapfile": str(out / f"pub_{v['name']}.xml"),
                                           "multithreaded": True, "transparent": True}
            layers.append({"name": v["name"], "title": xml_text(v["title"]),
                           "sources": [f"pub_{v['name']}"]})
    storage = dict(caches["vec_c"]["cache"])
    for r in rasters:
        st, lay = raster_layer_xml(r["name"], Path(r["path"]))
        _write(tmp / f"pub_{r['name']}.xml", single_map_xml([st], [lay]))
        src = f"pub_{r['name']}"
        sources[src] = {"type": "mapnik", "mapfile": str(out / f"pub_{r['name']}.xml"),
                        "multithreaded": True, "transparent": True,
                        "coverage": {"bbox": [float(b) for b in r["bbox"]], "srs": "EPSG:4490"}}
        names = []
        for grid in conf["grids"]:
            # the cache is per version: a republish or rollback starts from an empty cache
            name = f"{r['name']}__v{r['version']}_{grid}"
            cache = dict(storage)
            if cache.get("type") == "redis":
                cache["prefix"] = f"{cache['prefix'].rsplit(':', 1)[0]}:{name}"
            caches[name] = {"grids": [grid], "sources": [src], "format": "image/png",
                            "cache": cache}
            names.append(name)
        layers.append({"name": r["name"], "title": xml_text(r["title"]), "sources": [names[0]],
                       "tile_sources": names})
    queryable = read_queryable(paths.mapproxy_yaml)
    queryable.update({v["name"]: QueryableLayer(v["name"], v["name"], v["title"], {},
                                                dict(v.get("titles") or {}))
                      for v in vectors if v["name"] not in queryable})
    _write(tmp / QUERYABLE, queryable_text(queryable), 0o644)
    _write(tmp / "mapproxy.yaml", yaml.safe_dump(conf, allow_unicode=True, sort_keys=False))
    try:
        tmp.rename(out)
    except OSError:  # another worker wrote the same directory first
        shutil.rmtree(tmp, ignore_errors=True)
    # old generations: kept a while for requests still running on them
    now = time.time()
    for old in root.iterdir():
        if old != out and old.name.startswith(("g", ".g")) and now - old.stat().st_mtime > 600:
            shutil.rmtree(old, ignore_errors=True)
    return result
