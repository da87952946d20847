"""Side-by-side load test of our OGC API Features/Tiles nodes against tipg on the same PostGIS.

Run from the repository root with the project venv:  .venv/bin/python bench/features.py
Starts the federation if none is running (and stops it again at the end), starts one tipg per
database needed, runs each case for a fixed time at a fixed concurrency against both servers,
prints a table and appends it to bench/results/features.md. Exit code 0 even when we are slower;
non-zero only when a request failed (status not 200/204), answers differ, or setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TIPG_VENV = BENCH / ".venv-tipg"
GEOPLAT = [str(ROOT / ".venv" / "bin" / "geoplat")]
OK_STATUS = {"200", "204"}  # 204: an empty tile (tipg answers 200 with an empty body)
# case -> (node, table). Only public layers: addresses and places need a signed-in user
# (`access: registered`), and an anonymous load test of them would measure 401s.
CASES = {"item": ("hangzhou", "buildings"), "bbox": ("hangzhou", "buildings"),
         "tile-z8": ("national", "counties"), "tile-z14": ("hangzhou", "buildings")}


@dataclass
class Case:
    """One request mix: the same resources addressed on our node and on tipg."""
    name: str
    node: str
    table: str
    ours: list[str]
    tipg: list[str]


@dataclass
class Result:
    requests: int = 0
    elapsed: float = 0.0
    client_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def add(self, other: Result) -> None:
        self.requests += other.requests
        self.elapsed += other.elapsed
        self.client_cpu_s += other.client_cpu_s
        self.latencies += other.latencies
        self.statuses.update(other.statuses)

    @property
    def client_cpu(self) -> float:
        """Share of one core the load generator itself used."""
        return self.client_cpu_s / self.elapsed if self.elapsed else 0.0

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s not in OK_STATUS)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def p95_ms(self) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


# ---------------------------------------------------------------- servers

def node_meta(node_id: str) -> dict:
    return json.loads((ROOT / "var" / "nodes" / node_id / "node.json").read_text(encoding="utf-8"))


def port_busy(url: SplitResult) -> bool:
    with socket.socket() as s:
        return s.connect_ex((url.hostname or "127.0.0.1", url.port or 80)) == 0


def ensure_federation(needed: set[str], db_was_running: bool) -> list[str] | None:
    """Reuse healthy nodes, or start the needed ones when none runs.

    Returns the `geoplat` command that undoes what this call started (None if it started
    nothing). Only a fully stopped federation is started, so that command stops nothing
    someone else started; a managed PostGIS that was already running is kept.
    """
    out = subprocess.run(GEOPLAT + ["status", "--json"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    rows = {r["node"]: r for r in json.loads(out.stdout)}
    if all(rows[n]["status"] == "ok" for n in needed):
        print(f"reusing running nodes: {', '.join(sorted(needed))}")
        return None
    if any(r["status"] != "stopped" for r in rows.values()):
        raise RuntimeError("federation partly running or unhealthy; see `geoplat status`")
    busy = [r["url"] for r in rows.values() if port_busy(urlsplit(r["url"]))]
    if busy:
        raise RuntimeError(f"ports in use by servers geoplat does not know: {', '.join(busy)}")
    only = [arg for n in sorted(needed) for arg in ("--node", n)]  # the others are not measured
    print(f"starting {', '.join(sorted(needed))} (geoplat up --detach {' '.join(only)})")
    subprocess.run(GEOPLAT + ["up", "--detach", *only], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return ["down", "--keep-db"] if db_was_running else ["down"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tipg_venv() -> None:
    """tipg in its own venv, with uvicorn[standard] like our nodes.

    Plain `uvicorn` (h11 + asyncio loop) answered every request ~44 ms late here, even /healthz:
    that would measure the HTTP stack, not tipg.
    """
    python = TIPG_VENV / "bin" / "python"
    check = [str(python), "-c", "import tipg, httptools, uvloop"]
    if not python.exists() or subprocess.run(check, capture_output=True, check=False).returncode:
        print(f"installing tipg into {TIPG_VENV}")
        subprocess.run(["python3", "-m", "venv", str(TIPG_VENV)], check=True)
        pip = str(TIPG_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "tipg", "uvicorn[standard]"], check=True)


def start_tipg(node: str, dsn: str, workers: int) -> tuple[subprocess.Popen, str]:
    """One tipg (uvicorn, same worker count as our node) on a free loopback port."""
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": dsn, "TIPG_DEBUG": "false"}
    with open(BENCH / "results" / f"tipg-{node}.log", "wb") as log:  # the child has its copy
        proc = subprocess.Popen(
            [str(TIPG_VENV / "bin" / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--http", "httptools",
             "--loop", "uvloop", "--no-access-log", "--log-level", "warning"],
            cwd=BENCH, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tipg exited with code {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_group(proc)
    raise RuntimeError("tipg did not become healthy in 60 s")


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- request lists

def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def build_cases(names: list[str], rng: random.Random) -> list[Case]:
    """Fixed URL lists drawn (seeded) from the data itself, so every request hits real features."""
    cases = []
    for name in names:
        node, table = CASES[name]
        with psycopg2.connect(node_meta(node)["database"]["dsn"]) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT fid, ST_X(c), ST_Y(c) FROM (SELECT fid, ST_PointOnSurface(geom) c "
                        f"FROM public.{table}) s ORDER BY fid")
            rows = cur.fetchall()
        ours_c, tipg_c = f"/ogc/collections/{table}", f"/collections/public.{table}"
        if name == "item":
            fids = [r[0] for r in rng.sample(rows, min(200, len(rows)))]
            ours = [f"{ours_c}/items/{f}?f=json" for f in fids]
            tipg = [f"{tipg_c}/items/{f}?f=geojson" for f in fids]
        elif name == "bbox":
            bboxes = [f"{x - 0.01:.5f},{y - 0.01:.5f},{x + 0.01:.5f},{y + 0.01:.5f}"
                      for _, x, y in rng.sample(rows, 50)]  # 0.02 deg boxes centred on features
            ours = [f"{ours_c}/items?bbox={b}&limit=100&f=json" for b in bboxes]
            tipg = [f"{tipg_c}/items?bbox={b}&limit=100&f=geojson" for b in bboxes]
        else:
            z = int(name.removeprefix("tile-z"))
            tiles = sorted({tile_xy(lon, lat, z) for _, lon, lat in rows})
            tiles = rng.sample(tiles, min(100, len(tiles)))
            # OGC path order is {tileMatrix}/{tileRow}/{tileCol}; tipg uses {z}/{x}/{y}
            ours = [f"{ours_c}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt" for x, y in tiles]
            tipg = [f"{tipg_c}/tiles/WebMercatorQuad/{z}/{x}/{y}" for x, y in tiles]
        cases.append(Case(name, node, table, ours, tipg))
    return cases


# ---------------------------------------------------------------- load generator

async def run_load(base: str, paths: list[str], concurrency: int, duration: float,
                   headers: dict[str, str]) -> Result:
    """`concurrency` closed-loop clients cycling through `paths` for `duration` seconds."""
    result = Result()
    nxt = iter(range(sys.maxsize))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers)
    async with client:
        async def worker(stop_at: float) -> None:
            while time.perf_counter() < stop_at:
                path = paths[next(nxt) % len(paths)]
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] += 1
                result.requests += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(t0 + duration) for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - t0
        result.client_cpu_s = time.process_time() - cpu0
    return result


def same_answers(case: Case, ours: str, tipg: str, headers: dict[str, str]) -> str | None:
    """The first item/bbox request must return the same feature ids on both servers."""
    if case.name not in {"item", "bbox"}:
        return None
    ids = []
    for label, base, path in (("ours", ours, case.ours[0]), ("tipg", tipg, case.tipg[0])):
        r = httpx.get(base + path, headers=headers, timeout=30)
        if r.status_code != 200:
            return f"{case.name}: {label} answered {r.status_code} to {path}"
        body = r.json()
        ids.append(sorted(int(f["id"]) for f in body.get("features", [body])))
    if ids[0] == ids[1]:
        return None
    return f"{case.name}: different features (ours {len(ids[0])}, tipg {len(ids[1])})"


def measure(case: Case, ours: str, tipg: str, args: argparse.Namespace,
            headers: dict[str, str]) -> dict[str, Result]:
    """Warm both servers up, then load them in alternating slices of the duration.

    Alternating means load from elsewhere on the machine hits both sides alike.
    """
    sides = {"ours": (ours, case.ours), "tipg": (tipg, case.tipg)}
    results = {label: Result() for label in sides}
    for base, paths in sides.values():
        asyncio.run(run_load(base, paths, args.concurrency, args.warmup, headers))
    for i in range(args.rounds):
        for label in (("ours", "tipg") if i % 2 == 0 else ("tipg", "ours")):
            base, paths = sides[label]
            results[label].add(asyncio.run(
                run_load(base, paths, args.concurrency, args.duration / args.rounds, headers)))
    return results


# ---------------------------------------------------------------- report

def git_commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    dirty = "-dirty" if git("status", "--short") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def table(rows: list[tuple[Case, Result, Result]]) -> str:
    lines = [("| case | ours req/s | ours p95 ms | tipg req/s | tipg p95 ms | ours/tipg "
              "| errors ours/tipg | client CPU ours/tipg |"),
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for case, o, t in rows:
        ratio = o.rps / t.rps if t.rps else math.nan
        lines.append(f"| {case.name} {case.node}/{case.table} | {o.rps:.1f} | {o.p95_ms:.0f} "
                     f"| {t.rps:.1f} | {t.p95_ms:.0f} | {ratio:.2f} | {o.errors}/{t.errors} "
                     f"| {100 * o.client_cpu:.0f}%/{100 * t.client_cpu:.0f}% |")
    return "\n".join(lines)


def bench_key(fed) -> str:
    """A server key with quotas and rate no benchmark reaches (account `bench`, loopback)."""
    from nodes import federation
    from services.access import apikeys
    from services.db import Database
    from services.sso import accounts

    main = next(n for n in fed.nodes if n.tier == "main")
    db = Database(federation.node_dsn(fed, main), maxconn=1)
    user = accounts.by_name(db, "bench") or accounts.create(
        db, "bench", os.urandom(16).hex(), roles=["developer"], via="install")
    key, _ = apikeys.create_key(db, "install", user.id, "benchmark", "server",
                                ["127.0.0.0/8", "::1/128"],
                                quotas={k: 10**9 for k in apikeys.KINDS},
                                rate_per_second=10**6, actor="bench")
    return key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per case and server")
    p.add_argument("--warmup", type=float, default=3.0, help="untimed seconds per case and server")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5,
                   help="split --duration into this many slices, alternating ours and tipg")
    p.add_argument("--cases", default="item,bbox,tile-z8,tile-z14",
                   help="comma list of item, bbox, tile-z8, tile-z14")
    p.add_argument("--accept-encoding", default="identity",
                   help="identity (default: tipg would gzip, our node does not) or e.g. gzip")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--no-record", action="store_true",
                   help="do not append to bench/results/features.md")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(names) - set(CASES):
        p.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.rounds < 1 or args.concurrency < 1 or args.duration <= 0:
        p.error("--rounds and --concurrency must be >= 1, --duration > 0")
    headers = {"Accept-Encoding": args.accept_encoding}
    (BENCH / "results").mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(ROOT))
    from nodes import federation  # the project's own typed config: ports, workers, database
    from nodes import settings as settings_mod

    load_before = os.getloadavg()[0]  # others' work on this machine skews every number
    fed = settings_mod.load()
    needed = {CASES[n][0] for n in names}
    stop_cmd: list[str] | None = None
    tipgs: dict[str, tuple[subprocess.Popen, str]] = {}
    rows: list[tuple[Case, Result, Result]] = []
    problems: list[str] = []
    try:
        db_running = (federation.needs_cluster(fed)
                      and federation.managed_cluster(fed).is_running())
        stop_cmd = ensure_federation(needed, db_running)
        # nodes require a key by default: measure with one, as a real client sends it
        headers["X-Api-Key"] = bench_key(fed)
        ensure_tipg_venv()
        for node in sorted(needed):
            tipgs[node] = start_tipg(node, node_meta(node)["database"]["dsn"], fed.node(node).workers)
            print(f"tipg for {node}: {tipgs[node][1]} ({fed.node(node).workers} workers)")
        cases = build_cases(names, random.Random(args.seed))
        for case in cases:
            ours, tipg = fed.node(case.node).base_url, tipgs[case.node][1]
            if msg := same_answers(case, ours, tipg, headers):
                problems.append(msg)
            results = measure(case, ours, tipg, args, headers)
            for label, r in results.items():
                print(f"  {case.name:9} {label}: {r.rps:7.1f} req/s  p95 {r.p95_ms:6.0f} ms  "
                      f"client cpu {100 * r.client_cpu:3.0f}%  {dict(r.statuses)}")
                if r.errors:
                    problems.append(f"{case.name} {label}: {dict(r.statuses)}")
            rows.append((case, results["ours"], results["tipg"]))
    except (RuntimeError, subprocess.CalledProcessError, psycopg2.Error, httpx.HTTPError) as exc:
        problems.append(f"setup: {exc}")
    finally:
        for proc, _ in tipgs.values():
            stop_group(proc)
        if stop_cmd:
            subprocess.run(GEOPLAT + stop_cmd, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)

    if rows:
        tipg_version = subprocess.run([str(TIPG_VENV / "bin" / "python"), "-c",
                                       "import tipg; print(tipg.__version__)"],
                                      capture_output=True, text=True, check=False).stdout.strip()
        head = (f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}, "
                f"{os.cpu_count()} cores, load average {load_before:.1f} before / "
                f"{os.getloadavg()[0]:.1f} after\n\n"
                f"{args.duration:g} s per case and server in {args.rounds} alternating slices "
                f"after {args.warmup:g} s warm-up, concurrency {args.concurrency}, Accept-Encoding "
                f"{args.accept_encoding}, tipg {tipg_version}, tipg with as many uvicorn workers "
                f"as the node; client, servers and PostGIS share the machine.")
        report = f"{head}\n\n{table(rows)}\n"
        if problems:
            report += "\nProblems:\n" + "".join(f"- {m}\n" for m in problems)
        print("\n" + report)
        if not args.no_record:
            with open(BENCH / "results" / "features.md", "a", encoding="utf-8") as f:
                f.write(report + "\n")
    for m in problems:
        print(f"problem: {m}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
