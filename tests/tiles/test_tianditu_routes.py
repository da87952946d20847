"""Tianditu-compatible tile URLs and the cascade across tiers, as a Tianditu client uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
import tile_helpers
from publish_helpers import every_worker
from tile_helpers import image

from nodes import supervisor
from tiles.grids import tile_at

HALL = (120.2130, 30.2460)  # 杭州市民中心政务服务大厅 in the synthetic Hangzhou data
SERVICE_HALL = (200, 16, 46)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


KEY = {"tk": ""}  # a real developer key, made once per module (keys are checked)


@pytest.fixture(scope="module", autouse=True)
def developer_key(main_db) -> None:
    from services.access import apikeys
    from services.sso import accounts

    user = accounts.create(main_db, "tdt_dev", "tdt-dev-password-1", roles=["developer"])
    KEY["tk"], _ = apikeys.create_key(main_db, "test", user.id, "tianditu tests", "server",
                                      ["127.0.0.0/8"], actor="test")


def tdt_url(base: str, layer: str, grid: str, z: str, row: int, col: int,
            tk: str | None = None) -> str:
    return tile_helpers.tdt_url(base, layer, grid, z, row, col, tk or KEY["tk"])



@pytest.mark.parametrize("layer,grid", [("vec", "c"), ("cva", "w"), ("img", "c")])
def test_tianditu_pattern_levels_1_10_18(urls: dict[str, str], layer: str, grid: str) -> None:
    for z in (1, 10, 18):
        col, row = tile_at(grid, *HALL, z)
        img = image(requests.get(tdt_url(urls["national"], layer, grid, str(z), row, col), timeout=120))
        assert img.shape[:2] == (256, 256)
        if layer != "cva" or z >= 10:  # level-1 annotation may legitimately be sparse
            assert img[..., :4].reshape(-1, 4).var(axis=0).sum() > 5, (layer, grid, z)


def test_tilematrix_1_and_01_are_the_same_tile(urls: dict[str, str]) -> None:
    a = requests.get(tdt_url(urls["national"], "vec", "c", "1", 0, 1), timeout=60)
    b = requests.get(tdt_url(urls["national"], "vec", "c", "01", 0, 1), timeout=60)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    # the second answer came from the cache file through nginx, typed correctly
    assert b.headers.get("X-Tile-Cache") == "hit" and b.headers["Content-Type"] == "image/png"
    # the same tile through WMTS REST (zero-padded TileMatrix ids)
    c = requests.get(f"{urls['national']}/wmts/vec/c/01/1/0.png", timeout=60)
    assert c.content == a.content
    col, row = tile_at("c", *HALL, 5)
    first = requests.get(tdt_url(urls["zhejiang"], "img", "c", "5", row, col), timeout=60)
    again = requests.get(tdt_url(urls["zhejiang"], "img", "c", "05", row, col), timeout=60)
    assert first.content == again.content and again.headers.get("X-Tile-Cache") == "hit"
    assert again.headers["Content-Type"] == "image/jpeg"


def test_cascade_level_18_shows_the_information_base(urls: dict[str, str]) -> None:
    col, row = tile_at("c", *HALL, 18)
    main = requests.get(tdt_url(urls["national"], "vec", "c", "18", row, col), timeout=120)
    base = requests.get(tdt_url(urls["hangzhou"], "vec", "c", "18", row, col), timeout=120)
    a, b = image(main), image(base)
    assert np.abs(a - b).max() <= 2  # the main node shows the Hangzhou node's tile
    diff = np.abs(a[..., :3] - np.array(SERVICE_HALL)).max(axis=-1)
    assert (diff <= 12).any(), "service hall marker missing"
    # outside every child a fine level still answers
    col, row = tile_at("c", 87.6, 43.8, 18)  # Urumqi
    far = requests.get(tdt_url(urls["national"], "vec", "c", "18", row, col), timeout=120)
    assert far.status_code == 200 and far.headers["Content-Type"] == "image/png"


@pytest.fixture(scope="session")
def restarted_nodes(federation):
    """Process groups this module restarts; stopped at the end of the session, since the
    federation fixture only knows the groups it started itself."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        supervisor.stop_group(pgid)


def test_cascade_survives_a_child_going_down(federation, urls: dict[str, str],
                                             restarted_nodes: list[int]) -> None:
    lon, lat = HALL[0] + 0.01, HALL[1] + 0.01
    col, row = tile_at("c", lon, lat, 17)
    cached = requests.get(tdt_url(urls["national"], "vec", "c", "17", row, col), timeout=120)
    assert cached.status_code == 200
    hangzhou = federation.node("hangzhou")
    pgid = supervisor.running_nodes(federation)["hangzhou"]
    supervisor.stop_group(pgid)
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(urls["hangzhou"] + "/health", timeout=2)
        prefix = str(supervisor.node_dir(federation, hangzhou) / "nginx").encode()
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit()
                    and prefix in _cmdline(p)], "nginx outlived its node's process group"
        again = requests.get(tdt_url(urls["national"], "vec", "c", "17", row, col), timeout=60)
        assert again.status_code == 200 and again.content == cached.content
        col, row = tile_at("c", *HALL, 12)
        coarse = requests.get(tdt_url(urls["national"], "vec", "c", "12", row, col), timeout=120)
        assert coarse.status_code == 200
        col, row = tile_at("c", lon - 0.03, lat - 0.02, 18)  # never fetched: child is down
        missing = requests.get(tdt_url(urls["national"], "vec", "c", "18", row, col), timeout=60)
        assert missing.status_code == 200 and missing.headers["Content-Type"] == "image/png"
    finally:
        ndir = supervisor.node_dir(federation, hangzhou)
        proc = supervisor.start_node(federation, hangzhou, ndir)
        restarted_nodes.append(proc.pgid)
        supervisor.wait_healthy([proc])
    assert requests.get(urls["hangzhou"] + "/health", timeout=10).json()["status"] == "ok"
    # the other modules use the restarted node: every one of its workers answers again
    every_worker(urls["hangzhou"] + "/health", hangzhou.workers, lambda r: r.json()["status"])


def test_tk_hook_can_refuse_before_any_tile_work(federation) -> None:
    """The SSO issue plugs its key check in here; a refusal is sent instead of the tile."""
    import asyncio
    from urllib.parse import parse_qsl

    import httpx
    from starlette.applications import Starlette

    from tiles.errors import OGCError
    from tiles.service import tile_routes

    seen: list[tuple[str, list[str], str]] = []

    async def key_check(scope, layers, kind):
        tk = dict(parse_qsl(scope["query_string"].decode())).get("tk", "")
        seen.append((tk, list(layers), kind))
        if tk != "good":
            return OGCError("Forbidden", "invalid key", None, 403)
        return None

    app = Starlette(routes=tile_routes(supervisor.node_dir(federation, federation.node("hangzhou")),
                                       key_check=key_check))

    async def run() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            bad = await c.get(tdt_url("", "vec", "c", "1", 0, 1, tk="bad"))
            good = await c.get(tdt_url("", "vec", "c", "1", 0, 1, tk="good"))
            return bad.status_code, good.status_code

    assert asyncio.run(run()) == (403, 200)
    assert seen == [("bad", ["vec"], "tiles"), ("good", ["vec"], "tiles")]
