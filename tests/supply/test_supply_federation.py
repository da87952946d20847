"""Data supply between tiers over HTTP (issue 18), on a federation of its own with the demo's
supply links: Hangzhou's buildings, roads and POIs make Zhejiang's layers (auto-accepted), and
Zhejiang's service halls the national `poi`. A test link `sup_halls` (Hangzhou → Zhejiang,
reviewed by Zhejiang's admin; Zhejiang → national, auto-accepted) carries published versions:
exactly the changes arrive up the chain, the same change-set twice applies once, a feature
outside Hangzhou's area is refused by name, a change-set on an old base is a conflict, a forged
or unsigned one is refused, and only a node's own children may send."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
import yaml
from publish_helpers import ctx_of, items, sign_in_users
from sso_client import bearer
from waiting import wait_for

from layers.publish import publish, rollback
from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from services.db import Database
from services.sso import registration
from services.supply import changeset as cs_mod
from services.supply import outbox

PASSWORD = "supply-test-pw-1"
LAYER = "sup_halls"
KILLED = "sup_kill"  # the layer of the kill -9 and cut-link test
MEDIA = "application/vnd.geoplat.changeset+ndjson"
V1 = {"h1": ("上城区政务服务中心测试", 120.17, 30.24), "h2": ("西湖区政务服务中心测试", 120.13, 30.26),
      "h3": ("拱墅区政务服务中心测试", 120.14, 30.32)}
V2 = {"h1": V1["h1"], "h2": ("西湖区政务服务中心测试(新址)", 120.12, 30.27),
      "h4": ("滨江区政务服务中心测试", 120.21, 30.21)}  # h2 changed, h3 removed, h4 added
OUTSIDE = {**V2, "h9": ("宁波测试点", 121.55, 29.87)}  # in Ningbo, not Hangzhou


def geojson(path: Path, rows: dict[str, tuple[str, float, float]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": k, "name": n},
         "geometry": {"type": "Point", "coordinates": [x, y]}}
        for k, (n, x, y) in rows.items()]}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[dict[str, Any]]:
    base: Path = tmp_path_factory.mktemp("supply-fed")
    path = make_federation(base, pg_cluster, supply=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for node in raw["nodes"]:
        node["workers"] = 1  # (the suite's cluster serves several federations at once)
        if node["id"] == "hangzhou":
            node["supply"].append({"layer": LAYER, "key": "code", "fields": ["name"],
                                   "title": "Supplied halls (test)", "max_delete_share": 0.5})
            node["supply"].append({"layer": KILLED, "key": "code", "fields": ["name"],
                                   "max_delete_share": 0.5})
            node["reference"].append({"source": "national", "layer": "sup_ref", "key": "code",
                                      "fields": ["name"]})
        if node["id"] == "zhejiang":
            node["supply"].append({"layer": LAYER, "key": "fid", "fields": ["name"],
                                   "auto_accept": True, "max_delete_share": 0.5})
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    settings = settings_mod.load(path)
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    groups = {p.node.id: p.pgid for p in procs}
    try:
        main_db = Database(federation_mod.node_dsn(settings, settings.node("national")),
                           maxconn=2)
        urls = {n.id: n.base_url for n in settings.nodes}
        users = sign_in_users(main_db, urls["national"], "supply",
                              {"zjadmin": ["zhejiang:admin"], "hzadmin": ["hangzhou:admin"]},
                              PASSWORD)
        yield {"settings": settings, "urls": urls, "users": users, "main_db": main_db,
               "groups": groups, "config": path,
               "hz": ctx_of(settings, "hangzhou"), "zj": ctx_of(settings, "zhejiang"),
               "nat": ctx_of(settings, "national"),
               "dsn": {n.id: federation_mod.node_dsn(settings, n) for n in settings.nodes}}
    finally:
        for pgid in groups.values():  # (the kill -9 test replaces Zhejiang's)
            supervisor.stop_group(pgid)


def names(base: str, layer: str = LAYER) -> dict[str, str]:
    return {f["properties"]["src_id"]: f["properties"]["name"] for f in items(base, layer)}


def count(base: str, layer: str) -> int:
    r = requests.get(f"{base}/ogc/collections/{layer}/items?f=json&limit=1", timeout=30)
    return int(r.json()["numberMatched"]) if r.status_code == 200 else -1


def queue(fed: dict, state: str | None = None) -> list[dict[str, Any]]:
    r = requests.get(fed["urls"]["zhejiang"] + "/api/supply/changesets",
                     params={"state": state} if state else {},
                     headers=fed["users"]["zjadmin"], timeout=30)
    assert r.status_code == 200, r.text
    return [c for c in r.json()["changesets"] if c["layer"] == LAYER]


def sent(fed: dict, version: int, layer: str = LAYER) -> dict[str, Any]:
    """The newest change-set of `layer` version `version` in Hangzhou's outbox."""
    return next(r for r in reversed(outbox.outbox_listing(fed["hz"]))
                if r["layer"] == layer and r["new_version"] == version)


