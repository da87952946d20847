"""Benchmark of data supply (services/supply): change-sets vs whole copies.

Run from the repository root:  .venv/bin/python bench/supply.py [--features 1000000]
Starts a private PostGIS and the national, zhejiang and hangzhou nodes on free ports (nothing
else is touched), then, with Zhejiang as the parent:
- a child layer of N points (version 1) and version 2 with 1 % changed (a third each inserted,
  updated, deleted): the change-set's build time and size vs the change-set of the whole layer
  (what sending a full copy costs; goal ≤ 2 %);
- receive (verify, check) + accept (apply as a new version of the parent's layer) of the 1 %
  change-set vs a full republish of version 2 at the parent from a GeoPackage (goal ≥ 10×);
- 31 provinces' first change-sets (1,000 points each) received at once by one node and
  applied: the time until all are (goal ≤ 60 s).
Results are appended to bench/results/supply.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

START_ENV = dict(os.environ)  # before rasterio & co. point PROJ_DATA elsewhere (ogr2ogr)

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
from auth import append_results, free_port, write_config
from places import machine
from publish_helpers import ctx_of

from layers.publish import publish
from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster
from services.supply import changeset as cs_mod
from services.supply import inbox

AREA = "POLYGON((119.9 29.9, 120.5 29.9, 120.5 30.5, 119.9 30.5, 119.9 29.9))"
KEY = cs_mod.new_key()


def child_tables(cur, n: int) -> int:
    """bench_child_v1 (n points) and bench_child_v2 (1 % changed); the number changed."""
    side = int(n ** 0.5) + 1
    for t in ("bench_child_v1", "bench_child_v2"):
        cur.execute(f"DROP TABLE IF EXISTS {t}")
    cur.execute(f"""
CREATE TABLE bench_child_v1 AS
SELECT g::bigint AS fid, 'f' || g AS id, '点 ' || g AS label, (g % 20)::integer AS kind,
       ST_SetSRID(ST_MakePoint(119.95 + (g % {side}) * (0.5 / {side}),
                               29.95 + (g / {side}) * (0.5 / {side})), 4490)
           ::geometry(Point, 4490) AS geom
FROM generate_series(1, {n}) g""")
    cur.execute("""
CREATE TABLE bench_child_v2 AS
SELECT fid, id, CASE WHEN fid % 300 = 2 THEN label || ' 改' ELSE label END AS label, kind, geom
FROM bench_child_v1 WHERE fid % 300 <> 1""")
    cur.execute(f"""
INSERT INTO bench_child_v2
SELECT fid + {n}, 'f' || (fid + {n}), '新 ' || fid, kind, geom FROM bench_child_v1
WHERE fid % 300 = 3""")
    cur.execute("SELECT (SELECT count(*) FROM bench_child_v1 WHERE fid % 300 IN (1, 2, 3))")
    return int(cur.fetchone()[0])


def build(conn, new: str, old: str | None, base: int | None, version: int, child: str,
          layer: str, parent_layer: str) -> tuple[cs_mod.ChangeSet, str, float]:
    t = time.perf_counter()
    with conn, conn.cursor() as cur:
        cs = cs_mod.build(cur, new_table=new, old_table=old, key="id", fields=["label", "kind"],
                          child=child, parent="zhejiang", layer=layer, parent_layer=parent_layer,
                          base_version=base, new_version=version)
    sig = cs_mod.sign(cs.manifest, KEY, child)
    return cs, sig, time.perf_counter() - t


def link(child: str, parent_layer: str, area: str = AREA) -> inbox.Link:
    return inbox.Link(child=child, parent="zhejiang", layer="poi", parent_layer=parent_layer,
                      area_wkt=area, public_jwk=cs_mod.public_jwk(KEY), max_bytes=1 << 30)


def take(ctx, lk: inbox.Link, cs: cs_mod.ChangeSet, sig: str) -> float:
    t = time.perf_counter()
    row = inbox.receive(ctx, lk, sig, cs.body)
    if row["state"] != "pending" or row["problems"]:
        raise RuntimeError(f"change-set {cs.id}: {row['state']} {row['problems']}")
    inbox.accept(ctx, lk, cs.id, actor="bench")
    return time.perf_counter() - t


def provinces(ctx, conn, out: list[str]) -> int:
    n = 31
    with conn, conn.cursor() as cur:
        for i in range(n):
            cur.execute(f"DROP TABLE IF EXISTS bench_prov_{i}")
            cur.execute(f"""
CREATE TABLE bench_prov_{i} AS
SELECT g::bigint AS fid, 'p{i}-' || g AS id, '省 {i} 点 ' || g AS label, (g % 20)::integer AS kind,
       ST_SetSRID(ST_MakePoint(100 + {i} + (g % 32) * 0.02, 30 + (g / 32) * 0.02), 4490)
           ::geometry(Point, 4490) AS geom
