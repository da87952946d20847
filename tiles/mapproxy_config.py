"""The MapProxy configuration of one node, generated from our settings (never edited by hand).

Per e-map layer and grid there is one *own* cache rendered by Mapnik with meta-tiles, and, on a
node with children, a *composite* cache stacking the own cache and the children's tiles: the
node renders its own data up to its tier's finest level, and inside a child's extent finer
levels come from that child (recursively, since the child does the same).
File caches use MapProxy's `tms` layout under `cache/<layer>_<grid>/<grid>/<z>/<x>/<y>.<ext>`
with the grid's top-left origin, so nginx can map a tile URL straight to a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from geoplat_settings import EMAP_LAYERS
from tiles.grids import GRIDS, MAX_LEVEL

# Finest e-map level a node renders from its own data, by tier (DESIGN.md, scales per tier).
OWN_MAX_LEVEL = {"main": 14, "sub": 16, "base": MAX_LEVEL}
# A WMS GetMap renders on request: one image is at most 4096 px a side and 4 Mpx in all
# (2048 x 2048, Tianditu's order), so one anonymous-looking request cannot hold a worker for
# many seconds (4096 x 4096 took 14.6 s). tiles/service.py refuses larger ones first.
MAX_WMS_PIXELS = 4096
MAX_WMS_AREA = 2048 * 2048
TITLES = {"vec": "矢量底图 Vector", "cva": "矢量注记 Vector annotation", "img": "影像底图 Imagery",
          "cia": "影像注记 Imagery annotation", "ter": "地形晕渲 Terrain",
          "cta": "地形注记 Terrain annotation"}
EXT = {"image/png": "png", "image/jpeg": "jpeg"}


def xml_text(text: str) -> str:
    """A title as MapProxy must be given it: its capabilities templates (WMS, WMTS, TMS) copy
    titles into the XML unescaped, so a `<` or `&` in one (a publisher's title) broke the
    documents or added elements to them."""
    return escape(text, {'"': "&quot;", "'": "&#39;"})


def cache_name(layer: str, grid: str) -> str:
    return f"{layer}_{grid}"


def tile_path(cache_dir: Path, layer: str, grid: str, z: int, x: int, y: int, fmt: str) -> Path:
    """Where the final cache keeps a tile (the nginx fast path relies on this layout)."""
    return cache_dir / cache_name(layer, grid) / grid / str(z) / str(x) / f"{y}.{EXT[fmt]}"


def redis_prefix(node_id: str, cache: str) -> str:
    """Key prefix of a cache in Redis; MapProxy appends `-z-x-y`."""
    return f"geoplat:{node_id}:{cache}"


def tianditu_url(base_url: str, layer: str, grid: str, tk: str | None = None) -> str:
    """A MapProxy tile-source URL template for a node's Tianditu-compatible route."""
    return (f"{base_url}/{layer}_{grid}/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            f"&LAYER={layer}&STYLE=default&TILEMATRIXSET={grid}&FORMAT=tiles"
            "&TILEMATRIX=%(z)s&TILEROW=%(y)s&TILECOL=%(x)s" + (f"&tk={tk}" if tk else ""))


def add_compositions(conf: dict[str, Any], compositions: list[dict[str, Any]],
                     storage: Any, key: str | None) -> None:
    """Composite layers: parts from several nodes stacked (bottom first) into one cached layer.

    Each entry: {id, title, format, parts: [{base_url, layer, via}]}; `via` "tiles" reads the
    part node's Tianditu route (with the node key `key`), "wms" its WMS GetMap. A part that is
    down gives a transparent, uncached tile, like a child in the e-map cascade.
    """
    for comp in compositions:
        cid = comp["id"]
        tile_sources = []
        for grid in GRIDS:
            stack = []
            for i, part in enumerate(comp["parts"]):
                name = f"{cid}_{grid}_part{i}"
                down = {"other": {"response": "transparent", "cache": False}}
                if part["via"] == "wms":
                    req = {"url": part["base_url"] + "/wms", "layers": part["layer"],
                           "transparent": True, "format": "image/png"}
                    if key:
                        req["tk"] = key
                    conf["sources"][name] = {
                        "type": "wms", "req": req, "wms_opts": {"version": "1.1.1"},
                        "supported_srs": ["EPSG:4490", "EPSG:3857"],
                        "http": {"client_timeout": 20}, "on_error": down}
                else:
                    conf["sources"][name] = {
                        "type": "tile", "grid": grid, "transparent": True,
                        "url": tianditu_url(part["base_url"], part["layer"], grid, key),
                        "http": {"client_timeout": 20}, "on_error": down}
                stack.append(name)
            cache = cache_name(cid, grid)
            conf["caches"][cache] = {"grids": [grid], "sources": stack, "format": comp["format"],
                                     "cache": storage(cache), "meta_size": [1, 1],
                                     "meta_buffer": 0}
            tile_sources.append(cache)
        conf["layers"].append({"name": cid, "title": xml_text(comp["title"]),
                               "sources": [cache_name(cid, "c")], "tile_sources": tile_sources})


def build_mapproxy_config(node: Any, children: list[Any], tiles_dir: Path,
                          layer_formats: Mapping[str, str], cache_dir: Path,
                          child_key: str | None = None,
                          compositions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The MapProxy YAML dict; `node`/`children` are NodeSettings, mapfiles in `tiles_dir`.

    `child_key` is the node's own API key, sent (`tk`) to children that require keys and to
    the nodes of `compositions` (see `add_compositions`).
    """
    cut = OWN_MAX_LEVEL[node.tier]
    cut_res_m = GRIDS["w"].res_m(cut) * 0.75  # between level `cut` and `cut + 1`
    # Web Mercator's latitude limit: a whole-globe extent makes the `w` layer's bounding box
    # infinite in EPSG:3857 (GDAL then reports no usable extent)
    world = {"bbox": [-180, -85.0511287798, 180, 85.0511287798], "srs": "EPSG:4490"}
    sources: dict[str, Any] = {}
    caches: dict[str, Any] = {}
    layers = []
    tile_cache = getattr(node, "tile_cache", None)
    redis = tile_cache is not None and tile_cache.backend == "redis"

    def storage(name: str) -> dict[str, Any]:
        if redis and tile_cache is not None:
            return {"type": "redis", **tile_cache.redis_params(), "default_ttl": tile_cache.ttl,
                    "prefix": redis_prefix(node.id, name)}
        return {"type": "file", "directory_layout": "tms", "use_grid_names": True}

    for lid in EMAP_LAYERS:
        fmt = layer_formats[lid]
        transparent = fmt == "image/png" and lid != "vec"
        mapnik = {"type": "mapnik", "mapfile": str(tiles_dir / f"{lid}.xml"),
                  "multithreaded": True, "transparent": transparent}
        if children and cut < MAX_LEVEL:
            sources[f"{lid}_own_low"] = {**mapnik, "max_res": cut_res_m}
            sources[f"{lid}_own_high"] = {
                **mapnik, "min_res": cut_res_m,
                "coverage": {"difference": [world] + [
                    {"bbox": c.extent.as_list(), "srs": "EPSG:4490"} for c in children]}}
            own_sources = [f"{lid}_own_low", f"{lid}_own_high"]
        else:
            sources[f"{lid}_own"] = mapnik
            own_sources = [f"{lid}_own"]
        tile_sources = []
        for grid in GRIDS:
            name = cache_name(lid, grid)
            if not children:
                caches[name] = {"grids": [grid], "sources": own_sources, "format": fmt,
                                "cache": storage(name)}
            else:
                own = f"{name}_own"
                caches[own] = {"grids": [grid], "sources": own_sources, "format": fmt,
                               "cache": storage(own)}
                stack = [own]
                for child in children:
                    src = f"{lid}_{grid}_from_{child.id}"
                    sources[src] = {
                        "type": "tile", "grid": grid, "url": tianditu_url(child.base_url, lid, grid, child_key),
                        "transparent": True, "min_res": cut_res_m,
                        "coverage": {"bbox": child.extent.as_list(), "srs": "EPSG:4490"},
                        "http": {"client_timeout": 20},
                        # A child that is down gives a transparent tile that is not cached.
                        "on_error": {"other": {"response": "transparent", "cache": False}},
                    }
                    stack.append(src)
                # tile sources cannot do meta-tiles; the own cache below already does
                caches[name] = {"grids": [grid], "sources": stack, "format": fmt,
                                "cache": storage(name), "meta_size": [1, 1], "meta_buffer": 0}
            tile_sources.append(name)
        layers.append({"name": lid, "title": TITLES[lid], "sources": [cache_name(lid, "c")],
                       "tile_sources": tile_sources})
    md = {"title": xml_text(f"{node.title} e-map"), "abstract": "政务电子地图 government e-map (geoplat)",
          "online_resource": node.base_url + "/service",
          "access_constraints": "Sample data for demonstration only; see data-samples/SOURCES.md"}
    conf = {
        "globals": {
            "cache": {"base_dir": str(cache_dir), "lock_dir": str(cache_dir / "locks"),
                      "tile_lock_dir": str(cache_dir / "tile_locks"),
                      "meta_size": [4, 4], "meta_buffer": 128},
            "image": {"resampling_method": "bilinear", "paletted": False},
            "http": {"client_timeout": 20},
            # CGCS2000 is latitude-first in WMS 1.3.0 (as EPSG defines it), like EPSG:4326
            "srs": {"axis_order_ne": ["EPSG:4490"]},
        },
        "services": {
            "wmts": {"restful": True, "kvp": True, "md": md,
                     "restful_template": "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}"},
            "wms": {"srs": ["EPSG:4490", "EPSG:3857", "EPSG:4326"],
                    "image_formats": ["image/png", "image/jpeg"],
                    "versions": ["1.1.1", "1.3.0"], "strict": True,
                    "max_output_pixels": [2048, MAX_WMS_AREA // 2048], "md": md},
            "tms": {"use_grid_names": True, "origin": "nw"},
        },
        "grids": {gid: g.mapproxy() for gid, g in GRIDS.items()},
        "sources": sources,
        "caches": caches,
        "layers": layers,
    }
    add_compositions(conf, compositions or [], storage, child_key)
    return conf
