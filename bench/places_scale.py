"""The scale part of bench/places.py: a generated `geoplat_places` table of door plates (streets x
numbers across Zhejiang's counties) in a private database, its index build, size and memory,
then geocode / reverse-geocode latency through `services.places.query.Places` at N threads.

Streets: per county of data-samples/zhejiang.gpkg (the 76 units of 1999), `streets` names made
of two characters and a suffix (seeded; the same name recurs in other counties, as real names
do), each a straight line from a random point of the county's bbox, door numbers 1..200 every
12 m, odd numbers on one side and even on the other (10 m apart). One `road` row per street.
"""

from __future__ import annotations

import importlib
import io
import math
import random
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pyogrio
import shapely

PROVINCE, PROVINCE_CODE = "浙江省", "330000"
CITIES = {"3301": "杭州市", "3302": "宁波市", "3303": "温州市", "3304": "嘉兴市", "3305": "湖州市",
          "3306": "绍兴市", "3307": "金华市", "3308": "衢州市", "3309": "舟山市", "3310": "台州市",
          "3325": "丽水市"}  # 1999: 丽水 was still 丽水地区 (3325); named as the city it became
CHARS = "安宝长朝崇春大德东丰福光广海和宏华环惠建江金锦景康乐丽联龙明南宁平青庆荣瑞三山胜泰天文西祥新兴阳永裕振中"
SUFFIXES = ("路", "街", "大道", "巷", "路", "街")
NUMBERS = 200
COLUMNS = ("kind", "name", "name_norm", "pinyin", "address", "address_norm", "road", "road_norm",
           "number", "number_int", "province", "province_code", "city", "city_code", "county",
           "county_code", "layer", "source_id", "geom", "shape")


@dataclass
class Plate:
    address: str
    lon: float
    lat: float


@dataclass
class Generated:
    rows: int
    roads: int
    seconds: float
    sample: list[Plate] = field(default_factory=list)


def counties(gpkg: Path) -> list[dict]:
    """The county units; a city's 市辖区 (its urban districts as one unit in the 1999 data) has
    no county name of its own in an address: 浙江省杭州市<road><number>."""
    df = pyogrio.read_dataframe(gpkg, layer="counties")
    out = []
    for row in df.itertuples():
        urban = row.name.endswith("市辖区")
        out.append({"name": None if urban else row.name, "code": None if urban else row.code,
                    "unit_name": row.name, "unit_code": row.code,
                    "city": CITIES.get(row.code[:4], ""), "city_code": row.code[:4] + "00",
                    "bounds": row.geometry.bounds, "geometry": row.geometry})
    return out


def _divisions(cur, units: list[dict], norm: Callable[[str], str]) -> int:
    """geoplat_divisions (province, cities, county units with their 1999 boundaries) and the
    same divisions as public rows of geoplat_places, as services.places.gazetteer makes them:
    the query layer parses the admin prefix of an address against them."""
    try:
        short: Callable[[str], str] = importlib.import_module("services.places.text").short_name
    except (ImportError, AttributeError):
        def short(name: str) -> str:
            return name[:-1] if len(name) > 2 and name[-1] in "省市区县" else name
    by_city: dict[str, list] = {}
    for u in units:
        by_city.setdefault(u["city_code"], []).append(u["geometry"])
    divs: list[tuple[str, str, str, str | None, Any]] = [
        (PROVINCE_CODE, PROVINCE, "province", None, shapely.unary_union([u["geometry"] for u in units]))]
    divs += [(code, CITIES[code[:4]], "city", PROVINCE_CODE, shapely.unary_union(geoms))
             for code, geoms in sorted(by_city.items())]
    divs += [(u["unit_code"], u["unit_name"], "county", u["city_code"], u["geometry"]) for u in units]
    cur.execute("TRUNCATE geoplat_divisions")
    for code, name, kind, parent, geom in divs:
        multi = geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])
        centre = geom.point_on_surface()
        cur.execute(
            "INSERT INTO geoplat_divisions (code, name, name_norm, short_name, kind, parent_code,"
            " centre, bbox, boundary, boundary_note, source) VALUES (%s, %s, %s, %s, %s, %s,"
            " ST_SetSRID(ST_GeomFromWKB(%s), 4490), ST_SetSRID(ST_Envelope(ST_GeomFromWKB(%s)), 4490),"
            " ST_SetSRID(ST_GeomFromWKB(%s), 4490), %s, %s)",
            (code, name, norm(name), short(name), kind, parent, centre.wkb, multi.wkb, multi.wkb,
             "1999 county units", "data-samples/zhejiang.gpkg"))
        chain = {"province": (PROVINCE, PROVINCE_CODE),
                 "city": (CITIES.get(code[:4]), code[:4] + "00") if kind != "province" else (None, None),
                 "county": (name, code) if kind == "county" else (None, None)}
        cur.execute(
            "INSERT INTO geoplat_places (kind, name, name_norm, province, province_code, city,"
            " city_code, county, county_code, geom) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " ST_SetSRID(ST_GeomFromWKB(%s), 4490))",
            (kind, name, norm(name), *chain["province"], *chain["city"], *chain["county"],
             centre.wkb))
    return len(divs)


def _norm() -> tuple[Callable[[str], str], Callable[[str], str] | None, str]:
    """services.places.text.normalise / pinyin_initials when the matching code is there."""
    try:
        text = importlib.import_module("services.places.text")
    except ImportError:
        return (lambda s: s), None, "identity (services.places.text not on this checkout)"
    return text.normalise, getattr(text, "pinyin_initials", None), "services.places.text.normalise"