def hz_token(fed: dict) -> dict[str, str]:
    secret = registration.node_client_secret(fed["main_db"], "hangzhou")
    r = requests.post(fed["urls"]["national"] + "/sso/token", auth=("node-hangzhou", secret),
                      data={"grant_type": "client_credentials", "scope": "geoplat"}, timeout=30)
    return bearer(r.json()["access_token"])


def post(fed: dict, signature: str, body: bytes, headers: dict[str, str] | None = None
         ) -> requests.Response:
    return requests.post(fed["urls"]["zhejiang"] + "/api/supply/changesets", data=body,
                         headers={"Content-Type": MEDIA, "Geoplat-Signature": signature,
                                  **(headers if headers is not None else hz_token(fed))},
                         timeout=60)


def decide(fed: dict, cid: str, action: str, **body: Any) -> requests.Response:
    return requests.post(f"{fed['urls']['zhejiang']}/api/supply/changesets/{cid}/{action}",
                         json=body, headers=fed["users"]["zjadmin"], timeout=60)


def arrives(fed: dict, node: str, layer: str, n: int, timeout: float) -> None:
    """Until `node` serves `n` features of `layer`; else fail with the supply queue's state."""
    try:
        wait_for(lambda: count(fed["urls"][node], layer) == n, timeout,
                 f"{n} features of {node}'s {layer} from supply")
    except AssertionError as exc:
        conn = psycopg2.connect(fed["dsn"][node])
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id, child, layer, state, problems::text FROM supply.changesets")
            queued = cur.fetchall()
        conn.close()
        raise AssertionError(f"{exc}; {node}'s queue: {queued}; Hangzhou's outbox: "
                             f"{outbox.outbox_listing(fed['hz'])}") from None


