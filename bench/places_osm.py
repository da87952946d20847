"""Nominatim, the peer of bench/places.py: the Hangzhou sample as OSM XML, its venv, import, server.

Addresses become nodes with addr:street / addr:housenumber / addr:city / addr:district (plus
addr:province and addr:postcode), roads become ways with name / highway (one way per part of a
MultiLineString, nodes shared where parts meet at the same coordinate), POIs become nodes with
name and amenity (or shop / leisure / railway / office where OSM has no amenity for the category).

A small writer rather than ogr2osm: ogr2osm 1.2.1 needs GDAL's Python bindings (`osgeo`), which
on PyPI is a source package that builds against libgdal-dev (`gdal-config` not found here); the
three layers need nothing beyond nodes, ways and tags.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import quoteattr

import httpx
import psycopg2
import pyogrio

HIGHWAY = {"expressway": "motorway", "arterial": "primary", "secondary": "secondary",
           "local": "residential"}
# POI category -> (OSM key, value)
POI_TAG = {"bank": ("amenity", "bank"), "community_center": ("amenity", "community_centre"),
           "hospital": ("amenity", "hospital"), "hotel": ("tourism", "hotel"),
           "library": ("amenity", "library"), "metro_station": ("railway", "station"),
           "park": ("leisure", "park"), "pharmacy": ("amenity", "pharmacy"),
           "police": ("amenity", "police"), "post_office": ("amenity", "post_office"),
           "restaurant": ("amenity", "restaurant"), "school": ("amenity", "school"),
           "service_hall": ("amenity", "townhall"), "supermarket": ("shop", "supermarket")}
CITY, PROVINCE = "杭州市", "浙江省"


def _tags(tags: dict[str, str]) -> str:
    return "".join(f"<tag k={quoteattr(k)} v={quoteattr(str(v))}/>" for k, v in tags.items() if v)


def write_osm(gpkg: Path, out: Path) -> dict[str, int]:
    """Write `out` (OSM XML 0.6) from the gpkg's addresses, roads and poi; counts per kind."""
    counts = {"address nodes": 0, "poi nodes": 0, "road ways": 0, "way nodes": 0}
    next_id = 1
    node_lines: list[str] = []
    way_lines: list[str] = []
    coord_ids: dict[tuple[float, float], int] = {}

    def node(lon: float, lat: float, tags: dict[str, str] | None = None) -> int:
        nonlocal next_id
        nid = next_id
        next_id += 1
        node_lines.append(f'<node id="{nid}" version="1" lat="{lat:.7f}" lon="{lon:.7f}">'
                          f'{_tags(tags or {})}</node>')
        return nid

    addr = pyogrio.read_dataframe(gpkg, layer="addresses")
    for row in addr.itertuples():
        node(row.geometry.x, row.geometry.y, {
            "addr:street": row.road, "addr:housenumber": row.number,
            "addr:district": row.district, "addr:city": CITY, "addr:province": PROVINCE,
            "addr:postcode": row.postcode})
        counts["address nodes"] += 1
    poi = pyogrio.read_dataframe(gpkg, layer="poi")
    for row in poi.itertuples():
        key, value = POI_TAG.get(row.category, ("amenity", row.category))
        node(row.geometry.x, row.geometry.y, {"name": row.name, key: value})
        counts["poi nodes"] += 1
    roads = pyogrio.read_dataframe(gpkg, layer="roads")
    for row in roads.itertuples():
        parts = getattr(row.geometry, "geoms", [row.geometry])
        for line in parts:
            refs: list[int] = []
            for lon, lat in line.coords:
                key = (round(lon, 7), round(lat, 7))
                if key not in coord_ids:
                    coord_ids[key] = node(lon, lat)
                    counts["way nodes"] += 1
                if not refs or refs[-1] != coord_ids[key]:
                    refs.append(coord_ids[key])
            if len(refs) < 2:
                continue
            wid = len(way_lines) + 1
            nds = "".join(f'<nd ref="{r}"/>' for r in refs)
            way_lines.append(f'<way id="{wid}" version="1">{nds}'
                             f'{_tags({"name": row.name, "highway": HIGHWAY.get(row.kind, "road")})}'
                             "</way>")
            counts["road ways"] += 1
    with out.open("w", encoding="utf-8") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n"
                '<osm version="0.6" generator="geoplat bench/places_osm.py">\n')
        for line in node_lines + way_lines:
            f.write(line + "\n")
        f.write("</osm>\n")
    return counts


# ---------------------------------------------------------------- Nominatim, the peer

NOMINATIM_PINS = ["nominatim-db==5.3.3", "nominatim-api==5.3.3", "starlette==1.10.0",
                  "uvicorn[standard]==0.54.0"]


def ensure_venv(venv: Path) -> None:
    """Nominatim in a venv of its own (it pins psycopg 3, SQLAlchemy 2, PyICU: none of them ours)
    with uvicorn[standard], the HTTP stack our nodes use (httptools, uvloop)."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import nominatim_db, nominatim_api, starlette, httptools, uvloop"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return
    print(f"installing Nominatim into {venv}", flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *NOMINATIM_PINS], check=True)
    subprocess.run(check, check=True)


def libpq_dsn(dsn: str, dbname: str) -> str:
    """postgresql://user:pw@host:port/x -> Nominatim's `pgsql:` form for database `dbname`."""
    u = urlsplit(dsn)
    return (f"pgsql:dbname={dbname};host={u.hostname};port={u.port};user={unquote(u.username or '')};"
            f"password={unquote(u.password or '')}")


def import_nominatim(venv: Path, project: Path, osm_file: Path, admin_dsn: str) -> float:
    """`nominatim import` of `osm_file` into database `nominatim` of the server of `admin_dsn`
    (dropped first); seconds taken. The project dir gets an .env with the DSN (mode 600)."""
    if not shutil.which("osm2pgsql"):
        raise RuntimeError("osm2pgsql not found: run `make bench-places-deps` (apt osm2pgsql)")
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS nominatim")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'nominatim_www'")
        if cur.fetchone() is None:
            # Nominatim checks that its read-only web user exists (a login role: pg_user); it has
            # no password, so nobody can sign in as it over scram-sha-256
            cur.execute("CREATE ROLE nominatim_www LOGIN")
    conn.close()
    project.mkdir(parents=True, exist_ok=True)
    env_file = project / ".env"
    env_file.write_text(f'NOMINATIM_DATABASE_DSN="{libpq_dsn(admin_dsn, "nominatim")}"\n'
                        'NOMINATIM_DATABASE_WEBUSER="nominatim_www"\n', encoding="utf-8")
    env_file.chmod(0o600)
    log = project / "import.log"
    t0 = time.perf_counter()
    with log.open("wb") as f:
        res = subprocess.run([str(venv / "bin" / "nominatim"), "import", "--osm-file", str(osm_file),
                              "--project-dir", str(project), "--threads", "2"],
                             cwd=project, stdout=f, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError("nominatim import failed:\n" + "\n".join(tail))
    return time.perf_counter() - t0


def start_nominatim(venv: Path, project: Path, workers: int, port: int) -> subprocess.Popen:
    """Nominatim's Starlette app under uvicorn (httptools, uvloop, `workers` processes), in
    its own process group; waits for /status."""
    log = (project / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "uvicorn"), "--factory", "nominatim_api.server.starlette.server:run_wsgi",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--http", "httptools", "--loop", "uvloop", "--no-access-log"],
        cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nominatim serve exited ({proc.returncode}); see {project}/serve.log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling for readiness, not a fixed wait
    raise RuntimeError("nominatim serve did not answer /status in 60 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
