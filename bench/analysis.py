"""Spatial analysis (issue 17), side by side in one run. Not a test.

Run from the repository root:  .venv/bin/python bench/analysis.py [--sizes 100000,1000000]
Starts a private PostGIS and the national, zhejiang and hangzhou nodes on free ports (nothing
else is touched; Hangzhou with 2 queue workers and generated parcel layers of each size),
prints the table and appends it to bench/results/analysis.md. Exit code 0 whatever the
figures; 1 when setup failed, a request erred or the two computations disagree.

- `overlay` of a 1 km² and a 10 km² polygon against N generated parcels (50 m cells, 8
  land-use classes): ours, a synchronous POST /ogc/processes/overlay/execution (HTTP, token),
  against the same computation in process with geopandas: the candidate parcels read from the
  same PostGIS (bbox and ST_Intersects, `geopandas.read_postgis`), `geopandas.overlay`
  (intersection), areas with pyproj.Geod on CGCS2000, summed per class. Goal: ours ≥ 3× faster;
  sync p95 < 300 ms for 1 km² × 100,000. The class areas must agree within 0.01 %.
- `extract` of the largest layer to GeoPackage (an async job until its file is written) against
  `ogr2ogr -f GPKG` from the same table. Goal ≥ 0.8 of ogr2ogr's speed.
- jobs per minute with 2 queue workers (small async `buffer` jobs, submitted at once).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# the environment as started: libraries imported later (rasterio, the nodes' Mapnik) point
# PROJ_DATA at their own data, where the system's ogr2ogr finds no proj.db
START_ENV = dict(os.environ)

import geopandas as gpd
import numpy as np
import psycopg2
import requests
import shapely
import yaml
from pyproj import Geod
from shapely.geometry import box, mapping

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from auth import append_results, free_port, write_config
from places import machine
from places_engines import p95
from publish_helpers import sign_in_users

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster
from services.db import Database

GEOD = Geod(a=6378137.0, f=1 / 298.257222101)
CLASSES = ["0101", "0103", "0201", "0301", "0701", "0702", "1001", "1101"]
CENTRE = (120.05, 30.25)  # west of the city: room for 50 km of parcels
CELL_M = 50.0
PASSWORD = "Bench-Analysis-Pass-1"


def degrees(metres: float, lat: float) -> tuple[float, float]:
    return metres / (111_320 * math.cos(math.radians(lat))), metres / 110_574


def parcels_file(base: Path, n: int, seed: int) -> Path:
    """n parcels: a square grid of 50 m cells around CENTRE, corners jittered, classes random."""
    side = math.ceil(math.sqrt(n))
    dx, dy = degrees(CELL_M, CENTRE[1])
    x0, y0 = CENTRE[0] - side * dx / 2, CENTRE[1] - side * dy / 2
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(n), side)
    jit = rng.uniform(-0.15, 0.15, size=(n, 2))
    minx, miny = x0 + j * dx + jit[:, 0] * dx * 0.2, y0 + i * dy + jit[:, 1] * dy * 0.2
    geoms = shapely.box(minx, miny, x0 + (j + 1) * dx, y0 + (i + 1) * dy)
    df = gpd.GeoDataFrame({"land_use": rng.choice(CLASSES, n),
                           "parcel_no": [f"P{k:07d}" for k in range(n)]},
                          geometry=geoms, crs="EPSG:4490")
    path = base / f"bench_parcels_{n}.gpkg"
    df.to_file(path, layer="parcels", driver="GPKG")
    return path


def square(km2: float) -> Any:
    half = math.sqrt(km2) * 1000 / 2
    dx, dy = degrees(half, CENTRE[1])
    # a little off the grid so that cells are cut
    return box(CENTRE[0] - dx + 0.00013, CENTRE[1] - dy + 0.00007,
               CENTRE[0] + dx + 0.00013, CENTRE[1] + dy + 0.00007)


def geodesic(geom: Any) -> float:
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


def with_geopandas(dsn: str, table: str, area: Any) -> dict[str, float]:
    conn = psycopg2.connect(dsn)
    try:
        parcels = gpd.read_postgis(
            f'SELECT land_use, geom FROM "{table}" WHERE geom && ST_GeomFromText(%(w)s, 4490) '
            "AND ST_Intersects(geom, ST_GeomFromText(%(w)s, 4490))", conn, geom_col="geom",
            params={"w": area.wkt})
    finally:
        conn.close()
    inp = gpd.GeoDataFrame(geometry=[area], crs=parcels.crs or "EPSG:4490")
    parts = gpd.overlay(inp, parcels.set_crs("EPSG:4490", allow_override=True),
                        how="intersection", keep_geom_type=True)
    parts["a"] = [geodesic(g) for g in parts.geometry]
    return {str(k): float(v) for k, v in parts.groupby("land_use")["a"].sum().items()}


def ours(base: str, headers: dict, table: str, area: Any) -> dict[str, float]:
    r = requests.post(f"{base}/ogc/processes/overlay/execution", headers=headers, timeout=300,
                      json={"inputs": {"geometry": mapping(area), "layers": [table],
                                       "group_by": "land_use"}})
    r.raise_for_status()
    return {c["value"]: c["area_m2"] for c in r.json()["classes"]}


def timed(fn: Any, runs: int) -> tuple[list[float], Any]:
    out, last = [], None
    for _ in range(runs):
        t = time.perf_counter()
        last = fn()
        out.append(time.perf_counter() - t)
    return out, last


def agree(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) <= 1e-4 * max(b[k], 1.0) for k in b)


def wait_job(base: str, headers: dict, job_id: str, timeout: float = 3600) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        j = requests.get(f"{base}/ogc/jobs/{job_id}?f=json", headers=headers, timeout=30).json()
        if j["status"] not in ("accepted", "running"):
            return j
        time.sleep(0.05)
    raise TimeoutError(job_id)


def submit(base: str, headers: dict, process: str, inputs: dict) -> str:
    r = requests.post(f"{base}/ogc/processes/{process}/execution", json={"inputs": inputs},
                      headers={**headers, "Prefer": "respond-async"}, timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"{process}: {r.status_code} {r.text[:300]}")
    return r.headers["Location"].rstrip("/").rsplit("/", 1)[1]


def grid_bbox(n: int) -> list[float]:
    """The extent of parcels_file(n)'s grid, with a cell's margin (the whole layer)."""
    side = math.ceil(math.sqrt(n)) + 2
    dx, dy = degrees(CELL_M, CENTRE[1])
    return [CENTRE[0] - side * dx / 2, CENTRE[1] - side * dy / 2,
            CENTRE[0] + side * dx / 2, CENTRE[1] + side * dy / 2]


def extract_vs_ogr2ogr(base: str, headers: dict, dsn: str, table: str, n: int, tmp: Path,
                       out: list[str]) -> int:
    t = time.perf_counter()
    try:
        jid = submit(base, headers, "extract", {"layers": [table], "format": "gpkg",
                                                "bbox": grid_bbox(n)})
    except RuntimeError as exc:
        out.append(f"\n`extract` could not run: {exc}\n")
        return 1
    job = wait_job(base, headers, jid)
    ours_s = time.perf_counter() - t
    u = psycopg2.extensions.parse_dsn(dsn)
    pg = " ".join(f"{k}={v}" for k, v in (("host", u.get("host")), ("port", u.get("port")),
                                           ("dbname", u.get("dbname")), ("user", u.get("user")),
                                           ("password", u.get("password"))) if v)
    target = tmp / "ogr2ogr.gpkg"
    t = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(target), f"PG:{pg}", table], check=True,
                   env=START_ENV)
    ogr_s = time.perf_counter() - t
    ok = job["status"] == "successful"
    out.append(f"\n| extract {n:,} parcels to GeoPackage | seconds | features/s | ratio to ogr2ogr |")
    out.append("|---|---|---|---|")
    out.append(f"| ours (`extract` job, {job['status']}) | {ours_s:.1f} | {n / ours_s:,.0f} | "
               f"{ogr_s / ours_s:.2f} (goal ≥ 0.8) |")
    out.append(f"| `ogr2ogr -f GPKG` from the same table | {ogr_s:.1f} | {n / ogr_s:,.0f} | 1 |")
    return 0 if ok else 1


def jobs_per_minute(base: str, headers: dict, count: int, out: list[str]) -> int:
    point = {"type": "Point", "coordinates": list(CENTRE)}
    t = time.perf_counter()
    ids = [submit(base, headers, "buffer", {"geometry": point, "distance": 100 + i})
           for i in range(count)]
    done = [wait_job(base, headers, j) for j in ids]
    s = time.perf_counter() - t
    bad = sum(1 for j in done if j["status"] != "successful")
    out.append(f"\nJobs per minute, 2 queue workers: {count} small async `buffer` jobs submitted "
               f"at once, all ended in {s:.1f} s: **{count / s * 60:,.0f} jobs/min** "
               f"({bad} not successful).\n")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--runs", type=int, default=20, help="timed runs of each overlay case")
    ap.add_argument("--jobs", type=int, default=90, help="at most the node's live_jobs (100)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {machine()}"
           + (f"\n\n{args.note}" if args.note else "")]
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-analysis-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    procs: list = []
    status = 0
    try:
        print("generating parcels", flush=True)
        files = {n: parcels_file(base, n, args.seed + n) for n in sizes}
        config = write_config(base, cluster)
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        hz_raw = next(n for n in raw["nodes"] if n["id"] == "hangzhou")
        hz_raw["analysis"] = {"workers": 2, "jobs_per_day": 1_000_000, "live_jobs": 100,
                              "max_area_km2": 5000}  # extract reads the whole 1M grid
        config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
        layers_file = base / "config" / "layers" / "hangzhou.yml"
        layers = yaml.safe_load(layers_file.read_text(encoding="utf-8"))
        for n, path in files.items():
            layers["layers"].append({"id": f"bench_parcels_{n}", "title": f"bench parcels {n}",
                                     "file": str(path), "source_layer": "parcels",
                                     "geometry_type": "Polygon"})
        layers_file.write_text(yaml.safe_dump(layers, allow_unicode=True, sort_keys=False),
                               "utf-8")
        print("starting national + zhejiang + hangzhou (loading the parcels)", flush=True)
        settings = settings_mod.load(config)
        t = time.perf_counter()
        procs, _ = supervisor.up(settings, only=["national", "zhejiang", "hangzhou"],
                                 echo=lambda *a: None)
        out.append(f"\nFederation up with the generated layers in {time.perf_counter() - t:.0f} s.")
        hz = settings.node("hangzhou")
        dsn = federation_mod.node_dsn(settings, hz)
        main_db = Database(federation_mod.node_dsn(settings, settings.node("national")))
        headers = sign_in_users(main_db, settings.node("national").base_url, "bench",
                                {"analyst": []}, PASSWORD)["analyst"]
        url = hz.base_url
        out.append("\n| overlay | candidates | ours p50 ms | ours p95 ms | geopandas p50 ms | "
                   "geopandas p95 ms | ours faster by | agree |")
        out.append("|---|---|---|---|---|---|---|---|")
        for n in sizes:
            table = f"bench_parcels_{n}"
            for km2 in (1.0, 10.0):
                area = square(km2)
                ours(url, headers, table, area)  # warm: connections, caches
                t_ours, r_ours = timed(lambda a=area, tb=table: ours(url, headers, tb, a),
                                       args.runs)
                t_gpd, r_gpd = timed(lambda a=area, tb=table: with_geopandas(dsn, tb, a),
                                     max(3, args.runs // 4))
                same = agree(r_ours, r_gpd)
                status |= 0 if same else 1
                goal = " (goal < 300)" if n == 100_000 and km2 == 1.0 else ""
                med_o, med_g = float(np.median(t_ours)) * 1000, float(np.median(t_gpd)) * 1000
                out.append(f"| {km2:g} km² × {n:,} parcels | ~{int(km2 * 1e6 / CELL_M ** 2):,} | "
                           f"{med_o:.0f} | {p95(t_ours):.0f}{goal} | {med_g:.0f} | "
                           f"{p95(t_gpd):.0f} | {med_g / med_o:.1f}× (goal ≥ 3×) | "
                           f"{'yes' if same else 'NO'} |")
                print(out[-1], flush=True)
        status |= extract_vs_ogr2ogr(url, headers, dsn, f"bench_parcels_{max(sizes)}",
                                     max(sizes), base, out)
        status |= jobs_per_minute(url, headers, args.jobs, out)
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
    append_results("analysis", text)
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
