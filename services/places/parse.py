"""Address parsing: a normalised address -> admin parts, road, door number, remainder, and the
splits of a road junction.

The dictionary is the node's own `geoplat_divisions` (names and short names, `Divisions`), not
a general one. cpca 0.5.5 (jieba + its own 2018 table) was measured on 1200 door-plate variants
of tests/support/place_variants (seed 13, normalised text, the sample gazetteer): the right
county for 94.7 % (missing 区 as in 杭州市上城宏二路2号: 70 %; it leaves 区/地 of a doubled
suffix in the address), against 100 % here at about the same cost (31 vs 36 µs a query); and
it knows neither the node's townships nor its roads. So it was not adopted. Parsing here is
deterministic string work on text.normalise() output; the query layer resolves roads against
the node's own road names (rapidfuzz).

Admin prefix: at each step the longest division name or short name at the head of the text
that is a descendant of what was matched so far (or any, when nothing was: the prefix may be
missing); a doubled suffix after a full name (杭州市市, 上城区区) is skipped. Where a *short*
name was consumed (杭州上城宏二路: 上城), `alternatives` keeps the rest without consuming it
(西湖大道 is a road, not 西湖 + 大道).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.places.text import normalise

__all__ = ["Division", "Divisions", "ParsedAddress", "junction_splits", "parse",
           "split_number"]

DEPTH = {"province": 0, "city": 1, "county": 2, "township": 3}
_NUMBER = re.compile(r"(\d+(?:-\d+)*)(号|弄|幢|栋)?")
JUNCTION_TAILS = ("交叉路口", "十字路口", "交叉口", "交汇处", "交口", "路口")
JUNCTION_JOINS = "与和跟同及、"
ROAD_SUFFIXES = ("大道", "大街", "公路", "路", "街", "道", "巷", "弄", "里", "线")


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    kind: str
    parent_code: str | None
    short_name: str
    lon: float = 0.0
    lat: float = 0.0


class Divisions:
    """The node's divisions by normalised name and short name, with their parent links."""

    def __init__(self, rows: list[Division]):
        self.by_code = {d.code: d for d in rows}
        self.by_name: dict[str, list[Division]] = {}
        self.full: set[str] = set()
        for d in rows:
            full, short = normalise(d.name), normalise(d.short_name)
            self.full.add(full)
            for key in {full, short}:
                if len(key) >= 2:
                    self.by_name.setdefault(key, []).append(d)
        self.max_len = max((len(k) for k in self.by_name), default=0)

    def chain(self, code: str | None) -> list[Division]:
        """The division of `code` and its parents, from the province down."""
        out: list[Division] = []
        while code and code in self.by_code and len(out) < 6:
            out.append(self.by_code[code])
            code = self.by_code[code].parent_code
        return out[::-1]

    def is_under(self, child: Division, parent: Division) -> bool:
        return any(d.code == parent.code for d in self.chain(child.parent_code))


@dataclass(frozen=True)
class ParsedAddress:
    text: str                                   # the normalised input
    admin: tuple[Division, ...] = ()            # matched divisions, coarsest first
    scope: tuple[Division, ...] = ()            # candidates of the deepest level (homonyms)
    rest: str = ""                              # the text after the admin prefix
    alternatives: tuple[str, ...] = ()          # rests where a short name was not consumed
    road: str | None = None                     # the road part of `rest` (before the number)
    number: str | None = None                   # 2号, 12-3号
    number_int: int | None = None
    building: str = ""                          # what follows the door number
    junctions: tuple[tuple[str, str], ...] = field(default=())


def _admin_prefix(text: str, divisions: Divisions
                  ) -> tuple[list[Division], list[Division], int, list[int]]:
    matched: list[Division] = []
    scope: list[Division] = []
    pos, short_positions = 0, []
    while pos < len(text) and len(matched) < 4:
        found: list[Division] = []
        length, short = 0, False
        for n in range(min(divisions.max_len, len(text) - pos), 1, -1):
            key = text[pos:pos + n]
            cands = [d for d in divisions.by_name.get(key, ())
                     if (not matched or divisions.is_under(d, matched[-1]))
                     and (not matched or DEPTH[d.kind] > DEPTH[matched[-1].kind])]
            if cands:
                found, length, short = cands, n, key not in divisions.full
                break
        if not found:
            break
        if short:
            short_positions.append(pos)
        pos += length
        # a doubled suffix (杭州市市, 上城区区) after a full name
        while not short and pos < len(text) - 1 and text[pos] == text[pos - 1] \
                and text[pos] in "省市区县":
            pos += 1
        found.sort(key=lambda d: DEPTH[d.kind])
        scope = [d for d in found if d.kind == found[0].kind]
        matched.append(scope[0])
    return matched, scope, pos, short_positions


def split_number(rest: str) -> tuple[str | None, str | None, int | None, str]:
    """(road, number, number_int, building) of the text after the admin prefix."""
    m = _NUMBER.search(rest)
    if not m or m.start() == 0:
        return (rest or None), None, None, ""
    digits = m.group(1)
    number = digits + (m.group(2) or "号")
    return rest[:m.start()], number, int(digits.split("-")[0]), rest[m.end():]


def junction_splits(text: str) -> list[tuple[str, str]]:
    """Every (road a, road b) split of `A与B交叉口` / `A和B路口` (the join character may also
    be inside a road name: 松和路与宏二路, so all positions are tried)."""
    body = text
    tail = next((t for t in JUNCTION_TAILS if body.endswith(t)), None)
    if tail:
        body = body[: -len(tail)]
    out = []
    for i, c in enumerate(body):
        if c in JUNCTION_JOINS and 2 <= i <= len(body) - 3:
            a, b = body[:i], body[i + 1:]
            if tail or (a.endswith(ROAD_SUFFIXES) and b.endswith(ROAD_SUFFIXES)):
                out.append((a, b))
    return out


def parse(text: str, divisions: Divisions) -> ParsedAddress:
    """Parse a query (normalised here) into its parts; never fails (parts may be empty)."""
    norm = normalise(text)
    matched, scope, pos, short_positions = _admin_prefix(norm, divisions)
    rest = norm[pos:]
    alternatives = tuple(norm[p:] for p in short_positions)
    road, number, number_int, building = split_number(rest)
    # a road may begin with a short name (上塘高架路: 上塘 of 上塘街道): the alternatives too
    junctions = tuple(dict.fromkeys(s for t in (rest, *alternatives) for s in junction_splits(t))
                      ) if number is None else ()
    return ParsedAddress(text=norm, admin=tuple(matched), scope=tuple(scope), rest=rest,
                         alternatives=alternatives, road=road, number=number,
                         number_int=number_int, building=building, junctions=junctions)
