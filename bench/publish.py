"""Publishing speed: our loader (`layers.publish`) against `ogr2ogr -f PostgreSQL` (PG_USE_COPY).

Run from the repository root:  .venv/bin/python bench/publish.py [--points 1000000 --polygons 100000]
                                                                [--no-node]

In one run: generates a GeoPackage of points and one of polygons (seeded, EPSG:4490), starts a
private PostGIS cluster, then for each file loads it with ogr2ogr and publishes it with ours,
each in its own child process (peak memory = the child's max RSS), alternating the order.

"ours" is measured twice. "ours, new process": `layers.publish.publish` in a fresh Python
process, as the CLI runs it; about half a second of it is importing pandas, pyarrow, pyogrio,
pyproj and pydantic. "ours, node API": a publisher uploads the file to a running node
(`POST /api/layers`, the upload page's path; the demo national + hangzhou nodes on the same
PostgreSQL server), timed until the node answers, which is when every worker serves the layer;
its memory is the largest growth of one node process during the publish (peak RSS minus RSS
before: the worker's own few hundred MiB of pygeoapi, MapProxy and Mapnik do not count).
Prints seconds, ours/ogr2ogr speed ratio (goal >= 0.8) and peak memory, and appends the table to
bench/results/publish.md. Both sides end with a primary key and a GIST index; ours also gathers
planner statistics from a small sample (ogr2ogr leaves that to autovacuum).

It also prints CPU seconds per side, the loading process plus the database server's processes
(the postmaster's reaped children and its live ones), and their ratio: on a machine busy with
other work, wall-clock seconds swing by a factor of two between runs, CPU seconds much less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))  # sso_client: the tests' sign-in
RESULTS = ROOT / "bench" / "results" / "publish.md"
# the environment as started: libraries imported later (the nodes' Mapnik, rasterio) point
# PROJ_DATA at their own data, where the system's ogr2ogr finds no proj.db
START_ENV = dict(os.environ)

OURS = """
import logging, sys
from pathlib import Path
logging.disable(logging.CRITICAL)
from layers.publish import NodeContext, publish
ctx = NodeContext(id="bench", dsn=sys.argv[1], node_dir=Path(sys.argv[3]))
[r] = publish(ctx, Path(sys.argv[2]), sys.argv[4])
print(r.feature_count)
"""


def generate(out: Path, points: int, polygons: int) -> tuple[Path, Path]:
    import geopandas as gpd
    import numpy as np
    import pyogrio
    import shapely

    rng = np.random.default_rng(42)
    pts_path, poly_path = out / "points.gpkg", out / "polygons.gpkg"
    x = 118 + rng.random(points) * 4
    y = 28 + rng.random(points) * 3
    gdf = gpd.GeoDataFrame({"code": np.arange(points), "kind": rng.choice(["a", "b", "c"], points),
                            "value": rng.random(points).round(4)},
                           geometry=shapely.points(x, y), crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, pts_path, layer="points")
    cx = 118 + rng.random(polygons) * 4
    cy = 28 + rng.random(polygons) * 3
    r = 0.0005 + rng.random(polygons) * 0.002
    ang = np.linspace(0, 2 * np.pi, 9)[:-1]
    rings = np.stack([cx[:, None] + r[:, None] * np.cos(ang), cy[:, None] + r[:, None] * np.sin(ang)],
                     axis=-1)
    polys = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    gdf = gpd.GeoDataFrame({"code": np.arange(polygons), "name": [f"地块{i}" for i in range(polygons)],
                            "area": rng.random(polygons).round(3)},
                           geometry=polys, crs="EPSG:4490")
    pyogrio.write_dataframe(gdf, poly_path, layer="polygons")
    return pts_path, poly_path


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    """/proc/<pid>/stat fields after the command name (state first; utime, stime at 11, 12)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu(fields: list[str], children: bool = True) -> float:
    """CPU seconds of a process (and of its reaped children) from its stat fields."""
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def server_cpu(postmaster: int) -> float:
    """CPU seconds used so far by a PostgreSQL server: its reaped children and its live ones."""
    total = _cpu(_stat(postmaster))
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            total += _cpu(_stat(child), children=False)
        except OSError:
            continue  # exited meanwhile: counted in cutime next time
    return total


