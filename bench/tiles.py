"""E-map tile benchmark: cached tiles through the front door vs plain nginx vs MapProxy alone,
seeding tiles/s and cold-render latency per layer.

Run from the repository root:  .venv/bin/python bench/tiles.py [--duration 10] [--connections 32]
Uses the running federation (`geoplat up --detach`), or starts it and stops it again. Needs `wrk`
(Debian package). Seeds the hangzhou node over a fixed bbox (clean first), then in one run on the
same cached tiles measures, with wrk (Lua script cycling through every cached tile URL):
  static  - a plain nginx serving the cache directory (the ceiling),
  front   - the node's public port (nginx front door, try_files on the cache),
  mapproxy- the node app (MapProxy behind our checks) on its own port, no nginx.
Prints a table and appends it to bench/results/tiles.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nodes import settings as settings_mod
from nodes import supervisor
from nodes.pygeoapi_config import node_dir
from tiles.frontdoor import NGINX
from tiles.grids import tile_at
from tiles.seed import clean, count_tiles, seed

BBOX = (120.10, 30.20, 120.30, 30.30)
SEED_LEVELS = (10, 16)
NODE = "hangzhou"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port}")


def wrk(base: str, paths: list[str], duration: int, connections: int, tmp: Path) -> tuple[float, str]:
    script = tmp / "paths.lua"
    lua_paths = ",\n".join('"' + p + '"' for p in paths)
    script.write_text(f"paths = {{{lua_paths}}}\ni = 0\nrequest = function()\n"
                      "  i = i + 1\n  return wrk.format(nil, paths[(i % #paths) + 1])\nend\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", str(script), base], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    note = f"p99 {p99.group(1) if p99 else '?'}" + (f", {errors.group(1)} non-2xx" if errors else "")
    return rps, note


def static_nginx(cache: Path, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    for d in ("logs", "tmp"):
        (tmp / d).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp / "static.conf").write_text(
        f"daemon off;\n{user}worker_processes 2;\npid {tmp}/static.pid;\nerror_log {tmp}/logs/e.log;\n"
        "events { worker_connections 1024; }\nhttp {\n types { image/png png; image/jpeg jpeg; }\n"
        f" access_log off; sendfile on; tcp_nopush on; keepalive_requests 10000;\n"
        f" client_body_temp_path {tmp}/tmp/b; proxy_temp_path {tmp}/tmp/p;\n"
        f" fastcgi_temp_path {tmp}/tmp/f; uwsgi_temp_path {tmp}/tmp/u; scgi_temp_path {tmp}/tmp/s;\n"
        f" server {{ listen 127.0.0.1:{port}; root {cache}; }}\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "static.conf"),
                             "-e", str(tmp / "logs" / "e.log")])
    wait_port(port)
    return proc, port


def app_direct(ndir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "GEOPLAT_NODE_DIR": str(ndir)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "nodes.asgi:create_app",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                             "--no-access-log", "--log-level", "warning"], env=env, cwd=ROOT,
                            start_new_session=True)
    wait_port(port, 60)
    return proc, port


def cold_render(base: str, ndir: Path, layers: list[str], n: int) -> dict[str, tuple[float, float]]:
    """p50/p95 (ms) of first requests for tiles in distinct meta-tiles at level 17."""
    out = {}
    x0, y0 = tile_at("c", BBOX[0], BBOX[3], 17)
    for layer in layers:
        clean(ndir, layers=[layer], grids=["c"], levels=(17, 17))
        times = []
        with httpx.Client(timeout=120) as client:
            for i in range(n):
                x, y = x0 + 4 * (i % 6), y0 + 4 * (i // 6)
                ext = "jpeg" if layer in ("img", "ter") else "png"
                t = time.perf_counter()
                r = client.get(f"{base}/wmts/{layer}/c/17/{x}/{y}.{ext}")
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
        times.sort()
        out[layer] = (statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cold", type=int, default=12, help="cold tiles per layer")
    args = ap.parse_args()
    settings = settings_mod.load()
    started = False
    if NODE not in supervisor.running_nodes(settings):
        print("starting the federation (geoplat up --detach)")
        subprocess.run([str(ROOT / ".venv" / "bin" / "geoplat"), "up", "--detach"], check=True)
        started = True
    node = settings.node(NODE)
    ndir = node_dir(settings, node)
    rows: list[tuple[str, str, str]] = []
    procs: list[subprocess.Popen] = []
    try:
        for layer in ("vec", "cva", "img"):
            clean(ndir, layers=[layer], grids=["c"], levels=SEED_LEVELS)
            n = count_tiles("c", BBOX, SEED_LEVELS)
            res = seed(ndir, layer, "c", SEED_LEVELS, BBOX)
            rows.append((f"seed {layer}_c levels {SEED_LEVELS[0]}-{SEED_LEVELS[1]}",
                         f"{res.rate:.0f} tiles/s", f"{n} tiles in {res.seconds:.1f} s"))
        cache = ndir / "cache"
        files = sorted((cache / "vec_c" / "c").glob("*/*/*.png"))
        rel = [f.relative_to(cache / "vec_c" / "c").parts for f in files]
        front_paths = [f"/wmts/vec/c/{int(z):02d}/{x}/{y}" for z, x, y in rel]
        static_paths = ["/" + str(f.relative_to(cache)) for f in files]
        with tempfile.TemporaryDirectory(prefix="geoplat-bench-") as t:
            tmp = Path(t)
            sproc, sport = static_nginx(cache, tmp)
            procs.append(sproc)
            aproc, aport = app_direct(ndir)
            procs.append(aproc)
            httpx.get(f"http://127.0.0.1:{aport}{front_paths[0]}", timeout=30).raise_for_status()
            res = {}
            for name, base, paths in (("static", f"http://127.0.0.1:{sport}", static_paths),
                                      ("front", node.base_url, front_paths),
                                      ("mapproxy", f"http://127.0.0.1:{aport}", front_paths)):
                res[name] = wrk(base, paths, args.duration, args.connections, tmp)
            ratio = res["front"][0] / res["static"][0]
            rows.append((f"static nginx, {len(files)} cached vec tiles", f"{res['static'][0]:.0f} req/s", res["static"][1]))
            rows.append(("front door (nginx alias, misses to the app)", f"{res['front'][0]:.0f} req/s",
                         f"{res['front'][1]}; front/static = {ratio:.2f} (goal >= 0.8)"))
            rows.append(("MapProxy via node app, no nginx", f"{res['mapproxy'][0]:.0f} req/s", res["mapproxy"][1]))
        for layer, (p50, p95) in cold_render(node.base_url, ndir, ["vec", "cva", "img", "cia", "ter", "cta"],
                                             args.cold).items():
            rows.append((f"cold render {layer}_c level 17 (meta 4x4)", f"p50 {p50:.0f} ms", f"p95 {p95:.0f} ms"))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15) if p.args[0] != NGINX else p.terminate()
            except ProcessLookupError:
                pass
            p.wait(timeout=20)
        if started:
            subprocess.run([str(ROOT / ".venv" / "bin" / "geoplat"), "down", "--keep-db"], check=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip()
    head = (f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.2f}, wrk -t2 -c{args.connections} -d{args.duration}s\n\n"
            "| case | result | notes |\n|---|---|---|\n")
    table = head + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    print(table)
    out = ROOT / "bench" / "results" / "tiles.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
