"""Address variants: the ways people really type an address, drawn from the sample data, for
the accuracy test of the places query layer (tests/places) and bench/places.py.

`variants(addresses, n, seed)` draws `n` (query text, expected row) pairs from door-plate rows
(dicts with keys address, road, number, district, lon, lat, fid), cycling through the forms of
issue 13 so that each form gets about the same share:

- `no_prefix`     without province/city (上城区宏二路2号) or without any admin part (宏二路2号,
                  only where road + number is unique in the rows given)
- `traditional`   traditional characters (opencc s2t: 浙江省杭州市上城區宏二路2號)
- `fullwidth`     full-width digits (宏二路２号)
- `missing`       a missing 省/市/区/路 (浙江杭州上城区宏二路2号, 上城区宏二2号)
- `extra`         a doubled 市/区/路 (上城区区宏二路2号)
- `wrong_char`    one wrong character in the road name (never making another road's name)
- `common_name`   (only with `pois=`) the common name of a place: 市民中心 for 杭州市民中心政务服务大厅
- `junction`      (only with `roads=`) two roads that cross: 宏二路与宏六路交叉口, A和B路口

The expected row is the door-plate row itself (with `kind` "address" and `form` added), except
for `common_name` (the POI: kind "poi", its own point) and `junction` (kind "junction", lon/lat
the crossing point of the two roads' lines, `road`/`road2` the names). A right answer is a
result within 25 m of the expected row's lon/lat (the bench) or that same row (the tests).

`pois`: dicts with name, address, lon, lat, fid; `roads`: dicts with name and wkt (lines).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import opencc
import shapely

Row = dict[str, Any]
PROVINCE, CITY = "浙江省", "杭州市"
FORMS = ("no_prefix", "traditional", "fullwidth", "missing", "extra", "wrong_char",
         "common_name", "junction")
# characters to substitute for one of a road name's (none of them ends up in a real road name)
WRONG_POOL = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥天地玄黄宇宙洪荒"
GENERIC_TAILS = ("政务服务大厅", "政务服务中心", "便民服务中心")
_S2T = opencc.OpenCC("s2t")


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "0" <= c <= "9" else c for c in text)


def _parts(row: Row) -> tuple[str, str, str, str]:
    """(province+city prefix, district, road, number) of a door plate's address."""
    district, road, number = row["district"], row["road"], row["number"]
    if not number.endswith("号"):
        number = f"{number}号"
    return PROVINCE + CITY, district, road, number


def _common_names(name: str, districts: set[str]) -> list[str]:
    """What people call a POI: without the city prefix, without a generic tail, or the
    district (one of `districts`) without its 区 (萧山政务服务中心)."""
    out = []
    for prefix in ("杭州市", "杭州"):
        if name.startswith(prefix) and len(name) > len(prefix) + 1:
            short = name[len(prefix):]
            out.append(short)
            for tail in GENERIC_TAILS:
                if short.endswith(tail) and len(short) > len(tail) + 1:
                    out.append(short[: -len(tail)])
            break
    for district in districts:
        if name.startswith(district) and len(name) > len(district) + 1:
            out.append(district[:-1] + name[len(district):])
    m = re.match(r"^(.{2,4})街道(便民服务中心)$", name)
    if m:
        out.append(m.group(1) + m.group(2))
    return [n for n in out if len(n) >= 2]


def _junctions(roads: list[Row]) -> list[Row]:
    """Crossing points of pairs of named roads (one point per pair, the first crossing)."""
    by_name: dict[str, Any] = {}
    for r in roads:
        geom = shapely.from_wkt(r["wkt"])
        by_name[r["name"]] = shapely.union(by_name[r["name"]], geom) if r["name"] in by_name \
            else geom
    names = sorted(n for n in by_name if n and not n.endswith("高速"))
    tree = shapely.STRtree([by_name[n] for n in names])
    out = []
    for i, j in tree.query([by_name[n] for n in names], predicate="intersects").T:
        if i >= j:
            continue
        a, b = names[i], names[j]
        inter = shapely.intersection(by_name[a], by_name[b])
        points = [g for g in shapely.get_parts(inter) if g.geom_type == "Point"]
        if len(points) != 1:   # roads that cross more than once: no single junction
            continue
        out.append({"kind": "junction", "road": a, "road2": b, "address": f"{a}与{b}交叉口",
                    "lon": points[0].x, "lat": points[0].y, "fid": None})
    return out


