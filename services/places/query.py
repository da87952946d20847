"""The one query layer of place names and addresses: `Places` over a node's gazetteer tables
(services.places.schema), used by the Tianditu-compatible routes and our JSON API alike.

Geocoding: text.normalise -> parse.parse against the node's divisions -> candidates of every
level, each scored 0-100, best first:
- door plate: the road resolved against the node's road names (exact; with a missing/doubled
  路; else rapidfuzz ratio >= 60 among the roads of the parsed admin area, then anywhere at a
  lower score), then (road_norm, number_int) in that area: the exact number scores the road's
  similarity, the nearest number on the road scores lower (0.8x, minus the distance in numbers);
- junction (A与B交叉口, A和B路口): the intersection of the two roads' lines in PostGIS;
- road, POI / place name / alias (GIN over character grams: every bigram of the text, then
  exact > contained (市民中心 in 杭州市民中心政务服务大厅) > rapidfuzz), division.
Reverse: KNN on the GiST index, distances on the ellipsoid (geography). Search, admin and
suggest are in services.places.search (`Places` inherits them).

Limits and their infocodes: services.places.limits. Rows of layers outside `visible` are
never read (`layer IS NULL OR layer = ANY(visible)` in every statement).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from services.db import Database
from services.places import limits, rows
from services.places.model import AdminChain, Geocoded, Place, Reversed
from services.places.parse import DEPTH, ROAD_SUFFIXES, Division, Divisions, parse, split_number
from services.places.search import Search
from services.places.text import grams, normalise

__all__ = ["Places"]

LOGGER = logging.getLogger(__name__)

# how often the node's dictionaries (divisions, road names: in memory, for parsing and fuzzy
# road matching) are checked for a rebuild; a changed table is reloaded in a thread while the
# old dictionary serves (about 2.5 s for 300k distinct road/county pairs on this machine)
REFRESH_S = 2.0
FUZZY_CUTOFF = 60.0         # rapidfuzz ratio below which a road name does not match
MAX_GEOCODE = 20
NEAREST_FACTOR = 0.8
MAX_ROAD_CANDIDATES = 12


@dataclass
class _Dictionary:
    generation: tuple = ()
    divisions: Divisions = field(default_factory=lambda: Divisions([]))
    roads: dict[str, set[str]] = field(default_factory=dict)   # road_norm -> division codes
    roads_in: dict[str, list[str]] = field(default_factory=dict)  # division code -> road_norms
    ready: bool = False


class Places(Search):
    """The query layer of one node (sync; the routes call it in a thread pool)."""

    def __init__(self, db: Database, node_id: str):
        self.db, self.node = db, node_id
        self._dict = _Dictionary()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._loading = False

    # -- the node's dictionaries (divisions, road names), reloaded after a rebuild --------

    def dictionary(self) -> _Dictionary:
        now = time.monotonic()
        if now - self._checked < REFRESH_S and self._dict.ready:
            return self._dict
        with self._lock:
            if now - self._checked < REFRESH_S and self._dict.ready:
                return self._dict
            gen = self.db.one(
                "SELECT to_regclass('geoplat_places') IS NOT NULL"
                " AND to_regclass('geoplat_divisions') IS NOT NULL AS ok")
            if not gen or not gen["ok"]:
                self._dict, self._checked = _Dictionary(ready=True), now
                return self._dict
            row = self.db.one(
                "SELECT (SELECT max(id) FROM geoplat_places) AS m,"
                " (SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                "   WHERE relid = 'geoplat_places'::regclass) AS t,"
                " (SELECT count(*) FROM geoplat_divisions) AS d,"
                " (SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                "   WHERE relid = 'geoplat_divisions'::regclass) AS dt")
            generation = tuple(row.values()) if row else ()
            if generation != self._dict.generation or not self._dict.ready:
                if not self._dict.generation:        # the first load: the caller waits
                    self._dict = self._load(generation)
                elif not self._loading:              # a rebuild: the old one serves meanwhile
                    self._loading = True
                    threading.Thread(target=self._reload, args=(generation,), daemon=True,
                                     name=f"places-dictionary-{self.node}").start()
            self._checked = now
            return self._dict

    def _reload(self, generation: tuple) -> None:
        try:
            self._dict = self._load(generation)
        except Exception:   # the old dictionary goes on serving; the next check tries again
            LOGGER.warning("reloading the place-name dictionary of %s failed", self.node,
                           exc_info=True)
        finally:
            self._loading = False

    def _load(self, generation: tuple) -> _Dictionary:
        divs = [Division(code=r["code"], name=r["name"], kind=r["kind"],
                         parent_code=r["parent_code"], short_name=r["short_name"],
                         lon=float(r["lon"]), lat=float(r["lat"]))
                for r in self.db.all(f"SELECT {rows.DIVISION_COLS} FROM geoplat_divisions")]
        roads: dict[str, set[str]] = {}
        with self.db.cursor() as cur, cur.connection.cursor() as plain:   # tuples: 1M rows
            plain.execute(
                "SELECT coalesce(road_norm, name_norm), province_code, city_code, county_code"
                " FROM geoplat_places WHERE kind = 'road'"
                " OR (kind = 'address' AND road_norm IS NOT NULL) GROUP BY 1, 2, 3, 4")
            for road, *codes in plain.fetchall():
                roads.setdefault(road, set()).update(c for c in codes if c)
        roads_in: dict[str, list[str]] = {}
        for name, codes in roads.items():
            for code in codes:
                roads_in.setdefault(code, []).append(name)
        return _Dictionary(generation=generation, divisions=Divisions(divs), roads=roads,
                           roads_in=roads_in, ready=True)

    # -- geocoding -------------------------------------------------------------------------

    def admin_codes(self, text: str | None) -> list[str]:
        """Codes of the divisions an address or name starts with (the deepest level found;
        homonyms all): the federation routes a query by them. Empty when none is named."""
        if not text or len(text) > limits.MAX_TEXT:
            return []
        d = self.dictionary()
        if not d.ready:
            return []
        return [div.code for div in parse(normalise(text), d.divisions).scope]

    def geocode(self, text: str, *, visible: frozenset[str], limit: int = 5) -> Geocoded:
        q = limits.text(text, "keyWord")
        assert q is not None
        vis = limits.visible(visible)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_GEOCODE:
            raise limits.PlacesInputError(limits.OVERFLOW, f"limit must be 1-{MAX_GEOCODE}",
                                          param="limit")
        d = self.dictionary()
        if not d.ready or not d.generation:
            return Geocoded(best=None, level=None)
        p = parse(q, d.divisions)
        scope = _road_scope(p.scope, d.divisions)
        found: list[Place] = []
        if p.number_int is not None and p.road:
            found += self._door_plates(p.road, p.number or "", p.number_int, scope, vis, d,
                                       p.alternatives)
        for a, b in p.junctions[:8]:
            found += self._junction(a, b, scope, vis, d)
        road_text = p.road if p.number_int is not None else p.rest
        if road_text:
            found += self._road(road_text, scope, vis, d, with_number=p.number_int is not None)
        found += self._named(p.text, p.rest, scope, vis, p.admin)
        if p.admin:
            deepest = p.admin[-1]
            chain = d.divisions.chain(deepest.code)
            leftover = len(p.rest) / max(1, len(p.text))
            found.append(rows.division_place(deepest, chain, self.node,
                                             100.0 * (1 - leftover) if p.rest else 100.0))
        best: dict[str, Place] = {}
        for pl in found:
            if pl.id not in best or (pl.score or 0) > (best[pl.id].score or 0):
                best[pl.id] = pl
        ranked = sorted(best.values(), key=lambda x: (-(x.score or 0), _SPECIFIC[x.kind]))
        ranked = [x for x in ranked if (x.score or 0) >= 30][:limit]
        if not ranked:
            return Geocoded(best=None, level=None)
        return Geocoded(best=ranked[0], level=ranked[0].kind, candidates=tuple(ranked))

    def resolve_road(self, text: str, scope: list[Division], d: _Dictionary,
                     alternatives: tuple[str, ...] = (), limit: int = 3
                     ) -> list[tuple[str, float]]:
        """(road_norm, similarity 0-100) of the node's roads that `text` may name, best first."""
        tries = [(text, 100.0)]
        for suffix in ROAD_SUFFIXES:     # a doubled suffix: 宏二路路
            if text.endswith(suffix * 2):
                tries.append((text[: -len(suffix)], 97.0))
        if not text.endswith(ROAD_SUFFIXES):   # a missing suffix: 宏二2号
            tries += [(text + s, 95.0) for s in ("路", "街", "大道", "巷")]
        tries += [(a, 96.0) for a in alternatives]
        codes = {s.code for s in scope}
        out: dict[str, float] = {}
        for t, sim in tries:
            if t in d.roads:
                in_scope = not codes or bool(d.roads[t] & codes)
                out[t] = max(out.get(t, 0), sim if in_scope else sim * 0.85)
        if out and max(out.values()) >= 95:
            return sorted(out.items(), key=lambda kv: -kv[1])[:limit]
        names = list(dict.fromkeys(n for c in codes for n in d.roads_in.get(c, ()))) \
            if codes else list(d.roads)
        for name, score, _ in process.extract(text, names, scorer=_similarity, limit=limit,
                                              score_cutoff=FUZZY_CUTOFF):
            out[name] = max(out.get(name, 0), float(score) * 0.95)
        if not out and codes:
            for name, score, _ in process.extract(text, list(d.roads), scorer=_similarity,
                                                  limit=limit, score_cutoff=FUZZY_CUTOFF + 10):
                out[name] = max(out.get(name, 0), float(score) * 0.8)
        return sorted(out.items(), key=lambda kv: -kv[1])[:limit]

    def _scoped(self, scope: list[Division]) -> tuple[str, dict[str, Any]]:
        if not scope:
            return "", {}
        column = rows.CODE_COLUMN[scope[0].kind]
        return f" AND {column} = ANY(%(codes)s)", {"codes": [s.code for s in scope]}

    def _door_plates(self, road: str, number: str, number_int: int, scope: list[Division],
                     vis: list[str], d: _Dictionary, alternatives: tuple[str, ...]
                     ) -> list[Place]:
        """Door plates of the roads `road` may name: the exact number on any of the candidate
        roads (one statement), else the nearest numbers on the best road."""
        alts = tuple(a for a in (_road_part(x) for x in alternatives) if a)
        cands = dict(self.resolve_road(road, scope, d, alts, limit=MAX_ROAD_CANDIDATES))
        if not cands:
            return []
        out: list[Place] = []
        for where, args, factor in (self._scoped(scope) + (1.0,), ("", {}, 0.85)):
            found = self.db.all(
                f"SELECT {rows.PLACE_COLS} FROM geoplat_places p WHERE p.kind = 'address'"
                f" AND p.road_norm = ANY(%(roads)s) AND p.number_int = %(n)s AND {rows.VISIBLE}"
                f"{where} ORDER BY p.id LIMIT 20",
                {"roads": list(cands), "n": number_int, "visible": vis, **args})
            for r in found:
                exact = normalise(r["number"] or "") == number
                out.append(rows.place(r, self.node, score=cands[r["road_norm"]] * factor
                                      - (0 if exact else 5)))
            best_road = max(cands, key=lambda k: cands[k])
            near = self.db.all(
                f"SELECT {rows.PLACE_COLS} FROM geoplat_places p WHERE p.kind = 'address'"
                f" AND p.road_norm = %(road)s AND {rows.VISIBLE}{where}"
                " ORDER BY abs(p.number_int - %(n)s), p.number_int %% 2 <> %(n)s %% 2, p.id"
                " LIMIT 2", {"road": best_road, "n": number_int, "visible": vis, **args})
            for r in near:
                if r["number_int"] != number_int:
                    out.append(rows.place(r, self.node, score=cands[best_road] * factor
                                          * NEAREST_FACTOR
                                          - min(15, abs((r["number_int"] or 0) - number_int))))
            if out or not where:
                break
        return out

    def _road(self, text: str, scope: list[Division], vis: list[str], d: _Dictionary, *,
              with_number: bool) -> list[Place]:
        out = []
        for name, sim in self.resolve_road(text, scope, d)[:2]:
            where, args = self._scoped(scope)
            r = self.db.one(
                f"SELECT {rows.PLACE_COLS} FROM geoplat_places p WHERE p.kind = 'road'"
                f" AND p.name_norm = %(road)s AND {rows.VISIBLE}{where} ORDER BY p.id LIMIT 1",
                {"road": name, "visible": vis, **args})
            if r:
                out.append(rows.place(r, self.node, score=sim * (0.7 if with_number else 0.9)))
        return out

    def _junction(self, a: str, b: str, scope: list[Division], vis: list[str],
                  d: _Dictionary) -> list[Place]:
        ra, rb = self.resolve_road(a, scope, d)[:1], self.resolve_road(b, scope, d)[:1]
        if not ra or not rb or ra[0][0] == rb[0][0] or min(ra[0][1], rb[0][1]) < 80:
            return []
        (na, sa), (nb, sb) = ra[0], rb[0]
        r = self.db.one(
            "WITH a AS (SELECT ST_Union(p.shape) AS g, min(p.id) AS id FROM geoplat_places p"
            f"   WHERE p.kind = 'road' AND p.name_norm = %(a)s AND {rows.VISIBLE}"
            "   AND p.shape IS NOT NULL),"
            " b AS (SELECT ST_Union(p.shape) AS g FROM geoplat_places p"
            f"   WHERE p.kind = 'road' AND p.name_norm = %(b)s AND {rows.VISIBLE}"
            "   AND p.shape IS NOT NULL),"
            " x AS (SELECT a.id, coalesce((SELECT d.geom FROM ST_Dump(ST_CollectionExtract("
            "   ST_Intersection(a.g, b.g), 1)) AS d LIMIT 1), CASE WHEN"
            "   ST_Distance(a.g::geography, b.g::geography) < 30 THEN ST_ClosestPoint(a.g, b.g)"
            "   END) AS pt FROM a, b WHERE a.g IS NOT NULL AND b.g IS NOT NULL)"
            f" SELECT {rows.PLACE_COLS.replace('ST_X(p.geom)', 'ST_X(x.pt)').replace('ST_Y(p.geom)', 'ST_Y(x.pt)')}"
            " FROM x JOIN geoplat_places p ON p.id = x.id WHERE x.pt IS NOT NULL",
            {"a": na, "b": nb, "visible": vis})
        if not r:   # the two roads do not meet: the first road, well below a junction
            return [replace(pl, score=round((pl.score or 0) * 0.6, 1))
                    for pl in self._road(na, scope, vis, d, with_number=False)[:1]]
        name = f"{r['name']}与{nb}交叉口"
        return [rows.place(r, self.node, score=min(sa, sb) * 0.98, name=name,
                           id=f"{self.node}:junction:{r['id']}:{nb}", address=None, number=None,
                           extra={"junction": [r["name"], nb]})]

    def _named(self, text: str, rest: str, scope: list[Division], vis: list[str],
               admin: tuple[Division, ...] = ()) -> list[Place]:
        """POIs and place names whose name or alias holds the text (or the text after the
        admin prefix): exact 100, contained 70-100 by the share of the name, else fuzzy."""
        out: list[Place] = []
        codes = {s.code for s in scope}
        admin_codes = {a.code for a in admin[-1:]}
        admin_names = {n for a in admin[-1:] for n in (normalise(a.name), normalise(a.short_name))}
        for t in dict.fromkeys(x for x in (text, rest) if x):
            qgrams = grams(t) if len(t) < 2 else [g for g in grams(t) if len(g) == 2]
            found = self.db.all(
                f"SELECT {rows.PLACE_COLS} FROM geoplat_places p"
                " WHERE p.kind IN ('poi', 'place', 'road')"
                " AND geoplat_grams(p.name_norm, p.aliases) @> %(grams)s::text[]"
                f" AND {rows.VISIBLE} ORDER BY length(p.name_norm), p.id LIMIT 200",
                {"grams": qgrams, "visible": vis})
            for r in found:
                names = [r["name_norm"], *(r["aliases"] or [])]
                if t in names:
                    score = 100.0
                elif any(t in n for n in names):
                    n = min((n for n in names if t in n), key=len)
                    score = 70 + 30 * len(t) / len(n)
                else:
                    score = 0.8 * max(fuzz.ratio(t, n) for n in names)
                if t is rest and t != text:
                    score -= 2
                    inside = admin_codes & {r["province_code"], r["city_code"],
                                            r["county_code"], r["township_code"]}
                    if not inside and not any(a in r["name_norm"] for a in admin_names):
                        score -= 12   # the admin text of the query is neither area nor name
                # the whole text against the name: 半山便民服务中心 ~ 半山街道便民服务中心
                score = max(score, 0.9 * max(fuzz.ratio(text, n) for n in names))
                if codes and not codes & {r["province_code"], r["city_code"], r["county_code"]}:
                    score -= 15
                if r["kind"] == "road":
                    score -= 5
                out.append(rows.place(r, self.node, score=score))
        return out

    # -- reverse geocoding -----------------------------------------------------------------

    def reverse(self, lon: float, lat: float, *, visible: frozenset[str],
                max_distance_m: float = 500) -> Reversed:
        x, y = limits.lonlat(lon, lat)
        limit_m = limits.distance(max_distance_m, "max_distance_m")
        vis = limits.visible(visible)
        d = self.dictionary()
        if not d.generation:
            return Reversed(lon=x, lat=y, formatted_address="", admin=rows.chain({}),
                            address=None, road=None, poi=None)
        args = {"x": x, "y": y, "visible": vis}
        near: dict[str, Place | None] = {}
        for kind, geom in (("address", "p.geom"), ("road", "p.shape"), ("poi", "p.geom")):
            extra = " AND p.shape IS NOT NULL" if kind == "road" else ""
            found = self.db.all(
                f"WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490) AS g)"
                f" SELECT {rows.PLACE_COLS}, ST_Distance({geom}::geography, pt.g::geography)"
                f" AS dist FROM geoplat_places p, pt WHERE p.kind = %(kind)s{extra}"
                f" AND {rows.VISIBLE} ORDER BY {geom} <-> pt.g LIMIT 8",
                {**args, "kind": kind})
            found = sorted((r for r in found if r["dist"] <= limit_m), key=lambda r: r["dist"])
            near[kind] = rows.place(found[0], self.node, distance_m=round(found[0]["dist"], 2)) \
                if found else None
        admin = self._admin_at(x, y, near.get("address") or near.get("poi"))
        door, road = near["address"], near["road"]
        head = "".join(v for v in (admin.province, admin.city, admin.county) if v)
        if door is not None:
            formatted = door.address or head + (door.road or "") + (door.number or "")
        else:
            formatted = head + (admin.township or "") + (road.name if road else "")
        return Reversed(lon=x, lat=y, formatted_address=formatted, admin=admin, address=door,
                        road=road, poi=near["poi"])

    def _admin_at(self, x: float, y: float, nearest: Place | None) -> AdminChain:
        """The divisions containing the point: the chain of the nearest door plate / POI (the
        gazetteer's own), else the deepest division whose boundary holds it; then the
        township of that county whose boundary holds the point (the nearest place may be in
        the next one), else the chain's own township. Township centres alone are not used:
        the samples' are synthetic, and a nearest centre is a guess."""
        chain = nearest.admin if nearest is not None and nearest.admin.county_code else None
        if chain is None:
            found = self.db.all(
                "SELECT code FROM geoplat_divisions WHERE boundary IS NOT NULL AND"
                " ST_Intersects(boundary, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490))",
                {"x": x, "y": y})
            entries = sorted((self._dict.divisions.by_code[r["code"]] for r in found
                              if r["code"] in self._dict.divisions.by_code),
                             key=lambda e: DEPTH[e.kind])
            chain = rows.chain_of(self._dict.divisions.chain(entries[-1].code)) if entries \
                else rows.chain({})
        if chain.county_code:
            town = self.db.one(
                "WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490) AS g)"
                " SELECT d.code, d.name FROM geoplat_divisions d, pt WHERE d.kind = 'township'"
                " AND d.parent_code = %(county)s AND d.boundary IS NOT NULL"
                " AND ST_Intersects(d.boundary, pt.g) ORDER BY d.code LIMIT 1",
                {"x": x, "y": y, "county": chain.county_code})
            if town:
                chain = replace(chain, township=town["name"], township_code=town["code"])
        return chain


_SPECIFIC = {"address": 0, "poi": 1, "road": 2, "township": 3, "county": 4, "city": 5,
             "province": 6, "place": 7}


def _similarity(a: str, b: str, **_: Any) -> float:
    """Levenshtein similarity 0-100 (a substituted character costs one edit, so 文丙路 is
    nearer 文瑞路 than 紫文路, which fuzz.ratio scores alike)."""
    return 100.0 * Levenshtein.normalized_similarity(a, b)


def _road_scope(scope: tuple[Division, ...], divisions: Divisions) -> list[Division]:
    """The area to look for roads in: a township's county (door plates may not carry the
    township), else the matched divisions themselves."""
    out: list[Division] = []
    for s in scope:
        if s.kind == "township" and s.parent_code in divisions.by_code:
            out.append(divisions.by_code[s.parent_code])
        else:
            out.append(s)
    kinds = {s.kind for s in out}
    return [s for s in out if s.kind == min(kinds, key=lambda k: -DEPTH[k])] if out else []


def _road_part(alternative: str) -> str | None:
    road, number, _, _ = split_number(alternative)
    return road if number else None