def run_child(cmd: list[str], env: dict | None = None, postmaster: int | None = None
              ) -> tuple[float, float, float]:
    """(seconds, peak RSS MiB, CPU seconds of the child and the server) of one child process."""
    cpu0 = server_cpu(postmaster) if postmaster else 0.0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    time.sleep(0.2)  # let the postmaster reap the child's backend
    cpu = usage.ru_utime + usage.ru_stime + (server_cpu(postmaster) - cpu0 if postmaster else 0.0)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, cpu


def ogr2ogr(dsn_parts: dict, path: Path, table: str, postmaster: int) -> tuple[float, float, float]:
    pg = (f"PG:host={dsn_parts['host']} port={dsn_parts['port']} dbname={dsn_parts['dbname']} "
          f"user={dsn_parts['user']} password={dsn_parts.get('password', '')}")
    env = {**START_ENV, "PG_USE_COPY": "YES"}
    return run_child(["ogr2ogr", "-f", "PostgreSQL", pg, str(path), "-nln", table,
                      "-lco", "GEOMETRY_NAME=geom", "-lco", "FID=fid", "-lco", "SPATIAL_INDEX=GIST",
                      "-a_srs", "EPSG:4490", "-overwrite", "-gt", "65536"], env, postmaster)


def _group_stats(pgid: int) -> list[tuple[int, float]]:
    """(pid, CPU seconds) of every process of a process group (a node and its workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            f = _stat(entry.name)
        except OSError:
            continue
        if int(f[2]) == pgid:
            out.append((int(entry.name), _cpu(f)))
    return out


def _mem_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class NodeSide:
    """The demo national and hangzhou nodes on the bench's cluster, and a hangzhou publisher."""

    PASSWORD = "Bench-Publish-Pass-1"

    def __init__(self, base: Path, cluster: Any):
        sys.path.insert(0, str(ROOT / "bench"))
        from auth import write_config
        from sso_client import bearer, login_pkce

        from nodes import federation as federation_mod
        from nodes import settings as settings_mod
        from nodes import supervisor
        from services.db import Database
        from services.sso import accounts

        settings = settings_mod.load(write_config(base, cluster))
        self.procs, _ = supervisor.up(settings, only=["national", "hangzhou"], echo=lambda *a: None)
        main_node = settings.node("national")
        self.url = settings.node("hangzhou").base_url
        db = Database(federation_mod.node_dsn(settings, main_node))
        accounts.create(db, "bench_publisher", self.PASSWORD, roles=["hangzhou:publisher"])
        self.headers = bearer(login_pkce(main_node.base_url, "bench_publisher", self.PASSWORD))
        self.pgid = next(p.pgid for p in self.procs if p.node.id == "hangzhou")

    def publish(self, path: Path, name: str, postmaster: int) -> tuple[float, float, float, int]:
        """(seconds, MiB, CPU seconds of the node and the server, features).

        MiB: the largest growth of one node process's memory during the publish (peak RSS
        after minus RSS before): the worker that published, whose own size does not count.
        """
        import requests

        before = {pid: _mem_mib(pid, "VmRSS") for pid, _ in _group_stats(self.pgid)}
        for pid in before:  # peak RSS from here on
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        cpu0 = sum(c for _, c in _group_stats(self.pgid)) + server_cpu(postmaster)
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            r = requests.post(f"{self.url}/api/layers", headers=self.headers, timeout=600,
                              data={"name": name, "access": "public"},
                              files={"file": (path.name, f, "application/geopackage+sqlite3")})
        seconds = time.perf_counter() - t0
        time.sleep(0.2)
        if r.status_code != 201:
            raise RuntimeError(f"publishing through the node failed: {r.status_code} {r.text[:500]}")
        cpu = sum(c for _, c in _group_stats(self.pgid)) + server_cpu(postmaster) - cpu0
        peak = max(_mem_mib(pid, "VmHWM") - before.get(pid, 0.0) for pid, _ in _group_stats(self.pgid))
        return seconds, peak, cpu, r.json()["layers"][0]["feature_count"]

    def stop(self) -> None:
        from nodes import supervisor

        for p in self.procs:
            supervisor.stop_group(p.pgid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--polygons", type=int, default=100_000)
    ap.add_argument("--no-node", action="store_true", help="skip publishing through a running node")
    ap.add_argument("--generate", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(Path(args.generate), args.points, args.polygons)
        return 0

    import psycopg2
    from rich.console import Console

    from nodes.postgres import Cluster, ensure_database

    console = Console()
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-publish-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=_free_port(), fast=False)
    node = None
    try:
        with console.status("generating files"):
            # in a child: a big parent would make every forked child's peak RSS look big
            subprocess.run([sys.executable, __file__, "--generate", str(base),
                            "--points", str(args.points), "--polygons", str(args.polygons)],
                           check=True)
            files = (base / "points.gpkg", base / "polygons.gpkg")
        cluster.start()
        dsn = cluster.dsn("bench")
        ensure_database(cluster.dsn(), "bench")
        parts = psycopg2.extensions.parse_dsn(dsn)
        postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
        results: dict[str, dict[str, tuple[float, float, float]]] = {}
        for path, n in zip(files, (args.points, args.polygons)):
            stem = path.stem
            results[stem] = {}
            # alternate the order so neither side always gets a warm cache
            for who in ("ogr2ogr", "ours") if stem == "points" else ("ours", "ogr2ogr"):
                with console.status(f"{stem}: {who}"):
                    if who == "ogr2ogr":
                        results[stem][who] = ogr2ogr(parts, path, f"ogr_{stem}", postmaster)
                    else:
                        results[stem][who] = run_child(
                            [sys.executable, "-c", OURS, dsn, str(path), str(base / "node"),
                             f"ours_{stem}"], postmaster=postmaster)
                _show(console, stem, who, results[stem][who])
            conn = psycopg2.connect(dsn)
            with conn.cursor() as cur:
                cur.execute(f"SELECT (SELECT count(*) FROM ogr_{stem}), (SELECT count(*) FROM ours_{stem})")
                a, b = cur.fetchone()
            conn.close()
            assert a == b == n, (a, b, n)
        if not args.no_node:
            # after the child processes: this process grows by starting the nodes, and a child
            # forked from a big parent would report a big peak memory
            with console.status("starting the national and hangzhou nodes"):
                node = NodeSide(base, cluster)
            for path, n in zip(files, (args.points, args.polygons)):
                with console.status(f"{path.stem}: node API"):
                    *measured, count = node.publish(path, f"bench_{path.stem}", postmaster)
                assert count == n, (count, n)
                results[path.stem]["node"] = tuple(measured)
                _show(console, path.stem, "node API", results[path.stem]["node"])
        rows = [(stem, n, label, results[stem]["ogr2ogr"], results[stem][who])
                for stem, n in zip(results, (args.points, args.polygons))
                for who, label in (("ours", "new process"), ("node", "node API"))
                if who in results[stem]]
        lines = [(f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · "
                  f"load {os.getloadavg()[0]:.2f} · commit {_commit()}\n"),
                 ("| file | features | ours | ogr2ogr s | ours s | speed ours/ogr2ogr (goal >= 0.8) "
                  "| peak MiB ogr2ogr / ours | CPU s ogr2ogr / ours (client + server) | CPU ratio |"),
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for stem, n, label, (os_, om, oc), (us, um, uc) in rows:
            lines.append(f"| {stem} | {n:,} | {label} | {os_:.2f} | {us:.2f} | {os_ / us:.2f} "
                         f"| {om:.0f} / {um:.0f} | {oc:.2f} / {uc:.2f} | {oc / uc:.2f} |")
        text = "\n".join(lines) + "\n"
        console.print(text)
        if not RESULTS.exists():
            RESULTS.write_text("# Publishing: ours vs ogr2ogr -f PostgreSQL (PG_USE_COPY=YES)\n\n"
                               "Written by bench/publish.py. Ours includes reading, CRS check, "
                               "validity check/repair, COPY, primary key, GIST index, ANALYZE and "
                               "the catalogue swap.\n", encoding="utf-8")
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(text)
        return 0
    finally:
        if node is not None:
            node.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _show(console: Any, stem: str, who: str, r: tuple[float, float, float]) -> None:
    console.print(f"{stem} {who}: {r[0]:.2f} s, peak {r[1]:.0f} MiB, CPU {r[2]:.2f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip() or "-"
    except OSError:
        return "-"


if __name__ == "__main__":
    sys.exit(main())