def _road_variant(road: str, rng: random.Random, taken: set[str]) -> str | None:
    core = road[:-1] if road[-1] in "路街道巷弄" else road
    if len(core) < 2:
        return None
    pool = [c for c in WRONG_POOL if c not in road]
    for _ in range(20):
        i = rng.randrange(len(core))
        if core[i].isdigit():
            continue
        wrong = core[:i] + rng.choice(pool) + core[i + 1:] + road[len(core):]
        if wrong not in taken:
            return wrong
    return None


def _door_form(form: str, row: Row, rng: random.Random, unique: bool, roads: set[str]
               ) -> str | None:
    prefix, district, road, number = _parts(row)
    if form == "no_prefix":
        return road + number if unique and rng.random() < 0.5 else district + road + number
    if form == "traditional":
        return _S2T.convert(rng.choice([prefix, CITY, ""]) + district + road + number)
    if form == "fullwidth":
        return rng.choice([prefix, CITY, ""]) + district + road + _fullwidth(number)
    if form == "missing":
        choices = ["浙江杭州市" + district + road + number, PROVINCE + "杭州" + district + road + number,
                   CITY + district[:-1] + road + number]
        if road.endswith("路") and len(road) >= 3:
            choices.append(CITY + district + road[:-1] + number)
        return rng.choice(choices)
    if form == "extra":
        choices = [CITY + district + "区" + road + number, "杭州市市" + district + road + number]
        if road.endswith("路"):
            choices.append(district + road + "路" + number)
        return rng.choice(choices)
    if form == "wrong_char":
        wrong = _road_variant(road, rng, roads)
        return None if wrong is None else rng.choice([CITY, ""]) + district + wrong + number
    raise ValueError(form)


def variants(addresses: list[Row], n: int, seed: int, *, pois: list[Row] | None = None,
             roads: list[Row] | None = None) -> list[tuple[str, Row]]:
    """`n` (query text, expected row) pairs, reproducible for a seed (see the module doc)."""
    rng = random.Random(seed)
    counts = Counter((r["road"], r["number"]) for r in addresses)
    road_names = {r["road"] for r in addresses} | {r["name"] for r in roads or ()}
    forms = [f for f in FORMS if (f != "common_name" or pois) and (f != "junction" or roads)]
    junctions = _junctions(roads) if roads else []
    if not junctions and "junction" in forms:
        forms.remove("junction")
    districts = {r["district"] for r in addresses if r["district"].endswith("区")}
    named_pois = [(p, names) for p in pois or ()
                  if (names := _common_names(p["name"], districts))]
    if not named_pois and "common_name" in forms:
        forms.remove("common_name")
    out: list[tuple[str, Row]] = []
    k = 0
    while len(out) < n:
        form = forms[k % len(forms)]
        k += 1
        if form == "junction":
            j = rng.choice(junctions)
            a, b = (j["road"], j["road2"]) if rng.random() < 0.5 else (j["road2"], j["road"])
            text = rng.choice([f"{a}与{b}交叉口", f"{a}和{b}路口", f"{a}与{b}交叉路口"])
            out.append((text, {**j, "form": form}))
            continue
        if form == "common_name":
            poi, names = rng.choice(named_pois)
            out.append((rng.choice(names), {**poi, "kind": "poi", "form": form}))
            continue
        row = rng.choice(addresses)
        door = _door_form(form, row, rng, counts[(row["road"], row["number"])] == 1, road_names)
        if door is not None:
            out.append((door, {**row, "kind": "address", "form": form}))
    return out
