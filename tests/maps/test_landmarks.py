"""The landmark-pruned graph (services/maps/landmarks.py) answers as the whole network does
(issue 15, speed): on random door plates of the sample, every profile's route over the pruned
edges has the whole-network pgr_withPoints route's cost and edges, the halls ranking's offices
and figures equal the whole-network ranking's, and the pruning reads far fewer edges (else it
would prove nothing about speed)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from nodes import federation as federation_mod
from services.db import Database
from services.maps import landmarks
from services.maps.halls import Halls
from services.maps.hours import Hours
from services.maps.routing import END_GAP, PROFILES, Profile, Router

HZ_EXTENT = (118.34, 29.18, 120.73, 30.57)


@pytest.fixture(scope="module")
def db(federation: Any) -> Iterator[Database]:
    d = Database(federation_mod.node_dsn(federation, federation.node("hangzhou")), maxconn=2)
    yield d
    d.close()


@pytest.fixture(scope="module")
def plates(db: Database) -> list[tuple[float, float]]:
    with db.cursor() as cur:
        cur.execute("SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM addresses ORDER BY fid")
        return [(r["x"], r["y"]) for r in cur.fetchall()]


class Reads:
    """Counts the edges each pgRouting query of a cursor reads (the ids in its edges SQL)."""

    def __init__(self, cur: Any) -> None:
        self.cur, self.sizes = cur, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)

    def execute(self, query: Any, args: Any = None) -> None:
        edges = args.get("edges") if isinstance(args, dict) else (
            args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else None)
        if isinstance(edges, str) and "ANY('{" in edges:
            self.sizes.append(edges.split("ANY('{", 1)[1].split("}", 1)[0].count(",") + 1)
        self.cur.execute(query, args)


@pytest.mark.parametrize("profile", PROFILES)
def test_pruned_routes_equal_whole_network_routes(db: Database, plates: list[Any],
                                                  profile: Profile) -> None:
    router = Router(db, HZ_EXTENT)
    rng = random.Random(f"landmarks-{profile}")
    pruned = 0
    with db.cursor() as cur:
        total = router.edge_count(cur)
        spy = Reads(cur)
        for _ in range(40):
            a, b = rng.sample(plates, 2)
            sa, sb = router.snap(cur, a[0], a[1], profile, "a"), router.snap(cur, b[0], b[1], profile, "b")
            whole = router._run(cur, sa, sb, profile, None)
            fast = router._pruned(spy, sa, sb, profile)  # type: ignore[arg-type]
            if fast is None:  # the bounds would leave most of the network: it is read whole
                continue
            pruned += 1
            assert fast[-1]["agg_cost"] == pytest.approx(whole[-1]["agg_cost"], rel=1e-9,
                                                         abs=1e-6), (a, b)
            assert [int(r["edge"]) for r in fast] == [int(r["edge"]) for r in whole], (a, b)
            assert [int(r["node"]) for r in fast] == [int(r["node"]) for r in whole], (a, b)
    assert pruned >= 30
    assert sorted(spy.sizes)[len(spy.sizes) // 2] < total / 3  # the median query reads < 1/3


def test_a_route_along_one_edge_and_a_one_way_street(db: Database) -> None:
    """Both ends on one edge (the split into three parts), both directions of a one-way
    street: the pruned answer is the whole network's."""
    router = Router(db, HZ_EXTENT)
    with db.cursor() as cur:
        cur.execute("SELECT id, ST_X(ST_LineInterpolatePoint(geom, 0.2)) AS x1,"
                    " ST_Y(ST_LineInterpolatePoint(geom, 0.2)) AS y1,"
                    " ST_X(ST_LineInterpolatePoint(geom, 0.8)) AS x2,"
                    " ST_Y(ST_LineInterpolatePoint(geom, 0.8)) AS y2"
                    " FROM geoplat_route_edges WHERE oneway = 1 AND drive_main"
                    " AND length_m > 80 ORDER BY id LIMIT 1")
        e = cur.fetchone()
        assert e is not None
        for p, q in [((e["x1"], e["y1"]), (e["x2"], e["y2"])),
                     ((e["x2"], e["y2"]), (e["x1"], e["y1"]))]:
            sa, sb = router.snap(cur, *p, "fastest", "a"), router.snap(cur, *q, "fastest", "b")
            assert sa.edge == sb.edge == e["id"]
            whole = router._run(cur, sa, sb, "fastest", None)
            fast = router._pruned(cur, sa, sb, "fastest")
            assert fast is not None
            assert fast[-1]["agg_cost"] == pytest.approx(whole[-1]["agg_cost"], abs=1e-6)
            assert [int(r["edge"]) for r in fast] == [int(r["edge"]) for r in whole]
        # along the drawing: the edge's share; against it: around the block, far more
        costs = [router.route([p, q]).cost for p, q in [((e["x1"], e["y1"]), (e["x2"], e["y2"])),
                                                       ((e["x2"], e["y2"]), (e["x1"], e["y1"]))]]
        assert costs[1] > costs[0] * 2


