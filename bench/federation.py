"""A national federation the size of today's Tianditu, simulated: registration, search, health.

Run from the repository root:  .venv/bin/python bench/federation.py [--cities 330] [--per-city 50]
Starts a private PostGIS on a free port (nothing else is touched) with one registry database per
provincial node (31) and one for the main node; the 330 city registries are lightweight
simulations that send the real push wire format. Every push, apply, outbox and full-sync step is
the real code of services/registry (federation.apply_push/apply_sync, worker.Pusher, the
outbox), called in-process instead of over HTTP (no tokens, no sockets: those costs are
measured by the node tests and bench/auth.py). Province senders run as the nodes' workers do,
one thread each, every --push-interval seconds.

Prints and appends to bench/results/federation.md:
- time until every city registration is in the main node's catalogue;
- catalogue search at the main node through our pygeoapi record provider (the SQL that serves
  /ogc/collections/catalogue/items): p50/p95 of `q` and `bbox` queries (limit 10, numberMatched);
- time for a health change at a city node to reach the main node.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2
from rich.console import Console
from rich.progress import Progress

from nodes.postgres import Cluster, ensure_database
from services.access.tokens import Principal
from services.db import Database
from services.registry import federation
from services.registry.db import ensure_schema, outbox_add, write_record
from services.registry.provider import RegistryRecordProvider
from services.registry.worker import Pusher
from tiles.errors import ProblemError

RESULTS = ROOT / "bench" / "results" / "federation.md"
WORDS = ["道路", "水系", "行政区划", "兴趣点", "政务服务", "地名", "影像", "地形", "房屋", "规划",
         "交通", "教育", "医疗", "环境", "土地", "人口", "roads", "rivers", "boundaries", "poi",
         "imagery", "terrain", "buildings", "planning", "transport", "schools"]
TYPES = ["OGCAPI-Features", "OGCAPI-Tiles", "WMTS", "WMS", "OGCAPI-Records"]
console = Console(width=120)


class Reply:
    """What Pusher reads from an HTTP response."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status_code, self._body, self.text = status, body, json.dumps(body)[:200]

    def json(self) -> dict[str, Any]:
        return self._body


class Node:
    def __init__(self, nid: str, path: str, db: Database, parent: Node | None):
        self.id, self.path, self.db, self.parent = nid, path, db, parent
        self.children: list[dict[str, Any]] = []

    @property
    def meta(self) -> dict[str, Any]:
        return {"node": {"id": self.id, "parent": self.parent.id if self.parent else None},
                "registry": {"path": self.path, "children": self.children,
                             "parent": {"id": self.parent.id} if self.parent else None},
                "dsn": self.db.dsn, "auth": {}}

    def receive(self, path: str, sender: str, body: dict[str, Any]) -> Reply:
        principal = Principal(sub=f"node-{sender}", username="", client_id=f"node-{sender}",
                              is_user=False)
        fn = federation.apply_push if path.endswith("/push") else federation.apply_sync
        try:
            return Reply(200, fn(self.db, self.meta, principal, body))
        except ProblemError as exc:
            return Reply(exc.status, {"detail": exc.detail, **exc.extra})


class InProcessPusher(Pusher):
    """The node worker's sender, posting to the parent in-process."""

    def __init__(self, node: Node):
        super().__init__(node.db, {**node.meta, "auth": {}})
        self.node = node

    def _post(self, client: Any, path: str, body: dict) -> Any:
        assert self.node.parent is not None
        return self.node.parent.receive(path, self.node.id, body)


