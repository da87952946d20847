"""The Redis tile cache option (several hosts of one node sharing a cache): MapProxy config,
rendering into Redis, invalidation, and nginx without the disk fast path."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from federations import free_port
from waiting import wait_for

from geoplat_settings import TileCache
from nodes.pygeoapi_config import node_dir
from tiles.build import validate_mapproxy
from tiles.frontdoor import FrontDoor
from tiles.grids import tile_at
from tiles.mapproxy_config import build_mapproxy_config, redis_prefix
from tiles.seed import invalidate

HALL = (120.2130, 30.2460)


@pytest.fixture()
def redis_server(tmp_path: Path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (it is in the Makefile's APT_PACKAGES: run "
                    "`make install`, or `apt-get install -y redis-server`)", pytrace=False)
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def accepts() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(accepts, 10, "redis-server accepts connections", interval=0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_tile_cache(federation, redis_server: int, tmp_path: Path) -> None:
    import redis
    from starlette.applications import Starlette

    from tiles.service import tile_routes

    node = federation.node("hangzhou").model_copy(update={"tile_cache": TileCache(
        backend="redis", redis_url=f"redis://127.0.0.1:{redis_server}/0")})
    ndir = tmp_path / "hangzhou"
    shutil.copytree(node_dir(federation, federation.node("hangzhou")) / "tiles", ndir / "tiles")
    conf = build_mapproxy_config(node, [], ndir / "tiles", {
        "vec": "image/png", "cva": "image/png", "img": "image/jpeg", "cia": "image/png",
        "ter": "image/jpeg", "cta": "image/png"}, ndir / "cache")
    assert conf["caches"]["vec_c"]["cache"]["type"] == "redis"
    (ndir / "tiles" / "mapproxy.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    validate_mapproxy(ndir / "tiles" / "mapproxy.yaml")
    app = Starlette(routes=tile_routes(ndir))
    x, y = tile_at("c", *HALL, 15)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.get(f"/wmts/vec/c/15/{x}/{y}.png")

    first = asyncio.run(get())
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    client = redis.Redis(port=redis_server)
    key = f"{redis_prefix('hangzhou', 'vec_c')}-15-{x}-{y}"
    assert client.get(key) == first.content
    assert len(client.keys(redis_prefix("hangzhou", "vec_c") + "-15-*")) == 16  # one meta-tile
    assert not list((ndir / "cache").glob("vec_c/**/*.png"))  # nothing on disk
    assert invalidate(ndir, (HALL[0] - 0.001, HALL[1] - 0.001, HALL[0] + 0.001, HALL[1] + 0.001),
                      (15, 15), layers=["vec"]) in (1, 2, 4)  # tiles touching the box
    assert client.get(key) is None
    assert asyncio.run(get()).content == first.content  # rendered again, same bytes
    # nginx for a Redis-backed node has no disk fast path: every tile goes to MapProxy
    fd = FrontDoor(ndir, "127.0.0.1", free_port())
    fd.write_config(ndir / "cache", fast_path=False)
    text = fd.conf.read_text(encoding="utf-8")
    assert "alias" not in text and "proxy_pass" in text
    client.close()
