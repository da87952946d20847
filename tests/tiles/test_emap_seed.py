"""`geoplat tiles seed|clean` and `tiles.seed.invalidate` on a running node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from nodes.pygeoapi_config import node_dir
from tiles.seed import count_tiles, invalidate, tile_range

ROOT = Path(__file__).resolve().parents[2]
BBOX = (120.15, 30.22, 120.25, 30.28)


def geoplat(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def tiles_on_disk(ndir: Path, layer: str, grid: str, level: int) -> set[tuple[int, int]]:
    d = ndir / "cache" / f"{layer}_{grid}" / grid / str(level)
    return {(int(f.parent.name), int(f.name.split(".")[0])) for f in d.glob("*/*.*")} if d.is_dir() else set()


def test_seed_clean_and_invalidate(federation, urls: dict[str, str]) -> None:
    config = Path(federation.config_dir) / "federation.yml"
    bbox = ",".join(map(str, BBOX))
    res = geoplat(config, "tiles", "seed", "--node", "hangzhou", "--layer", "vec", "--grid", "w",
                  "--levels", "11-13", "--bbox", bbox)
    assert res.returncode == 0, res.stdout + res.stderr
    expected = count_tiles("w", BBOX, (11, 13))
    assert f"seeded {expected} tiles" in res.stdout and "tiles/s" in res.stdout
    ndir = node_dir(federation, federation.node("hangzhou"))
    x0, y0, x1, y1 = tile_range("w", BBOX, 13)
    want = {(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
    assert want <= tiles_on_disk(ndir, "vec", "w", 13)
    # a seeded tile is served by nginx from disk
    x, y = min(want)
    r = requests.get(f"{urls['hangzhou']}/wmts/vec/w/13/{x}/{y}.png", timeout=30)
    assert r.status_code == 200 and r.headers.get("X-Tile-Cache") == "hit"
    # invalidating the bbox at level 13 drops exactly those tiles (and leaves level 12)
    level12 = tiles_on_disk(ndir, "vec", "w", 12)
    assert invalidate(ndir, BBOX, (13, 13), layers=["vec"]) >= len(want)
    assert not want & tiles_on_disk(ndir, "vec", "w", 13)
    assert tiles_on_disk(ndir, "vec", "w", 12) == level12
    r = requests.get(f"{urls['hangzhou']}/wmts/vec/w/13/{x}/{y}.png", timeout=60)
    assert r.status_code == 200 and r.headers.get("X-Tile-Cache") is None  # re-rendered
    res = geoplat(config, "tiles", "clean", "--node", "hangzhou", "--layer", "vec", "--grid", "w",
                  "--levels", "11-13")
    assert res.returncode == 0 and "removed" in res.stdout
    assert not tiles_on_disk(ndir, "vec", "w", 12)
    bad = geoplat(config, "tiles", "seed", "--node", "hangzhou", "--levels", "9-3")
    assert bad.returncode == 2 and "levels" in bad.stderr
