"""Service registry (issue 5): catalogue (OGC API Records), review, SSRF guard, federation pushes.

One federation of its own (r_national > r_zhejiang > r_hangzhou, health every 1.5 s) started
once for the module; a real HTTP server on loopback plays the external services.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from owslib.ogcapi.records import Records
from registry_support import HEALTH_INTERVAL, Fed, ServiceServer, running_federation
from waiting import wait_for

from services.access import audit

CAT = "catalogue"


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[Fed]:
    base: Path = tmp_path_factory.mktemp("registry")
    with running_federation(make_federation, base, pg_cluster) as f:
        yield f


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    srv = ServiceServer()
    yield srv
    srv.close()


def items(url: str, headers: dict | None = None, **params) -> dict:
    r = httpx.get(f"{url}/ogc/collections/{CAT}/items", params={"f": "json", **params},
                  headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def ids_at(url: str, headers: dict | None = None, **params) -> set[str]:
    out, offset = set(), 0
    while True:
        page = items(url, headers, limit=100, offset=offset, **params)
        out |= {f["id"] for f in page["features"]}
        offset += 100
        if offset >= page["numberMatched"]:
            return out


def settled(fed: Fed) -> None:
    """Wait until the main node holds every approved record of the subtree."""
    def done() -> bool:
        want = {r["id"] for r in fed.dbs["r_hangzhou"].all(
            "SELECT id FROM registry.services WHERE status = 'approved' AND version > 0")}
        have = {r["id"] for r in fed.dbs["r_national"].all(
            "SELECT id FROM registry.services WHERE status = 'approved'")}
        return want <= have
    wait_for(done, 30, "records did not reach the main node")


# --- catalogue ------------------------------------------------------------------------------

def test_owslib_reads_every_catalogue_and_subtrees_nest(fed: Fed) -> None:
    settled(fed)
    seen = {}
    for nid, url in fed.urls.items():
        rec = Records(url + "/ogc")
        assert CAT in [c["id"] for c in rec.collections()["collections"]]
        page = rec.collection_items(CAT, limit=500)
        seen[nid] = {f["id"] for f in page["features"]}
        assert page["numberMatched"] == len(seen[nid])
        assert all(f["properties"]["origin_path"] for f in page["features"])
    hz, zj, nat = seen["r_hangzhou"], seen["r_zhejiang"], seen["r_national"]
    assert hz < zj < nat
    assert {i.split(":")[0] for i in hz} == {"r_hangzhou"}
    assert {i.split(":")[0] for i in zj} == {"r_hangzhou", "r_zhejiang"}
    assert "r_national:wmts:vec" in nat and "r_hangzhou:features:poi" in nat
    poi = Records(fed.main + "/ogc").collection_item(CAT, "r_hangzhou:features:poi")
    assert poi["properties"]["origin_path"] == "r_national/r_zhejiang/r_hangzhou"
    assert poi["properties"]["type"] == "OGCAPI-Features"
    assert poi["links"][0]["href"] == fed.urls["r_hangzhou"] + "/ogc/collections/poi"
    assert poi["properties"]["health"] in ("up", "degraded")


def test_q_bbox_type_filters(fed: Fed) -> None:
    settled(fed)
    rec = Records(fed.main + "/ogc")
    got = rec.collection_items(CAT, q="政务服务", limit=50)
    assert {f["id"] for f in got["features"]} == {"r_hangzhou:features:poi",
                                                  "r_hangzhou:tiles:poi"}
    assert rec.collection_items(CAT, q="no-such-thing-xyz")["numberMatched"] == 0
    wmts = items(fed.main, type="WMTS", limit=100)
    assert wmts["numberMatched"] == 18  # 6 e-map layers x 3 nodes
    assert {f["properties"]["type"] for f in wmts["features"]} == {"WMTS"}
    # a box in Hangzhou city: the Hangzhou node's services and the wider ones covering it
    near = ids_at(fed.main, bbox="120.1,30.2,120.2,30.3", type="OGCAPI-Features")
    assert "r_hangzhou:features:poi" in near and "r_national:features:provinces" in near
    # a box in Tibet: nothing of Zhejiang or Hangzhou
    far = ids_at(fed.main, bbox="88,30,89,31")
    assert far and not any(i.startswith(("r_hangzhou", "r_zhejiang")) for i in far)
    everything = items(fed.main, limit=1)["numberMatched"]
    assert items(fed.main, limit=1, datetime="2000-01-01T00:00:00Z/..")["numberMatched"] == \
        everything
    assert items(fed.main, limit=1, datetime="../2000-01-01T00:00:00Z")["numberMatched"] == 0
    for params in ({"type": "nonsense"}, {"datetime": "yesterday"}, {"bbox": "1,2,3"}):
        bad = httpx.get(f"{fed.main}/ogc/collections/{CAT}/items",
                        params={"f": "json", **params}, timeout=30)
        assert bad.status_code == 400, params


def test_paging_is_stable_and_complete(fed: Fed) -> None:
    settled(fed)
    full = items(fed.main, limit=1000)
    ordered = [f["id"] for f in full["features"]]
    assert ordered == sorted(ordered)
    paged = []
    for offset in range(0, full["numberMatched"], 7):
        paged += [f["id"] for f in items(fed.main, limit=7, offset=offset)["features"]]
    assert paged == ordered


def test_restricted_records_only_for_those_allowed(fed: Fed) -> None:
    settled(fed)
    control_points = {"r_hangzhou:features:control_points", "r_hangzhou:tiles:control_points"}
    addresses = "r_hangzhou:features:addresses"
    for url in (fed.main, fed.urls["r_hangzhou"]):
        anon = items(url, limit=1000)
        anon_ids = {f["id"] for f in anon["features"]}
        assert not control_points & anon_ids and addresses not in anon_ids
        assert anon["numberMatched"] == len(anon_ids)
        user = ids_at(url, fed.headers["reg_user"])
        assert addresses in user and not control_points & user
        # another node's admin does not see Hangzhou's restricted records
        assert not control_points & ids_at(url, fed.headers["reg_other_admin"])
        for who in ("reg_admin", "reg_publisher", "reg_platform"):
            assert control_points <= ids_at(url, fed.headers[who]), who
        r = httpx.get(f"{url}/ogc/collections/{CAT}/items/r_hangzhou:features:control_points",
                      params={"f": "json"}, timeout=30)
        assert r.status_code == 404
    # a grant at the provider node shows the record there
    hz_db = fed.dbs["r_hangzhou"]
    sub = httpx.get(fed.urls["r_hangzhou"] + "/auth/me", headers=fed.headers["reg_user"],
                    timeout=30).json()["sub"]
    hz_db.execute("INSERT INTO auth.grants (user_sub, username, layer_id, status) "
                  "VALUES (%s, 'reg_user', 'control_points', 'approved')", (sub,))
    try:
        assert control_points <= wait_for(lambda: ids_at(fed.urls["r_hangzhou"],
                                                  fed.headers["reg_user"]) & control_points, 5)
    finally:
        hz_db.execute("UPDATE auth.grants SET status = 'revoked' WHERE user_sub = %s", (sub,))


# --- external services and review ------------------------------------------------------------

def register(fed: Fed, who: str, url: str, node: str = "r_hangzhou", **extra) -> httpx.Response:
    return httpx.post(fed.urls[node] + "/registry/api/services", json={"url": url, **extra},
                      headers=fed.headers.get(who, {}), timeout=60)


def count_external(fed: Fed) -> int:
    return fed.dbs["r_hangzhou"].one(
        "SELECT count(*) AS n FROM registry.services WHERE source = 'external'")["n"]


def test_register_review_and_roles(fed: Fed, server: ServiceServer) -> None:
    wms = server.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities"
    assert register(fed, "anonymous", wms).status_code == 401
    assert register(fed, "reg_user", wms).status_code == 403
    assert register(fed, "reg_other_admin", wms).status_code == 403
    r = register(fed, "reg_publisher", wms, keywords=["planning", "规划"])
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["status"] == "pending" and rec["type"] == "WMS"
    assert rec["title"].startswith("西湖区规划") and rec["bbox"] == [120.0, 30.1, 120.2, 30.3]
    rid = rec["id"]
    # pending: not served
    assert rid not in ids_at(fed.urls["r_hangzhou"], fed.headers["reg_platform"])
    url = f"{fed.urls['r_hangzhou']}/registry/api/services/{rid}"
    assert httpx.post(url + "/approve", timeout=30).status_code == 401
    for who in ("reg_publisher", "reg_user", "reg_other_admin"):
        assert httpx.post(url + "/approve", headers=fed.headers[who],
                          timeout=30).status_code == 403, who
    r = httpx.post(url + "/approve", headers=fed.headers["reg_admin"], timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert httpx.post(url + "/approve", headers=fed.headers["reg_admin"],
                      timeout=30).status_code == 409
    assert rid in ids_at(fed.urls["r_hangzhou"])
    got = Records(fed.urls["r_hangzhou"] + "/ogc").collection_items(CAT, q="规划")
    assert rid in {f["id"] for f in got["features"]}
    wait_for(lambda: rid in ids_at(fed.main), 20, "approved record not at the main node")
    r = httpx.post(url + "/retire", headers=fed.headers["reg_admin"], timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "retired"
    assert rid not in ids_at(fed.urls["r_hangzhou"])
    wait_for(lambda: rid not in ids_at(fed.main), 20, "retired record still upstream")
    # reject
    other = register(fed, "reg_admin", server.url + "/to-wms").json()
    assert other["status"] == "pending" and other["type"] == "WMS"
    r = httpx.post(f"{fed.urls['r_hangzhou']}/registry/api/services/{other['id']}/reject",
                   headers=fed.headers["reg_admin"], timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert other["id"] not in ids_at(fed.urls["r_hangzhou"], fed.headers["reg_platform"])
    events = {(e["event"], e["subject"], e["actor"]) for e in audit.query(
        fed.dbs["r_hangzhou"], limit=200) if e["event"].startswith("registry.")}
    assert {("registry.register", rid, "reg_publisher"), ("registry.approve", rid, "reg_admin"),
            ("registry.retire", rid, "reg_admin"),
            ("registry.reject", other["id"], "reg_admin")} <= events
    listing = httpx.get(fed.urls["r_hangzhou"] + "/registry/api/services",
                        params={"status": "rejected"}, headers=fed.headers["reg_admin"],
                        timeout=30).json()["services"]
    assert other["id"] in {s["id"] for s in listing}


def test_register_a_real_ogc_api_and_wmts(fed: Fed) -> None:
    r = register(fed, "reg_admin", fed.urls["r_national"] + "/ogc")
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "OGCAPI-Features"
    r = register(fed, "reg_admin", fed.urls["r_national"] + "/wmts/1.0.0/WMTSCapabilities.xml")
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "WMTS" and r.json()["bbox"]
    r = register(fed, "reg_admin", fed.urls["r_national"] + "/ogc/collections/catalogue")
    assert r.status_code == 201 and r.json()["type"] == "OGCAPI-Records"


@pytest.mark.parametrize("path,status", [
    ("/html", 400), ("/json", 400), ("/nothing", 422), ("/sleep", 504), ("/to-file", 400),
    ("/to-private", 400), ("/huge", 413), ("/entity", 400)])
def test_bad_service_urls_store_nothing(fed: Fed, server: ServiceServer, path: str,
                                       status: int) -> None:
    before = count_external(fed)
    t0 = time.monotonic()
    r = register(fed, "reg_admin", server.url + path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text and "/etc/passwd" not in r.text
    assert time.monotonic() - t0 < 15
    assert count_external(fed) == before


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://127.0.0.1/x", "http://10.0.0.5/wms", "http://169.254.169.254/",
    "http://192.168.1.1/", "http://[::1]:1/", "http://224.0.0.1/", "gopher://x", "not a url", ""])
def test_refused_urls(fed: Fed, url: str) -> None:
    before = count_external(fed)
    r = register(fed, "reg_admin", url)
    assert r.status_code == 400, r.text
    assert count_external(fed) == before


def test_cli_register_and_approve(fed: Fed, server: ServiceServer, capsys) -> None:
    from nodes.cli import main

    cfg = str(fed.settings.config_dir) + "/federation.yml"
    assert main(["--config", cfg, "registry", "register",
                 server.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities", "--node", "r_hangzhou",
                 "--title", "CLI 规划 WMS"]) == 0
    rid = capsys.readouterr().out.split()[0]
    assert rid.startswith("r_hangzhou:ext:")
    assert main(["--config", cfg, "registry", "approve", rid, "--node", "r_hangzhou",
                 "--actor", "operator"]) == 0
    assert main(["--config", cfg, "registry", "register", "http://10.0.0.9/", "--node",
                 "r_hangzhou"]) == 1
    wait_for(lambda: rid in ids_at(fed.main), 20)
    assert any(e["subject"] == rid and e["actor"] == "operator"
               for e in audit.query(fed.dbs["r_hangzhou"], event="registry.approve"))


# --- pushes between nodes --------------------------------------------------------------------

def push(fed: Fed, sender: str, to: str, body: object) -> httpx.Response:
    return httpx.post(fed.urls[to] + "/registry/api/push", json=body,
                      headers=fed.node_token(sender), timeout=30)


def a_record(origin: str = "r_national/r_zhejiang/r_hangzhou", rid: str = "r_hangzhou:fake:1",
             **over) -> dict:
    return {"id": rid, "origin_node": origin.rsplit("/", 1)[-1], "origin_path": origin,
            "type": "WMS", "url": "http://example.invalid/wms", "title": "forged",
            "description": "", "keywords": [], "bbox": [120, 30, 121, 31], "scale": None,
            "access": "public", "layer_id": None, "status": "approved", "version": 1, **over}


def zhejiang_state(fed: Fed) -> tuple[int, int]:
    db = fed.dbs["r_zhejiang"]
    return (db.one("SELECT count(*) AS n, max(version) AS v FROM registry.services")["n"],
            (db.one("SELECT last_batch FROM registry.inbox WHERE child = 'r_hangzhou'")
             or {"last_batch": 0})["last_batch"])


@pytest.mark.parametrize("body", [
    "not an object", {"sender": "r_hangzhou"}, {"sender": "r_hangzhou", "batch": "x", "changes": []},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": "nope"},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [{"op": "drop-table"}]},
    # (a good record beside a bad one is applied since issue 11: test_security_registry.py)
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "upsert", "record": a_record(bbox=[1, 2])}]},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "upsert", "record": a_record(version="1")}]},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "upsert", "record": a_record(status="pending")}]},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "upsert", "record": a_record(url="file:///etc/passwd")}]},
    # a record outside the sender's subtree
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "upsert", "record": a_record("r_national/r_zhejiang", "r_zhejiang:fake:1")}]},
    {"sender": "r_hangzhou", "batch": 10**15, "changes": [
        {"op": "health", "id": "r_hangzhou:node", "health": "exploded"}]},
])
def test_malformed_pushes_change_nothing(fed: Fed, body: object) -> None:
    before = zhejiang_state(fed)
    r = push(fed, "r_hangzhou", "r_zhejiang", body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert zhejiang_state(fed) == before


def test_pushes_only_from_direct_children_and_never_replayed(fed: Fed) -> None:
    good = {"sender": "r_hangzhou", "batch": 1, "changes": [{"op": "upsert",
                                                             "record": a_record()}]}
    # Hangzhou is not a direct child of the main node
    r = push(fed, "r_hangzhou", "r_national", good)
    assert r.status_code == 403
    # a node pretending to be another
    r = push(fed, "r_zhejiang", "r_zhejiang", good)
    assert r.status_code == 403
    assert httpx.post(fed.urls["r_zhejiang"] + "/registry/api/push", json=good,
                      timeout=30).status_code == 401
    assert httpx.post(fed.urls["r_zhejiang"] + "/registry/api/push", json=good,
                      headers=fed.headers["reg_platform"], timeout=30).status_code == 403
    # a replay: the batch number is not newer than the last one applied
    before = zhejiang_state(fed)
    assert before[1] >= 1
    r = push(fed, "r_hangzhou", "r_zhejiang", {**good, "batch": before[1]})
    assert r.status_code == 409
    assert zhejiang_state(fed) == before
    assert fed.dbs["r_zhejiang"].one(
        "SELECT 1 AS x FROM registry.services WHERE id = 'r_hangzhou:fake:1'") is None


def test_health_tree_and_status(fed: Fed, capsys) -> None:
    tree = httpx.get(fed.main + "/registry/api/health", timeout=30).json()["tree"]
    assert tree["id"] == "r_national"
    zj = tree["children"][0]
    assert zj["id"] == "r_zhejiang" and zj["children"][0]["id"] == "r_hangzhou"
    wait_for(lambda: httpx.get(fed.main + "/registry/api/health", timeout=30).json()[
        "tree"]["children"][0]["children"][0]["health"] == "up", 10)
    from nodes.cli import main

    main(["--config", str(fed.settings.config_dir) + "/federation.yml", "status"])
    out = capsys.readouterr().out
    assert "federation health" in out and "r_hangzhou" in out


def test_external_service_down_is_seen_upstream(fed: Fed, server: ServiceServer) -> None:
    rec = register(fed, "reg_admin", server.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities",
                   title="health probe target").json()
    httpx.post(f"{fed.urls['r_hangzhou']}/registry/api/services/{rec['id']}/approve",
               headers=fed.headers["reg_admin"], timeout=30).raise_for_status()

    def health_at_main() -> str | None:
        row = fed.dbs["r_national"].one("SELECT health FROM registry.services WHERE id = %s",
                                        (rec["id"],))
        return row and row["health"]

    wait_for(lambda: health_at_main() == "up", 20)
    server.set_down(True)
    try:
        wait_for(lambda: health_at_main() == "down", 20)
    finally:
        server.set_down(False)


def test_parent_down_nothing_lost_then_marked_down_in_two_intervals(fed: Fed,
                                                                     server: ServiceServer) -> None:
    settled(fed)
    fed.stop("r_zhejiang")
    stopped = time.monotonic()
    try:
        def zj_health() -> str:
            return fed.dbs["r_national"].one(
                "SELECT health FROM registry.services WHERE id = 'r_zhejiang:node'")["health"]

        wait_for(lambda: zj_health() == "down", 2 * HEALTH_INTERVAL + 1.5, interval=0.1)
        assert time.monotonic() - stopped <= 2 * HEALTH_INTERVAL + 1.5
        # register and approve at Hangzhou while its parent is down: kept in the outbox
        rec = register(fed, "reg_admin", server.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities",
                       title="registered while the parent is down").json()
        httpx.post(f"{fed.urls['r_hangzhou']}/registry/api/services/{rec['id']}/approve",
                   headers=fed.headers["reg_admin"], timeout=30).raise_for_status()
        # Hangzhou's worker tried to push it to its stopped parent and failed
        wait_for(lambda: fed.dbs["r_hangzhou"].one(
            "SELECT 1 AS failing FROM registry.state WHERE name = 'push_error'"), 20,
            "Hangzhou's push to its stopped parent failed")
        waiting = fed.dbs["r_hangzhou"].one(
            "SELECT count(*) AS n FROM registry.outbox WHERE record_id = %s", (rec["id"],))["n"]
        assert waiting >= 1
        assert rec["id"] not in ids_at(fed.main, fed.headers["reg_platform"])
        tree = httpx.get(fed.main + "/registry/api/health", timeout=30).json()["tree"]
        assert tree["children"][0]["health"] == "down"
    finally:
        fed.start("r_zhejiang")
    wait_for(lambda: rec["id"] in ids_at(fed.main), 40, "registration lost")
    wait_for(lambda: zj_health() == "up", 10)
    rows = fed.dbs["r_national"].all("SELECT id FROM registry.services WHERE id = %s",
                                     (rec["id"],))
    assert len(rows) == 1
    settled(fed)
    # the main node holds exactly the subtree: nothing duplicated, nothing missing
    for child in ("r_hangzhou", "r_zhejiang"):
        wait_for(lambda c=child: subtree_versions(fed, c, "r_national")
                 == subtree_versions(fed, c, c), 20, child)


def subtree_versions(fed: Fed, origin: str, at: str) -> dict[str, int]:
    return {r["id"]: r["version"] for r in fed.dbs[at].all(
        "SELECT id, version FROM registry.services WHERE origin_node = %s AND version > 0 AND "
        "status IN ('approved', 'retired')", (origin,))}


def test_full_sync_removes_what_the_child_no_longer_has(fed: Fed) -> None:
    """A stale copy upstream (e.g. a change lost with a restored backup) is reconciled."""
    stale = a_record(rid="r_hangzhou:ext:stale0000000", title="stale copy")
    for at in ("r_zhejiang", "r_national"):
        with fed.dbs[at].transaction() as cur:
            from services.registry.db import write_record

            write_record(cur, stale, "child")
    assert stale["id"] in ids_at(fed.main)

    def gone() -> bool:
        return all(fed.dbs[at].one("SELECT 1 AS x FROM registry.services WHERE id = %s",
                                   (stale["id"],)) is None for at in ("r_zhejiang", "r_national"))

    wait_for(gone, 20, "full sync did not remove the stale record")
    assert stale["id"] not in ids_at(fed.main)
    assert subtree_versions(fed, "r_hangzhou", "r_national") == subtree_versions(
        fed, "r_hangzhou", "r_hangzhou")


def test_sync_local_services_is_idempotent_and_retires(fed: Fed) -> None:
    """What the publishing code calls after a publish, rollback or retire."""
    import yaml

    from geoplat_settings import NodeRuntime
    from services.registry.local import sync_local_services

    ndir = fed.settings.resolve(fed.settings.var_dir) / "nodes" / "r_hangzhou"
    runtime = NodeRuntime.load(ndir)
    config = yaml.safe_load((ndir / "pygeoapi.yml").read_text())
    levels = dict(runtime.auth.levels)
    db = fed.dbs["r_hangzhou"]

    def outbox_max() -> int:
        return db.one("SELECT coalesce(max(seq), 0) AS m FROM registry.outbox")["m"]

    def row(rid: str) -> dict:
        return db.one("SELECT status, version FROM registry.services WHERE id = %s", (rid,))

    sync_local_services(runtime, config, levels)
    mark, before = outbox_max(), row("r_hangzhou:features:roads")
    sync_local_services(runtime, config, levels)
    assert outbox_max() == mark and row("r_hangzhou:features:roads") == before
    without = {**config, "resources": {k: v for k, v in config["resources"].items()
                                       if k != "roads"}}
    sync_local_services(runtime, without, levels)
    gone = row("r_hangzhou:features:roads")
    assert gone["status"] == "retired" and gone["version"] == before["version"] + 1
    assert outbox_max() > mark
    wait_for(lambda: "r_hangzhou:features:roads" not in ids_at(fed.main), 20)
    sync_local_services(runtime, config, levels)
    back = row("r_hangzhou:features:roads")
    assert back["status"] == "approved" and back["version"] == before["version"] + 2
    wait_for(lambda: "r_hangzhou:features:roads" in ids_at(fed.main), 20)
