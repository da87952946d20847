"""Routes over the node's routing topology (services/maps/topology.py) with pgRouting.

`Router(db, extent).route(points, profile)`: each point snaps to the nearest edge of the
largest (for driving: strongly) connected part of the profile's graph (services/maps/schema.py
`*_main` flags; KNN on the edges' GiST index, then the true
geodesic distance among the 8 nearest), at its projection on that edge (not the nearest
vertex): the edge is split there by `pgr_withPoints`, which runs Dijkstra from point to point.
Legs between consecutive points (via points: Tianditu's `mid`) are joined.

Profiles: `fastest` (driving seconds, one-way respected), `shortest` (metres, one-way
respected), `no_highways` (driving seconds without the roads closed to pedestrians, i.e.
expressways), `walk` (walking seconds, both ways on every road open to pedestrians).

pgRouting reads the edges of every route anew (from `geoplat_route_graph`, narrow and in
spatial order), and building its graph from them is most of a route's CPU. On a network of up
to `FULL_NETWORK_EDGES` edges a leg reads only the edges that landmark lower bounds leave
(services/maps/landmarks.py, ALT): those that can lie on a path no costlier than a bound C,
the ends' edges split at the ends as pgr_withPoints splits them, by `pgr_dijkstra`; an answer
within C is proved the whole network's optimum, else C grows to the answer's cost (then
proved); when the bounds would leave most of the network, all of it by `pgr_withPoints`. Exact
either way. On a larger one a leg reads the edges in the box around its two ends grown by
`MARGIN_M` or `MARGIN_SHARE` of their distance, and for a drive longer than 2 x `LOCAL_M`
only the major roads (40 km/h and more) of that box plus every road within `LOCAL_M` of
either end, the usual hierarchy of long trips; if that finds no route, the whole box, then the
whole network. So on a large network a route that would leave the box, or use a minor road
far from both ends, can be missed (a limit, README "Routing").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import shapely
import shapely.ops
from psycopg2 import sql
from pyproj import Geod
from shapely.geometry import LineString

from services.db import Database
from services.maps import landmarks
from services.maps.errors import BAD_LONLAT, NO_DATA, OUT_OF_RANGE, bad, unroutable

Profile = Literal["fastest", "shortest", "no_highways", "walk"]
Box = tuple[float, float, float, float]
PROFILES: tuple[Profile, ...] = ("fastest", "shortest", "no_highways", "walk")
GEOD = Geod(ellps="GRS80")
MAX_SNAP_M = 5000.0        # a point farther than this from every road is refused
MAX_POINTS = 12            # origin, destination and up to 10 via points
FULL_NETWORK_EDGES = 20_000
MARGIN_M = 1000.0          # a large network's box: the ends' box grown by this, or by
MARGIN_SHARE = 0.3         # this share of their distance if more
LOCAL_M = 1500.0           # long drives: every road this near either end, major roads elsewhere
UNNAMED = "无名道路"
EDGE_COUNT_TTL = 60.0      # seconds
END_GAP = 1e-7             # of an edge's length: how close to its ends a snapped point may lie

# (cost, reverse cost, graph flag) per profile; SQL fragments of our own, no input in them
_COSTS: dict[Profile, tuple[str, str, str]] = {
    "fastest": ("cost", "reverse_cost", "drive_main"),
    "shortest": ("CASE WHEN cost < 0 THEN -1 ELSE length_m END",
                 "CASE WHEN reverse_cost < 0 THEN -1 ELSE length_m END", "drive_main"),
    "no_highways": ("CASE WHEN walk_cost < 0 THEN -1 ELSE cost END",
                    "CASE WHEN walk_cost < 0 THEN -1 ELSE reverse_cost END", "street_main"),
    "walk": ("walk_cost", "walk_cost", "walk_main"),
}

_SNAP = """
SELECT c.id, c.fraction, c.dist, ST_X(c.pt) AS x, ST_Y(c.pt) AS y FROM (
  SELECT e.id, ST_LineLocatePoint(e.geom, p.g) AS fraction,
         ST_Distance(e.geom::geography, p.g::geography) AS dist, ST_ClosestPoint(e.geom, p.g) AS pt
  FROM (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490) AS g) p,
  LATERAL (SELECT id, geom FROM geoplat_route_edges WHERE {flag}
           ORDER BY geom <-> p.g LIMIT 8) e) c