def _tsv(values: tuple) -> str:
    return "\t".join("\\N" if v is None else str(v).replace("\\", "\\\\").replace("\t", " ")
                     for v in values) + "\n"


def _rows(n: int, seed: int, units: list[dict], norm: Callable[[str], str],
          initials: Callable[[str], str] | None, sample_every: int, sample: list[Plate]
          ) -> Iterator[str]:
    rng = random.Random(seed)
    per_county = math.ceil(n / (len(units) * NUMBERS))
    made = 0
    for c in units:
        names: set[str] = set()
        while len(names) < per_county:
            names.add(rng.choice(CHARS) + rng.choice(CHARS) + rng.choice(SUFFIXES))
        prefix = PROVINCE + c["city"] + (c["name"] or "")
        minx, miny, maxx, maxy = c["bounds"]
        for road in sorted(names):
            if made >= n:
                return
            lon0, lat0 = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            angle = rng.uniform(0, math.pi)
            # metres -> degrees at this latitude
            dx, dy = math.cos(angle) / (111320 * math.cos(math.radians(lat0))), math.sin(angle) / 110540
            road_norm = norm(road)
            admin = (PROVINCE, PROVINCE_CODE, c["city"], c["city_code"], c["name"], c["code"])
            end = (lon0 + dx * 12 * NUMBERS, lat0 + dy * 12 * NUMBERS)
            shape = f"SRID=4490;LINESTRING({lon0} {lat0},{end[0]} {end[1]})"
            yield _tsv(("road", road, road_norm, initials(road) if initials else None, prefix + road,
                        norm(prefix + road), road, road_norm, None, None, *admin, "addresses",
                        f"road:{c['code']}:{road}", f"SRID=4490;POINT({lon0} {lat0})", shape))
            for k in range(1, NUMBERS + 1):
                if made >= n:
                    return
                side = 5 if k % 2 else -5  # metres either side of the centre line
                lon = lon0 + dx * 12 * k - dy * side * 110540 / (111320 * math.cos(math.radians(lat0)))
                lat = lat0 + dy * 12 * k + dx * side * (111320 * math.cos(math.radians(lat0))) / 110540
                number = f"{k}号"
                address = prefix + road + number
                yield _tsv(("address", road + number, norm(road + number), None, address,
                            norm(address), road, road_norm, number, k, *admin, "addresses",
                            f"{c['code']}:{road}:{k}", f"SRID=4490;POINT({lon} {lat})", None))
                made += 1
                if made % sample_every == 0:
                    sample.append(Plate(address, lon, lat))


class _Stream(io.TextIOBase):
    """A file-like over an iterator of lines, for COPY FROM STDIN without a temporary file."""

    def __init__(self, lines: Iterator[str]):
        self._lines, self._buf = lines, ""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = 1 << 16 if size is None or size < 0 else size
        while len(self._buf) < want:
            try:
                self._buf += next(self._lines)
            except StopIteration:
                break
        out, self._buf = self._buf[:want], self._buf[want:]
        return out


def generate(dsn: str, gpkg: Path, n: int, seed: int = 13, samples: int = 4000) -> tuple[Generated, str]:
    """Fill geoplat_places (and nothing else) of the database `dsn`; (what was made, norm used)."""
    from services.places import schema
    units = counties(gpkg)
    norm, initials, how = _norm()
    sample: list[Plate] = []
    conn = psycopg2.connect(dsn)
    t0 = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.execute(schema.DDL)
        cur.execute("TRUNCATE geoplat_places")
        _divisions(cur, units, norm)
        cur.copy_expert(f"COPY geoplat_places ({', '.join(COLUMNS)}) FROM STDIN",
                        _Stream(_rows(n, seed, units, norm, initials, max(1, n // samples), sample)))
        cur.execute("SELECT count(*) FILTER (WHERE kind = 'address'), count(*) FILTER "
                    "(WHERE kind = 'road') FROM geoplat_places")  # divisions: 88 more rows
        plates, roads = cur.fetchone()
    conn.close()
    return Generated(plates, roads, time.perf_counter() - t0, sample), how


def build_indexes(dsn: str) -> float:
    """Seconds for services.places.indexes.create + ANALYZE."""
    from services.places import indexes
    conn = psycopg2.connect(dsn)
    t0 = time.perf_counter()
    with conn, conn.cursor() as cur:
        indexes.create(cur)
        cur.execute("ANALYZE geoplat_places")
    conn.close()
    return time.perf_counter() - t0


def sizes(dsn: str) -> dict[str, int]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_relation_size('geoplat_places'), pg_indexes_size('geoplat_places'), "
                    "pg_total_relation_size('geoplat_places')")
        table, idx, total = cur.fetchone()
    conn.close()
    return {"table": table, "indexes": idx, "total": total}


def pss_kib(pids: list[int]) -> int:
    """Proportional set size of processes (shared pages split between them), KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def postgres_pids(postmaster_pid_file: Path) -> list[int]:
    """The postmaster of a cluster and its children (backends, checkpointer, ...)."""
    master = int(postmaster_pid_file.read_text().split()[0])
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_threads(calls: Sequence[Callable[[], Any]], concurrency: int
                ) -> tuple[list[Any], list[float], float]:
    """Each call once, `concurrency` at a time (closed loop); (results, latencies s, wall s)."""
    lat: list[float] = [0.0] * len(calls)

    def timed(i: int) -> Any:
        t = time.perf_counter()
        try:
            return calls[i]()
        finally:
            lat[i] = time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(timed, range(len(calls))))
    return results, lat, time.perf_counter() - t0