def city_records(city: str, path: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    lon, lat = rng.uniform(75, 133), rng.uniform(20, 50)
    out = []
    for i in range(n):
        words = rng.sample(WORDS, 3)
        w, h = rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.6)
        x, y = lon + rng.uniform(-0.5, 0.5), lat + rng.uniform(-0.5, 0.5)
        out.append({
            "id": f"{city}:svc:{i:03d}", "origin_node": city, "origin_path": path,
            "type": TYPES[i % len(TYPES)], "url": f"https://{city}.example.gov.cn/svc/{i}",
            "title": f"{city} {words[0]} {words[1]}", "description": f"{words[2]} 数据服务",
            "keywords": words, "bbox": [round(x, 5), round(y, 5), round(x + w, 5), round(y + h, 5)],
            "scale": {"finest": 500, "coarsest": 2000}, "access": "public", "layer_id": None,
            "status": "approved", "version": 1, "health": "up"})
    return out


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--provinces", type=int, default=31)
    ap.add_argument("--cities", type=int, default=330)
    ap.add_argument("--per-city", type=int, default=50)
    ap.add_argument("--per-province", type=int, default=40, help="own services of a province")
    ap.add_argument("--push-interval", type=float, default=2.0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-write", action="store_true", help="do not append to the results file")
    args = ap.parse_args()
    rng = random.Random(42)
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-fed-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=_free_port(), fast=True)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        cluster.start()
        console.print(f"PostGIS on port {cluster.port}; creating "
                      f"{args.provinces + 1} registry databases")
        ensure_database(cluster.dsn(), "registry_template")
        ensure_schema(cluster.dsn("registry_template"))
        main_node = Node("national", "national", _db(cluster, "national"), None)
        provinces = []
        for p in range(args.provinces):
            pid = f"prov{p:02d}"
            node = Node(pid, f"national/{pid}", _db(cluster, pid), main_node)
            main_node.children.append({"id": pid, "path": node.path})
            provinces.append(node)
        cities = []
        for c in range(args.cities):
            prov = provinces[c % len(provinces)]
            cid = f"city{c:03d}"
            path = f"{prov.path}/{cid}"
            prov.children.append({"id": cid, "path": path})
            cities.append((cid, path, prov))
        total = 0
        for prov in provinces:  # the provinces' own services, queued in their outboxes
            recs = city_records(prov.id, prov.path, args.per_province, rng)
            with prov.db.transaction() as cur:
                for rec in recs:
                    write_record(cur, rec, "local")
                    outbox_add(cur, "upsert", rec["id"], rec)
            total += len(recs)
        city_recs = {cid: city_records(cid, path, args.per_city, rng) for cid, path, _ in cities}
        total += sum(len(v) for v in city_recs.values())
        console.print(f"{len(provinces)} provinces, {len(cities)} cities, {total} records")

        pushers = [InProcessPusher(p) for p in provinces]

        def province_loop(pusher: InProcessPusher) -> None:
            while not stop.is_set():
                try:
                    while pusher.push_once(None) == 500:
                        pass
                except Exception as exc:  # noqa: BLE001 - report and keep going, as a node does
                    console.print(f"[red]{pusher.node.id}: {exc}")
                stop.wait(args.push_interval)

        t0 = time.perf_counter()
        for pusher in pushers:
            t = threading.Thread(target=province_loop, args=(pusher,), daemon=True)
            t.start()
            threads.append(t)

        def city_push(item: tuple[str, str, Node]) -> None:
            cid, _, prov = item
            body = {"sender": cid, "batch": 1, "changes": [
                {"op": "upsert", "record": r} for r in city_recs[cid]]}
            reply = prov.receive("/registry/api/push", cid, body)
            if reply.status_code != 200:
                raise RuntimeError(f"{cid}: {reply.status_code} {reply.text}")

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("cities pushing", total=len(cities))
            with ThreadPoolExecutor(max_workers=4) as pool:
                for _ in pool.map(city_push, cities):
                    progress.advance(task)
            t_cities = time.perf_counter() - t0
            task = progress.add_task("reaching the main node", total=total)
            while True:
                n = main_node.db.one("SELECT count(*) AS n FROM registry.services")["n"]
                progress.update(task, completed=n)
                if n >= total:
                    break
                time.sleep(0.05)
        t_all = time.perf_counter() - t0
        console.print(f"all {total} records at the main node after {t_all:.1f} s "
                      f"(cities done pushing to provinces after {t_cities:.1f} s)")

        # full sync round of one province, to show it is cheap when in sync
        ts = time.perf_counter()
        in_sync = pushers[0].full_sync(None)
        t_sync = (time.perf_counter() - ts) * 1000

        provider = RegistryRecordProvider({"name": "bench", "type": "record",
                                           "data": main_node.db.dsn, "node_id": "national"})
        q_ms, bbox_ms, q_hits, bbox_hits = [], [], [], []
        for i in range(args.queries):
            term = WORDS[i % len(WORDS)]
            t = time.perf_counter()
            res = provider.query(limit=10, q=term)
            q_ms.append((time.perf_counter() - t) * 1000)
            q_hits.append(res["numberMatched"])
            x, y = rng.uniform(75, 130), rng.uniform(20, 48)
            t = time.perf_counter()
            res = provider.query(limit=10, bbox=[x, y, x + 2, y + 2])
            bbox_ms.append((time.perf_counter() - t) * 1000)
            bbox_hits.append(res["numberMatched"])

        # a health change at a city: one of its services goes down; the city pushes it
        cid, _, prov = cities[len(cities) // 2]
        rid = f"{cid}:svc:000"
        th = time.perf_counter()
        change = {"op": "health", "id": rid, "health": "down", "latency_ms": None,
                  "health_history": [], "health_at": datetime.now(UTC).isoformat()}
        reply = prov.receive("/registry/api/push", cid, {"sender": cid, "batch": 2,
                                                         "changes": [change]})
        assert reply.status_code == 200, reply.text
        while main_node.db.one("SELECT health FROM registry.services WHERE id = %s",
                               (rid,))["health"] != "down":
            time.sleep(0.01)
        t_health = time.perf_counter() - th
        stop.set()
        for t in threads:
            t.join(timeout=10)

        rows = [
            ("nodes", f"1 main + {len(provinces)} provincial + {len(cities)} city"),
            ("records", f"{total}"),
            ("all registrations at the main node", (f"{t_all:.1f} s (cities -> provinces done "
                                                  f"after {t_cities:.1f} s)")),
            ("search `q` at the main node, p50 / p95",
             (f"{statistics.median(q_ms):.1f} / {percentile(q_ms, 95):.1f} ms "
             f"(median {statistics.median(q_hits):.0f} matches)")),
            ("search `bbox` (2x2 deg) at the main node, p50 / p95",
             (f"{statistics.median(bbox_ms):.1f} / {percentile(bbox_ms, 95):.1f} ms "
             f"(median {statistics.median(bbox_hits):.0f} matches)")),
            ("city health change at the main node", f"{t_health:.2f} s"),
            ("full-sync digest round, in sync", f"{t_sync:.0f} ms ({in_sync})"),
        ]
        for k, v in rows:
            console.print(f"{k:55} {v}")
        if not args.no_write:
            _write(rows, args)
        return 0
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        stop.set()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _db(cluster: Cluster, name: str) -> Database:
    conn = psycopg2.connect(cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "reg_{name}" TEMPLATE registry_template')
    conn.close()
    return Database(cluster.dsn(f"reg_{name}"), maxconn=4)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write(rows: list[tuple[str, str]], args: argparse.Namespace) -> None:
    import os
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    load = os.getloadavg()[0]
    head = (f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{os.cpu_count()} cores, load average {load:.1f}\n\n"
            f"Province senders every {args.push_interval} s; the main node and 31 provinces "
            "are real registry databases in one PostGIS; cities are simulated senders; "
            "push/apply/outbox in-process (no HTTP).\n\n| measure | result |\n|---|---|\n")
    if not RESULTS.exists():
        RESULTS.write_text("# Federation benchmark (bench/federation.py)\n", encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(head + "".join(f"| {k} | {v} |\n" for k, v in rows))


if __name__ == "__main__":
    sys.exit(main())