ORDER BY c.dist, c.id LIMIT 1
"""


@dataclass(frozen=True)
class Snap:
    lon: float               # the point asked
    lat: float
    edge: int
    fraction: float          # where on the edge (0 = its source vertex)
    snapped: tuple[float, float]
    distance_m: float        # from the point asked to the network


@dataclass
class Traversal:
    """A part of one edge the route runs along."""

    edge: int
    name: str
    kind: str | None
    coords: list[tuple[float, float]]
    distance_m: float
    duration_s: float


@dataclass
class Step:
    name: str
    turn: str                # depart, straight, slight_left, left, sharp_left, ..., uturn
    distance_m: float
    duration_s: float
    location: tuple[float, float]
    coords: list[tuple[float, float]]
    next_name: str = ""


@dataclass
class Route:
    profile: Profile
    coords: list[tuple[float, float]]
    steps: list[Step]
    distance_m: float
    duration_s: float
    snaps: list[Snap]
    cost: float = 0.0        # pgRouting's aggregate cost of the profile (s, or m: shortest)
    legs: list[float] = field(default_factory=list)


def bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Compass bearing (degrees, 0 = north, clockwise) from a to b."""
    return GEOD.inv(a[0], a[1], b[0], b[1])[0] % 360.0


def turn_of(before: float, after: float) -> str:
    d = (after - before + 540.0) % 360.0 - 180.0  # (-180, 180]: positive = to the right
    a = abs(d)
    if a < 20:
        return "straight"
    side = "right" if d > 0 else "left"
    if a < 60:
        return f"slight_{side}"
    if a < 135:
        return side
    if a < 170:
        return f"sharp_{side}"
    return "uturn"


