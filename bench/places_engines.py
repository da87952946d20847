"""The engines bench/places.py compares: each runs the query set once at a concurrency and
returns, per query, the first result's point and the latency (a `Run`)."""

from __future__ import annotations

import asyncio
import importlib
import math
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import places_osm
import places_scale
from auth import free_port

from nodes.postgres import Cluster

ROOT = Path(__file__).resolve().parent.parent
GPKG = ROOT / "data-samples" / "hangzhou.gpkg"
NOMINATIM_VENV = ROOT / "bench" / ".venv-nominatim"
RIGHT_M = 25.0  # a top-1 answer within 25 m of the expected door plate is right

# Nominatim splits a query into words at spaces and punctuation (then transliterates each, digits
# glued to their neighbours): 宏二路2号 is one unknown token, 宏二路 2号 finds the door plate. The
# diagnostic engine "nominatim, spaced" gets door-plate queries with spaces after the division words
# and before the door number (our parsing's job, done for it by hand: not the comparison's figure).
_ADMIN_END = re.compile(r"(省|市|区|區|县|縣)(?=\S)")
_DOOR = re.compile(r"([0-9０-９]+[号號]?)$")


def spaced(text: str) -> str:
    if not _DOOR.search(text):
        return text
    return _DOOR.sub(r" \1", _ADMIN_END.sub(r"\1 ", text))


@dataclass
class Run:
    """One engine over one query list."""
    answers: list[tuple[float, float] | None] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def p95_ms(self) -> float:
        return p95(self.latencies)


def p95(latencies: list[float]) -> float:
    if not latencies:
        return math.nan
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, mean radius); plenty for a 25 m threshold."""
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def first_point(body: dict) -> tuple[float, float] | None:
    """The first feature's point of a GeoJSON FeatureCollection (ours and Nominatim's)."""
    feats = body.get("features") or []
    if not feats or not feats[0].get("geometry"):
        return None
    lon, lat = feats[0]["geometry"]["coordinates"][:2]
    return float(lon), float(lat)


async def fire(urls: list[str], headers: dict[str, str], concurrency: int) -> Run:
    """Every URL once, `concurrency` closed-loop clients taking the next one in turn."""
    run = Run(answers=[None] * len(urls), latencies=[0.0] * len(urls))
    nxt = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        async def worker() -> None:
            nonlocal nxt
            while nxt < len(urls):
                i, nxt = nxt, nxt + 1
                t = time.perf_counter()
                try:
                    r = await client.get(urls[i])
                except httpx.HTTPError as exc:
                    run.latencies[i] = time.perf_counter() - t
                    run.errors[type(exc).__name__] += 1
                    continue
                run.latencies[i] = time.perf_counter() - t
                if r.status_code == 200:
                    run.answers[i] = first_point(r.json())
                else:
                    run.errors[str(r.status_code)] += 1
                    if sum(run.errors.values()) <= 3:
                        print(f"  {r.status_code} {urls[i][:100]}: {r.text[:160]}", file=sys.stderr)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall = time.perf_counter() - t0
    return run


def accuracy(run: Run, truth: list[dict]) -> tuple[float, dict[str, tuple[int, int]]]:
    per_form: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ans, row in zip(run.answers, truth, strict=True):
        ok = ans is not None and metres(ans, (row["lon"], row["lat"])) <= RIGHT_M
        per_form[row.get("form", "?")][0] += ok
        per_form[row.get("form", "?")][1] += 1
    right = sum(v[0] for v in per_form.values())
    return right / len(truth), {k: (v[0], v[1]) for k, v in sorted(per_form.items())}


Engine = Callable[[int], Run]  # runs the first n queries (all: len) once


def http_engine(urls: list[str], headers: dict[str, str], concurrency: int) -> Engine:
    return lambda n: asyncio.run(fire(urls[:n], headers, concurrency))


def inprocess_engine(texts: list[str], dsn: str, concurrency: int) -> tuple[Engine, Callable]:
    """services.places.query.Places over the node's own database, in this process (no HTTP,
    JSON or access check): the accuracy of the query layer before its route is mounted."""
    from services.db import Database
    places_cls = importlib.import_module("services.places.query").Places  # not merged yet: ImportError
    db = Database(dsn, maxconn=concurrency)
    visible = frozenset(r["layer"] for r in db.all(
        "SELECT DISTINCT layer FROM geoplat_places WHERE layer IS NOT NULL"))
    places = places_cls(db, "hangzhou")

    def run(n: int) -> Run:
        calls = [partial(places.geocode, t, visible=visible, limit=1) for t in texts[:n]]
        results, lat, wall = places_scale.run_threads(calls, concurrency)
        return Run(answers=[(g.best.lon, g.best.lat) if g.best else None for g in results],
                   latencies=lat, wall=wall)
    return run, db.close


def nominatim_engines(args, cluster: Cluster, texts: list[str], workers: int, base: Path,
                      engines: dict[str, Engine], notes: list[str]) -> subprocess.Popen:
    """Install (if needed), import and start Nominatim; add its engines; its server process."""
    places_osm.ensure_venv(NOMINATIM_VENV)
    osm = base / "hangzhou.osm"
    counts = places_osm.write_osm(GPKG, osm)
    secs = places_osm.import_nominatim(NOMINATIM_VENV, base / "nominatim", osm, cluster.dsn())
    port = free_port()
    proc = places_osm.start_nominatim(NOMINATIM_VENV, base / "nominatim", workers, port)
    search = f"http://127.0.0.1:{port}/search?format=geojson&limit=1&q="
    engines["nominatim"] = http_engine([search + quote(t) for t in texts], {}, args.concurrency)
    engines["nominatim, spaced"] = http_engine([search + quote(spaced(t)) for t in texts], {},
                                               args.concurrency)
    notes.append(f"Nominatim 5.3.3 (osm2pgsql {osm2pgsql_version()}), import of "
                 f"{', '.join(f'{v} {k}' for k, v in counts.items())} took {secs:.1f} s; "
                 f"served by its Starlette app under uvicorn (httptools, uvloop, {workers} "
                 "workers, as our node), `/search?q=…&format=geojson&limit=1`.")
    return proc


def trgm_engine(texts: list[str], dsn: str, cluster: Cluster, concurrency: int
                ) -> tuple[Engine, Callable]:
    """The issue's fallback peer: plain pg_trgm similarity() over the node's addresses table."""
    from services.db import Database
    admin = Database(cluster.dsn(urlsplit(dsn).path.lstrip("/")), maxconn=1)
    admin.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # as the superuser, in that database
    admin.close()
    db = Database(dsn, maxconn=concurrency)
    sql = ("SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat FROM addresses"
           " ORDER BY similarity(address, %s) DESC LIMIT 1")

    def run(n: int) -> Run:
        calls = [partial(db.one, sql, (t,)) for t in texts[:n]]
        results, lat, wall = places_scale.run_threads(calls, concurrency)
        return Run(answers=[(r["lon"], r["lat"]) if r else None for r in results],
                   latencies=lat, wall=wall)
    return run, db.close


def osm2pgsql_version() -> str:
    res = subprocess.run(["osm2pgsql", "--version"], capture_output=True, text=True, check=False)
    text = (res.stdout + res.stderr).split("version", 1)
    return text[1].split()[0] if len(text) > 1 else "?"
