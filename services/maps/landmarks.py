"""Exact pruning of the graph pgRouting reads for a query, by landmark lower bounds (ALT:
Goldberg and Harrelson, "Computing the shortest path: A* search meets graph theory", 2005).

pgRouting builds its graph from the edges SQL anew for every query, and that building, not
Dijkstra, is most of a query's CPU (services/maps/routing.py). So a query reads only the
edges that can lie on an answer, and proves it:

- `LANDMARKS` landmark vertices of the profile's main part (in each of as many equal sectors
  around its centre, the vertex farthest from it) and, from pgRouting (`pgr_drivingDistance`
  over the profile's graph and over its reverse), the cost from each landmark to every vertex
  and from every vertex to each landmark. By the triangle inequality the cost from u to v is
  at least d(u, L) - d(v, L) and d(L, v) - d(L, u) for every landmark L: a lower bound
  `lb(u, v)`.
- A point on an edge leaves it by one of the edge's two vertices (at the share of the edge's
  cost its fraction says, where the edge's direction allows), and is reached likewise: its own
  costs to and from each landmark are the better of the two ways (`Graph.end`), so it bounds
  as a vertex does (splitting an edge changes no cost between vertices).
- A path from s to t costing at most C runs only through vertices x with
  lb(s, x) + lb(x, t) <= C (on the path, lb(s, x) + lb(x, t) <= d(s, x) + d(x, t) = its
  cost). So Dijkstra over the edges between such vertices (and the ends' own edges) finds
  every path of cost <= C exactly, and an answer costing at most C is the optimum of the whole
  network. If it costs more, C becomes that cost (which then holds: a larger C only adds
  edges); with no answer C doubles; past `WHOLE_SHARE` of the edges the whole network is read.

The bounds live in each worker's memory (numpy, per profile), fetched when first needed and
again whenever the topology is rebuilt (`geoplat_route_build.built_at`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LANDMARKS = 16
WHOLE_SHARE = 0.6          # a pruned graph over this share of the edges: read them all
GUESS = 1.3                # the first C: this much over the lower bound of the ends (routes)
HALLS_GUESS = 1.6          # (the halls ranking: its first query fails less often)
GUESS_ADD_S = 30.0         # and at least this much more (seconds, or metres for `shortest`)
SLACK = 1e-9               # relative: float sums of the bounds are not the network's
F8 = np.float64
END_CACHE = 10_000         # offices' ends kept per profile graph
BIG = 1e12                 # no path (a finite stand-in for inf: inf - inf is no number)


@dataclass(frozen=True)
class End:
    """A point on an edge as an end of a query, with its own landmark costs: to each landmark
    (`to_l`) and from each (`from_l`), by the better of the edge's two vertices (BIG where
    none)."""

    edge: int
    to_l: np.ndarray
    from_l: np.ndarray


@dataclass
class Graph:
    """One profile's graph as numpy arrays, with the landmark costs (BIG: no path)."""

    built: Any
    ids: np.ndarray          # edge ids
    src: np.ndarray          # vertex index of each edge's source
    tgt: np.ndarray
    cost: np.ndarray         # along the edge (inf: closed that way)
    rcost: np.ndarray        # against it
    vids: np.ndarray         # vertex ids, sorted (index -> id)
    to_l: np.ndarray         # (landmarks, vertices): d(x, L)
    from_l: np.ndarray       # d(L, x)
    position: dict[int, int]  # edge id -> row
    per: np.ndarray          # metres per unit of cost (of the costlier way)
    ends: dict[tuple[int, float], End] = field(default_factory=dict)  # offices' ends, kept

    def metres(self, edges: np.ndarray, costs: np.ndarray, virtual: dict[int, int]) -> float:
        """The length of a path given as pgRouting's rows (edge, cost; parts by `virtual`)."""
        if len(edges) == 0:
            return 0.0
        orig = np.array([virtual.get(e, e) for e in edges.tolist()], dtype=np.int64)
        use = orig > 0
        rows = np.searchsorted(self.ids, orig[use])
        return float(np.sum(self.per[rows] * costs[use]))

    def kept_end(self, edge: int, fraction: float) -> End:
        """`end`, kept for the points that come back (the offices; at most END_CACHE)."""
        e = self.ends.get((edge, fraction))
        if e is None:
            e = self.end(edge, fraction)
            if len(self.ends) < END_CACHE:
                self.ends[(edge, fraction)] = e
        return e

    def end(self, edge: int, fraction: float) -> End:
        """The point at `fraction` of the edge: it leaves by its source against the edge's
        direction or by its target along it, and is reached likewise."""
        i = self.position[edge]
        c, r = float(self.cost[i]), float(self.rcost[i])
        a, b = int(self.src[i]), int(self.tgt[i])
        to_l = np.minimum(_plus(self.to_l[:, a], r * fraction),
                          _plus(self.to_l[:, b], c * (1 - fraction)))
        from_l = np.minimum(_plus(self.from_l[:, a], c * fraction),
                            _plus(self.from_l[:, b], r * (1 - fraction)))
        return End(edge, to_l, from_l)

    # lower bounds over every vertex (the triangle inequality at each landmark) --------------

    def from_end(self, e: End) -> np.ndarray:
        """lb(e, x) for every vertex x: d(e, L) - d(x, L) and d(L, x) - d(L, e)."""
        return np.maximum((e.to_l[:, None] - self.to_l).max(axis=0),
                          (self.from_l - e.from_l[:, None]).max(axis=0))

    def to_end(self, e: End) -> np.ndarray:
        """lb(x, e) for every vertex x: d(x, L) - d(e, L) and d(L, e) - d(L, x)."""
        return np.maximum((self.to_l - e.to_l[:, None]).max(axis=0),
                          (e.from_l[:, None] - self.from_l).max(axis=0))

    def to_any(self, ends: list[End]) -> np.ndarray:
        """A lower bound of the cost from every vertex to the nearest of the ends."""
        # min over the ends of d(x, L) - d(e, L), and of d(L, e) - d(L, x)
        to_l = np.max([e.to_l for e in ends], axis=0)
        from_l = np.min([e.from_l for e in ends], axis=0)
        return np.maximum((self.to_l - to_l[:, None]).max(axis=0),
                          (from_l[:, None] - self.from_l).max(axis=0))

    def least(self, a: End, b: End) -> float:
        """A lower bound of the cost from a to b (0 on one edge)."""
        if a.edge == b.edge:
            return 0.0
        lb = max(float((a.to_l - b.to_l).max()), float((b.from_l - a.from_l).max()), 0.0)
        return lb if lb < BIG / 2 else 0.0

    def split(self, points: list[tuple[int, int, float]]) -> tuple[str, dict[int, int], list[int]]:
        """The points (vertex id < -1, edge id, fraction) as pgRouting's withPoints makes them,
        both sides of the road: each edge with points replaced by its parts between them.
        Returns the parts as edges-SQL rows (to append with UNION ALL), each part's
        original edge by its (negative) id, and the edges replaced."""
        by_edge: dict[int, list[tuple[float, int]]] = {}
        for vid, edge, fraction in points:
            by_edge.setdefault(edge, []).append((fraction, vid))
        parts: list[str] = []
        virtual: dict[int, int] = {}
        for edge, pts in sorted(by_edge.items()):
            i = self.position[edge]
            c, r = float(self.cost[i]), float(self.rcost[i])
            pts.sort()
            nodes = [int(self.vids[self.src[i]]), *(v for _, v in pts), int(self.vids[self.tgt[i]])]
            at = [0.0, *(f for f, _ in pts), 1.0]
            for k in range(len(nodes) - 1):
                share = at[k + 1] - at[k]
                part = -10 - len(virtual)
                virtual[part] = edge
                parts.append(f"({part}::bigint, {nodes[k]}::bigint, {nodes[k + 1]}::bigint,"
                             f" {_cost(c, share)}::float8, {_cost(r, share)}::float8)")
        # one VALUES list: a UNION ALL of a hundred SELECTs took 60 ms to plan
        return (f"SELECT * FROM (VALUES {', '.join(parts)}) AS parts", virtual,
                sorted(by_edge))

    def edges_within(self, through: np.ndarray, limit: float, keep: list[int]) -> np.ndarray:
        """Ids of the edges both of whose vertices x have through[x] <= limit, and `keep`."""
        ok = through <= limit * (1.0 + 2 * SLACK) + 2 * SLACK
        mask = ok[self.src] & ok[self.tgt]
        for k in keep:
            mask[self.position[k]] = True
        return self.ids[mask]