class Router:
    """Routing over one node's topology tables (sync: run in the thread pool)."""

    def __init__(self, db: Database, extent: tuple[float, float, float, float] | None = None):
        self.db, self.extent = db, extent
        self._edges: tuple[int, float] | None = None
        self.landmarks = landmarks.Landmarks()

    # --- input --------------------------------------------------------------------------

    def check_point(self, lon: float, lat: float, param: str) -> None:
        if not (math.isfinite(lon) and math.isfinite(lat)) or not (
                -180 <= lon <= 180 and -90 <= lat <= 90):
            raise bad(BAD_LONLAT, f"{param}: longitude -180..180, latitude -90..90.", param)
        if self.extent is not None:
            x0, y0, x1, y1 = self.extent
            if not (x0 <= lon <= x1 and y0 <= lat <= y1):
                raise unroutable(OUT_OF_RANGE, f"{param} lies outside this node's extent.",
                                 param=param, extent=list(self.extent))

    # --- queries ------------------------------------------------------------------------

    def edge_count(self, cur: Any) -> int:
        """Edges of the node's network (0: none, or not built), looked up once a minute: a
        publish may rebuild it."""
        now = time.monotonic()
        if self._edges is None or now - self._edges[1] > EDGE_COUNT_TTL:
            cur.execute("SELECT to_regclass('geoplat_route_graph') IS NOT NULL AS ok")
            n = 0
            if cur.fetchone()["ok"]:
                cur.execute("SELECT count(*) AS n FROM geoplat_route_graph")
                n = int(cur.fetchone()["n"])
            self._edges = (n, now)
        return self._edges[0]

    def snap(self, cur: Any, lon: float, lat: float, profile: Profile, param: str) -> Snap:
        flag = _COSTS[profile][2]
        cur.execute(sql.SQL(_SNAP).format(flag=sql.Identifier(flag)), {"x": lon, "y": lat})
        row = cur.fetchone()
        if row is None:
            raise unroutable(NO_DATA, "This node has no road network to route on.")
        if row["dist"] > MAX_SNAP_M:
            raise unroutable(NO_DATA, f"{param} is more than {MAX_SNAP_M:.0f} m from every road.",
                             param=param, snap_distance=round(float(row["dist"]), 1))
        # pgr_withPoints drops a point at fraction 0 or 1 (it is the vertex): keep it inside
        fraction = min(max(float(row["fraction"]), END_GAP), 1.0 - END_GAP)
        return Snap(lon, lat, int(row["id"]), fraction, (row["x"], row["y"]),
                    float(row["dist"]))

    def _edges_sql(self, profile: Profile, box: Box | None, ends: list[Box] | None,
                   keep: tuple[int, int]) -> str:
        """What pgRouting reads: the whole graph, the edges of a box, or (long drives) the
        major roads of the box and every road near either end (module docstring)."""
        cost, reverse, _ = _COSTS[profile]
        q = (f"SELECT id, source, target, {cost} AS cost, {reverse} AS reverse_cost"
             " FROM geoplat_route_graph")
        if box is None:
            return q

        def inside(b: Box) -> str:
            return (f"x BETWEEN {b[0]:.9f} AND {b[2]:.9f} AND y BETWEEN {b[1]:.9f} AND {b[3]:.9f}")

        q += f" WHERE ({inside(box)})"
        if ends:
            q += " AND (major OR " + " OR ".join(f"({inside(b)})" for b in ends) + ")"
        return q + f" OR id IN ({int(keep[0])}, {int(keep[1])})"

    @staticmethod
    def _around(a: tuple[float, float], b: tuple[float, float], margin_m: float) -> Box:
        """The box of a and b grown by at least margin_m on every side (degrees reckoned at the
        box's highest latitude and the shortest degree of latitude: never less)."""
        lat = min(89.0, max(abs(a[1]), abs(b[1])) + margin_m / 110_574.0)
        dy = margin_m / 110_574.0
        dx = margin_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
        return (min(a[0], b[0]) - dx, min(a[1], b[1]) - dy, max(a[0], b[0]) + dx,
                max(a[1], b[1]) + dy)

    def _run(self, cur: Any, a: Snap, b: Snap, profile: Profile, box: Box | None,
             ends: list[Box] | None = None) -> list[dict[str, Any]]:
        return self._withpoints(cur, a, b, self._edges_sql(profile, box, ends, (a.edge, b.edge)))

    @staticmethod
    def _withpoints(cur: Any, a: Snap, b: Snap, edges: str) -> list[dict[str, Any]]:
        points = (f"SELECT 1 AS pid, {a.edge:d}::bigint AS edge_id,"
                  f" {a.fraction!r}::float8 AS fraction UNION ALL"
                  f" SELECT 2, {b.edge:d}::bigint, {b.fraction!r}::float8")
        cur.execute("SELECT node, edge, cost, agg_cost FROM pgr_withPoints(%s, %s, -1, -2,"
                    " directed => true, driving_side => 'b', details => false) ORDER BY seq",
                    (edges, points))
        return list(cur.fetchall())

    def graph(self, cur: Any, profile: Profile) -> landmarks.Graph | None:
        """The profile's graph with its landmark costs (services/maps/landmarks.py)."""
        return self.landmarks.graph(cur, profile, self._edges_sql(profile, None, None, (0, 0)),
                                    _COSTS[profile][2])

    def _pruned(self, cur: Any, a: Snap, b: Snap, profile: Profile
                ) -> list[dict[str, Any]] | None:
        """The leg by pgr_dijkstra over the edges the landmarks' bounds leave, the ends' edges
        split at the ends as pgr_withPoints splits them (exact; services/maps/landmarks.py),
        or None: the bounds would leave most of the network."""
        g = self.graph(cur, profile)
        if g is None:
            return None
        ea, eb = g.end(a.edge, a.fraction), g.end(b.edge, b.fraction)
        from_a, to_b = g.from_end(ea), g.to_end(eb)
        through = from_a + to_b
        limit = g.least(ea, eb) * landmarks.GUESS + landmarks.GUESS_ADD_S
        parts, virtual, replaced = g.split([(-1, a.edge, a.fraction), (-2, b.edge, b.fraction)])
        whole = self._edges_sql(profile, None, None, (0, 0))
        for _ in range(8):
            ids = g.edges_within(through, limit, [])
            if len(ids) > landmarks.WHOLE_SHARE * len(g.ids):
                return None
            edges = (f"{whole} WHERE {landmarks.ids_sql(ids)} AND id <> ALL('{{"
                     + ",".join(map(str, replaced)) + f"}}'::bigint[]) UNION ALL {parts}")
            cur.execute("SELECT node, edge, cost, agg_cost FROM pgr_dijkstra(%s, -1, -2,"
                        " directed => true) ORDER BY seq", (edges,))
            rows = [dict(r) for r in cur.fetchall()]
            if rows and landmarks.proved(float(rows[-1]["agg_cost"]), limit):
                for r in rows:
                    r["edge"] = virtual.get(int(r["edge"]), r["edge"])
                return rows
            limit = float(rows[-1]["agg_cost"]) if rows else limit * 2.0
        return None

    def _leg(self, cur: Any, a: Snap, b: Snap, profile: Profile) -> list[dict[str, Any]]:
        """One leg: on a network up to FULL_NETWORK_EDGES over the edges the landmarks leave,
        else its whole graph (exact either way); on a larger one the box, long drives first its
        major roads (module docstring), then the whole network if neither finds a route (on
        the generated 100,800-edge grid the landmarks' exact answer took twice the CPU of the
        box: bench/results/routing.md)."""
        if self.edge_count(cur) <= FULL_NETWORK_EDGES:
            rows = self._pruned(cur, a, b, profile)
            if rows is not None:
                return rows
        else:
            d = GEOD.inv(a.snapped[0], a.snapped[1], b.snapped[0], b.snapped[1])[2]
            box = self._around(a.snapped, b.snapped, max(MARGIN_M, MARGIN_SHARE * d))
            if profile != "walk" and d > 2 * LOCAL_M:
                ends = [self._around(s.snapped, s.snapped, LOCAL_M) for s in (a, b)]
                rows = self._run(cur, a, b, profile, box, ends)
                if rows:
                    return rows
            rows = self._run(cur, a, b, profile, box)
            if rows:
                return rows
        return self._run(cur, a, b, profile, None)

    def route(self, points: list[tuple[float, float]], profile: Profile = "fastest"
              ) -> Route:
        if profile not in PROFILES:
            raise bad(BAD_LONLAT, "Unknown profile.")
        if not 2 <= len(points) <= MAX_POINTS:
            raise bad(OUT_OF_RANGE, f"A route has 2 to {MAX_POINTS} points.")
        names = ["from"] + [f"via[{i}]" for i in range(1, len(points) - 1)] + ["to"]
        for (lon, lat), name in zip(points, names):
            self.check_point(lon, lat, name)
        with self.db.cursor() as cur:
            if self.edge_count(cur) == 0:
                raise unroutable(NO_DATA, "This node has no road network to route on.")
            snaps = [self.snap(cur, lon, lat, profile, name)
                     for (lon, lat), name in zip(points, names)]
            trav: list[Traversal] = []
            costs: list[float] = []
            for a, b in pairwise(snaps):
                if a.edge == b.edge and abs(a.fraction - b.fraction) < 1e-12:
                    costs.append(0.0)
                    continue
                rows = self._leg(cur, a, b, profile)
                if not rows:
                    raise unroutable(NO_DATA, "No route joins these points on the road network.")
                costs.append(float(rows[-1]["agg_cost"]))
                trav += self._traversals(cur, rows, a, b, profile)
        return assemble(profile, trav, snaps, costs)

    def _traversals(self, cur: Any, rows: list[dict[str, Any]], a: Snap, b: Snap,
                    profile: Profile) -> list[Traversal]:
        ids = sorted({int(r["edge"]) for r in rows if r["edge"] > 0})
        cur.execute("SELECT id, source, target, cost, reverse_cost, walk_cost, length_m, name,"
                    " kind, ST_AsBinary(geom) AS wkb FROM geoplat_route_edges WHERE id = ANY(%s)",
                    (ids,))
        edges = {int(e["id"]): e for e in cur.fetchall()}
        lines = dict(zip(edges, shapely.from_wkb([bytes(e["wkb"]) for e in edges.values()])))
        out = []
        for here, there in pairwise(rows):
            e = edges[int(here["edge"])]

            def pos(node: int, e: dict[str, Any] = e) -> float:
                if node == -1 and int(e["id"]) == a.edge:
                    return a.fraction
                if node == -2 and int(e["id"]) == b.edge:
                    return b.fraction
                return 0.0 if node == e["source"] else 1.0

            p0, p1 = pos(int(here["node"])), pos(int(there["node"]))
            line = lines[int(e["id"])]
            if {p0, p1} == {0.0, 1.0}:  # the whole edge (most of a route): no substring
                whole = shapely.get_coordinates(line).tolist()
                coords = [(x, y) for x, y in (whole if p0 == 0.0 else whole[::-1])]
            else:
                part = shapely.ops.substring(line, p0, p1, normalized=True)
                coords = [(float(x), float(y)) for x, y in (
                    part.coords if isinstance(part, LineString) else [part.coords[0]] * 2)]
            share = abs(p1 - p0)
            if profile == "walk":
                seconds = e["walk_cost"] * share
            else:
                seconds = (e["cost"] if p1 >= p0 else e["reverse_cost"]) * share
            out.append(Traversal(int(e["id"]), e["name"] or UNNAMED, e["kind"], coords,
                                 float(e["length_m"]) * share, float(seconds)))
        return out


