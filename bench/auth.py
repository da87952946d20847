"""What sign-on and access control cost: requests/s with a bearer token or an API key versus
anonymous, on the same public resources, plus the in-process cost of one access check.

Run from the repository root:  .venv/bin/python bench/auth.py [--seconds 5] [--concurrency 16]
Starts a private PostGIS and the demo federation on free ports (nothing else is touched), runs
each case in alternating rounds, prints a table and appends it to bench/results/auth.md.
Goals (issue 4): bearer/anonymous >= 0.95 on features; key/anonymous >= 0.9 on tiles. Cached
e-map tiles through the nginx front door (wrk), RESTful and WMTS KVP GetTile: with a valid key
(after the app's first answer, a learned case answered from nginx's memory, rate limit
included) versus the same node with no check at all (the key-check lines removed from
tiles-auth.d, nginx reloaded); goal >= 0.9 for both.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))  # sso_client: the tests' sign-in

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster


def append_results(script: str, text: str) -> None:
    """Append a run's `text` to bench/results/<script>.md (titled when new)."""
    out = ROOT / "bench" / "results" / f"{script}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        if f.tell() == 0:
            f.write(f"# bench/{script}.py results\n")
        f.write(text + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(base: Path, cluster: Cluster) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))
    raw.update(var_dir=str(base / "var"), data_dir=str(ROOT / "data-samples"),
               postgres={"data_dir": str(cluster.data_dir), "port": cluster.port})
    for node in raw["nodes"]:
        node.update(host="127.0.0.1", port=free_port(), database_url="")
        # anonymous is the baseline: public layers without a key (the default needs one)
        node.setdefault("auth", {})["public_requires_key"] = False
    (base / "config").mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "config" / "layers", base / "config" / "layers")
    path = base / "config" / "federation.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def load(urls: list[str], headers: dict[str, str], seconds: float, concurrency: int
               ) -> tuple[float, int]:
    """requests/s over `seconds`; returns (rate, non-200 count)."""
    done, bad = 0, 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        async def worker(i: int) -> None:
            nonlocal done, bad
            k = i
            while time.perf_counter() < stop:
                r = await client.get(urls[k % len(urls)])
                k += concurrency
                done += 1
                if r.status_code not in (200, 204):
                    bad += 1
                    print(f"  {r.status_code} {r.text[:120]}", file=sys.stderr)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return done / (time.perf_counter() - t0), bad


def tile_urls(base: str, layer: str, lon: float, lat: float, z: int = 15) -> list[str]:
    x0 = int((lon + 180) / 360 * 2**z)
    y0 = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return [f"{base}/ogc/collections/{layer}/tiles/WebMercatorQuad/{z}/{y0 + dy}/{x0 + dx}?f=mvt"
            for dx in range(-2, 3) for dy in range(-2, 3)]


async def check_cost(node_dir: Path, token: str, key: str) -> dict[str, float]:
    """Microseconds per `services.access.control.check` call inside one process (warm caches)."""
    from geoplat_settings import NodeRuntime
    from services.access.apikeys import KeyChecker
    from services.access.control import AccessControl
    from services.access.install import JwksStore
    from services.access.routes import NodeClient
    from services.access.tokens import TokenValidator
    from services.db import Database

    runtime = NodeRuntime.load(node_dir)
    auth = runtime.auth
    db = Database(runtime.dsn)
    http = httpx.AsyncClient(timeout=5.0)  # this coroutine's loop only; closed below
    control = AccessControl(auth.node_id, dict(auth.levels), db,
                            TokenValidator(auth.issuer, auth.jwks_url, auth.audience, http,
                                           store=JwksStore(db)))
    control.keys = KeyChecker(db, auth.node_id, main_db=None, main_url=auth.main_url,
                              max_age=auth.settings.revocation_max_age,
                              node_client=NodeClient(auth, http), public_requires_key=False)

    def scope(headers: list[tuple[bytes, bytes]], qs: bytes = b"") -> dict:
        return {"type": "http", "method": "GET", "path": "/ogc/collections/poi/items",
                "query_string": qs, "headers": headers, "client": ("127.0.0.1", 1)}

    out = {}
    for name, make in [
        ("anonymous", lambda: scope([])),
        ("bearer", lambda: scope([(b"authorization", f"Bearer {token}".encode())])),
        ("tk", lambda: scope([], f"tk={key}".encode())),
    ]:
        await control.check(make(), "poi", "metadata")  # warm JWKS / key cache
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            await control.check(make(), "poi", "metadata")
        out[name] = (time.perf_counter() - t0) / n * 1e6
    await http.aclose()
    return out


