"""The parent's review queue (services/supply/inbox.py) on the shared federation's Hangzhou
node, as the parent of a child `xihu`: change-sets received once, checked, accepted into new
versions of a layer served at once, conflicts and refusals changing nothing, rollback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from publish_helpers import items

from layers.publish import rollback, versions
from services.supply import changeset as cs_mod
from services.supply import inbox
from services.supply.changeset import ChangeSetError
from services.supply.inbox import Link, SupplyRefused

LAYER = "sup_poi"
AREA = "POLYGON((119.9 30.0, 120.5 30.0, 120.5 30.5, 119.9 30.5, 119.9 30.0))"
V1 = [("hall-1", "供给测试甲", 120.17, 30.24), ("hall-2", "供给测试乙", 120.13, 30.26),
      ("poi-3", "供给测试丙", 120.164, 30.271), ("poi-4", "供给测试丁", 120.16, 30.255),
      ("poi-5", "供给测试戊", 120.151, 30.259)]
V2 = [r for r in V1 if r[0] != "poi-5"][:1] + [("hall-2", "供给测试乙改", 120.13, 30.26)] \
    + [r for r in V1 if r[0] in ("poi-3", "poi-4")] + [("poi-6", "供给测试己", 120.168, 30.243)]
V3 = [(k, n + "改" if k == "poi-3" else n, x, y) for k, n, x, y in V2]  # one name changed
KEY = cs_mod.new_key()


@pytest.fixture(scope="module")
def child(ctx: Any) -> Iterator[Any]:
    """The child's versions as tables (in the same database, for the test's ease)."""
    conn = psycopg2.connect(ctx.dsn)
    with conn, conn.cursor() as cur:
        for name, rows in (("sup_child_v1", V1), ("sup_child_v2", V2), ("sup_child_v3", V3),
                           ("sup_child_out", [*V1, ("poi-9", "供给测试庚", 121.55, 29.87)])):
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TABLE {name} (fid bigint, id text NOT NULL, name text, "
                        "geom geometry(Point, 4490) NOT NULL)")
            for i, (k, n, x, y) in enumerate(rows, 1):
                cur.execute(f"INSERT INTO {name} VALUES (%s, %s, %s, "
                            "ST_SetSRID(ST_MakePoint(%s, %s), 4490))", (i, k, n, x, y))
    yield conn
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE sup_child_v1, sup_child_v2, sup_child_v3, sup_child_out")
    conn.close()


def link(**kw: Any) -> Link:
    return Link(child="xihu", parent="hangzhou", layer="poi", parent_layer=LAYER,
                area_wkt=AREA, public_jwk=cs_mod.public_jwk(KEY), title="POI (supplied)",
                **kw)


def signed(conn: Any, new: str, old: str | None, base: int | None, version: int
           ) -> tuple[str, bytes, str]:
    with conn, conn.cursor() as cur:
        cs = cs_mod.build(cur, new_table=new, old_table=old, key="id", fields=["name"],
                          child="xihu", parent="hangzhou", layer="poi", parent_layer=LAYER,
                          base_version=base, new_version=version)
    return cs_mod.sign(cs.manifest, KEY, "xihu"), cs.body, cs.id


def served(base: str) -> dict[str, str]:
    return {f["properties"]["src_id"]: f["properties"]["name"] for f in items(base, LAYER)}


def queued(ctx: Any, cs_id: str) -> int:
    return sum(1 for r in inbox.listing(ctx) if r["id"] == cs_id)


def test_supply_received_checked_accepted_and_rolled_back(ctx, urls, child):
    base = urls["hangzhou"]
    sig, body, first = signed(child, "sup_child_v1", None, None, 1)
    row = inbox.receive(ctx, link(), sig, body)
    assert (row["state"], row["problems"]) == ("pending", [])
    assert inbox.receive(ctx, link(), sig, body)["id"] == first  # twice: still one
    assert queued(ctx, first) == 1
    row = inbox.accept(ctx, link(), first, actor="reviewer")
    assert (row["state"], row["decided_by"]) == ("accepted", "reviewer")
    assert served(base) == {k: n for k, n, *_ in V1}  # the layer came into being
    with pytest.raises(SupplyRefused, match="not pending"):
        inbox.accept(ctx, link(), first, actor="reviewer")

    sig2, body2, second = signed(child, "sup_child_v2", "sup_child_v1", 1, 2)
    assert inbox.receive(ctx, link(), sig2, body2)["manifest"]["counts"] == \
        {"insert": 1, "update": 1, "delete": 1}
    row = inbox.accept(ctx, link(), second, actor="reviewer")
    assert row["applied_version"] == row_version(ctx)
    assert served(base) == {k: n for k, n, *_ in V2}  # exactly the three changes

    # based on version 1 again: a conflict, nothing applied
    sig3, body3, third = signed(child, "sup_child_out", "sup_child_v1", 1, 3)
    row = inbox.receive(ctx, link(), sig3, body3)
    assert row["state"] == "conflict" and row["problems"][0]["conflict"]
    with pytest.raises(SupplyRefused):
        inbox.accept(ctx, link(), third, actor="reviewer")
    assert inbox.reject(ctx, third, actor="reviewer", reason="old base")["state"] == "rejected"
    assert served(base) == {k: n for k, n, *_ in V2}

    rollback(ctx, LAYER)  # the parent's own undo: the previous version served again
    assert served(base) == {k: n for k, n, *_ in V1}
    # the child's next change-set from its version 2 would apply over the rolled-back data: a
    # conflict, answered with the child's version the layer serves now (re-sync: version 1)
    sig4, body4, fourth = signed(child, "sup_child_v3", "sup_child_v2", 2, 4)
    row = inbox.receive(ctx, link(), sig4, body4)
    assert (row["state"], row["accepted_version"]) == ("conflict", 1)
    with pytest.raises(SupplyRefused):
        inbox.accept(ctx, link(), fourth, actor="reviewer")
    assert served(base) == {k: n for k, n, *_ in V1}
    # the child sends the change from version 1 instead: it applies, and supersedes the other
    sig5, body5, fifth = signed(child, "sup_child_v3", "sup_child_v1", 1, 4)
    assert inbox.receive(ctx, link(), sig5, body5)["state"] == "pending"
    assert inbox.show(ctx, fourth)["state"] == "rejected"
    assert inbox.accept(ctx, link(), fifth, actor="reviewer")["state"] == "accepted"
    assert served(base) == {k: n for k, n, *_ in V3}


def row_version(ctx: Any) -> int:
    return next(v["version"] for v in versions(ctx, LAYER) if v["current"])


def test_refusals_change_nothing(ctx, urls, child):
    before = {r["id"]: r["state"] for r in inbox.listing(ctx)}
    sig, body, _ = signed(child, "sup_child_v1", None, None, 1)
    other = cs_mod.new_key()
    forged = Link(**{**link().__dict__, "public_jwk": cs_mod.public_jwk(other)})
    with pytest.raises(ChangeSetError, match="signature"):
        inbox.receive(ctx, forged, sig, body)
    with pytest.raises(ChangeSetError, match="for parent_layer"):
        inbox.receive(ctx, Link(**{**link().__dict__, "parent_layer": "sup_other"}), sig, body)
    with pytest.raises(SupplyRefused, match="limit"):
        inbox.receive(ctx, Link(**{**link().__dict__, "max_bytes": 10}), sig, body)
    assert {r["id"]: r["state"] for r in inbox.listing(ctx)} == before


def test_features_outside_the_childs_area_are_named_and_not_applied(ctx, child):
    sig, body, _ = signed(child, "sup_child_out", None, None, 7)
    lk = Link(**{**link().__dict__, "child": "xihu_out", "public_jwk": cs_mod.public_jwk(KEY)})
    with pytest.raises(ChangeSetError, match="for child"):  # signed as xihu: not xihu_out's
        inbox.receive(ctx, lk, sig, body)
    with child, child.cursor() as cur:
        cs = cs_mod.build(cur, new_table="sup_child_out", old_table=None, key="id",
                          fields=["name"], child="xihu_out", parent="hangzhou", layer="poi",
                          parent_layer=LAYER, base_version=None, new_version=7)
    row = inbox.receive(ctx, lk, cs_mod.sign(cs.manifest, KEY, "xihu_out"), cs.body)
    assert row["state"] == "pending"
    assert [(p["rule"], p["features"]) for p in row["problems"]] == [("area", ["poi-9"])]
    with pytest.raises(SupplyRefused) as refused:
        inbox.accept(ctx, lk, cs.id, actor="reviewer")
    assert [p.rule for p in refused.value.problems] == ["area"]
    assert inbox.show(ctx, cs.id)["state"] == "pending"
