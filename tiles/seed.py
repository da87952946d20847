"""Seeding, cleaning and invalidating a node's tile caches.

Seeding goes through MapProxy's own tile managers (so meta-tiles, locks and atomic writes are
MapProxy's); Ctrl-C stops between tiles and leaves only complete tiles behind. Cleaning and
invalidation delete cache files (the `tms` layout makes a tile's file name computable), in both
the composite and the node's own caches; `invalidate` is what publishing calls after a change.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from geoplat_settings import EMAP_LAYERS
from tiles import compat
from tiles.grids import GRIDS, MAX_LEVEL, tile_at

MERCATOR_LAT = 85.0511287798


@dataclass
class SeedResult:
    tiles: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0


def parse_levels(text: str) -> tuple[int, int]:
    """'1-12' or '7' -> (first, last), checked against the grids' levels."""
    a, _, b = text.partition("-")
    first, last = int(a), int(b or a)
    if not (0 <= first <= last <= MAX_LEVEL):
        raise ValueError(f"levels must be within 0-{MAX_LEVEL}, first <= last")
    return first, last


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = [float(v) for v in text.split(",")]
    if len(parts) != 4 or parts[0] >= parts[2] or parts[1] >= parts[3]:
        raise ValueError("bbox must be minlon,minlat,maxlon,maxlat with min < max")
    return parts[0], parts[1], parts[2], parts[3]


def tile_range(grid: str, bbox: tuple[float, float, float, float], level: int
               ) -> tuple[int, int, int, int]:
    """Inclusive (x0, y0, x1, y1) of the tiles covering a lon/lat bbox at `level`."""
    minx, miny, maxx, maxy = bbox
    if not GRIDS[grid].geographic:
        miny, maxy = max(miny, -MERCATOR_LAT), min(maxy, MERCATOR_LAT)
    cols, rows = GRIDS[grid].matrix_size(level)
    x0, y0 = tile_at(grid, minx, maxy, level)
    x1, y1 = tile_at(grid, maxx - 1e-12, miny + 1e-12, level)
    return max(0, x0), max(0, y0), min(cols - 1, x1), min(rows - 1, y1)


def count_tiles(grid: str, bbox, levels: tuple[int, int]) -> int:
    total = 0
    for z in range(levels[0], levels[1] + 1):
        x0, y0, x1, y1 = tile_range(grid, bbox, z)
        total += (x1 - x0 + 1) * (y1 - y0 + 1)
    return total


def _tile_manager(mapproxy_yaml: Path, layer: str, grid: str):
    from mapproxy.config.loader import load_configuration

    compat.install()
    conf = load_configuration(str(mapproxy_yaml), seed=True)
    (_grid, _extent, mgr), = conf.caches[f"{layer}_{grid}"].caches()
    return mgr


def _work(mgr, grid: str, bbox, levels) -> Iterator[tuple[tuple[int, int, int], int]]:
    """(tile to load, tiles it covers): one per meta-tile when the cache renders meta-tiles."""
    meta = getattr(mgr, "meta_grid", None)
    mw, mh = meta.meta_size if meta else (1, 1)
    for z in range(levels[0], levels[1] + 1):
        x0, y0, x1, y1 = tile_range(grid, bbox, z)
        for my in range(y0 - y0 % mh, y1 + 1, mh):
            for mx in range(x0 - x0 % mw, x1 + 1, mw):
                xs = range(max(mx, x0), min(mx + mw, x1 + 1))
                ys = range(max(my, y0), min(my + mh, y1 + 1))
                n = len(xs) * len(ys)
                if n:
                    yield (xs[0], ys[0], z), n


def seed(node_dir: Path, layer: str, grid: str, levels: tuple[int, int],
         bbox: tuple[float, float, float, float], *, workers: int = 2,
         progress: Callable[[int], None] | None = None) -> SeedResult:
    """Render and store every tile of `layer`/`grid` over `bbox` (lon/lat) at `levels`."""
    if layer not in EMAP_LAYERS or grid not in GRIDS:
        raise ValueError("unknown layer or grid")
    mgr = _tile_manager(node_dir / "tiles" / "mapproxy.yaml", layer, grid)
    started = time.perf_counter()
    done = 0

    def one(item: tuple[tuple[int, int, int], int]) -> int:
        mgr.load_tile_coords([item[0]], with_metadata=False)
        return item[1]

    with ThreadPoolExecutor(workers) as pool:
        try:
            for n in pool.map(one, _work(mgr, grid, bbox, levels)):
                done += n
                if progress:
                    progress(n)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return SeedResult(done, time.perf_counter() - started)