def wrk(base: str, paths: list[str], seconds: float, connections: int, tmp: Path
        ) -> tuple[float, int]:
    """wrk over `paths` in turn; (requests/s, non-2xx/3xx responses)."""
    script = tmp / "paths.lua"
    script.write_text("paths = {" + ",\n".join(f'"{p}"' for p in paths) + "}\ni = 0\n"
                      "request = function()\n  i = i + 1\n"
                      "  return wrk.format(nil, paths[(i % #paths) + 1])\nend\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                          "-s", str(script), base], capture_output=True, text=True,
                         check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(bad.group(1)) if bad else 0


def kvp_path(z: int, x: int, y: int) -> str:
    """The WMTS KVP GetTile of a cached tile (nginx serves it from disk too)."""
    return ("/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=vec&STYLE=default"
            f"&TILEMATRIXSET=c&TILEMATRIX={z:02d}&TILEROW={y}&TILECOL={x}&FORMAT=image/png")


def front_door_tiles(base: str, node_dir: Path, key: str, seconds: float, connections: int,
                     rounds: int) -> dict[str, float]:
    """Cached WMTS tiles through nginx, RESTful and KVP GetTile: with a valid key vs no check
    at all (best round)."""
    cached = []
    for z, xs, ys in ((3, range(4, 8), range(3)), (4, range(10, 14), range(2, 5))):
        for x in xs:
            for y in ys:
                path = f"/wmts/vec/c/{z}/{x}/{y}.png"
                first = httpx.get(base + path, params={"tk": key}, timeout=120)
                if first.status_code == 200 and httpx.get(base + path, params={"tk": key}).headers \
                        .get("X-Tile-Cache") == "hit":
                    cached.append((z, x, y))
    if not cached:
        raise RuntimeError("no cached tiles to measure")
    forms = {"REST": [f"/wmts/vec/c/{z}/{x}/{y}.png" for z, x, y in cached],
             "KVP": [kvp_path(z, x, y) for z, x, y in cached]}
    keyed = {f: [p + ("&" if "?" in p else "?") + f"tk={key}" for p in paths]
             for f, paths in forms.items()}
    deadline = time.monotonic() + 20  # the app's first answers are learned into nginx's memory
    while time.monotonic() < deadline and not all(
            httpx.get(base + p).headers.get("X-Key-Check") == "memory"
            for paths in keyed.values() for p in paths):
        time.sleep(0.5)
    kvp_hits = sum(httpx.get(base + p).headers.get("X-Tile-Cache") == "hit" for p in keyed["KVP"])
    if kvp_hits != len(cached):
        raise RuntimeError(f"only {kvp_hits} of {len(cached)} KVP tiles came from nginx's disk")
    conf = node_dir / "nginx" / "tiles-auth.d" / "keys.conf"
    saved = conf.read_text(encoding="utf-8")
    pid = int((node_dir / "nginx" / "nginx.pid").read_text().strip())
    tmp = Path(tempfile.mkdtemp(prefix="geoplat-bench-wrk-"))

    def reload(text: str) -> None:
        conf.write_text(text, encoding="utf-8")
        os.kill(pid, signal.SIGHUP)
        time.sleep(1.5)

    rates: dict[str, list[float]] = {f"{f} {c}": [] for f in forms
                                     for c in ("valid tk", "no check")}
    try:
        for r in range(rounds):
            for f in forms:
                rate, bad = wrk(base, keyed[f], seconds, connections, tmp)
                if bad:
                    raise RuntimeError(f"{bad} failed keyed {f} tile requests")
                rates[f"{f} valid tk"].append(rate)
            # no check: the same variables; no key check, rate limit or usage log
            reload("".join(line for line in saved.splitlines(keepends=True)
                           if not line.startswith(("auth_request ", "access_log ", "limit_req",
                                                   "if (", "add_header X-Key-Check"))))
            try:
                for f, paths in forms.items():
                    rate, bad = wrk(base, paths, seconds, connections, tmp)
                    if bad:
                        raise RuntimeError(f"{bad} failed {f} tile requests")
                    rates[f"{f} no check"].append(rate)
            finally:
                reload(saved)
            for name, v in rates.items():
                print(f"round {r + 1} tiles via nginx, {name:16} {v[-1]:9.1f} req/s", flush=True)
    finally:
        if conf.read_text(encoding="utf-8") != saved:
            reload(saved)
        shutil.rmtree(tmp, ignore_errors=True)
    out = {k: max(v) for k, v in rates.items()}
    out["tiles"] = len(cached)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-auth-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    procs = []
    try:
        settings = settings_mod.load(write_config(base, cluster))
        procs, _ = supervisor.up(settings, only=["national", "hangzhou"], echo=lambda *a: None)
        main_node, hz = settings.node("national"), settings.node("hangzhou").base_url

        from sso_client import login_pkce

        from services.access.apikeys import create_key
        from services.db import Database
        from services.sso import accounts

        db = Database(federation_mod.node_dsn(settings, main_node))
        user = accounts.create(db, "bench_dev", "bench-password-1", roles=["developer"])
        key, _ = create_key(db, "bench", user.id, "bench", "server", ["127.0.0.0/8"],
                            quotas={"tiles": 10**9, "features": 10**9}, rate_per_second=100000)
        token = login_pkce(main_node.base_url, "bench_dev", "bench-password-1")["access_token"]
        feature_urls = [f"{hz}/ogc/collections/poi/items/{i}?f=json" for i in range(1, 51)]
        poi = httpx.get(f"{hz}/ogc/collections/poi/items?f=json&limit=1").json()["features"][0]
        lon, lat = poi["geometry"]["coordinates"]
        tiles = tile_urls(hz, "poi", lon, lat)

        cases = {
            "features anonymous": (feature_urls, {}),
            "features bearer": (feature_urls, {"Authorization": f"Bearer {token}"}),
            "features tk": ([u + f"&tk={key}" for u in feature_urls], {}),
            "tiles anonymous": (tiles, {}),
            "tiles tk": ([u + f"&tk={key}" for u in tiles], {}),
            "tiles bearer": (tiles, {"Authorization": f"Bearer {token}"}),
        }
        rates: dict[str, list[float]] = {c: [] for c in cases}
        for r in range(args.rounds):
            for name, (urls, headers) in cases.items():
                rate, bad = asyncio.run(load(urls, headers, args.seconds, args.concurrency))
                if bad:
                    print(f"{name}: {bad} failed requests", file=sys.stderr)
                    return 1
                rates[name].append(rate)
                print(f"round {r + 1} {name:20} {rate:8.1f} req/s", flush=True)
        best = {k: max(v) for k, v in rates.items()}
        micro = asyncio.run(check_cost(settings.resolve(settings.var_dir) / "nodes" / "hangzhou",
                                       token, key))
        door = front_door_tiles(hz, settings.resolve(settings.var_dir) / "nodes" / "hangzhou",
                                key, args.seconds, 64, args.rounds)
        lines = [
            (f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.concurrency} connections, "
             f"{args.seconds:.0f} s x {args.rounds} rounds (best round)\n"),
            "| case | req/s | ratio to anonymous | goal |", "|---|---|---|---|",
        ]
        for name in cases:
            kind = name.split()[0]
            ratio = best[name] / best[f"{kind} anonymous"]
            goal = {"features bearer": ">= 0.95", "tiles tk": ">= 0.9"}.get(name, "")
            lines.append(f"| {name} | {best[name]:.1f} | {ratio:.3f} | {goal} |")
        for form, what in (("REST", "WMTS RESTful"), ("KVP", "WMTS KVP GetTile")):
            ratio = door[f"{form} valid tk"] / door[f"{form} no check"]
            lines.append(f"| cached tiles via nginx, {what}, no check ({door['tiles']:.0f} tiles, "
                         f"wrk 64 conn.) | {door[f'{form} no check']:.1f} | | |")
            lines.append(f"| cached tiles via nginx, {what}, valid tk (learned: from nginx's "
                         f"memory) | {door[f'{form} valid tk']:.1f} | {ratio:.3f} (to no check) "
                         "| >= 0.9 |")
        lines.append("")
        lines.append("In-process `services.access.control.check` (warm caches): " + ", ".join(
            f"{k} {v:.1f} µs" for k, v in micro.items()))
        text = "\n".join(lines)
        print(text)
        append_results("auth", text)
        return 0
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
