"""Issue 11, item 15: `/health` checks for real, and a node fails closed when the main node is gone.

A federation of its own (keys required, `auth.revocation_max_age` short): the main node is
stopped, a sub-node's `/health` turns `degraded` with the reason, its cached key records and
revocation list are trusted for `revocation_max_age` seconds and then refused (503), and it
recovers when the main node is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from publish_helpers import every_worker
from sso_client import bearer, login_pkce
from waiting import wait_for

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.pygeoapi_config import node_dir
from services.access import apikeys
from services.db import Database
from services.sso import accounts

pytestmark = pytest.mark.slow

MAX_AGE = 20  # auth.revocation_max_age of every node here
PASSWORD = "health-correct-horse-1"
CHECKS = {"database", "ogc", "tiles", "revocations", "keys", "registry"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[dict]:
    base: Path = tmp_path_factory.mktemp("health")
    path = make_federation(base, pg_cluster, require_keys=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for node in raw["nodes"]:
        node["auth"] = {**(node.get("auth") or {}), "revocation_max_age": MAX_AGE}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    settings = settings_mod.load(path)
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    groups = {p.node.id: p.pgid for p in procs}
    try:
        main = settings.node("national")
        db = Database(federation_mod.node_dsn(settings, main), maxconn=1)
        user = accounts.create(db, "health_dev", PASSWORD, roles=["developer"])
        key, _ = apikeys.create_key(db, "test", user.id, "health", "server", ["127.0.0.0/8"])
        yield {"settings": settings, "groups": groups, "key": key,
               "urls": {n.id: n.base_url for n in settings.nodes}}
    finally:
        for pgid in groups.values():
            supervisor.stop_group(pgid)


def health(url: str) -> dict:
    r = requests.get(url + "/health", timeout=30)
    body = r.json()
    assert r.status_code == (503 if body["status"] == "down" else 200)
    return body


def keyed(fed) -> requests.Response:
    return requests.get(fed["urls"]["zhejiang"] + f"/ogc/collections?f=json&tk={fed['key']}",
                        timeout=30)


def me(fed, token) -> requests.Response:
    return requests.get(fed["urls"]["zhejiang"] + "/auth/me", headers=bearer(token), timeout=30)


def test_health_checks_are_real_and_fail_closed(fed) -> None:
    zj, main = fed["urls"]["zhejiang"], fed["urls"]["national"]
    body = wait_for(lambda: (b := health(zj))["status"] == "ok" and b, 90, "zhejiang ok")
    assert CHECKS <= set(body["checks"]), body["checks"]
    assert all(c["status"] == "ok" for c in body["checks"].values())
    assert body["checks"]["revocations"]["max_age_s"] == MAX_AGE
    token = login_pkce(main, "health_dev", PASSWORD)
    assert keyed(fed).status_code == 200 and me(fed, token).status_code == 200
    workers = fed["settings"].node("zhejiang").workers
    # every worker has just refreshed its revocations (/health polls a copy older than 6 s)
    # and looked the key up, so none may refuse before MAX_AGE - 8 s after the stop
    listing = zj + f"/ogc/collections?f=json&tk={fed['key']}"
    every_worker(listing, workers, lambda r: None)
    wait_for(lambda: all(age <= 6.5 for age in every_worker(
        zj + "/health", workers, lambda r: r.json()["checks"]["revocations"]["age_s"]).values()),
        30, "every worker's revocation list fresh")
    fresh = time.monotonic()  # each worker's copy was at most 6.5 s old here

    supervisor.stop_group(fed["groups"]["national"])
    try:
        body = wait_for(lambda: (b := health(zj))["status"] == "degraded" and b, 30,
                        "zhejiang degraded")
        rev = body["checks"]["revocations"]
        assert rev["status"] in ("degraded", "down") and "main node unreachable" in rev["reason"]
        assert body["checks"]["database"]["status"] == "ok"
        if time.monotonic() - fresh < MAX_AGE - 8:  # within the grace: still trusted
            assert me(fed, token).status_code == 200
            assert keyed(fed).status_code == 200

        def refused() -> tuple | bool:
            a, b = me(fed, token), keyed(fed)
            return a.status_code == 503 and b.status_code == 503 and (a, b)

        a, b = wait_for(refused, MAX_AGE + 40, "tokens and keys refused")
        assert time.monotonic() - fresh >= MAX_AGE - 7  # not before the configured time
        for r in (a, b):
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "Service Unavailable" in r.json()["title"]

        def every_worker_down() -> list[dict] | bool:
            bodies = list(every_worker(zj + "/health", workers, lambda r: r.json()).values())
            return all(b["checks"]["revocations"]["status"] == "down" for b in bodies) and bodies

        for body in wait_for(every_worker_down, 30, "every worker fails closed"):
            assert body["status"] == "degraded"  # the node answers and its database is fine
            assert "tokens are refused" in body["checks"]["revocations"]["reason"]
    finally:
        s = fed["settings"]
        node = s.node("national")
        fed["groups"]["national"] = supervisor.start_node(s, node, node_dir(s, node)).pgid
    wait_for(lambda: supervisor.health(s.node("national")), 90, "national back")
    wait_for(lambda: me(fed, token).status_code == 200 and keyed(fed).status_code == 200, 60,
             "zhejiang accepts the token and the key again")
    wait_for(lambda: health(zj)["checks"]["revocations"]["status"] == "ok", 30,
             "revocations fresh again")


def test_health_names_each_check_and_worker(fed) -> None:
    """The ogc check is an internal request to pygeoapi, not a constant."""
    body = health(fed["urls"]["hangzhou"])
    ogc = body["checks"]["ogc"]
    assert ogc["status"] == "ok" and ogc["collections"] > 0
    assert body["checks"]["tiles"]["status"] == "ok"
    assert body["worker"]