def _plus(costs: np.ndarray, c: float) -> np.ndarray:
    """Landmark costs plus one edge part's cost (BIG when closed or none)."""
    return np.minimum(costs + c, BIG) if math.isfinite(c) else np.full_like(costs, BIG)


def _cost(c: float, share: float) -> str:
    return repr(c * share) if math.isfinite(c) else "-1"


def proved(cost: float, limit: float) -> bool:
    """An answer of this cost found among the edges within `limit` is the network's optimum."""
    return cost <= limit * (1.0 + SLACK) + SLACK


def ids_sql(ids: np.ndarray) -> str:
    """An edges-SQL condition on the ids (integers of our own arrays: no input in it)."""
    return "id = ANY('{" + ",".join(map(str, ids.tolist())) + "}'::bigint[])"


class Landmarks:
    """The per-profile graphs and landmark costs of one node's topology (thread-safe)."""

    def __init__(self) -> None:
        self._graphs: dict[str, Graph] = {}
        self._lock = threading.Lock()

    def graph(self, cur: Any, profile: str, edges_sql: str, flag: str) -> Graph | None:
        """The profile's graph for the topology now built (None: no network)."""
        cur.execute("SELECT built_at FROM geoplat_route_build WHERE id = 1")
        row = cur.fetchone()
        if row is None:
            return None
        built = row["built_at"]
        g = self._graphs.get(profile)
        if g is not None and g.built == built:
            return g
        with self._lock:
            g = self._graphs.get(profile)
            if g is None or g.built != built:
                g = _load(cur, built, edges_sql, flag)
                if g is not None:
                    self._graphs[profile] = g
        return g


