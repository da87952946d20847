"""Place search, administrative divisions and type-ahead of the query layer (`Places`
inherits `Search`; services.places.query has the geocoder and the module doc).

The statements are built by `search_statement` / `suggest_statement` from constant pieces and
psycopg2 parameters only; the tests EXPLAIN the very statements these methods run.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from services.db import Database
from services.places import limits, rows
from services.places.errors import MISSING, PlacesInputError
from services.places.model import (
    COUNTRY_CODE,
    COUNTRY_KEYWORDS,
    COUNTRY_NAME,
    AreaCount,
    Division,
    Place,
    SearchResult,
)
from services.places.parse import Division as Entry
from services.places.text import grams, normalise

__all__ = ["Search", "search_statement", "suggest_statement"]

KIND_ORDER = ("ARRAY['province', 'city', 'county', 'township', 'poi', 'road', 'place',"
              " 'address']")
MAX_SUGGEST = 100
DEFAULT_RADIUS_M = 1000.0
MAX_ADMIN_MATCHES = 10


def _text_condition(qn: str, args: dict[str, Any]) -> str:
    """The GIN-served condition of a keyword: all its bigrams (its one character) among the
    name's/aliases' grams, then a true substring of the name or an alias."""
    args["grams"] = [qn] if len(qn) == 1 else [g for g in grams(qn) if len(g) == 2]
    args["qn"] = qn
    return ("geoplat_grams(p.name_norm, p.aliases) @> %(grams)s::text[] AND"
            " (strpos(p.name_norm, %(qn)s) > 0 OR EXISTS (SELECT 1 FROM unnest(p.aliases) AS a"
            " WHERE strpos(a, %(qn)s) > 0))")


def search_statement(qn: str | None, vis: list[str], *, bbox: tuple | None = None,
                     near: tuple[float, float] | None = None, radius_m: float | None = None,
                     codes: tuple[str, list[str]] | None = None, polygon_wkt: str | None = None,
                     categories: list[str] | None = None, kinds: list[str] | None = None
                     ) -> tuple[str, str, dict[str, Any]]:
    """(FROM+WHERE, ORDER BY, args) of a search."""
    args: dict[str, Any] = {"visible": vis}
    where = [rows.VISIBLE]
    if qn:
        where.append(_text_condition(qn, args))
    if kinds:
        where.append("p.kind = ANY(%(kinds)s)")
        args["kinds"] = kinds
    if categories:
        where.append("p.category = ANY(%(categories)s)")
        args["categories"] = categories
    if bbox:
        where.append("ST_Intersects(p.geom, ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4490))")
        args.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    if codes:
        where.append(f"{rows.CODE_COLUMN[codes[0]]} = ANY(%(codes)s)")
        args["codes"] = codes[1]
    if polygon_wkt:
        where.append("ST_Intersects(p.geom, ST_GeomFromText(%(polygon)s, 4490))")
        args["polygon"] = polygon_wkt
    order = f"array_position({KIND_ORDER}, p.kind), p.id"
    if qn:
        order = ("(p.name_norm = %(qn)s) DESC, (left(p.name_norm, length(%(qn)s)) = %(qn)s)"
                 f" DESC, length(p.name_norm), {order}")
    if near:
        r = radius_m or DEFAULT_RADIUS_M
        deg = r / (111_000.0 * max(0.01, math.cos(math.radians(min(89.0, abs(near[1])))))) * 1.1
        where.append("p.geom && ST_Expand(ST_SetSRID(ST_MakePoint(%(nx)s, %(ny)s), 4490),"
                     " %(deg)s) AND ST_DWithin(p.geom::geography, ST_SetSRID(ST_MakePoint("
                     "%(nx)s, %(ny)s), 4490)::geography, %(radius)s)")
        args.update(nx=near[0], ny=near[1], deg=max(deg, r / 111_000.0 * 1.1), radius=r)
        order = "dist, p.id"
    return "FROM geoplat_places p WHERE " + " AND ".join(where), order, args


def suggest_statement(qn: str, vis: list[str], limit: int) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"visible": vis, "limit": limit, "prefix": rows.like_prefix(qn)}
    if qn.isascii() and qn.isalnum():      # pinyin initials: hz, hzsmzx
        return ((f"SELECT {rows.PLACE_COLS} FROM geoplat_places p WHERE p.pinyin LIKE %(prefix)s"
                f" AND {rows.VISIBLE} ORDER BY array_position({KIND_ORDER}, p.kind),"
                " length(p.name_norm), p.id LIMIT %(limit)s"), args)
    cond = _text_condition(qn, args)
    return ((f"SELECT {rows.PLACE_COLS} FROM geoplat_places p WHERE {cond} AND {rows.VISIBLE}"
            " ORDER BY (p.name_norm LIKE %(prefix)s) DESC,"
            f" array_position({KIND_ORDER}, p.kind), length(p.name_norm), p.id"
            " LIMIT %(limit)s"), args)


class Search:
    db: Database
    node: str

    def dictionary(self) -> Any:  # the node's dictionaries (services.places.query)
        raise NotImplementedError

    # -- search ----------------------------------------------------------------------------

    def search(self, q: str | None, *, visible: frozenset[str],
               bbox: tuple[float, float, float, float] | None = None,
               near: tuple[float, float] | None = None, radius_m: float | None = None,
               admin: str | None = None, polygon: list[tuple[float, float]] | None = None,
               categories: list[str] | None = None, kinds: tuple[str, ...] | None = None,
               limit: int = 10, offset: int = 0, statistics: bool = False) -> SearchResult:
        text = limits.text(q, "keyWord", required=False)
        vis = limits.visible(visible)
        limit, offset = limits.paging(limit, offset)
        box = limits.bbox(bbox) if bbox is not None else None
        point = limits.lonlat(near[0], near[1]) if near is not None else None
        if near is not None and not (isinstance(near, tuple | list) and len(near) == 2):
            raise PlacesInputError(limits.BAD_LONLAT, "near must be lon,lat", param="near")
        radius = limits.distance(radius_m, "radius") if radius_m is not None else None
        if radius is not None and point is None:
            raise PlacesInputError(MISSING, "radius needs a point", param="pointLonlat")
        poly = limits.polygon(polygon) if polygon is not None else None
        cats, kind_list = limits.categories(categories), limits.kinds(kinds)
        area_text = limits.text(admin, "specify", required=False)
        if not any((text, box, point, area_text, poly, cats)):
            raise PlacesInputError(MISSING, "keyWord is missing", param="keyWord")
        d = self.dictionary()
        if not d.generation:
            return SearchResult(places=(), total=0)
        qn = normalise(text) if text else None
        if text and not qn:
            return SearchResult(places=(), total=0)
        codes = None
        if area_text:
            found = self._divisions(area_text, d)
            if not found:
                return SearchResult(places=(), total=0)
            codes = (found[0].kind, [e.code for e in found if e.kind == found[0].kind])
        body, order, args = search_statement(qn, vis, bbox=box, near=point, radius_m=radius,
                                             codes=codes, polygon_wkt=poly, categories=cats,
                                             kinds=kind_list)
        dist = ("ST_Distance(p.geom::geography, ST_SetSRID(ST_MakePoint(%(nx)s, %(ny)s), 4490)"
                "::geography) AS dist" if point else "NULL::float AS dist")
        found_rows = self.db.all(f"SELECT {rows.PLACE_COLS}, {dist} {body} ORDER BY {order}"
                                 " LIMIT %(limit)s OFFSET %(offset)s",
                                 {**args, "limit": limit, "offset": offset})
        total_row = self.db.one(f"SELECT count(*) AS n {body}", args)
        total = int(total_row["n"]) if total_row else 0
        places = tuple(rows.place(r, self.node, distance_m=None if r["dist"] is None
                                  else round(float(r["dist"]), 2)) for r in found_rows)
        stats = self._statistics(body, args, d) if statistics else ()
        area = None
        if qn and not any((box, point, area_text, poly, cats)):
            named = d.divisions.by_name.get(qn, [])
            if len(named) == 1:
                area = self._division_rows([named[0].code], geometry=False)[0]
        return SearchResult(places=places, total=max(total, len(places)), statistics=stats,
                            area=area)

    def _statistics(self, body: str, args: dict[str, Any], d: Any) -> tuple[AreaCount, ...]:
        out: list[AreaCount] = []
        for level, leaf in (("city", False), ("county", True)):
            counts = self.db.all(f"SELECT p.{level}_code AS code, count(*) AS n {body}"
                                 f" AND p.{level}_code IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
                                 " LIMIT 100", args)
            if len(counts) > 1 or leaf:
                for c in counts:
                    e = d.divisions.by_code.get(c["code"])
                    if e is not None:
                        out.append(AreaCount(name=e.name, code=e.code, count=int(c["n"]),
                                             lon=e.lon, lat=e.lat, leaf=leaf))
                break
        return tuple(out)

    # -- administrative divisions ------------------------------------------------------------

    def _divisions(self, keyword: str, d: Any) -> list[Entry]:
        """Divisions named by a code (6/9 digits, 156-prefixed) or a (fuzzy) name."""
        kw = keyword.strip()
        if kw.isdigit():
            if kw.startswith("156") and len(kw) in (9, 12):
                kw = kw[3:]
            e = d.divisions.by_code.get(kw)
            return [e] if e is not None else []
        n = normalise(kw)
        if not n:
            return []
        exact = d.divisions.by_name.get(n)
        if exact:
            return sorted(exact, key=lambda e: (len(e.code), e.code))[:MAX_ADMIN_MATCHES]
        if len(n) < 3:      # one character of two wrong is not a fuzzy match
            return []
        best = process.extract(n, [k for k in d.divisions.by_name if len(k) >= 3],
                               scorer=Levenshtein.normalized_similarity, limit=3,
                               score_cutoff=0.6)
        if not best:
            return []
        top = best[0][1]
        return [e for name, score, _ in best if score == top
                for e in d.divisions.by_name[name]][:MAX_ADMIN_MATCHES]

    def _division_rows(self, codes: list[str], *, geometry: bool) -> list[Division]:
        boundary = ", ST_AsText(boundary) AS boundary_wkt" if geometry else ""
        found = self.db.all(f"SELECT {rows.DIVISION_COLS}{boundary} FROM geoplat_divisions"
                            " WHERE code = ANY(%(codes)s)", {"codes": codes})
        by_code = {r["code"]: r for r in found}
        return [rows.division(by_code[c]) for c in codes if c in by_code]

    def admin(self, keyword: str, *, children: int = 0, geometry: bool = False
              ) -> list[Division]:
        kw = limits.text(keyword, "keyword")
        assert kw is not None
        depth = limits.children(children)
        d = self.dictionary()
        if not d.generation:
            return []
        if kw.strip() in COUNTRY_KEYWORDS:
            return self._country(depth)
        entries = self._divisions(kw, d)
        out = []
        for main in self._division_rows([e.code for e in entries], geometry=bool(geometry)):
            parents = tuple(self._division_rows(
                [e.code for e in d.divisions.chain(main.parent_code)], geometry=False))
            out.append(replace(main, parents=parents,
                               children=self._children(main.code, depth)))
        return out

    def _country(self, depth: int) -> list[Division]:
        """The country: its box spans the node's provinces, its children are they (no
        outline of its own: the provinces' outlines are theirs to give)."""
        # a node below the national one holds its province's row with no box of its own:
        # then the box of what it holds
        box = self.db.one("SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, "
                          "ST_YMax(e) AS y1 FROM (SELECT coalesce(ST_Extent(bbox) FILTER "
                          "(WHERE kind = 'province'), ST_Extent(coalesce(bbox, centre))) AS e "
                          "FROM geoplat_divisions) s")
        if not box or box["x0"] is None:
            return []
        bbox = (float(box["x0"]), float(box["y0"]), float(box["x1"]), float(box["y1"]))
        found = self.db.all(f"SELECT {rows.DIVISION_COLS} FROM geoplat_divisions"
                            " WHERE kind = 'province' ORDER BY code") if depth > 0 else []
        provinces = tuple(rows.division(r, children=self._children(r["code"], depth - 1))
                          for r in found)
        return [Division(code=COUNTRY_CODE, name=COUNTRY_NAME, kind="country", parent_code=None,
                         lon=(bbox[0] + bbox[2]) / 2, lat=(bbox[1] + bbox[3]) / 2, bbox=bbox,
                         children=provinces)]

    def _children(self, code: str, depth: int) -> tuple[Division, ...]:
        if depth <= 0:
            return ()
        found = self.db.all(f"SELECT {rows.DIVISION_COLS} FROM geoplat_divisions"
                            " WHERE parent_code = %(code)s ORDER BY code", {"code": code})
        return tuple(rows.division(r, children=self._children(r["code"], depth - 1))
                     for r in found)

    # -- type-ahead ----------------------------------------------------------------------------

    def suggest(self, q: str, *, visible: frozenset[str], limit: int = 10) -> list[Place]:
        text = limits.text(q, "q")
        assert text is not None
        vis = limits.visible(visible)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SUGGEST:
            raise PlacesInputError(limits.OVERFLOW, f"limit must be 1-{MAX_SUGGEST}",
                                   param="limit")
        qn = normalise(text)
        if not qn or not self.dictionary().generation:
            return []
        sql, args = suggest_statement(qn, vis, limit)
        return [rows.place(r, self.node) for r in self.db.all(sql, args)]