def test_the_demo_supply_makes_zhejiangs_layers_and_the_national_halls(fed) -> None:
    zj, nat = fed["urls"]["zhejiang"], fed["urls"]["national"]
    arrives(fed, "zhejiang", "poi", 395, 180)
    arrives(fed, "zhejiang", "roads", 231, 120)
    conn = psycopg2.connect(fed["dsn"]["hangzhou"])
    with conn, conn.cursor() as cur:  # the buildings of at least 100 m² (the generalisation)
        cur.execute("SELECT count(*) FROM buildings WHERE ST_Area(geom::geography) >= 100")
        big = cur.fetchone()[0]
    conn.close()
    arrives(fed, "zhejiang", "buildings", big, 120)
    # national `poi`: Zhejiang's service halls only (the link keeps category service_hall)
    arrives(fed, "national", "poi", 25, 180)
    halls = items(nat, "poi")
    assert {f["properties"]["category"] for f in halls} == {"service_hall"}
    assert all(f["properties"]["src_node"] == "zhejiang" for f in halls)

    def status() -> dict[str, Any]:
        r = requests.get(zj + "/api/supply", headers=fed["users"]["zjadmin"], timeout=30)
        return r.json()

    # Zhejiang hears of the national acceptance when the national node answers its POST
    st = wait_for(lambda: (s := status())["sends"][0]["accepted_version"] == 1 and s, 60,
                  "Zhejiang's status shows its poi accepted at the national node")
    receives = {r["parent_layer"]: r for r in st["receives"]}
    assert receives["poi"]["accepted_version"] == 1 and receives["poi"]["auto_accept"]
    assert receives["poi"]["changesets"] == {"accepted": 1}
    # the registry knows the new layers: Zhejiang's catalogue lists its supplied POIs
    records = requests.get(zj + "/ogc/collections/catalogue/items",
                           params={"f": "json", "limit": 500}, timeout=30).json()["features"]
    assert any("supplied by the cities" in str(f["properties"].get("title")) for f in records)
    # a supplied copy feeds no place names (Hangzhou answers for its POIs: not found twice)
    conn = psycopg2.connect(fed["dsn"]["zhejiang"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT places FROM geoplat_published WHERE name = 'poi'")
        assert cur.fetchone()[0] is False
    conn.close()


def test_published_changes_go_up_the_chain_reviewed_once(fed, tmp_path) -> None:
    zj, nat = fed["urls"]["zhejiang"], fed["urls"]["national"]
    publish(fed["hz"], geojson(tmp_path / "v1.geojson", V1), LAYER, actor="test")
    first = wait_for(lambda: queue(fed, "pending"), 60, "v1 waiting for review at Zhejiang")[0]
    assert first["counts"] == {"insert": 3, "update": 0, "delete": 0}
    assert count(zj, LAYER) == -1  # nothing applied before the review
    r = decide(fed, first["id"], "accept")
    assert r.status_code == 200 and r.json()["state"] == "accepted", r.text
    assert names(zj) == {k: n for k, (n, *_) in V1.items()}
    wait_for(lambda: sent(fed, 1)["state"] == "accepted", 60, "Hangzhou learns of it")

    publish(fed["hz"], geojson(tmp_path / "v2.geojson", V2), LAYER, actor="test")
    second = wait_for(lambda: queue(fed, "pending"), 60, "v2 waiting for review")[0]
    assert second["counts"] == {"insert": 1, "update": 1, "delete": 1}
    # the same change-set sent again: the same one, applied once
    row = next(r for r in outbox.outbox_listing(fed["hz"]) if r["id"] == second["id"])
    conn = psycopg2.connect(fed["dsn"]["hangzhou"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT signature, body FROM supply.outbox WHERE id = %s", (row["id"],))
        signature, body = cur.fetchone()
    conn.close()
    again = post(fed, signature, bytes(body))
    assert again.status_code == 200 and again.json()["id"] == second["id"], again.text
    assert decide(fed, second["id"], "accept").json()["state"] == "accepted"
    assert decide(fed, second["id"], "accept").status_code == 409  # not pending any more
    assert names(zj) == {k: n for k, (n, *_) in V2.items()}  # exactly the three changes
    assert post(fed, signature, bytes(body)).json()["state"] == "accepted"  # still once
    # Zhejiang's change-set to the national node (auto-accepted there), keyed by its fid
    wait_for(lambda: sorted(f["properties"]["name"] for f in items(nat, LAYER))
             == sorted(n for n, *_ in V2.values()), 120, "the national layer follows")

    rollback(fed["zj"], LAYER)  # Zhejiang's undo: version 1 served again
    assert names(zj) == {k: n for k, (n, *_) in V1.items()}
    # (Hangzhou's next change-set, built from its version 2, is a conflict there: Zhejiang now
    # holds Hangzhou's version 1, and Hangzhou sends the change from version 1 instead)


def test_after_a_rollback_the_child_resyncs_and_outside_features_are_named(fed, tmp_path):
    publish(fed["hz"], geojson(tmp_path / "out.geojson", OUTSIDE), LAYER, actor="test")
    cs = wait_for(lambda: [c for c in queue(fed, "pending") if c["new_version"] == 3], 60,
                  "v3, rebuilt from version 1, at Zhejiang")[0]
    assert cs["base_version"] == 1  # re-synced: from what Zhejiang serves after its rollback
    superseded = [r for r in outbox.outbox_listing(fed["hz"])
                  if r["layer"] == LAYER and r["new_version"] == 3 and r["base_version"] == 2]
    assert [r["state"] for r in superseded] == ["superseded"]
    assert cs["counts"] == {"insert": 2, "update": 1, "delete": 1}  # h4, h9; h2; h3
    r = requests.get(f"{fed['urls']['zhejiang']}/api/supply/changesets/{cs['id']}",
                     headers=fed["users"]["zjadmin"], timeout=30)
    problems = r.json()["problems"]
    assert any(p["rule"] == "area" and "h9" in json.dumps(p["features"]) for p in problems), \
        problems
    r = decide(fed, cs["id"], "accept")
    assert r.status_code == 409, r.text
    assert names(fed["urls"]["zhejiang"]) == {k: n for k, (n, *_) in V1.items()}
    r = decide(fed, cs["id"], "reject", reason="outside Hangzhou")
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    wait_for(lambda: sent(fed, 3)["state"] == "rejected", 60, "Hangzhou learns of it")


def hz_key(fed: dict) -> Any:
    return cs_mod.load_private((Path(fed["hz"].node_dir) / "supply-key.pem").read_bytes())


def point_changesets(fed: dict, code: str, name: str, x: float, y: float,
                     bases: list[int | None]) -> list[Any]:
    """Unsigned change-sets of Hangzhou's sup_halls inserting one point, one per base version
    (new versions 90, 91, ...)."""
    conn = psycopg2.connect(fed["dsn"]["hangzhou"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t_points (code text, name text, "
                        "geom geometry(Point, 4490))")
            cur.execute("INSERT INTO t_points VALUES (%s, %s, "
                        "ST_SetSRID(ST_MakePoint(%s, %s), 4490))", (code, name, x, y))
            return [cs_mod.build(cur, new_table="t_points", old_table=None, key="code",
                                 fields=["name"], child="hangzhou", parent="zhejiang",
                                 layer=LAYER, parent_layer=LAYER, base_version=base,
                                 new_version=90 + i) for i, base in enumerate(bases)]
    finally:
        conn.close()


def test_outside_area_named_and_old_base_a_conflict(fed) -> None:
    """Change-sets made here with Hangzhou's key: one with a feature outside its area names
    it; one based on a version Zhejiang never accepted from it is a conflict."""
    key = hz_key(fed)
    accepted = wait_for(lambda: _accepted(fed), 30, "an accepted version")
    cs, old = point_changesets(fed, "far", "舟山测试", 122.2, 30.0,
                               [accepted, accepted - 1 or None])
    r = post(fed, cs_mod.sign(cs.manifest, key, "hangzhou"), cs.body)
    assert r.status_code == 201, r.text
    problems = r.json()["problems"]
    assert any(p["rule"] == "area" and "far" in json.dumps(p["features"]) for p in problems), \
        problems
    r = post(fed, cs_mod.sign(old.manifest, key, "hangzhou"), old.body)
    assert r.status_code == 201 and r.json()["state"] == "conflict", r.text


def _accepted(fed: dict) -> int | None:
    conn = psycopg2.connect(fed["dsn"]["zhejiang"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM supply.accepted WHERE child = 'hangzhou' AND "
                        "parent_layer = %s", (LAYER,))
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def test_forged_unsigned_corrupt_or_foreign_change_sets_are_refused(fed) -> None:
    other = cs_mod.new_key()
    (cs,) = point_changesets(fed, "x1", "测试", 120.15, 30.25, [None])
    before = len(queue(fed))
    forged = post(fed, cs_mod.sign(cs.manifest, other, "hangzhou"), cs.body)
    assert forged.status_code == 400 and "signature" in forged.json()["detail"], forged.text
    assert post(fed, "", cs.body).status_code == 400  # unsigned
    key = hz_key(fed)
    signature = cs_mod.sign(cs.manifest, key, "hangzhou")
    corrupt = gzip.compress(b'["insert","x2",{"name":"x"},"00"]\n')
    assert post(fed, signature, corrupt).status_code == 400
    # a user's token (even Zhejiang's admin) and no token: not a child node
    assert post(fed, signature, cs.body, fed["users"]["zjadmin"]).status_code == 403
    assert post(fed, signature, cs.body, {}).status_code == 401
    # a layer Zhejiang takes nothing of
    manifest = {**cs.manifest, "layer": "parcels", "parent_layer": "parcels"}
    manifest["id"] = cs_mod.manifest_id(manifest)
    r = post(fed, cs_mod.sign(manifest, key, "hangzhou"), cs.body)
    assert r.status_code == 403 and "parcels" in r.json()["detail"]
    assert len(queue(fed)) == before  # none of them queued
    # the review is for Zhejiang's admins only
    r = requests.get(fed["urls"]["zhejiang"] + "/api/supply/changesets",
                     headers=fed["users"]["hzadmin"], timeout=30)
    assert r.status_code == 403
    assert requests.get(fed["urls"]["zhejiang"] + "/api/supply", timeout=30).status_code == 401


def test_reference_layers_are_pushed_down_and_kept_current(fed, tmp_path) -> None:
    """Hangzhou holds the national provinces from the main node's push (not from its parent),
    and a new version at the main node arrives as a change-set."""
    hz = fed["urls"]["hangzhou"]
    arrives(fed, "hangzhou", "provinces", 34, 120)
    provinces = items(hz, "provinces")
    assert {f["properties"]["src_node"] for f in provinces} == {"national"}
    assert "浙江省" in {f["properties"]["name"] for f in provinces}
    publish(fed["nat"], geojson(tmp_path / "r1.geojson", dict(list(V1.items())[:2])), "sup_ref",
            actor="test")
    wait_for(lambda: names(hz, "sup_ref") == {k: n for k, (n, *_) in list(V1.items())[:2]}, 60,
             "version 1 of the national sup_ref at Hangzhou")
    changed = {"h1": ("上城区政务服务中心(改)", 120.17, 30.24), "h2": V1["h2"]}
    publish(fed["nat"], geojson(tmp_path / "r2.geojson", changed), "sup_ref", actor="test")
    wait_for(lambda: names(hz, "sup_ref") == {k: n for k, (n, *_) in changed.items()}, 60,
             "version 2 of the national sup_ref at Hangzhou")
    conn = psycopg2.connect(fed["dsn"]["hangzhou"])
    with conn, conn.cursor() as cur:
        cur.execute("SELECT manifest->'counts' FROM supply.changesets WHERE child = 'national' "
                    "AND layer = 'sup_ref' ORDER BY received_at")
        counts = [r[0] for r in cur.fetchall()]
    conn.close()
    assert counts == [{"insert": 2, "update": 0, "delete": 0},
                      {"insert": 0, "update": 1, "delete": 0}]


def _zhejiang_down(fed: dict, sig: int) -> None:
    pgid = fed["groups"].pop("zhejiang")
    if sig == signal.SIGKILL:
        os.killpg(pgid, signal.SIGKILL)
    supervisor.stop_group(pgid)  # (after a kill: reaps the group's processes)
    def down() -> bool:
        try:
            requests.get(fed["urls"]["zhejiang"] + "/health", timeout=2)
        except requests.RequestException:
            return True
        return False
    wait_for(down, 30, "Zhejiang down")


def _zhejiang_up(fed: dict) -> None:
    settings = fed["settings"]
    try:
        procs, _ = supervisor.up(settings, only=["zhejiang"], echo=lambda *a: None)
    except RuntimeError as exc:
        log = settings.resolve(settings.var_dir) / "run" / "zhejiang.log"
        raise AssertionError(f"{exc}: {log.read_text(errors='replace')[-3000:]}") from None
    fed["groups"]["zhejiang"] = procs[0].pgid


def _applied(fed: dict, layer: str) -> bool:
    conn = psycopg2.connect(fed["dsn"]["zhejiang"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('geoplat_published') IS NOT NULL")
            if not cur.fetchone()[0]:
                return False
            cur.execute("SELECT 1 FROM geoplat_published WHERE name = %s", (layer,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def test_kill_9_during_apply_and_a_cut_link_lose_nothing_and_double_nothing(fed, tmp_path):
    zj = fed["urls"]["zhejiang"]
    publish(fed["hz"], geojson(tmp_path / "k1.geojson", V1), KILLED, actor="test")
    cs = wait_for(lambda: [c for c in _all(fed) if c["layer"] == KILLED
                           and c["state"] == "pending"], 60, "v1 of sup_kill pending")[0]
    # hold the change-set's row: the acceptance copies the layer, then waits for the row
    hold = psycopg2.connect(fed["dsn"]["zhejiang"])
    cur = hold.cursor()
    cur.execute("SELECT 1 FROM supply.changesets WHERE id = %s FOR UPDATE", (cs["id"],))
    accepting = threading.Thread(target=lambda: _quietly(decide, fed, cs["id"], "accept"))
    accepting.start()
    probe = psycopg2.connect(fed["dsn"]["zhejiang"])
    probe.autocommit = True

    def blocked() -> bool:
        with probe.cursor() as c:
            c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                      "'geoplat-publish' AND wait_event_type = 'Lock'")
            return c.fetchone()[0] > 0
    wait_for(blocked, 30, "the acceptance waits inside its transaction")
    _zhejiang_down(fed, signal.SIGKILL)  # kill -9 of the node during the apply
    hold.rollback()
    hold.close()
    accepting.join(60)
    wait_for(lambda: not blocked(), 30, "the killed node's transaction ended")
    probe.close()
    assert not _applied(fed, KILLED)  # nothing half-applied
    _zhejiang_up(fed)
    assert [c["state"] for c in _all(fed) if c["id"] == cs["id"]] == ["pending"]
    r = decide(fed, cs["id"], "accept")
    assert r.status_code == 200 and r.json()["state"] == "accepted", r.text
    assert names(zj, KILLED) == {k: n for k, (n, *_) in V1.items()}
    wait_for(lambda: sent(fed, 1, KILLED)["state"] == "accepted", 60, "Hangzhou learns of it")

    # the link cut while sending: queued with the error, sent when the parent is back, once
    _zhejiang_down(fed, signal.SIGTERM)
    publish(fed["hz"], geojson(tmp_path / "k2.geojson", V2), KILLED, actor="test")
    row = wait_for(lambda: (r := sent(fed, 2, KILLED))["attempts"] >= 1 and r, 60,
                   "Hangzhou tried to send v2")
    assert row["state"] == "queued" and "not sent" in row["last_error"]
    _zhejiang_up(fed)
    cs2 = wait_for(lambda: [c for c in _all(fed) if c["layer"] == KILLED
                            and c["new_version"] == 2], 60, "v2 at Zhejiang")
    assert len(cs2) == 1 and cs2[0]["state"] == "pending"
    assert decide(fed, cs2[0]["id"], "accept").json()["state"] == "accepted"
    assert names(zj, KILLED) == {k: n for k, (n, *_) in V2.items()}


def _all(fed: dict) -> list[dict[str, Any]]:
    r = requests.get(fed["urls"]["zhejiang"] + "/api/supply/changesets",
                     headers=fed["users"]["zjadmin"], timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["changesets"])


def _quietly(func: Any, *args: Any) -> None:
    try:
        func(*args)
    except requests.RequestException:
        pass  # the node was killed under the request


def test_the_status_page_shows_supply_and_its_admin_decides(fed, browser) -> None:
    """Zhejiang's /status for its admin: the supply links with their versions, the change-sets
    waiting (from the tests above: one pending with an area problem, one conflict); a
    rejection from the page needs a reason and is the API's decision. Others see no panel."""
    url = fed["urls"]["zhejiang"] + "/status"
    token = fed["users"]["zjadmin"]["Authorization"].split(" ", 1)[1]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "geoplat_at_zhejiang", "value": token, "url": url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=60_000)
    page.wait_for_selector("#supply-body tr[data-link='takes:poi:hangzhou']", timeout=30_000)
    row = page.inner_text("#supply-body tr[data-link='takes:poi:hangzhou']")
    assert "v1" in row, row
    assert page.is_visible("#supply-body tr[data-link='sends:poi:national']")
    waiting = {c["id"]: c["state"] for c in _all(fed) if c["state"] in ("pending", "conflict")}
    assert waiting, "the tests above leave change-sets waiting"
    page.wait_for_function("n => document.querySelectorAll('#waiting-body tr').length === n",
                           arg=len(waiting), timeout=30_000)
    cid = next(i for i, s in waiting.items() if s == "pending")
    tr = f"#waiting-body tr[data-id='{cid}']"
    page.click(f"{tr} button.reject")  # no reason: refused on the page, nothing sent
    assert _state(fed, cid) == "pending"
    page.fill(f"{tr} input.reason", "outside Hangzhou (status page)")
    page.click(f"{tr} button.reject")
    wait_for(lambda: _state(fed, cid) == "rejected", 30, "rejected from the page")
    page.wait_for_selector(tr, state="detached", timeout=30_000)
    assert not errors, errors
    context.close()
    anonymous = browser.new_context()
    other = anonymous.new_page()
    other.goto(url)
    other.wait_for_selector("body[data-ready='true']", timeout=60_000)
    assert other.is_hidden("#supply-section")
    anonymous.close()


def _state(fed: dict, cid: str) -> str:
    return next(c["state"] for c in _all(fed) if c["id"] == cid)


def geoplat(fed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nodes.cli", "--config", str(fed["config"]),
                           "supply", *args], check=False, capture_output=True, text=True,
                          timeout=300)


def test_the_supply_commands(fed) -> None:
    """`geoplat supply status|send|list|show|reject|accept` on the nodes' host."""
    out = geoplat(fed, "status", "--node", "zhejiang", "--json")
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert {r["parent_layer"]: r["accepted_version"] for r in st["receives"]}["poi"] == 1
    text = geoplat(fed, "status", "--node", "hangzhou").stdout
    assert "sends poi -> zhejiang.poi: accepted v1" in text, text
    assert "takes national.provinces -> provinces: accepted v1" in text, text
    sent_now = geoplat(fed, "send", "--node", "hangzhou")
    assert sent_now.returncode == 0, sent_now.stdout + sent_now.stderr
    listed = json.loads(geoplat(fed, "list", "--node", "zhejiang", "--state", "conflict",
                                "--json").stdout)
    assert listed and all(r["state"] == "conflict" for r in listed)
    cid = listed[0]["id"]
    shown = geoplat(fed, "show", cid, "--node", "zhejiang")
    assert shown.returncode == 0 and "conflict" in shown.stdout, shown.stdout + shown.stderr
    rejected = geoplat(fed, "reject", cid, "--node", "zhejiang", "--reason", "old base (cli)")
    assert rejected.returncode == 0 and "rejected" in rejected.stdout, rejected.stderr
    assert _state(fed, cid) == "rejected"
    again = geoplat(fed, "accept", cid, "--node", "zhejiang")
    assert again.returncode == 1 and "not pending" in again.stdout, again.stdout + again.stderr
    nothing = geoplat(fed, "send", "--node", "national", "--layer", "nowhere")
    assert nothing.returncode == 0 and "nothing to send" in nothing.stdout


def test_generalisation_fits_the_parents_scale(fed) -> None:
    """simplify_m (metres), min_area_m2 and keep: what a change-set is built from."""
    from geoplat_settings import Generalise, SupplyLink, SupplyOut

    out = SupplyOut(parent="zhejiang", parent_url="http://unused", link=SupplyLink(
        layer="t", key="code", generalise=Generalise(simplify_m=200, min_area_m2=5000,
                                                     keep={"kind": ["main"]})))
    conn = psycopg2.connect(fed["dsn"]["hangzhou"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t_gen (code text, kind text, geom geometry)")
            # a zigzag line: 101 vertices 10 m off a straight line; a big and a small square
            cur.execute("""INSERT INTO t_gen VALUES
                ('l1', 'main', ST_SetSRID(ST_MakeLine(ARRAY(SELECT ST_MakePoint(
                    120 + i * 0.001, 30 + (i % 2) * 0.00009) FROM generate_series(0, 100) i)),
                    4490)),
                ('l2', 'minor', ST_SetSRID(ST_MakeLine(ST_MakePoint(120, 30),
                    ST_MakePoint(120.1, 30)), 4490)),
                ('p1', 'main', ST_SetSRID(ST_MakeEnvelope(120, 30, 120.001, 30.001), 4490)),
                ('p2', 'main', ST_SetSRID(ST_MakeEnvelope(120, 30, 120.0001, 30.0001), 4490))""")
            name = outbox._generalised(cur, "t_gen", out, ["kind"], "t_gen_out")
            cur.execute(f"SELECT code, ST_NPoints(geom) FROM {name} ORDER BY code")
            kept = dict(cur.fetchall())
    finally:
        conn.close()
    # l2 is not a kept kind; p2 (~100 m²) is under 5,000 m²; the zigzag is a straight line
    assert kept == {"l1": 2, "p1": 5}, kept
