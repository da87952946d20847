"""Place names and addresses (issue 13): our geocoder against Nominatim on the same data, the
query layer on a generated 1,000,000-door-plate table, and a federated query, in one run.

Run from the repository root:  .venv/bin/python bench/places.py [--parts quality,scale,federated]
Needs osm2pgsql (apt) and Nominatim's venv (bench/.venv-nominatim): `make bench-places-deps`
installs both (the venv is also made on first use). Starts a private PostGIS and the national and
hangzhou nodes on free ports (nothing else is touched), prints the tables with ratios and
appends them to bench/results/places.md. A part whose code is not on this checkout yet (our
geocode route, services.places.query, federation of /api/places) is skipped with the reason
printed and recorded. Exit code 0 whatever the figures; 1 when setup failed or a request erred.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx
import pyogrio

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))  # place_variants, sso_client

import places_osm
import places_scale
from auth import append_results, free_port, write_config
from places_engines import (
    GPKG,
    RIGHT_M,
    Engine,
    Run,
    accuracy,
    fire,
    http_engine,
    inprocess_engine,
    metres,
    nominatim_engines,
    p95,
    spaced,
    trgm_engine,
)

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster, ensure_database

VISIBLE = frozenset({"addresses", "poi", "roads", "places"})
# ---------------------------------------------------------------- query set

def sample_rows() -> tuple[list[dict], list[dict], list[dict]]:
    """Door plates, POIs and roads of the Hangzhou sample, as place_variants wants them."""
    a = pyogrio.read_dataframe(GPKG, layer="addresses")
    addresses = [{"address": r.address, "road": r.road, "number": r.number, "district": r.district,
                  "lon": r.geometry.x, "lat": r.geometry.y, "fid": i}
                 for i, r in enumerate(a.itertuples(), start=1)]
    p = pyogrio.read_dataframe(GPKG, layer="poi")
    pois = [{"name": r.name, "address": r.address, "lon": r.geometry.x, "lat": r.geometry.y, "fid": i}
            for i, r in enumerate(p.itertuples(), start=1)]
    rd = pyogrio.read_dataframe(GPKG, layer="roads")
    roads = [{"name": r.name, "wkt": r.geometry.wkt} for r in rd.itertuples()]
    return addresses, pois, roads


def load_variants(n: int, seed: int) -> tuple[list[tuple[str, dict]], str]:
    """tests/support/place_variants.py (the matching helper's); before it is merged, the file
    of branch places-matching read with `git show` into a temporary directory (never copied
    into the tree)."""
    try:
        import place_variants
        source = "tests/support/place_variants.py"
    except ImportError:
        text = subprocess.run(["git", "show", "places-matching:tests/support/place_variants.py"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout
        tmp = Path(tempfile.mkdtemp(prefix="geoplat-bench-variants-"))
        (tmp / "place_variants.py").write_text(text, encoding="utf-8")
        sys.path.insert(0, str(tmp))
        try:
            import place_variants
        finally:
            sys.path.remove(str(tmp))
            shutil.rmtree(tmp, ignore_errors=True)  # the module is loaded; no copy stays behind
        source = "place_variants.py of branch places-matching (git show)"
    addresses, pois, roads = sample_rows()
    return place_variants.variants(addresses, n, seed, pois=pois, roads=roads), source


# ---------------------------------------------------------------- parts

def quality(args, cluster: Cluster, hz: str, hz_dsn: str, token: str | None, workers: int,
            base: Path, out: list[str]) -> int:
    queries, source = load_variants(args.variants, args.seed)
    texts, truth = [q for q, _ in queries], [row for _, row in queries]
    print(f"query set: {len(texts)} variants from {source}", flush=True)
    engines: dict[str, Engine] = {}
    notes: list[str] = [f"Query set: {len(texts)} variants (seed {args.seed}) from {source}."]
    closers: list[Callable] = []

    ours = [f"{hz}/api/places/geocode?address={quote(t)}" for t in texts]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    probe = httpx.get(ours[0], headers=headers, timeout=30)
    if probe.status_code == 200 and "features" in probe.json():
        engines["ours"] = http_engine(ours, headers, args.concurrency)
    else:
        reason = f"ours skipped: GET /api/places/geocode answered {probe.status_code} (not built yet?)"
        print(reason)
        notes.append(reason + ".")
        try:
            engines["ours, in-process"], close = inprocess_engine(texts, hz_dsn, args.concurrency)
            closers.append(close)
            notes.append("\"ours, in-process\": services.places.query.Places on the hangzhou node's "
                         "database, called in 8 threads of this process (no HTTP, JSON or access "
                         "check): its accuracy compares, its req/s and p95 do not.")
        except ImportError as exc:
            notes.append(f"ours, in-process skipped too: {exc}.")

    proc = None
    try:
        if args.peer == "nominatim":
            try:
                proc = nominatim_engines(args, cluster, texts, workers, base, engines, notes)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                reason = f"Nominatim could not be run: {exc}"
                print(reason, file=sys.stderr)
                notes.append(reason.replace("\n", " / ") + "; compared against pg_trgm instead.")
                args.peer = "pg_trgm"
        if args.peer == "pg_trgm":
            engines["pg_trgm similarity()"], close = trgm_engine(texts, hz_dsn, cluster,
                                                                  args.concurrency)
            closers.append(close)
            notes.append("\"pg_trgm similarity()\": `SELECT ST_X(geom), ST_Y(geom) FROM addresses "
                         "ORDER BY similarity(address, %s) DESC LIMIT 1` on the hangzhou node's "
                         "addresses table, in 8 threads of this process (no HTTP).")
        runs: dict[str, list[Run]] = {name: [] for name in engines}
        order = list(engines)
        for engine in engines.values():  # warm-up, not counted
            engine(min(200, len(texts)))
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                run = engines[name](len(texts))
                runs[name].append(run)
                print(f"round {r + 1} {name:20} {run.rps:7.1f} req/s  p95 {run.p95_ms():6.1f} ms",
                      flush=True)
    finally:
        if proc is not None:
            places_osm.stop(proc)
        for close in closers:
            close()
    out.append(f"\n### Quality and speed against {args.peer} ({args.concurrency} concurrent "
               f"clients, {args.rounds} rounds of every variant, alternating order)\n")
    out.append(f"| engine | top-1 within 25 m | req/s | p95 ms | errors | req/s ratio to {args.peer} |")
    out.append("|---|---|---|---|---|---|")
    summary: dict[str, tuple[float, float, float, dict]] = {}
    bad = 0
    for name, rs in runs.items():
        acc, forms = accuracy(rs[0], truth)
        lat = [x for r in rs for x in r.latencies]
        rps = sum(len(r.latencies) for r in rs) / sum(r.wall for r in rs)
        errs = sum(sum(r.errors.values()) for r in rs)
        bad += errs
        summary[name] = (acc, rps, p95(lat), forms)
    for name, (acc, rps, p, _) in summary.items():
        peer = "nominatim" if "nominatim" in summary else "pg_trgm similarity()"
        ratio = rps / summary[peer][1] if peer in summary else math.nan
        cell = "not comparable (no HTTP)" if "in-process" in name else f"{ratio:.2f}"
        errs = sum(sum(r.errors.values()) for r in runs[name])
        out.append(f"| {name} | {100 * acc:.1f} % | {rps:.1f} | {p:.1f} | {errs} | {cell} |")
    forms_all = sorted({f for s in summary.values() for f in s[3]})
    out.append("\n| form | " + " | ".join(summary) + " |")
    out.append("|---|" + "---|" * len(summary))
    for f in forms_all:
        cells = [f"{s[3][f][0]}/{s[3][f][1]}" if f in s[3] else "" for s in summary.values()]
        out.append(f"| {f} | " + " | ".join(cells) + " |")
    out.append("")
    out.extend(notes)
    if "nominatim, spaced" in summary:
        out.append(f"\"nominatim, spaced\" is a diagnostic, not the comparison: {spaced(texts[1])!r} "
                   f"for {texts[1]!r} (spaces after 省/市/区/县 and before the door number, where "
                   "the query ends in one); Nominatim splits words at spaces and punctuation, digits "
                   "glued to their neighbours.")
    return 1 if bad else 0


def scale(args, cluster: Cluster, out: list[str]) -> int:
    name = "bench_places_scale"
    ensure_database(cluster.dsn(), name)
    dsn = cluster.dsn(name)
    print(f"scale: generating {args.scale_rows} door plates", flush=True)
    gen, how = places_scale.generate(dsn, ROOT / "data-samples" / "zhejiang.gpkg", args.scale_rows)
    print(f"  {gen.rows} door plates, {gen.roads} roads in {gen.seconds:.1f} s; indexing", flush=True)
    idx_s = places_scale.build_indexes(dsn)
    size = places_scale.sizes(dsn)
    mib = {k: v / 2**20 for k, v in size.items()}
    out.append(f"\n### Scale: {gen.rows:,} door plates + {gen.roads:,} roads (76 Zhejiang county "
               f"units), {args.concurrency} threads through services.places.query.Places\n")
    out.append(f"Generated and copied in {gen.seconds:.1f} s (normalised with {how}); "
               f"`services.places.indexes.create` + ANALYZE {idx_s:.1f} s; table "
               f"{mib['table']:.0f} MiB, indexes {mib['indexes']:.0f} MiB, total {mib['total']:.0f} MiB.")
    try:
        places_cls = importlib.import_module("services.places.query").Places
    except ImportError as exc:
        reason = f"scale queries skipped: services.places.query not on this checkout ({exc})"
        print(reason)
        out.append(reason + ".")
        return 0
    from services.db import Database
    db = Database(dsn, maxconn=args.concurrency)
    places = places_cls(db, "bench")
    plates = gen.sample[: args.scale_queries]
    geocode = [partial(places.geocode, p.address, visible=VISIBLE, limit=1) for p in plates]
    # 3 m east of the plate: the nearest door plate is still that one (plates are 12 m apart
    # along a street, 10 m across it)
    shift = [(p.lon + 3 / (111320 * math.cos(math.radians(p.lat))), p.lat) for p in plates]
    reverse = [partial(places.reverse, lon, lat, visible=VISIBLE) for lon, lat in shift]
    places_scale.run_threads(geocode[:100] + reverse[:100], args.concurrency)  # warm-up
    res_g, lat_g, wall_g = places_scale.run_threads(geocode, args.concurrency)
    res_r, lat_r, wall_r = places_scale.run_threads(reverse, args.concurrency)
    right_g = sum(1 for g, p in zip(res_g, plates, strict=True) if g.best is not None
                  and metres((g.best.lon, g.best.lat), (p.lon, p.lat)) <= RIGHT_M)
    right_r = sum(1 for r, p in zip(res_r, plates, strict=True)
                  if r.address is not None and r.address.address == p.address)
    pg = places_scale.pss_kib(places_scale.postgres_pids(cluster.pgdata / "postmaster.pid")) / 1024
    db.close()
    out.append("\n| query | n | top-1 right | req/s | p95 ms | goal |")
    out.append("|---|---|---|---|---|---|")
    for label, res, lat, wall, right in (("geocode (full address)", res_g, lat_g, wall_g, right_g),
                                         ("reverse 3 m from a plate (that plate?)", res_r, lat_r, wall_r, right_r)):
        out.append(f"| {label} | {len(res)} | {100 * right / len(res):.1f} % | "
                   f"{len(res) / wall:.1f} | {p95(lat):.1f} | p95 < 50 ms |")
    out.append(f"\nMemory: this process (the query layer, as in a node worker) peak RSS "
               f"{places_scale.peak_rss_mib():.0f} MiB; the PostgreSQL cluster (all its "
               f"processes, PSS) {pg:.0f} MiB after the queries.")
    return 0


def federated(args, main_url: str, hz: str, token: str | None, out: list[str]) -> int:
    addresses, _, _ = sample_rows()
    texts = [a["address"] for a in addresses[: args.federated_queries]]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    probe = httpx.get(f"{main_url}/api/places/geocode?address={quote(texts[0])}", headers=headers,
                      timeout=30)
    feats = probe.json().get("features") if probe.status_code == 200 else None
    node = (feats[0].get("properties") or {}).get("node") if feats else None
    out.append("\n### Federated: a main-node geocode answered by the Hangzhou node\n")
    if node != "hangzhou":
        reason = (f"federated skipped: the main node's /api/places/geocode answered "
                  f"{probe.status_code}" + (f", first feature from node {node!r}" if feats else
                                            ", no feature from hangzhou") +
                  " (federation of /api/places not on this checkout?)")
        print(reason)
        out.append(reason + ".")
        return 0
    via_main = [f"{main_url}/api/places/geocode?address={quote(t)}" for t in texts]
    direct = [f"{hz}/api/places/geocode?address={quote(t)}" for t in texts]
    asyncio.run(fire(via_main[:50], headers, args.concurrency))
    m = asyncio.run(fire(via_main, headers, args.concurrency))
    d = asyncio.run(fire(direct, headers, args.concurrency))
    out.append("| route | n | req/s | p95 ms | errors | goal |")
    out.append("|---|---|---|---|---|---|")
    out.append(f"| main node -> hangzhou | {len(texts)} | {m.rps:.1f} | {m.p95_ms():.1f} | "
               f"{sum(m.errors.values())} | p95 < 150 ms |")
    out.append(f"| hangzhou directly | {len(texts)} | {d.rps:.1f} | {d.p95_ms():.1f} | "
               f"{sum(d.errors.values())} | |")
    out.append(f"\np95 ratio main/direct {m.p95_ms() / d.p95_ms():.2f}.")
    return 1 if m.errors or d.errors else 0


# ---------------------------------------------------------------- main

def start_nodes(base: Path, cluster: Cluster) -> tuple[list, str, str, str, str | None, int]:
    """national, zhejiang (the main node asks Hangzhou through it) and hangzhou on free ports;
    (processes, main URL, hangzhou URL, hangzhou's
    database, token, workers)."""
    settings = settings_mod.load(write_config(base, cluster))
    procs, _ = supervisor.up(settings, only=["national", "zhejiang", "hangzhou"],
                             echo=lambda *a: None)
    main_node, hz = settings.node("national"), settings.node("hangzhou")
    from sso_client import login_pkce

    from services.db import Database
    from services.sso import accounts
    db = Database(federation_mod.node_dsn(settings, main_node))
    accounts.create(db, "bench_places", "bench-password-1", roles=["developer"])
    db.close()
    # addresses and poi are `access: registered`: a signed-in user sees them
    token = login_pkce(main_node.base_url, "bench_places", "bench-password-1")["access_token"]
    return (procs, main_node.base_url, hz.base_url, federation_mod.node_dsn(settings, hz), token,
            hz.workers)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    if not commit:
        commit = "? (not a git checkout)"
    return (f"commit {commit}{' (+ local changes)' if dirty else ''}; {os.cpu_count()} cores "
            f"({model}); load average {load} at the start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="quality,scale,federated")
    ap.add_argument("--variants", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--scale-rows", type=int, default=1_000_000)
    ap.add_argument("--scale-queries", type=int, default=2000)
    ap.add_argument("--federated-queries", type=int, default=500)
    ap.add_argument("--peer", choices=["nominatim", "pg_trgm"], default="nominatim",
                    help="pg_trgm: the issue's fallback when Nominatim cannot run")
    ap.add_argument("--note", default="", help="recorded with the results (what was merged)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"quality", "scale", "federated"}:
        ap.error(f"unknown part(s): {', '.join(sorted(parts - {'quality', 'scale', 'federated'}))}")

    out = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {machine()}"
           + (f"\n\n{args.note}" if args.note else "")]
    base = Path(tempfile.mkdtemp(prefix="geoplat-bench-places-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    procs: list = []
    status = 0
    try:
        if parts & {"quality", "federated"}:
            print("starting national + hangzhou", flush=True)
            procs, main_url, hz, hz_dsn, token, workers = start_nodes(base, cluster)
            if "quality" in parts:
                status |= quality(args, cluster, hz, hz_dsn, token, workers, base, out)
            if "federated" in parts:
                status |= federated(args, main_url, hz, token, out)
        if "scale" in parts:
            status |= scale(args, cluster, out)
    except Exception as exc:  # noqa: BLE001  (reported, recorded, exit code 1)
        print(f"setup or run failed: {exc}", file=sys.stderr)
        out.append(f"\nRun failed: {exc}")
        status = 1
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    text = "\n".join(out)
    print(text)
    append_results("places", text)
    return status


if __name__ == "__main__":
    sys.exit(main())