FROM generate_series(1, 1000) g""")
    sets = [build(conn, f"bench_prov_{i}", None, None, 1, f"prov{i:02d}", "poi",
                  "bench_national_poi") for i in range(n)]
    links = [link(f"prov{i:02d}", "bench_national_poi",
                  f"POLYGON(({100 + i} 29.9, {101 + i} 29.9, {101 + i} 31, {100 + i} 31, "
                  f"{100 + i} 29.9))") for i in range(n)]
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:  # all sent at once: received and checked in parallel
        rows = list(pool.map(lambda a: inbox.receive(ctx, a[0], a[1][1], a[1][0].body),
                             zip(links, sets, strict=True)))
    received = time.perf_counter() - t
    bad = [r["id"] for r in rows if r["state"] != "pending" or r["problems"]]
    for lk, (cs, _, _) in zip(links, sets, strict=True):  # the layer's lock: one at a time
        inbox.accept(ctx, lk, cs.id, actor="bench")
    total = time.perf_counter() - t
    out.append(f"\n31 provinces' first change-sets (1,000 points each) into one layer: received "
               f"and checked in {received:.1f} s, all applied in **{total:.1f} s** (goal ≤ 60 s)"
               f"{'' if not bad else f'; {len(bad)} not pending'}.")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    n = args.features
    out = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {machine()}"
           + (f"\n\n{args.note}" if args.note else "")]
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-supply-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    procs: list = []
    status = 0
    try:
        settings = settings_mod.load(write_config(base, cluster))
        print("starting national + zhejiang + hangzhou", flush=True)
        procs, _ = supervisor.up(settings, only=["national", "zhejiang", "hangzhou"],
                                 echo=lambda *a: None)
        ctx = ctx_of(settings, "zhejiang")
        dsn = federation_mod.node_dsn(settings, settings.node("zhejiang"))
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:
            changed = child_tables(cur, n)
        print("first supply (the whole layer)", flush=True)
        full, full_sig, t_full_build = build(conn, "bench_child_v1", None, None, 1, "child",
                                             "poi", "bench_poi")
        t_first = take(ctx, link("child", "bench_poi"), full, full_sig)
        print("the 1 % change-set", flush=True)
        delta, delta_sig, t_build = build(conn, "bench_child_v2", "bench_child_v1", 1, 2,
                                          "child", "poi", "bench_poi")
        whole, _, _ = build(conn, "bench_child_v2", None, None, 2, "child", "poi", "bench_poi")
        t_apply = take(ctx, link("child", "bench_poi"), delta, delta_sig)
        print("a full republish of version 2 at the parent", flush=True)
        gpkg = base / "v2.gpkg"
        u = psycopg2.extensions.parse_dsn(dsn)
        pg = " ".join(f"{k}={u[k]}" for k in ("host", "port", "dbname", "user", "password")
                      if u.get(k))
        subprocess.run(["ogr2ogr", "-f", "GPKG", str(gpkg), f"PG:{pg}", "bench_child_v2",
                        "-nln", "poi"], check=True, env=START_ENV)
        publish(ctx, gpkg, "bench_full")  # the layer exists: what follows is a republish
        t = time.perf_counter()
        publish(ctx, gpkg, "bench_full")
        t_republish = time.perf_counter() - t
        ratio = len(delta.body) / len(whole.body)
        out.append(f"\nA layer of {n:,} points, {changed:,} changed "
                   f"({delta.counts['insert']:,} inserted, {delta.counts['update']:,} updated, "
                   f"{delta.counts['delete']:,} deleted):\n")
        out.append("| | seconds | bytes | ratio |")
        out.append("|---|---|---|---|")
        out.append(f"| change-set built (SQL diff, gzip, signed) | {t_build:.1f} | "
                   f"{len(delta.body):,} | {ratio:.2%} of the whole layer's (goal ≤ 2 %) |")
        out.append(f"| the whole layer as a change-set (first supply) built | {t_full_build:.1f} |"
                   f" {len(whole.body):,} | 1 |")
        out.append(f"| the 1 % change-set received (verified, checked) and applied | "
                   f"{t_apply:.1f} | | {t_republish / t_apply:.1f}× faster than a republish "
                   "(goal ≥ 10×) |")
        out.append(f"| a full republish of version 2 at the parent (GeoPackage) | "
                   f"{t_republish:.1f} | | 1 |")
        out.append(f"| first supply received and applied (the layer made) | {t_first:.1f} | | |")
        print("\n".join(out[-8:]), flush=True)
        status |= provinces(ctx, conn, out)
        conn.close()
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
    append_results("supply", text)
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