def assemble(profile: Profile, trav: list[Traversal], snaps: list[Snap], costs: list[float]
             ) -> Route:
    """The route's line, its turn-by-turn steps (consecutive edges of one name merged) and totals."""
    coords: list[tuple[float, float]] = []
    for t in trav:
        for c in t.coords:
            if not coords or coords[-1] != c:
                coords.append(c)
    if not coords:
        coords = [snaps[0].snapped, snaps[-1].snapped]
    steps: list[Step] = []
    for t in trav:
        if t.distance_m <= 0 and steps:
            continue
        if steps and steps[-1].name == t.name:
            s = steps[-1]
            s.distance_m += t.distance_m
            s.duration_s += t.duration_s
            s.coords += t.coords[1:] if s.coords and s.coords[-1] == t.coords[0] else t.coords
            continue
        turn = "depart"
        if steps:
            prev = steps[-1].coords
            turn = turn_of(bearing(*_last_segment(prev)), bearing(*_first_segment(t.coords)))
            steps[-1].next_name = t.name
        steps.append(Step(t.name, turn, t.distance_m, t.duration_s, t.coords[0], list(t.coords)))
    if steps:
        steps.append(Step(steps[-1].name, "arrive", 0.0, 0.0, coords[-1], [coords[-1]]))
    return Route(profile, coords, steps, sum(t.distance_m for t in trav),
                 sum(t.duration_s for t in trav), snaps, sum(costs), costs)


def _last_segment(cs: list[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    for i in range(len(cs) - 1, 0, -1):
        if cs[i] != cs[i - 1]:
            return cs[i - 1], cs[i]
    return cs[0], cs[-1]


def _first_segment(cs: list[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    for i in range(1, len(cs)):
        if cs[i] != cs[i - 1]:
            return cs[i - 1], cs[i]
    return cs[0], cs[-1]
