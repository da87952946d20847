"""Routing (issue 15): single-route latency at 8 concurrent clients on the sample network
(over HTTP, /api/route on the hangzhou node, and in process) and on a generated grid network of
about 100,000 edges (in process), and the topology build time of that grid. Not a test.

Run from the repository root:  .venv/bin/python bench/routing.py [--parts sample,grid]
Starts a private PostGIS and the national, zhejiang and hangzhou nodes on free ports (nothing
else is touched), prints the table and appends it to bench/results/routing.md. Exit code 0
whatever the figures; 1 when setup failed or a request erred.

Part `halls`: /api/halls/nearest (goal p95 < 100 ms at 8 clients) for an item every office of
the sample handles (55 candidates, more than the goal's 30) from random door plates, over HTTP
and in process, compared in the same run with a straight-line ranking of the same offices (one
KNN query, no routing), so the routing's cost is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg2
from shapely.geometry import LineString

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from auth import append_results, free_port, write_config
from places import machine
from places_engines import p95

from geoplat_settings import LayerSettings, RoutingMapping
from layers.load import LayerSpec, load_layer
from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster, ensure_database
from services.db import Database
from services.maps import landmarks, topology
from services.maps.errors import RouteError
from services.maps.halls import Halls
from services.maps.hours import Hours
from services.maps.routing import Router

GOAL_MS = 50.0
HALLS_GOAL_MS = 100.0
HALLS_ITEM = "GAHJ009"  # 居住证申领: every hall, street centre and community station
HZ_EXTENT = (118.34, 29.18, 120.73, 30.57)


def pairs_from(dsn: str, n: int, seed: int, max_m: float | None = None) -> list[tuple]:
    """n pairs of door plates (sample) drawn with a seed; at most max_m apart if given."""
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT ST_X(geom), ST_Y(geom) FROM addresses ORDER BY fid")
        pts = cur.fetchall()
    conn.close()
    rng = random.Random(seed)
    out: list[tuple] = []
    while len(out) < n:
        a, b = rng.sample(pts, 2)
        if max_m is None or metres(a, b) <= max_m:
            out.append((a, b))
    return out


def metres(a: tuple, b: tuple) -> float:
    dx = (a[0] - b[0]) * 111_320 * np.cos(np.radians((a[1] + b[1]) / 2))
    return float(np.hypot(dx, (a[1] - b[1]) * 110_574))


def in_process(router: Router, pairs: list[tuple], concurrency: int) -> tuple[list[float], int]:
    """Every pair once by `concurrency` threads; (latencies s, errors)."""
    errors = 0

    def one(p: tuple) -> float:
        nonlocal errors
        t = time.perf_counter()
        try:
            router.route([p[0], p[1]])
        except RouteError:
            errors += 1
        return time.perf_counter() - t

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, pairs[:concurrency]))  # warm the pool's connections
        errors = 0
        lat = list(pool.map(one, pairs))
    return lat, errors


async def over_http(base: str, pairs: list[tuple], concurrency: int) -> tuple[list[float], int]:
    import httpx

    lat = [0.0] * len(pairs)
    bad = 0
    nxt = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal nxt, bad
            while nxt < len(pairs):
                i, nxt = nxt, nxt + 1
                a, b = pairs[i]
                t = time.perf_counter()
                r = await client.get(f"{base}/api/route", params={
                    "from": f"{a[0]},{a[1]}", "to": f"{b[0]},{b[1]}"})
                lat[i] = time.perf_counter() - t
                if r.status_code != 200:
                    bad += 1
                    if bad <= 3:
                        print(f"  {r.status_code}: {r.text[:160]}", file=sys.stderr)
        for _ in range(2):  # warm-up
            await client.get(f"{base}/api/route", params={
                "from": f"{pairs[0][0][0]},{pairs[0][0][1]}",
                "to": f"{pairs[0][1][0]},{pairs[0][1][1]}"})
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, bad


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc: the backend runs as postgres)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_query(dsn: str, make: Any, items: list[Any]) -> tuple[float, float, int]:
    """One thread over one connection: CPU ms per query of its PostgreSQL backend and of this
    process (what load spoils less than wall time), and the number of queries. `make(db)`
    gives the function to call on each item; the first item warms it (landmarks, snaps)."""
    db = Database(dsn, maxconn=1)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            pid = int(cur.fetchone()["pid"])
        fn = make(db)
        fn(items[0])
        c0, p0 = cpu_seconds(pid), time.process_time()
        for item in items:
            fn(item)
        n = len(items)
        return (cpu_seconds(pid) - c0) / n * 1000, (time.process_time() - p0) / n * 1000, n
    finally:
        db.close()


def whole_network(run: Any) -> Any:
    """run() with the landmarks' pruning off: every query reads the whole network, as before
    services/maps/landmarks.py (the bounds are still computed, then judged too wide)."""
    keep, landmarks.WHOLE_SHARE = landmarks.WHOLE_SHARE, -1.0
    try:
        return run()
    finally:
        landmarks.WHOLE_SHARE = keep


def cpu_table(rows: list[tuple[str, tuple[float, float, int]]]) -> list[str]:
    out = ["", "| CPU per query, 1 thread | queries | PostgreSQL ms | Python ms | total ms |",
           "|---|---|---|---|---|"]
    for name, (pg, py, n) in rows:
        out.append(f"| {name} | {n} | {pg:.1f} | {py:.1f} | {pg + py:.1f} |")
    return out


def row(name: str, lat: list[float], errors: int, extra: str = "", goal: float = GOAL_MS) -> str:
    ms = sorted(x * 1000 for x in lat)
    med = ms[len(ms) // 2] if ms else float("nan")
    p = p95(lat)
    return (f"| {name} | {len(lat)} | {med:.1f} | {p:.1f} | {'yes' if p < goal else 'no'} "
            f"| {errors} | {extra} |")


async def halls_http(base: str, points: list[tuple], concurrency: int
                     ) -> tuple[list[float], int]:
    import httpx

    lat = [0.0] * len(points)
    bad = 0
    nxt = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal nxt, bad
            while nxt < len(points):
                i, nxt = nxt, nxt + 1
                t = time.perf_counter()
                r = await client.get(f"{base}/api/halls/nearest", params={
                    "item": HALLS_ITEM, "lon": points[i][0], "lat": points[i][1],
                    "limit": 10, "open_now": "true"})
                lat[i] = time.perf_counter() - t
                if r.status_code != 200:
                    bad += 1
                    if bad <= 3:
                        print(f"  {r.status_code}: {r.text[:160]}", file=sys.stderr)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, bad


def halls_in_process(fn: object, points: list[tuple], concurrency: int
                     ) -> tuple[list[float], int]:
    errors = 0

    def one(p: tuple) -> float:
        nonlocal errors
        t = time.perf_counter()
        try:
            fn(HALLS_ITEM, p[0], p[1])  # type: ignore[operator]
        except RouteError:
            errors += 1
        return time.perf_counter() - t

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, points[:concurrency]))
        errors = 0
        lat = list(pool.map(one, points))
    return lat, errors


def halls(args: argparse.Namespace, dsn: str, base_url: str, out: list[str]) -> int:
    points = [p[0] for p in pairs_from(dsn, args.queries, args.seed + 1)]
    db = Database(dsn, maxconn=args.concurrency)
    router = Router(db, HZ_EXTENT)
    h = Halls(db, router, Hours())
    n = h.nearest(HALLS_ITEM, *points[0])["candidates"]
    # how often the straight-line order's first office is the route's first
    same = sum(1 for p in points[:100] if h.straight(HALLS_ITEM, *p, limit=1)
               == [h.nearest(HALLS_ITEM, *p, limit=1)["features"][0]["id"]])
    out.append(f"\n/api/halls/nearest: item {HALLS_ITEM} ({n} candidate offices), {len(points)}"
               f" random door plates (seed {args.seed + 1}), limit 10, open_now; the nearest by"
               f" straight line was the nearest by drive time for {same} of 100.\n")
    out.append("| halls | queries | median ms | p95 ms | p95 < 100 ms | errors | note |")
    out.append("|---|---|---|---|---|---|---|")
    status = 0
    for c in (1, args.concurrency):
        lat, bad = asyncio.run(halls_http(base_url, points, c))
        out.append(row(f"GET /api/halls/nearest (HTTP), {c} client{'s' if c > 1 else ''}", lat,
                       bad, "pgr_dijkstra to the offices that can rank, landmark-pruned edges", HALLS_GOAL_MS))
        lat, errors = halls_in_process(h.nearest, points, c)
        out.append(row(f"Halls.nearest (in process), {c} thread{'s' if c > 1 else ''}", lat,
                       errors, "the query layer alone", HALLS_GOAL_MS))
        lat, errors = halls_in_process(h.straight, points, c)
        out.append(row(f"straight-line ranking (in process), {c} thread{'s' if c > 1 else ''}",
                       lat, errors, "KNN by distance, no routing", HALLS_GOAL_MS))
        status |= 1 if bad or errors else 0
    db.close()

    def nearest(d: Database) -> Any:
        hh = Halls(d, Router(d, HZ_EXTENT), Hours())
        return lambda p: hh.nearest(HALLS_ITEM, p[0], p[1], limit=10, open_first=True)

    out += cpu_table([("Halls.nearest (in process)", cpu_per_query(dsn, nearest, points)),
                      ("the same, landmarks off (whole network)",
                       whole_network(lambda: cpu_per_query(dsn, nearest, points)))])
    return status


# ---------------------------------------------------------------- the grid network

def grid_file(base: Path, n: int, spacing_m: float) -> Path:
    """n x n straight roads crossing at every spacing_m: 2 n (n-1) edges once noded. Every
    10th road an arterial, every 7th other road one-way (alternating directions)."""
    lon0, lat0 = 119.95, 30.05
    dlat = spacing_m / 110_574
    dlon = spacing_m / (111_320 * np.cos(np.radians(lat0 + n * dlat / 2)))
    rows = []
    for axis in (0, 1):
        for i in range(n):
            if axis == 0:
                line = LineString([(lon0 + i * dlon, lat0), (lon0 + i * dlon, lat0 + (n - 1) * dlat)])
            else:
                line = LineString([(lon0, lat0 + i * dlat), (lon0 + (n - 1) * dlon, lat0 + i * dlat)])
            kind = "arterial" if i % 10 == 0 else "local"
            one = "no" if kind == "arterial" or i % 7 else "yes"
            if one == "yes" and (i // 7) % 2:
                line = LineString(line.coords[::-1])
            rows.append({"name": f"{'经' if axis == 0 else '纬'}{i}路", "kind": kind, "oneway": one,
                         "geometry": line})
    path = base / "grid.gpkg"
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4490").to_file(
        path, layer="grid_roads", driver="GPKG", engine="pyogrio")
    return path


def grid(args: argparse.Namespace, cluster: Cluster, base: Path, out: list[str]) -> int:
    n = args.grid_side
    ensure_database(cluster.dsn(), "bench_grid")
    dsn = cluster.dsn("bench_grid")
    path = grid_file(base, n, args.grid_spacing)
    load_layer(dsn, LayerSpec(id="grid_roads", title="grid", path=path,
                              geometry_type="LineString", source_layer="grid_roads"))
    layer = LayerSettings(id="grid_roads", title="grid", file=str(path),
                          geometry_type="LineString",
                          routing=RoutingMapping(kind="kind", name="name", oneway="oneway"))
    t = time.perf_counter()
    res = topology.build(dsn, "grid", [layer], force=True)
    build_s = time.perf_counter() - t
    db = Database(dsn, maxconn=args.concurrency)
    router = Router(db)
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
                    " (SELECT ST_Extent(geom) e FROM geoplat_route_edges) x")
        x0, y0, x1, y1 = cur.fetchone()
    conn.close()
    rng = random.Random(args.seed)

    def pt() -> tuple[float, float]:
        return rng.uniform(x0, x1), rng.uniform(y0, y1)

    side_km = (n - 1) * args.grid_spacing / 1000
    any_pairs = [(pt(), pt()) for _ in range(args.queries)]
    near: list[tuple] = []
    while len(near) < args.queries:
        a, b = pt(), pt()
        if metres(a, b) <= 5000:
            near.append((a, b))
    t = time.perf_counter()
    router.route([any_pairs[0][0], any_pairs[0][1]])  # a worker's first route
    first_s = time.perf_counter() - t
    out.append(f"\nGrid network: {n} x {n} roads {args.grid_spacing:.0f} m apart "
               f"({side_km:.1f} km square), noded into {res.edges} edges and {res.vertices} "
               f"vertices; topology build (read, GEOS noding, costs, COPY, indexes, strongly "
               f"connected parts) **{build_s:.1f} s**; a worker's first route {first_s:.1f} s"
               f" (landmarks, services/maps/landmarks.py, only up to 20,000 edges).\n")
    out.append("| grid network, in process | routes | median ms | p95 ms | p95 < 50 ms | errors | note |")
    out.append("|---|---|---|---|---|---|---|")
    status = 0
    for name, pairs, note in [("random pairs", any_pairs, "points anywhere in the square"),
                              ("pairs ≤ 5 km apart", near, "a citizen and a nearby hall")]:
        for c in (1, args.concurrency):
            lat, errors = in_process(router, pairs, c)
            out.append(row(f"{name}, {c} thread{'s' if c > 1 else ''}", lat, errors, note))
            status |= 1 if errors else 0
    db.close()

    def route(d: Database) -> Any:
        r = Router(d)
        return lambda p: r.route([p[0], p[1]])

    out += cpu_table([(f"Router.route, {name}", cpu_per_query(dsn, route, pairs))
                      for name, pairs in [("random pairs", any_pairs), ("pairs ≤ 5 km apart", near)]])
    return status


# ---------------------------------------------------------------- the sample network

def sample(args: argparse.Namespace, cluster: Cluster, base: Path, out: list[str]) -> tuple[int, list]:
    settings = settings_mod.load(write_config(base, cluster))
    procs, _ = supervisor.up(settings, only=["national", "zhejiang", "hangzhou"],
                             echo=lambda *a: None)
    hz = settings.node("hangzhou")
    dsn = federation_mod.node_dsn(settings, hz)
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT figures FROM geoplat_route_build")
        figures = cur.fetchone()[0]
    conn.close()
    status = 0
    if "halls" in args.parts.split(","):
        status |= halls(args, dsn, hz.base_url, out)
    if "sample" not in args.parts.split(","):
        return status, procs
    pairs = pairs_from(dsn, args.queries, args.seed)
    out.append(f"\nSample network (data-samples/hangzhou.gpkg `roads`): {figures['edges']} edges, "
               f"{figures['vertices']} vertices, built in {figures['seconds']} s at load. "
               f"Pairs: {len(pairs)} random door plates of the sample (seed {args.seed}); "
               f"{args.concurrency} concurrent clients; hangzhou node with {hz.workers} workers.\n")
    out.append("| sample network | routes | median ms | p95 ms | p95 < 50 ms | errors | note |")
    out.append("|---|---|---|---|---|---|---|")
    db = Database(dsn, maxconn=args.concurrency)
    for c in (1, args.concurrency):
        lat, bad = asyncio.run(over_http(hz.base_url, pairs, c))
        out.append(row(f"GET /api/route (HTTP), {c} client{'s' if c > 1 else ''}", lat, bad,
                       "drive; JSON with steps"))
        lat, errors = in_process(Router(db, HZ_EXTENT), pairs, c)
        out.append(row(f"Router.route (in process), {c} thread{'s' if c > 1 else ''}", lat,
                       errors, "the query layer alone"))
        status |= 1 if bad or errors else 0
    db.close()

    def route(d: Database) -> Any:
        r = Router(d, HZ_EXTENT)
        return lambda p: r.route([p[0], p[1]])

    out += cpu_table([("Router.route (in process)", cpu_per_query(dsn, route, pairs)),
                      ("the same, landmarks off (whole network)",
                       whole_network(lambda: cpu_per_query(dsn, route, pairs)))])
    return status, procs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="sample,halls,grid")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--grid-side", type=int, default=225, help="roads per direction")
    ap.add_argument("--grid-spacing", type=float, default=100.0, help="metres")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    out = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {machine()}"
           + (f"\n\n{args.note}" if args.note else "")]
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-routing-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    procs: list = []
    status = 0
    try:
        if parts & {"sample", "halls"}:
            print("starting national + zhejiang + hangzhou", flush=True)
            st, procs = sample(args, cluster, base, out)
            status |= st
        if "grid" in parts:
            print("building the grid network", flush=True)
            status |= grid(args, cluster, base, out)
    except Exception as exc:  # noqa: BLE001  (reported, recorded, exit code 1)
        print(f"setup or run failed: {exc!r}", file=sys.stderr)
        out.append(f"\nRun failed: {exc!r}")
        status = 1
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    text = "\n".join(out)
    print(text)
    append_results("routing", text)
    return status


if __name__ == "__main__":
    sys.exit(main())
