"""Temporal filters (nodes/providers/cql.py) over a real PostGIS table, through the feature
provider as pygeoapi calls it: ECQL text and CQL2-JSON, instants and periods.

The expected sets follow CQL2's interval relations (an instant is `[t, t]`; DURING is strict,
its ends being BEGINS/ENDS) and ECQL's `BEFORE OR DURING` (up to the period's end) and
`DURING OR AFTER` (from the period's start on). The old mapping read both as DURING.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from pygeoapi.provider.base import ProviderInvalidQueryError
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.ecql import parse as parse_ecql

from nodes.postgres import Cluster, ensure_database
from nodes.providers.features import PostGISFeatureProvider

DAYS = ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-15", "2024-03-01"]
PERIOD = "2024-01-15T00:00:00Z/2024-02-15T00:00:00Z"


@pytest.fixture(scope="module")
def provider(pg_cluster: Cluster) -> Iterator[PostGISFeatureProvider]:
    ensure_database(pg_cluster.dsn(), "geoplat_cql_temporal")
    dsn = pg_cluster.dsn("geoplat_cql_temporal")
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS times")
            cur.execute("CREATE TABLE times (fid bigint PRIMARY KEY, day text, t timestamptz,"
                        " d date, geom geometry(Point, 4490))")
            for i, day in enumerate(DAYS, start=1):
                cur.execute("INSERT INTO times VALUES (%s, %s, %s, %s,"
                            " ST_SetSRID(ST_MakePoint(120, 30), 4490))",
                            (i, day, f"{day}T00:00:00Z", day))
    finally:
        conn.close()
    yield PostGISFeatureProvider({"name": "times", "type": "feature", "data": dsn,
                                  "table": "times", "id_field": "fid", "geom_field": "geom"})


def _days(provider: PostGISFeatureProvider, filterq) -> list[str]:
    out = provider.query(filterq=filterq, limit=100, skip_geometry=True)
    return [f["properties"]["day"] for f in out["features"]]


@pytest.mark.parametrize(("predicate", "expected"), [
    (f"t DURING {PERIOD}", DAYS[2:3]),
    (f"t BEFORE OR DURING {PERIOD}", DAYS[:4]),
    (f"t DURING OR AFTER {PERIOD}", DAYS[1:]),
    ("t BEFORE 2024-02-01T00:00:00Z", DAYS[:2]),
    ("t AFTER 2024-02-01T00:00:00Z", DAYS[3:]),
    ("t DURING 2024-01-15T00:00:00Z/P31D", DAYS[2:3]),
    ("t BEFORE OR DURING P31D/2024-02-15T00:00:00Z", DAYS[:4]),
    ("t DURING OR AFTER 2024-01-15T00:00:00Z/P31D", DAYS[1:]),
])
def test_ecql_temporal_predicates(provider, predicate: str, expected: list[str]) -> None:
    assert _days(provider, parse_ecql(predicate)) == expected


@pytest.mark.parametrize(("op", "args", "expected"), [
    ("t_before", {"interval": ["2024-01-15T00:00:00Z", "2024-02-15T00:00:00Z"]}, DAYS[:1]),
    ("t_after", {"interval": ["2024-01-15T00:00:00Z", "2024-02-15T00:00:00Z"]}, DAYS[4:]),
    ("t_during", {"interval": ["2024-01-15T00:00:00Z", "2024-02-15T00:00:00Z"]}, DAYS[2:3]),
    ("t_during", {"interval": ["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"]}, DAYS[1:4]),
    ("t_equals", {"timestamp": "2024-03-01T00:00:00Z"}, DAYS[4:]),
    ("t_before", {"timestamp": "2024-01-15T00:00:00Z"}, DAYS[:1]),
])
def test_cql2_json_temporal_predicates(provider, op: str, args: dict, expected: list[str]) -> None:
    tree = parse_cql2_json({"op": op, "args": [{"property": "t"}, args]})
    assert _days(provider, tree) == expected


def test_date_columns_compare_the_same_way(provider) -> None:
    assert _days(provider, parse_ecql("d BEFORE OR DURING 2024-01-15T00:00:00Z/2024-02-01T00:00:00Z")) \
        == DAYS[:3]
    assert _days(provider, parse_ecql("d DURING OR AFTER 2024-02-01T00:00:00Z/2024-03-01T00:00:00Z")) \
        == DAYS[2:]


def test_unsupported_temporal_operators_are_refused(provider) -> None:
    with pytest.raises(ProviderInvalidQueryError):
        provider.query(filterq=parse_cql2_json(
            {"op": "t_meets", "args": [{"property": "t"},
                                       {"interval": ["2024-01-15T00:00:00Z", "2024-02-15T00:00:00Z"]}]}))
