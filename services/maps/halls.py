"""Service items and the offices that handle them, read (issue 15; items.py writes them).

- `Halls.search(q)`: fuzzy Chinese over item names, aliases and departments: the query and
  the fields in services/places/text.py's normal form (NFKC, traditional -> simplified, no
  punctuation), a leading 办/办理/我要办 dropped; a query in Latin letters matches pinyin
  initials (不动产登记 -> bdcdj); otherwise a field equal to the query scores 120, one
  containing it 100 less its length difference, else rapidfuzz's partial ratio (queries of
  three characters or more); weights: name 1, alias 0.95, department 0.8. The index is in
  memory, rebuilt when the catalogue's version changes (checked on every search).
- `Halls.nearest(code, lon, lat, ...)`: the offices that handle an item, ranked by travel time
  along the road network: the user's point and every office snap to the network as
  services/maps/routing.py snaps (the same query), then one pgRouting query answers every
  candidate that can be among the first `limit` (`pgr_dijkstra` from the user's point to
  theirs over the edges landmark lower bounds leave, services/maps/landmarks.py; a second
  when the first bound proves too few; its paths give the distances), or, when the bounds
  would leave most of the network, one `pgr_withPoints` over all of it. The offices' snaps are kept in memory per item and
  profile until the catalogue, the network or the gazetteer is rebuilt. Each office with its opening status (hours.py), windows,
  phone and appointment link; `open_now` lists the open ones first. Offices the network does
  not reach come last, with no duration.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg2 import sql
from pyproj import Geod
from rapidfuzz import fuzz

from services.db import Database
from services.maps import landmarks
from services.maps.errors import NO_DATA, bad, unroutable
from services.maps.hours import Hours
from services.maps.routing import (
    _COSTS,
    END_GAP,
    MAX_SNAP_M,
    Profile,
    Router,
    Snap,
)
from services.places.text import normalise, pinyin_initials

GEOD = Geod(ellps="GRS80")
MAX_LIMIT = 50
MAX_SEARCH = 100
MIN_SCORE = 65.0
SNAP_CACHE = 512    # (item, profile) pairs whose offices' snaps are kept
_FILLER = re.compile(r"^(我要|我想|怎么|如何|去哪里?|在哪里?|哪里)?(办理|办|申请|补办)?(?=..)")

_OFFICES = """
SELECT o.office_id, o.name, o.opening_hours, o.phone, o.appointment_url, l.windows,
       p.address, ST_X(p.geom) AS x, ST_Y(p.geom) AS y, s.id AS edge, s.fraction, s.dist AS snap_m
FROM geoplat_office_items l
JOIN geoplat_offices o USING (office_id)
JOIN geoplat_places p ON p.kind = 'poi' AND p.layer = %(layer)s
                     AND p.source_id = o.office_id::text
LEFT JOIN LATERAL (
  SELECT c.id, c.fraction, c.dist FROM (
    SELECT e.id, ST_LineLocatePoint(e.geom, p.geom) AS fraction,
           ST_Distance(e.geom::geography, p.geom::geography) AS dist
    FROM (SELECT id, geom FROM geoplat_route_edges WHERE {flag}
          ORDER BY geom <-> p.geom LIMIT 8) e) c
  ORDER BY c.dist, c.id LIMIT 1) s ON true
WHERE l.code = %(code)s
ORDER BY o.office_id
"""

# what the offices' snaps depend on: the catalogue, the network and the gazetteer's POIs
_STATE = """
SELECT (SELECT max(version) FROM geoplat_items_versions) AS items,
       (SELECT built_at FROM geoplat_route_build) AS roads,
       CASE WHEN to_regclass('geoplat_places_build') IS NULL THEN NULL
            ELSE (SELECT built_at FROM geoplat_places_build) END AS places
"""

_RANK = """
SELECT r.end_pid AS pid, max(r.agg_cost) FILTER (WHERE r.edge = -1) AS cost,
       coalesce(sum(g.length_m * r.cost / NULLIF(g.whole, 0)) FILTER (WHERE r.edge > 0), 0)
         AS dist
FROM pgr_withPoints(%(edges)s, %(points)s, -1, %(ends)s::bigint[], directed => true,
                    driving_side => 'b', details => false) r
LEFT JOIN (SELECT id, length_m, GREATEST({cost}, {reverse}) AS whole
           FROM geoplat_route_graph) g ON g.id = r.edge
