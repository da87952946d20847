"""`geoplat tiles seed|clean`: the tile subcommands, registered by nodes/cli.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoplat_settings import EMAP_LAYERS
from tiles.grids import GRIDS, MAX_LEVEL


def add_commands(sub: Any, load: Callable[[argparse.Namespace], Any],
                 node_dir: Callable[[Any, Any], Path]) -> None:
    """Add `tiles seed` and `tiles clean` to the `geoplat` subparsers."""
    t = sub.add_parser("tiles", help="e-map tile caches: seed, clean")
    tsub = t.add_subparsers(dest="tiles_command", required=True)
    s = tsub.add_parser("seed", help="render tiles into a node's cache")
    s.add_argument("--node", required=True)
    s.add_argument("--layer", action="append", choices=EMAP_LAYERS,
                   help="e-map layer (repeatable; default vec)")
    s.add_argument("--grid", action="append", choices=list(GRIDS), help="c or w (repeatable; default c)")
    s.add_argument("--levels", default="1-10", help="e.g. 1-12 (default 1-10)")
    s.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat (default: the node's extent)")
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=lambda a: cmd_seed(a, load(a), node_dir))
    c = tsub.add_parser("clean", help="delete cached tiles of a node")
    c.add_argument("--node", required=True)
    c.add_argument("--layer", action="append", choices=EMAP_LAYERS, help="default: all")
    c.add_argument("--grid", action="append", choices=list(GRIDS), help="default: both")
    c.add_argument("--levels", default=f"0-{MAX_LEVEL}")
    c.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat (default: everything)")
    c.set_defaults(func=lambda a: cmd_clean(a, load(a), node_dir))


def _node(settings: Any, node_id: str) -> Any:
    try:
        return settings.node(node_id)
    except KeyError:
        raise SystemExit(f"geoplat: unknown node {node_id!r}") from None


def cmd_seed(args: argparse.Namespace, settings: Any, node_dir: Callable[[Any, Any], Path]) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # lazy: each command loads only what it needs (CLI start-up)
    from tiles.seed import count_tiles, parse_bbox, parse_levels, seed

    node = _node(settings, args.node)
    ndir = node_dir(settings, node)
    if not (ndir / "tiles" / "mapproxy.yaml").exists():
        print(f"geoplat: no tile config for {node.id}; run `geoplat up` once first", file=sys.stderr)
        return 1
    try:
        levels = parse_levels(args.levels)
        bbox = parse_bbox(args.bbox) if args.bbox else tuple(node.extent.as_list())
    except ValueError as exc:
        print(f"geoplat: {exc}", file=sys.stderr)
        return 2
    total_tiles, total_s = 0, 0.0
    for layer in args.layer or ["vec"]:
        for grid in args.grid or ["c"]:
            n = count_tiles(grid, bbox, levels)
            with Progress(TextColumn(f"[bold]{node.id} {layer}_{grid} {levels[0]}-{levels[1]}"),
                          BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), transient=False) as progress:
                task = progress.add_task("seed", total=n)
                res = seed(ndir, layer, grid, levels, bbox, workers=args.workers,
                           progress=lambda k, t=task: progress.advance(t, k))  # type: ignore[misc]
            print(f"{node.id} {layer}_{grid}: {res.tiles} tiles in {res.seconds:.1f} s "
                  f"({res.rate:.1f} tiles/s)")
            total_tiles += res.tiles
            total_s += res.seconds
    rate = total_tiles / total_s if total_s else 0.0
    print(f"seeded {total_tiles} tiles in {total_s:.1f} s ({rate:.1f} tiles/s)")
    return 0


def cmd_clean(args: argparse.Namespace, settings: Any, node_dir: Callable[[Any, Any], Path]) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from tiles.seed import clean, parse_bbox, parse_levels

    node = _node(settings, args.node)
    try:
        levels = parse_levels(args.levels)
        bbox = parse_bbox(args.bbox) if args.bbox else None
    except ValueError as exc:
        print(f"geoplat: {exc}", file=sys.stderr)
        return 2
    n = clean(node_dir(settings, node), layers=args.layer or EMAP_LAYERS,
              grids=args.grid or list(GRIDS), levels=levels, bbox=bbox)
    print(f"{node.id}: removed {n} cached tiles")
    return 0
