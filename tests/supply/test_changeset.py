"""Change-sets (services/supply/changeset.py) on a real PostGIS: built by the child from two
versions of a layer, signed, checked and applied by the parent; the attacks refused."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from nodes.postgres import ensure_database, ensure_postgis
from services.supply import changeset as cs_mod
from services.supply.changeset import ChangeSetError

DB = "geoplat_supply_t"
# Hangzhou's area (a box around the points below) and a point outside it (Ningbo)
AREA = "POLYGON((119.9 30.0, 120.5 30.0, 120.5 30.5, 119.9 30.5, 119.9 30.0))"
OUTSIDE = (121.55, 29.87)
V1 = [("hall-1", "上城区政务服务中心", "hall", 120.17, 30.24),
      ("hall-2", "西湖区民 \"便民\" 中心", "hall", 120.13, 30.26),
      ("poi-3", "武林广场", "square", 120.164, 30.271),
      ("poi-4", "湖滨", "square", 120.16, 30.255),
      ("poi-5", "断桥", "sight", 120.151, 30.259)]
FIELDS = ["name", "kind"]


@pytest.fixture(scope="module")
def conn(pg_cluster: Any) -> Iterator[Any]:
    ensure_database(pg_cluster.dsn(), DB)
    ensure_postgis(pg_cluster.dsn(DB))
    c = psycopg2.connect(pg_cluster.dsn(DB))
    yield c
    c.close()


@pytest.fixture
def cur(conn: Any) -> Iterator[Any]:
    with conn.cursor() as cur:
        yield cur
    conn.rollback()  # each test's tables go with its transaction


def child_table(cur: Any, name: str, rows: list[tuple[str, str, str, float, float]]) -> None:
    cur.execute(f"CREATE TABLE {name} (fid bigint PRIMARY KEY, id text NOT NULL, name text, "
                "kind text, geom geometry(Point, 4490) NOT NULL)")
    for i, (key, nm, kind, lon, lat) in enumerate(rows, 1):
        cur.execute(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, "
                    "ST_SetSRID(ST_MakePoint(%s, %s), 4490))", (i, key, nm, kind, lon, lat))


def parent_table(cur: Any, name: str = "zj_poi") -> None:
    cur.execute(f"CREATE TABLE {name} (fid bigint PRIMARY KEY, src_node text, src_id text, "
                "name text, kind text, geom geometry(Point, 4490) NOT NULL)")


def build(cur: Any, new: str, old: str | None, base: int | None = None, version: int = 1
          ) -> cs_mod.ChangeSet:
    return cs_mod.build(cur, new_table=new, old_table=old, key="id", fields=FIELDS,
                        child="hangzhou", parent="zhejiang", layer="poi", parent_layer="poi",
                        base_version=base, new_version=version)


def take(cur: Any, cs: cs_mod.ChangeSet, **kw: Any) -> list[cs_mod.Problem]:
    cs_mod.stage(cur, cs)
    return cs_mod.check(cur, cs, target="zj_poi", area_wkt=AREA, **kw)


def parent_rows(cur: Any) -> dict[str, tuple]:
    cur.execute("SELECT src_id, fid, name, kind, ST_AsText(geom) FROM zj_poi "
                "WHERE src_node = 'hangzhou'")
    return {r[0]: r[1:] for r in cur.fetchall()}


def v2_rows() -> list[tuple[str, str, str, float, float]]:
    """V1 with poi-6 added, hall-2 renamed and poi-5 removed."""
    rows = [r for r in V1 if r[0] != "poi-5"]
    rows = [(k, "西湖区政务服务中心" if k == "hall-2" else n, kd, x, y) for k, n, kd, x, y in rows]
    return [*rows, ("poi-6", "吴山广场", "square", 120.168, 30.243)]


def test_a_change_set_holds_exactly_the_three_changes(cur: Any) -> None:
    child_table(cur, "hz_poi_v1", V1)
    child_table(cur, "hz_poi_v2", v2_rows())
    parent_table(cur)
    # Ningbo's feature with the same id as one Hangzhou deletes: never touched by Hangzhou
    cur.execute("INSERT INTO zj_poi VALUES (1, 'ningbo', 'poi-5', '天一阁', 'sight', "
                "ST_SetSRID(ST_MakePoint(121.54, 29.87), 4490))")
    first = build(cur, "hz_poi_v1", None)
    assert first.counts == {"insert": 5, "update": 0, "delete": 0}
    assert take(cur, first) == []
    assert cs_mod.apply(cur, first, target="zj_poi") == {"insert": 5, "update": 0, "delete": 0}
    assert {k: v[1:3] for k, v in parent_rows(cur).items()} == {r[0]: (r[1], r[2]) for r in V1}

    change = build(cur, "hz_poi_v2", "hz_poi_v1", base=1, version=2)
    assert change.counts == {"insert": 1, "update": 1, "delete": 1}
    lines = [json.loads(x) for x in gzip.decompress(change.body).decode().splitlines()]
    assert sorted((op, k) for op, k, *_ in lines) == [
        ("delete", "poi-5"), ("insert", "poi-6"), ("update", "hall-2")]
    update = next(x for x in lines if x[0] == "update")
    assert update[2] == {"name": "西湖区政务服务中心", "kind": "hall"}
    assert change.manifest["schema"] == {"id": "text", "name": "text", "kind": "text"}
    assert change.manifest["extent"] == pytest.approx([120.13, 30.243, 120.168, 30.26])


def test_apply_after_check_gives_the_childs_new_version(cur: Any) -> None:
    child_table(cur, "hz_poi_v1", V1)
    child_table(cur, "hz_poi_v2", v2_rows())
    parent_table(cur)
    cur.execute("INSERT INTO zj_poi VALUES (100, 'ningbo', 'poi-5', '天一阁', 'sight', "
                "ST_SetSRID(ST_MakePoint(121.54, 29.87), 4490))")
    first = build(cur, "hz_poi_v1", None)
    assert take(cur, first) == []
    cs_mod.apply(cur, first, target="zj_poi")
    cur.execute("DROP TABLE geoplat_supply_stage")
    before = parent_rows(cur)

    change = build(cur, "hz_poi_v2", "hz_poi_v1", base=1, version=2)
    assert take(cur, change) == []
    assert cs_mod.apply(cur, change, target="zj_poi") == {"insert": 1, "update": 1, "delete": 1}
    after = parent_rows(cur)
    assert set(after) == {r[0] for r in v2_rows()}
    assert after["hall-2"][1] == "西湖区政务服务中心"
    assert after["hall-2"][0] == before["hall-2"][0]  # updated in place: same fid
    assert {k: v for k, v in after.items() if k not in ("hall-2", "poi-6")} == \
        {k: v for k, v in before.items() if k not in ("hall-2", "poi-5")}
    assert after["poi-6"][3] == "POINT(120.168 30.243)"
    cur.execute("SELECT name FROM zj_poi WHERE src_node = 'ningbo'")
    assert cur.fetchall() == [("天一阁",)]


def test_the_same_change_set_twice_is_a_conflict_the_second_time(cur: Any) -> None:
    child_table(cur, "hz_poi_v1", V1)
    parent_table(cur)
    first = build(cur, "hz_poi_v1", None)
    assert take(cur, first) == []
    cs_mod.apply(cur, first, target="zj_poi")
    cur.execute("DROP TABLE geoplat_supply_stage")
    problems = take(cur, first)
    assert [p.rule for p in problems] == ["conflict"]
    assert problems[0].conflict and sorted(problems[0].features) == sorted(r[0] for r in V1)


def test_a_feature_outside_the_childs_area_is_refused_by_name(cur: Any) -> None:
    rows = [*V1, ("poi-9", "宁波", "square", *OUTSIDE)]
    child_table(cur, "hz_poi_v1", rows)
    parent_table(cur)
    problems = take(cur, build(cur, "hz_poi_v1", None))
    assert [(p.rule, p.features) for p in problems] == [("area", ["poi-9"])]
    cur.execute("SELECT count(*) FROM zj_poi")
    assert cur.fetchone()[0] == 0


def test_domains_deletions_and_geometry_types(cur: Any) -> None:
    child_table(cur, "hz_poi_v1", V1)
    parent_table(cur)
    first = build(cur, "hz_poi_v1", None)
    problems = take(cur, first, domains={"kind": ["hall", "square"]})
    assert [(p.rule, p.features) for p in problems] == [("domain", ["poi-5"])]
    cs_mod.apply(cur, first, target="zj_poi")
    cur.execute("DROP TABLE geoplat_supply_stage")
    child_table(cur, "hz_poi_v2", V1[:2])  # three of five deleted
    problems = take(cur, build(cur, "hz_poi_v2", "hz_poi_v1", base=1, version=2),
                    max_delete_share=0.5)
    assert [p.rule for p in problems] == ["deletions"]
    cur.execute("DROP TABLE geoplat_supply_stage")
    cur.execute("CREATE TABLE hz_lines (fid bigint, id text, name text, kind text, "
                "geom geometry(LineString, 4490))")
    cur.execute("INSERT INTO hz_lines VALUES (1, 'l-1', 'a', 'hall', "
                "ST_GeomFromText('LINESTRING(120.1 30.2, 120.2 30.3)', 4490))")
    problems = take(cur, build(cur, "hz_lines", None))
    assert [(p.rule, p.features) for p in problems] == [("geometry", ["l-1"])]


def test_signatures_bodies_and_manifests_are_verified(cur: Any) -> None:
    child_table(cur, "hz_poi_v1", V1)
    cs = build(cur, "hz_poi_v1", None)
    key, other = cs_mod.new_key(), cs_mod.new_key()
    sig = cs_mod.sign(cs.manifest, key, "hangzhou")
    pub = cs_mod.public_jwk(key)
    assert cs_mod.verify(sig, cs.body, pub, {"child": "hangzhou", "parent": "zhejiang"}) == \
        cs.manifest
    with pytest.raises(ChangeSetError, match="not the sending node's"):
        cs_mod.verify(cs_mod.sign(cs.manifest, other, "hangzhou"), cs.body, pub)
    with pytest.raises(ChangeSetError, match="does not match its manifest"):
        cs_mod.verify(sig, cs.body[:-1] + bytes([cs.body[-1] ^ 1]), pub)
    with pytest.raises(ChangeSetError, match="not signed"):
        cs_mod.verify("", cs.body, pub)
    forged = {**cs.manifest, "counts": {"insert": 1, "update": 0, "delete": 0}}
    with pytest.raises(ChangeSetError, match="id does not match"):
        cs_mod.verify(cs_mod.sign(forged, key, "hangzhou"), cs.body, pub)
    with pytest.raises(ChangeSetError, match="for parent"):
        cs_mod.verify(sig, cs.body, pub, {"parent": "national"})
    assert cs_mod.manifest_id(cs.manifest) == cs.id


@pytest.mark.parametrize("body", [
    b"not gzip",
    gzip.compress(b"this is not json\n"),
    gzip.compress(b'["insert", "x", {"name": "a"}, "zz-not-hex"]\n'),
    gzip.compress(b'["insert", "x", {"name": "a"}, "0101"]\n'),  # truncated WKB
    gzip.compress(b'["drop table", "x", null, null]\n'),
    gzip.compress(b'["delete", "x", null, null]\n["delete", "x", null, null]\n'),
])
def test_a_corrupt_body_is_refused_and_the_transaction_goes_on(cur: Any, body: bytes) -> None:
    parent_table(cur)
    cs = cs_mod.ChangeSet({"counts": {"insert": 1, "update": 0, "delete": 0}}, body)
    with pytest.raises(ChangeSetError, match="corrupt|not gzip|counts"):
        cs_mod.stage(cur, cs)
    cur.execute("SELECT count(*) FROM zj_poi")  # the transaction is still usable
    assert cur.fetchone()[0] == 0