def _load(cur: Any, built: Any, edges_sql: str, flag: str) -> Graph | None:
    cur.execute(f"SELECT string_agg(e.id::text, ',' ORDER BY e.id) AS ids,"
                f" string_agg(e.source::text, ',' ORDER BY e.id) AS s,"
                f" string_agg(e.target::text, ',' ORDER BY e.id) AS t,"
                f" string_agg(e.cost::text, ',' ORDER BY e.id) AS c,"
                f" string_agg(e.reverse_cost::text, ',' ORDER BY e.id) AS r,"
                f" string_agg(g.length_m::text, ',' ORDER BY e.id) AS m"
                f" FROM ({edges_sql}) e JOIN geoplat_route_graph g USING (id)")
    row = cur.fetchone()
    if row is None or not row["ids"]:
        return None

    def arr(k: str, dtype: Any) -> np.ndarray:
        return np.array(row[k].split(","), dtype=dtype)

    ids, s, t = arr("ids", np.int64), arr("s", np.int64), arr("t", np.int64)
    cost, rcost, metres = arr("c", F8), arr("r", F8), arr("m", F8)
    # metres per unit of cost along the edge (what a part of it costs says how long it is)
    whole = np.maximum(cost, rcost)
    per = np.divide(metres, whole, out=np.zeros_like(metres), where=whole > 0)
    cost[cost < 0] = math.inf
    rcost[rcost < 0] = math.inf
    vids = np.unique(np.concatenate([s, t]))
    src, tgt = np.searchsorted(vids, s), np.searchsorted(vids, t)
    marks = _pick(cur, flag)
    if not marks:
        return None
    reverse = (f"SELECT id, source, target, reverse_cost AS cost, cost AS reverse_cost"
               f" FROM ({edges_sql}) e")
    from_l = _costs(cur, edges_sql, marks, vids)
    to_l = _costs(cur, reverse, marks, vids)
    return Graph(built, ids, src, tgt, cost, rcost, vids, to_l, from_l,
                 {int(i): n for n, i in enumerate(ids.tolist())}, per)


def _pick(cur: Any, flag: str) -> list[int]:
    """The vertex of the profile's main part farthest from its centre in each of LANDMARKS
    equal sectors around it (landmarks behind the ends bound best)."""
    # flag: one of our own column names (routing._COSTS), never input
    cur.execute(f"""
        WITH v AS (SELECT DISTINCT source AS id, ST_X(ST_StartPoint(geom)) AS x,
                          ST_Y(ST_StartPoint(geom)) AS y FROM geoplat_route_edges WHERE {flag}),
             c AS (SELECT avg(x) AS cx, avg(y) AS cy FROM v),
             s AS (SELECT v.id, (v.x - c.cx) ^ 2 + (v.y - c.cy) ^ 2 AS far,
                          floor((atan2(v.y - c.cy, v.x - c.cx) + pi()) / (2 * pi()) * %(n)s)
                            AS sector FROM v, c)
        SELECT DISTINCT ON (sector) id FROM s ORDER BY sector, far DESC, id""",
                {"n": LANDMARKS})
    return sorted({int(r["id"]) for r in cur.fetchall()})


def _costs(cur: Any, edges_sql: str, marks: list[int], vids: np.ndarray) -> np.ndarray:
    """(landmarks, vertices): the cost from each landmark to every vertex (BIG: none)."""
    out = np.full((len(marks), len(vids)), BIG, dtype=F8)
    # as text: psycopg2 parses big arrays slowly, numpy parses text fast (PostgreSQL writes
    # float8 exactly, shortest round-trip form)
    cur.execute("SELECT from_v, string_agg(node::text, ',') AS n, string_agg(agg_cost::text, ',')"
                " AS c FROM pgr_drivingDistance(%s, %s::bigint[], 1e300, directed => true)"
                " GROUP BY from_v", (edges_sql, marks))
    row_of = {m: i for i, m in enumerate(marks)}
    for r in cur.fetchall():
        nodes = np.array(r["n"].split(","), dtype=np.int64)
        costs = np.array(r["c"].split(","), dtype=F8)
        at = np.searchsorted(vids, nodes)
        ok = (at < len(vids)) & (vids[np.minimum(at, len(vids) - 1)] == nodes)
        out[row_of[int(r["from_v"])], at[ok]] = np.minimum(costs[ok], BIG)
    return out