GROUP BY r.end_pid
"""


# one Dijkstra from the user (-1) to the offices (-pid); per office its cost and, as text for
# numpy, its rows' edges and costs (the path's length: services/maps/landmarks.py Graph.metres)
_PRUNED_RANK = """
SELECT end_vid AS pid, max(agg_cost) FILTER (WHERE edge = -1) AS cost,
       string_agg(edge::text, ',') FILTER (WHERE edge <> -1) AS e,
       string_agg(cost::text, ',') FILTER (WHERE edge <> -1) AS c
FROM pgr_dijkstra(%(edges)s, -1, %(ends)s::bigint[], directed => true)
GROUP BY end_vid
"""


def _shown_proved(groups: list[list[int]], proved: dict[int, Any], need: int) -> bool:
    """Whether the first `need` offices of the ranking (each group by cost, in turn) are all
    proved: a group with at least the places left proved fills them (its others cost more),
    a group all proved takes its share and leaves the rest to the next."""
    for group in groups:
        if need <= 0:
            return True
        done = sum(1 for p in group if p in proved)
        if done >= need:
            return True
        if done < len(group):
            return False
        need -= len(group)
    return True


def _enough(groups: list[list[int]], got: dict[int, float], need: int, limit_c: float) -> float:
    """A bound C that proves the first `need` offices, from the costs of paths found (each at
    least the office's true cost): the need-th found cost of the group that fills the places
    left, or twice the last C when the paths found do not say."""
    c = 0.0
    for group in groups:
        if need <= 0:
            break
        costs = sorted(got[p] for p in group if p in got)
        if len(costs) >= need:
            return max(c, costs[need - 1])
        if len(costs) < len(group):
            return 2.0 * limit_c
        c, need = max([c, *costs]), need - len(group)
    return max(c, limit_c)


@dataclass
class Entry:
    code: str
    position: int
    fields: list[tuple[str, float]]      # normalised text, weight
    initials: list[tuple[str, float]]
    row: dict[str, Any]


def strip_filler(q: str) -> str:
    return _FILLER.sub("", q, count=1)


def score(q: str, e: Entry) -> float:
    if q.isascii() and q.isalpha():
        best = 0.0
        for text, w in e.initials:
            if text.startswith(q):
                best = max(best, 100.0 * w)
            elif q in text:
                best = max(best, 90.0 * w)
        return best
    best = 0.0
    for text, w in e.fields:
        if not text:
            continue
        if q == text:
            s = 120.0
        elif q in text:
            s = 100.0 - min(20.0, float(len(text) - len(q)))
        elif len(q) > 2:
            s = float(fuzz.partial_ratio(q, text)) * (0.9 if len(text) >= len(q) else 0.8)
        else:
            s = 0.0
        best = max(best, s * w)
    return best


class Halls:
    """Item search and the nearest offices over one node's catalogue (sync: thread pool)."""

    def __init__(self, db: Database, router: Router, hours: Hours, poi_layer: str = "poi"):
        self.db, self.router, self.hours, self.poi_layer = db, router, hours, poi_layer
        self._index: tuple[int, list[Entry]] = (-1, [])
        self._snaps: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    # --- the catalogue ----------------------------------------------------------------------

    def _version(self, cur: Any) -> int:
        cur.execute("SELECT to_regclass('geoplat_items_versions') IS NOT NULL AS ok")
        if not cur.fetchone()["ok"]:
            return 0
        cur.execute("SELECT coalesce(max(version), 0) AS v FROM geoplat_items_versions")
        return int(cur.fetchone()["v"])

    def index(self) -> list[Entry]:
        """The search index of the catalogue's current version (one cheap query a call, so a
        new catalogue is searched at once by every worker)."""
        with self.db.cursor() as cur:
            version = self._version(cur)
            if version != self._index[0]:
                rows: list[dict[str, Any]] = []
                if version:
                    cur.execute("SELECT i.*, (SELECT count(*) FROM geoplat_office_items l"
                                " WHERE l.code = i.code) AS offices FROM geoplat_items i"
                                " ORDER BY position")
                    rows = [dict(r) for r in cur.fetchall()]
                with self._lock:
                    self._index = (version, [self._entry(r) for r in rows])
        return self._index[1]

    @staticmethod
    def _entry(r: dict[str, Any]) -> Entry:
        fields = [(normalise(r["name"]), 1.0), *((normalise(a), 0.95) for a in r["aliases"]),
                  (normalise(r["department"]), 0.8)]
        initials = [(pinyin_initials(r["name"]), 1.0),
                    *((pinyin_initials(a), 0.95) for a in r["aliases"]),
                    (pinyin_initials(r["department"]), 0.8)]
        return Entry(r["code"], r["position"], fields, initials, r)

    def search(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        whole = normalise(q)
        norm = strip_filler(whole)
        if not norm:
            return []
        scored = [(max(score(norm, e), score(whole, e)), e) for e in self.index()]
        hits = sorted(((s, e) for s, e in scored if s >= MIN_SCORE),
                      key=lambda p: (-p[0], p[1].position))
        return [{**item_json(e.row), "score": round(s, 1)} for s, e in hits[:limit]]

    def item(self, code: str) -> dict[str, Any] | None:
        with self.db.cursor() as cur:
            if not self._version(cur):
                return None
            cur.execute("SELECT * FROM geoplat_items WHERE code = %s", (code,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("SELECT o.office_id, o.name, o.opening_hours, o.phone,"
                        " o.appointment_url, l.windows, p.address, ST_X(p.geom) AS x,"
                        " ST_Y(p.geom) AS y FROM geoplat_office_items l"
                        " JOIN geoplat_offices o USING (office_id)"
                        " LEFT JOIN geoplat_places p ON p.kind = 'poi' AND p.layer = %s"
                        " AND p.source_id = o.office_id::text"
                        " WHERE l.code = %s ORDER BY o.office_id", (self.poi_layer, code))
            offices = [dict(r) for r in cur.fetchall()]
        out = item_json(dict(row))
        out["offices"] = [{**office_json(o), "location": [o["x"], o["y"]] if o["x"] is not None
                           else None, **self.hours.status(o["opening_hours"]).as_dict()}
                          for o in offices]
        return out

    # --- the nearest offices ----------------------------------------------------------------

    def nearest(self, code: str, lon: float, lat: float, *, limit: int = 10,
                open_first: bool = False, profile: Profile = "fastest",
                at: dt.datetime | None = None) -> dict[str, Any]:
        self.router.check_point(lon, lat, "lon,lat")
        when = (at or self.hours.now()).astimezone(self.hours.tz)
        with self.db.cursor() as cur:
            if not self._version(cur):
                raise unroutable(NO_DATA, "This node has no service items.")
            cur.execute("SELECT code, name, department FROM geoplat_items WHERE code = %s",
                        (code,))
            item = cur.fetchone()
            if item is None:
                raise bad(NO_DATA, "No service item has this code.", "item")
            if self.router.edge_count(cur) == 0:
                raise unroutable(NO_DATA, "This node has no road network to route on.")
            origin = self.router.snap(cur, lon, lat, profile, "lon,lat")
            offices = self._offices(cur, code, profile)
            states = [self.hours.status(o["opening_hours"], when) for o in offices]
            first = {pid for pid, st in enumerate(states, start=2) if st.open or not open_first}
            costs = self._rank(cur, origin, offices, profile, first, limit)
        feats = []
        for pid, (o, st) in enumerate(zip(offices, states), start=2):
            cost = costs.get(pid)
            props = {**office_json(o), "opening_hours": o["opening_hours"],
                     "duration": round(cost[0], 1) if cost else None,
                     "distance": round(cost[1], 1) if cost else None,
                     "straight_distance": round(GEOD.inv(lon, lat, o["x"], o["y"])[2], 1),
                     "snap_distance": round(float(o["snap_m"]), 1) if o["snap_m"] is not None
                     else None, **st.as_dict()}
            feats.append({"type": "Feature", "id": o["office_id"],
                          "geometry": {"type": "Point", "coordinates": [o["x"], o["y"]]},
                          "properties": props})
        feats.sort(key=lambda f: (
            f["properties"]["duration"] is None,
            open_first and not f["properties"]["open_now"],
            f["properties"]["duration"] if f["properties"]["duration"] is not None else 0.0,
            f["id"]))
        feats = feats[:limit]
        for n, f in enumerate(feats, start=1):
            f["properties"]["rank"] = n
        return {"type": "FeatureCollection", "features": feats,
                "item": {"code": item["code"], "name": item["name"],
                         "department": item["department"]},
                "mode": "walk" if profile == "walk" else "drive", "at": when.isoformat(),
                "open_now": open_first, "candidates": len(offices),
                "from": {"requested": [lon, lat], "location": list(origin.snapped),
                         "snap_distance": round(origin.distance_m, 1)}}

    def _offices(self, cur: Any, code: str, profile: Profile) -> list[dict[str, Any]]:
        """The item's offices with their snaps on the profile's network, kept (at most
        SNAP_CACHE items) until the catalogue, the network or the gazetteer changes."""
        cur.execute(_STATE)
        state = tuple(cur.fetchone().values())
        key = (code, profile, *state)
        with self._lock:
            if key in self._snaps:
                self._snaps.move_to_end(key)
                return self._snaps[key]
        flag = _COSTS[profile][2]
        cur.execute(sql.SQL(_OFFICES).format(flag=sql.Identifier(flag)),
                    {"layer": self.poi_layer, "code": code})
        offices = [dict(r) for r in cur.fetchall()]
        with self._lock:
            self._snaps[key] = offices
            while len(self._snaps) > SNAP_CACHE:
                self._snaps.popitem(last=False)
        return offices

    def _rank(self, cur: Any, origin: Any, offices: list[dict[str, Any]], profile: Profile,
              first: set[int] | None = None, limit: int = MAX_LIMIT
              ) -> dict[int, tuple[float, float]]:
        """pid (2.. in the offices' order) -> (seconds, metres) from the origin, for every
        office among the first `limit` of the ranking (offices in `first` before the others):
        by the landmarks' pruned graph when it proves them (`_pruned`), else one
        pgr_withPoints query over the whole network (exact; README "Service items and halls"
        on large networks)."""
        found = self._pruned(cur, origin, offices, profile,
                             set(range(2, len(offices) + 2)) if first is None else first, limit)
        return found if found is not None else self._whole(cur, origin, offices, profile)

    def _whole(self, cur: Any, origin: Any, offices: list[dict[str, Any]], profile: Profile
               ) -> dict[int, tuple[float, float]]:
        """Every office's (seconds, metres): one pgr_withPoints over the whole network."""
        points = [(1, origin.edge, origin.fraction)]
        for pid, o in enumerate(offices, start=2):
            if o["edge"] is not None and o["snap_m"] <= MAX_SNAP_M:
                points.append((pid, int(o["edge"]),
                               min(max(float(o["fraction"]), END_GAP), 1.0 - END_GAP)))
        if len(points) == 1:
            return {}
        out: dict[int, tuple[float, float]] = {}
        for p in points[1:]:  # at the user's very point: no route to ask for
            if p[1] == origin.edge and abs(p[2] - origin.fraction) < 1e-12:
                out[p[0]] = (0.0, 0.0)
        ends = [-p[0] for p in points[1:] if p[0] not in out]
        points_sql = " UNION ALL ".join(
            f"SELECT {pid:d}::bigint AS pid, {edge:d}::bigint AS edge_id,"
            f" {fraction!r}::float8 AS fraction" for pid, edge, fraction in points)
        cost, reverse, _ = _COSTS[profile]
        query = sql.SQL(_RANK).format(cost=sql.SQL(cost), reverse=sql.SQL(reverse))
        edges = self.router._edges_sql(profile, None, None, (0, 0))
        if ends:
            cur.execute(query, {"edges": edges, "points": points_sql, "ends": ends})
            for r in cur.fetchall():
                if r["cost"] is not None and math.isfinite(r["cost"]):
                    out[-int(r["pid"])] = (float(r["cost"]), float(r["dist"]))
        return out

    def _pruned(self, cur: Any, origin: Snap, offices: list[dict[str, Any]], profile: Profile,
                first: set[int], limit: int) -> dict[int, tuple[float, float]] | None:
        """The ranking's costs by one pgr_dijkstra from the origin to the offices that can be
        among the first `limit`, over the edges the landmarks' bounds leave (services/maps/
        landmarks.py), the ends' edges split as pgr_withPoints splits them. Each office whose
        cost is at most the bound C is exact; the others cost more than C. That proves the
        first `limit` when, group by group (`first`, then the rest), at least the places left
        are proved, or the whole group is; else C becomes the cost of the last place by the
        paths found (then proved), or doubles. None: most of the network."""
        g = self.router.graph(cur, profile)
        if g is None:
            return None
        eo = g.end(origin.edge, origin.fraction)
        here: dict[int, tuple[float, float]] = {}
        ends: dict[int, landmarks.End] = {}
        points = [(-1, origin.edge, origin.fraction)]
        for pid, o in enumerate(offices, start=2):
            if o["edge"] is None or o["snap_m"] > MAX_SNAP_M:
                continue  # unreachable: ranked last, no route asked
            f = min(max(float(o["fraction"]), END_GAP), 1.0 - END_GAP)
            if int(o["edge"]) == origin.edge and abs(f - origin.fraction) < 1e-12:
                here[pid] = (0.0, 0.0)
                continue
            ends[pid] = g.kept_end(int(o["edge"]), f)
            points.append((-pid, int(o["edge"]), f))
        if not ends:
            return here
        least = {pid: g.least(eo, e) for pid, e in ends.items()}
        # the offices at the user's point rank in their group too (cost 0, proved)
        ranked = {**{p: 0.0 for p in here}, **least}
        groups = [[p for p in ranked if p in first], [p for p in ranked if p not in first]]
        order = sorted(ranked, key=lambda p: (p not in first, ranked[p]))
        need = limit
        limit_c = (max(ranked[p] for p in order[:max(need, 1)]) * landmarks.HALLS_GUESS
                   + landmarks.GUESS_ADD_S)
        from_o = g.from_end(eo)
        parts, virtual, replaced = g.split(points)
        whole = self.router._edges_sql(profile, None, None, (0, 0))
        for _ in range(6):
            targets = [p for p in least if least[p] <= limit_c * (1 + 1e-9) + 1e-9]
            through = from_o + g.to_any([ends[p] for p in targets])
            ids = g.edges_within(through, limit_c, [])
            if len(ids) > landmarks.WHOLE_SHARE * len(g.ids):
                return None
            edges = (f"{whole} WHERE {landmarks.ids_sql(ids)} AND id <> ALL('{{"
                     + ",".join(map(str, replaced)) + f"}}'::bigint[]) UNION ALL {parts}")
            cur.execute(_PRUNED_RANK, {"edges": edges, "ends": [-p for p in targets]})
            proved: dict[int, tuple[float, float]] = dict(here)
            got: dict[int, float] = {p: 0.0 for p in here}
            for r in cur.fetchall():
                if r["cost"] is None:
                    continue
                got[-int(r["pid"])] = cost = float(r["cost"])
                if landmarks.proved(cost, limit_c):
                    proved[-int(r["pid"])] = (cost, g.metres(
                        np.array(r["e"].split(","), dtype=np.int64),
                        np.array(r["c"].split(","), dtype=np.float64), virtual))
            if _shown_proved(groups, proved, need):
                return proved
            limit_c = max(limit_c, _enough(groups, got, need, limit_c))
        return None

    def straight(self, code: str, lon: float, lat: float, limit: int = 10) -> list[int]:
        """The offices by straight-line distance alone (the benchmark's baseline)."""
        with self.db.cursor() as cur:
            cur.execute("SELECT o.office_id FROM geoplat_office_items l"
                        " JOIN geoplat_offices o USING (office_id)"
                        " JOIN geoplat_places p ON p.kind = 'poi' AND p.layer = %s"
                        " AND p.source_id = o.office_id::text WHERE l.code = %s"
                        " ORDER BY p.geom::geography <-> ST_SetSRID(ST_MakePoint(%s, %s),"
                        " 4490)::geography LIMIT %s", (self.poi_layer, code, lon, lat, limit))
            return [int(r["office_id"]) for r in cur.fetchall()]


def item_json(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in ("code", "name", "aliases", "department", "materials",
                             "legal_days", "promised_days", "fee", "online_url")}
    out["flags"] = {"nearby": r["nearby"], "citywide": r["citywide"],
                    "cross_province": r["cross_province"]}
    if "offices" in r and isinstance(r["offices"], int):
        out["office_count"] = r["offices"]
    return out


def office_json(o: dict[str, Any]) -> dict[str, Any]:
    return {"office_id": o["office_id"], "name": o["name"], "address": o.get("address"),
            "phone": o["phone"], "appointment_url": o["appointment_url"],
            "windows": o["windows"], "opening_hours": o["opening_hours"]}