def _ranked(costs: dict[int, tuple[float, float]], first: set[int], limit: int
            ) -> list[tuple[int, float, float]]:
    keys = sorted(costs, key=lambda p: (p not in first, costs[p][0], p))[:limit]
    return [(p, round(costs[p][0], 6), round(costs[p][1], 3)) for p in keys]


@pytest.mark.parametrize("profile", ["fastest", "walk"])
def test_pruned_ranking_equals_the_whole_network_ranking(db: Database, plates: list[Any],
                                                         profile: Profile) -> None:
    router = Router(db, HZ_EXTENT)
    halls = Halls(db, router, Hours())
    rng = random.Random(f"halls-{profile}")
    with db.cursor() as cur:
        cur.execute("SELECT code FROM geoplat_office_items GROUP BY code"
                    " ORDER BY count(*) DESC, code LIMIT 1")
        code = cur.fetchone()["code"]
        offices = halls._offices(cur, code, profile)
        assert len(offices) >= 20
        pruned = 0
        for i in range(30):
            lon, lat = rng.choice(plates)
            origin = router.snap(cur, lon, lat, profile, "lon,lat")
            pids = list(range(2, len(offices) + 2))
            # half the offices "open": the ranking's first group
            first = set(pids) if i % 3 == 0 else set(rng.sample(pids, len(pids) // 2))
            limit = rng.choice([1, 5, 10, 30])
            whole = halls._whole(cur, origin, offices, profile)
            fast = halls._pruned(cur, origin, offices, profile, first, limit)
            if fast is None:
                continue
            pruned += 1
            for pid, (cost, metres) in fast.items():
                assert cost == pytest.approx(whole[pid][0], rel=1e-9, abs=1e-6)
                assert metres == pytest.approx(whole[pid][1], rel=1e-9, abs=1e-3)
            assert _ranked(fast, first, limit) == _ranked(whole, first, limit)
        assert pruned >= 15  # not vacuous: most rankings took the pruned way


def test_an_office_at_the_users_point_keeps_its_group(db: Database) -> None:
    """The user stands where a closed office snaps: it costs 0 yet ranks after the open ones,
    so the first `limit` open ones must all be proved."""
    router = Router(db, HZ_EXTENT)
    halls = Halls(db, router, Hours())
    with db.cursor() as cur:
        cur.execute("SELECT code FROM geoplat_office_items GROUP BY code"
                    " ORDER BY count(*) DESC, code LIMIT 1")
        offices = halls._offices(cur, cur.fetchone()["code"], "fastest")
        here = next(pid for pid, o in enumerate(offices, start=2) if o["edge"] is not None)
        o = offices[here - 2]
        origin = router.snap(cur, o["x"], o["y"], "fastest", "lon,lat")
        assert origin.edge == o["edge"]
        assert abs(min(max(float(o["fraction"]), END_GAP), 1 - END_GAP) - origin.fraction) < 1e-12
        first = set(range(2, len(offices) + 2)) - {here}
        whole = halls._whole(cur, origin, offices, "fastest")
        assert whole[here] == (0.0, 0.0)
        for limit in (1, 10, len(offices)):
            fast = halls._pruned(cur, origin, offices, "fastest", first, limit)
            if fast is None and limit == len(offices):
                continue  # every office: the bounds may leave most of the network (read whole)
            assert fast is not None and fast[here] == (0.0, 0.0)
            assert _ranked(fast, first, limit) == _ranked(whole, first, limit)


def test_bounds_never_exceed_true_costs(db: Database, plates: list[Any]) -> None:
    """The landmarks' lower bound from a point to every vertex is at most pgRouting's cost."""
    router = Router(db, HZ_EXTENT)
    rng = random.Random("bounds")
    with db.cursor() as cur:
        g = router.graph(cur, "fastest")
        assert g is not None
        for _ in range(3):
            lon, lat = rng.choice(plates)
            s = router.snap(cur, lon, lat, "fastest", "a")
            bound = g.from_end(g.end(s.edge, s.fraction))
            cur.execute("SELECT node, agg_cost FROM pgr_withPointsDD(%s,"
                        " %s, -1, 1e300, directed => true, driving_side => 'b',"
                        " details => false) WHERE node > 0",
                        (router._edges_sql("fastest", None, None, (0, 0)),
                         (f"SELECT 1 AS pid, {s.edge}::bigint AS edge_id,"
                          f" {s.fraction!r}::float8 AS fraction")))
            rows = cur.fetchall()
            assert len(rows) > 1000
            at = {int(v): i for i, v in enumerate(g.vids.tolist())}
            for r in rows:
                assert bound[at[int(r["node"])]] <= r["agg_cost"] * (1 + landmarks.SLACK) + 1e-6