def _cache_dirs(node_dir: Path, layers: Iterable[str], grids: Iterable[str]) -> Iterator[tuple[str, Path]]:
    for layer in layers:
        for grid in grids:
            for suffix in ("", "_own"):
                d = node_dir / "cache" / f"{layer}_{grid}{suffix}" / grid
                if d.is_dir():
                    yield grid, d


def _redis_caches(node_dir: Path, layers: list[str], grids: list[str]) -> Iterator[tuple[str, dict]]:
    """(grid, MapProxy redis cache options) of the node's caches kept in Redis."""
    import yaml

    path = node_dir / "tiles" / "mapproxy.yaml"
    if not path.exists():
        return
    conf = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for name, cache in (conf.get("caches") or {}).items():
        opts = cache.get("cache") or {}
        if opts.get("type") != "redis":
            continue
        layer, _, grid = name.removesuffix("_own").rpartition("_")
        if layer in layers and grid in grids:
            yield grid, opts


def _clean_redis(grid: str, opts: dict, levels: tuple[int, int], bbox) -> int:
    import redis

    client = redis.Redis(host=opts.get("host", "127.0.0.1"), port=opts.get("port", 6379),
                         db=opts.get("db", 0), username=opts.get("username"),
                         password=opts.get("password"))
    prefix, removed = opts["prefix"], 0
    try:
        for z in range(levels[0], levels[1] + 1):
            if bbox is None:
                keys = list(client.scan_iter(match=f"{prefix}-{z}-*", count=1000))
            else:
                x0, y0, x1, y1 = tile_range(grid, bbox, z)
                keys = [f"{prefix}-{z}-{x}-{y}" for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
            for i in range(0, len(keys), 1000):
                removed += client.delete(*keys[i:i + 1000])
    finally:
        client.close()
    return removed


def clean(node_dir: Path, *, layers: Iterable[str] = EMAP_LAYERS, grids: Iterable[str] = tuple(GRIDS),
          levels: tuple[int, int] = (0, MAX_LEVEL),
          bbox: tuple[float, float, float, float] | None = None) -> int:
    """Delete cached tiles (files or Redis keys); returns how many tiles went."""
    layers, grids = list(layers), list(grids)
    removed = sum(_clean_redis(grid, opts, levels, bbox)
                  for grid, opts in _redis_caches(node_dir, layers, grids))
    for grid, d in _cache_dirs(node_dir, layers, grids):
        for z in range(levels[0], levels[1] + 1):
            zdir = d / str(z)
            if not zdir.is_dir():
                continue
            if bbox is None:
                removed += sum(1 for p in zdir.rglob("*") if p.is_file())
                shutil.rmtree(zdir, ignore_errors=True)
                continue
            x0, y0, x1, y1 = tile_range(grid, bbox, z)
            for xdir in zdir.iterdir():
                if not xdir.name.isdigit() or not x0 <= int(xdir.name) <= x1:
                    continue
                for f in xdir.iterdir():
                    stem = f.name.split(".")[0]
                    if stem.isdigit() and y0 <= int(stem) <= y1:
                        f.unlink(missing_ok=True)
                        removed += 1
    return removed


def invalidate(node_dirs: Path | Iterable[Path], bbox: tuple[float, float, float, float],
               levels: tuple[int, int] = (0, MAX_LEVEL), layers: Iterable[str] = EMAP_LAYERS) -> int:
    """Drop the cached tiles touching `bbox` (lon/lat, EPSG:4490) at `levels`.

    Pass the changed node's directory and its ancestors' (whose composite caches hold the
    child's tiles) to invalidate the cascade too. Returns the number of tiles removed.
    """
    dirs = [node_dirs] if isinstance(node_dirs, Path) else list(node_dirs)
    return sum(clean(d, layers=list(layers), levels=levels, bbox=bbox) for d in dirs)
