"""Places across the federation (issue 13): a query at any node covers its part of the
federation. The main node finds a Hangzhou door plate, a Zhejiang township and a national place
name alike; the caller's credentials travel with the question, so registered door plates reach
only callers who may see them at Hangzhou; with the Hangzhou node stopped the main node answers
the rest, marked partial, within the deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from waiting import wait_for

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.pygeoapi_config import node_dir
from services.access import apikeys
from services.db import Database
from services.sso import accounts

ADDRESS = "浙江省杭州市上城区宏二路2号"
PASSWORD = "places-federation-password-1"


def geocode(base: str, address: str, key: str | None) -> requests.Response:
    params = {"address": address, **({"tk": key} if key else {})}
    return requests.get(f"{base}/api/places/geocode", params=params, timeout=30)


@pytest.fixture(scope="module")
def key(main_db) -> str:
    user = accounts.create(main_db, "places_fed_dev", PASSWORD, roles=["developer"])
    value, _ = apikeys.create_key(main_db, "test", user.id, "places-fed", "server",
                                  ["127.0.0.0/8"], actor="test")
    return value


def test_main_node_answers_a_hangzhou_door_plate(urls, key) -> None:
    own = geocode(urls["hangzhou"], ADDRESS, key).json()["features"][0]
    assert own["properties"]["kind"] == "address"
    for node in ("national", "zhejiang"):
        r = geocode(urls[node], ADDRESS, key)
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        best = body["features"][0]
        assert best["properties"]["kind"] == "address", best
        assert best["properties"]["node"] == "hangzhou"
        assert best["geometry"]["coordinates"] == own["geometry"]["coordinates"]
        assert best["properties"]["admin"]["county_code"] == "330102"
        assert body["partial"] == []
    # Tianditu's form at the main node, as public client code calls it
    r = requests.get(f"{urls['national']}/geocoder",
                     params={"ds": json.dumps({"keyWord": ADDRESS}, ensure_ascii=False), "tk": key}, timeout=30)
    loc = r.json()["location"]
    assert float(loc["lon"]) == pytest.approx(own["geometry"]["coordinates"][0], abs=1e-6)
    assert float(loc["lat"]) == pytest.approx(own["geometry"]["coordinates"][1], abs=1e-6)
    assert loc["level"] == "门址"


def test_registered_door_plates_follow_the_callers_rights(urls, key) -> None:
    """Without credentials the main node refuses (the shared federation needs a key) or, where
    public layers need none, answers without the door plate, which is registered at Hangzhou;
    with a key it is there."""
    anon = geocode(urls["national"], ADDRESS, None)
    if anon.status_code == 200:
        kinds = [f["properties"]["kind"] for f in anon.json()["features"]]
        assert "address" not in kinds
    else:
        assert anon.status_code == 401
    assert geocode(urls["national"], ADDRESS, key).json()["features"][0]["properties"][
        "kind"] == "address"


def test_main_node_finds_a_township_and_a_national_place(urls, key) -> None:
    r = requests.get(f"{urls['national']}/api/places/search",
                     params={"q": "清波街道", "tk": key}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    names = [(f["properties"]["name"], f["properties"]["node"]) for f in r.json()["features"]]
    assert ("清波街道", "zhejiang") in names or ("清波街道", "hangzhou") in names, names
    [div] = requests.get(f"{urls['national']}/api/places/admin/330102001",
                         params={"tk": key}, timeout=30).json()["features"]
    assert div["properties"]["name"] == "清波街道"
    r = requests.get(f"{urls['national']}/api/places/geocode",
                     params={"address": "浙江省", "tk": key}, timeout=30)
    assert r.json()["features"][0]["properties"]["admin"]["province_code"] == "330000"


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[dict]:
    base: Path = tmp_path_factory.mktemp("places-fed")
    settings = settings_mod.load(make_federation(base, pg_cluster, require_keys=True))
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    groups = {p.node.id: p.pgid for p in procs}
    try:
        main_db = Database(federation_mod.node_dsn(settings, settings.node("national")),
                           maxconn=1)
        user = accounts.create(main_db, "places_down_dev", PASSWORD, roles=["developer"])
        value, _ = apikeys.create_key(main_db, "test", user.id, "down", "server",
                                      ["127.0.0.0/8"], actor="test")
        yield {"settings": settings, "groups": groups, "key": value,
               "urls": {n.id: n.base_url for n in settings.nodes}}
    finally:
        for pgid in groups.values():
            supervisor.stop_group(pgid)


@pytest.mark.slow
def test_a_child_down_gives_the_rest_marked_partial(fed) -> None:
    nat, key = fed["urls"]["national"], fed["key"]
    first = wait_for(lambda: (r := geocode(nat, ADDRESS, key)).status_code == 200 and r.json(),
                     60, "national answers")
    assert first["features"][0]["properties"]["node"] == "hangzhou"
    supervisor.stop_group(fed["groups"]["hangzhou"])
    try:
        t0 = time.monotonic()
        r = geocode(nat, ADDRESS, key)
        elapsed = time.monotonic() - t0
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert "hangzhou" in body["partial"]
        assert elapsed < 4.0
        best = body["features"][0]["properties"]
        assert best["kind"] in ("county", "city", "township", "road") and \
            best["admin"]["county_code"] in (None, "330102")
        # a query that concerns no stopped node is not partial
        r = requests.get(f"{nat}/api/places/geocode", params={"address": "北京市", "tk": key},
                         timeout=30)
        assert r.status_code == 200 and r.json()["partial"] == []
    finally:
        s = fed["settings"]
        node = s.node("hangzhou")
        fed["groups"]["hangzhou"] = supervisor.start_node(s, node, node_dir(s, node)).pgid
