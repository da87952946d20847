"""Developer API keys (`tk`): origin/IP binding, quotas and rate limits (issue 4)."""

from __future__ import annotations

import pytest
import requests
from sso_client import bearer, form_fields, login_pkce
from waiting import wait_for

from nodes import federation as federation_mod
from services.db import Database
from services.sso import accounts

PASSWORD = "developer-password-1"


@pytest.fixture(scope="module")
def dev(federation, urls) -> dict:
    main = next(n for n in federation.nodes if n.tier == "main")
    db = Database(federation_mod.node_dsn(federation, main), maxconn=2)
    accounts.create(db, "key_dev", PASSWORD, roles=["developer"])
    accounts.create(db, "key_plain", PASSWORD)
    return {"db": db, "token": login_pkce(urls["national"], "key_dev", PASSWORD),
            "plain": login_pkce(urls["national"], "key_plain", PASSWORD)}


def make_key(urls, dev, **body) -> dict:
    r = requests.post(urls["national"] + "/sso/api/keys", json=body, headers=bearer(dev["token"]),
                      timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def test_only_developers_create_keys(urls, dev) -> None:
    r = requests.post(urls["national"] + "/sso/api/keys", headers=bearer(dev["plain"]),
                      json={"kind": "server", "allowed": ["127.0.0.1/32"]}, timeout=10)
    assert r.status_code == 403
    r = requests.post(urls["national"] + "/sso/api/keys", headers=bearer(dev["token"]),
                      json={"kind": "browser", "allowed": ["javascript:alert(1)"]}, timeout=10)
    assert r.status_code == 422


def test_server_and_browser_keys_at_every_node(urls, dev) -> None:
    server = make_key(urls, dev, name="srv", kind="server", allowed=["127.0.0.0/8"])
    foreign_ip = make_key(urls, dev, name="far", kind="server", allowed=["10.0.0.0/8"])
    browser = make_key(urls, dev, name="web", kind="browser", allowed=["https://portal.example.cn"])
    for node in ("hangzhou", "zhejiang", "national"):
        items = urls[node] + "/ogc/collections?f=json"
        assert requests.get(items, params={"tk": server["key"]}, timeout=30).status_code == 200
        r = requests.get(items, params={"tk": foreign_ip["key"]}, timeout=30)
        assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/problem")
        r = requests.get(items, params={"tk": browser["key"]},
                         headers={"Origin": "https://portal.example.cn"}, timeout=30)
        assert r.status_code == 200
        r = requests.get(items, params={"tk": browser["key"]},
                         headers={"Referer": "https://evil.example/page"}, timeout=30)
        assert r.status_code == 403
        assert requests.get(items, params={"tk": "0" * 32}, timeout=30).status_code == 403
    # a key opens public layers only; restricted layers still need a grant
    r = requests.get(urls["hangzhou"] + "/ogc/collections/control_points/items?f=json",
                     params={"tk": server["key"]}, timeout=30)
    assert r.status_code == 401


def test_daily_quota_and_rate_limit(urls, dev) -> None:
    quota = make_key(urls, dev, name="q", kind="server", allowed=["127.0.0.1/32"],
                     quotas={"features": 3})
    url = urls["zhejiang"] + "/ogc/collections/counties/items?f=json&limit=1"
    statuses = [requests.get(url, params={"tk": quota["key"]}, timeout=30).status_code
                for _ in range(12)]
    # near its quota a key is counted exactly in the node's database: no worker overshoots
    assert statuses == [200, 200, 200] + [429] * 9
    r = requests.get(url, params={"tk": quota["key"]}, timeout=30)
    assert r.status_code == 429 and "quota" in r.json()["detail"]
    rate = make_key(urls, dev, name="r", kind="server", allowed=["127.0.0.1/32"], rate_per_second=1)
    tiles = urls["zhejiang"] + "/ogc/collections?f=json"
    got = [requests.get(tiles, params={"tk": rate["key"]}, timeout=30).status_code
           for _ in range(8)]
    assert 429 in got and got[0] == 200


def test_key_revocation_is_audited(urls, dev) -> None:
    key = make_key(urls, dev, name="gone", kind="server", allowed=["127.0.0.1/32"])
    r = requests.post(f"{urls['national']}/sso/api/keys/{key['key_id']}/revoke",
                      headers=bearer(dev["token"]), timeout=10)
    assert r.status_code == 200
    events = dev["db"].all("SELECT event FROM auth.audit WHERE subject = %s ORDER BY id",
                           (key["key_id"],))
    assert [e["event"] for e in events] == ["key.create", "key.revoke"]
    listing = requests.get(urls["national"] + "/sso/api/keys", headers=bearer(dev["token"]),
                           timeout=10).json()["keys"]
    assert any(k["key_id"] == key["key_id"] and k["revoked_at"] for k in listing)


def test_auth_check_route_for_the_nginx_fast_path(urls, dev) -> None:
    key = make_key(urls, dev, name="door", kind="server", allowed=["127.0.0.1/32"])
    check = urls["hangzhou"] + "/auth/check"
    r = requests.get(check, params={"layer": "vec", "kind": "tiles"},
                     headers={"X-Original-URI": f"/vec_c/wmts?REQUEST=GetTile&tk={key['key']}"},
                     timeout=10)
    assert r.status_code == 204
    r = requests.get(check, params={"layer": "vec"},
                     headers={"X-Original-URI": "/vec_c/wmts?tk=" + "f" * 32}, timeout=10)
    assert r.status_code == 403
    r = requests.get(check, params={"layer": "control_points"},
                     headers={"X-Original-URI": f"/tms/1.0.0/control_points/1/2/3.png?tk={key['key']}"},
                     timeout=10)
    assert r.status_code == 401  # a key is not a grant


def test_tk_on_tianditu_routes_including_cached_tiles(urls, dev) -> None:
    """`tk` is checked on the Tianditu routes, also when nginx holds the tile in its cache."""
    server = make_key(urls, dev, name="tdt", kind="server", allowed=["127.0.0.0/8"])
    foreign = make_key(urls, dev, name="tdt-far", kind="server", allowed=["10.0.0.0/8"])
    url = urls["national"] + "/vec_c/wmts"
    params = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "vec",
              "STYLE": "default", "TILEMATRIXSET": "c", "FORMAT": "tiles", "TILEMATRIX": "3",
              "TILEROW": "1", "TILECOL": "6"}
    first = requests.get(url, params=params, timeout=60)  # keyless public request, now cached
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/png"
    assert requests.get(url, params=params, timeout=60).headers.get("X-Tile-Cache") == "hit"
    for _ in range(2):  # checked by the app, then allowed from nginx's auth cache
        ok = requests.get(url, params={**params, "tk": server["key"]}, timeout=60)
        assert ok.status_code == 200 and ok.content == first.content
        assert ok.headers.get("X-Tile-Cache") == "hit"  # sent by nginx, not MapProxy
    for bad in (foreign["key"], "0" * 32, foreign["key"], "0" * 32):  # also when cached
        r = requests.get(url, params={**params, "tk": bad}, timeout=60)
        assert r.status_code in (401, 403), (r.status_code, r.text[:200])
        assert "ExceptionReport" in r.text and r.headers.get("X-Tile-Cache") != "hit"


def test_keyed_cached_wmts_tiles_through_the_nginx_auth_cache(urls, dev) -> None:
    """A valid key gets nginx's cached tile; an unknown key, a key bound to other addresses
    or a browser key from another origin never does, also once answers are in the cache."""
    server = make_key(urls, dev, name="door-srv", kind="server", allowed=["127.0.0.0/8"])
    foreign = make_key(urls, dev, name="door-far", kind="server", allowed=["10.0.0.0/8"])
    browser = make_key(urls, dev, name="door-web", kind="browser",
                       allowed=["https://portal.example.cn"])
    url = urls["national"] + "/wmts/vec/c/3/6/1.png"
    first = requests.get(url, timeout=60)
    assert first.status_code == 200
    plain = requests.get(url, timeout=60)
    assert plain.headers.get("X-Tile-Cache") == "hit"
    for _ in range(3):
        r = requests.get(url, params={"tk": server["key"]}, timeout=60)
        assert r.status_code == 200 and r.headers.get("X-Tile-Cache") == "hit"
        assert r.content == plain.content
        r = requests.get(url, params={"tk": browser["key"]},
                         headers={"Origin": "https://portal.example.cn"}, timeout=60)
        assert r.status_code == 200 and r.headers.get("X-Tile-Cache") == "hit"
        r = requests.get(url, params={"tk": browser["key"]},
                         headers={"Referer": "https://portal.example.cn/map.html"}, timeout=60)
        assert r.status_code == 200 and r.headers.get("X-Tile-Cache") == "hit"
    for _ in range(2):
        for params, headers in [({"tk": "1" * 32}, {}), ({"tk": foreign["key"]}, {}),
                                ({"tk": browser["key"]}, {"Origin": "https://evil.example"}),
                                ({"tk": browser["key"]}, {"Referer": "https://evil.example/x"}),
                                ({"tk": browser["key"]}, {})]:
            r = requests.get(url, params=params, headers=headers, timeout=60)
            assert r.status_code in (401, 403), (params, headers, r.status_code)
            assert r.headers.get("X-Tile-Cache") != "hit" and r.content != plain.content
            assert "ExceptionReport" in r.text or \
                r.headers["Content-Type"].startswith("application/problem")


def test_nginx_usage_log_is_folded_into_key_counters(tmp_path) -> None:
    """Keyed tiles nginx sent on a cached allow are counted from its usage log."""
    import asyncio
    import subprocess
    import threading
    import time
    from types import SimpleNamespace

    from services.access import emap as emap_keys

    logs = tmp_path / "nginx" / "logs"
    logs.mkdir(parents=True)
    (logs / emap_keys.USAGE_LOG).write_text("aa%2Bb\t-\naa%2Bb\t-\n-\thdr\nzz\t-\n")
    stand_in = subprocess.Popen(["sleep", "30"])  # gets the "reopen your logs" signal
    try:
        (tmp_path / "nginx" / "nginx.pid").write_text(str(stand_in.pid))
        assert emap_keys.take_nginx_usage(tmp_path) == {}  # rotated, read next time
        assert stand_in.wait(timeout=5) != 0
        (logs / emap_keys.USAGE_LOG).write_text("later\t-\n")
        assert emap_keys.take_nginx_usage(tmp_path) == {}  # nginx may still write to it
        # the clock of the rotation: the lock file records when it was, moved back past the
        # settling time (instead of waiting it out)
        lock = logs / (emap_keys.USAGE_LOG + ".lock")
        assert float(lock.read_text()) > time.time() - emap_keys._ROTATED_SETTLE
        lock.write_text(str(time.time() - emap_keys._ROTATED_SETTLE - 0.1))

        class Keys:
            def __init__(self) -> None:
                self._lock, self._counts = threading.Lock(), {}

            async def key(self, value):
                return SimpleNamespace(key_id="k-" + value) if value != "zz" else None

            def add_usage(self, key_id, kind, n):  # KeyChecker's public counter
                with self._lock:
                    self._counts[(key_id, kind)] = self._counts.get((key_id, kind), 0) + n

        keys = Keys()
        n = asyncio.run(emap_keys.fold_nginx_usage(keys, tmp_path, force=True))
        assert n == 3 and keys._counts == {("k-aa+b", "tiles"): 2, ("k-hdr", "tiles"): 1}
    finally:
        stand_in.kill()
        stand_in.wait()


def _node_dir(federation, node_id: str):
    from nodes.pygeoapi_config import node_dir

    return node_dir(federation, federation.node(node_id))


def _wait_learned(federation, node_id: str, needle: str, present: bool = True) -> None:
    maps = _node_dir(federation, node_id) / "nginx" / "keys-fast"
    wait_for(lambda: (needle in "".join(p.read_text() for p in maps.glob("*.map"))) == present,
             15, f"{needle[:12]}... {'' if present else 'un'}learned")


def _from_memory(url: str, params: dict, headers: dict | None = None) -> bool:
    """nginx answered from its learned keys (after its graceful reload: new workers)."""
    r = requests.get(url, params=params, headers=headers or {}, timeout=60)
    return r.status_code == 200 and r.headers.get("X-Key-Check") == "memory"


def test_learned_keys_are_answered_from_nginx_memory(federation, urls, dev) -> None:
    """After one check by the app, nginx answers the same key case itself (X-Key-Check:
    memory), exactly: another case, other letter case, a token or a foreign origin still go to
    the app and are refused as before."""
    server = make_key(urls, dev, name="mem-srv", kind="server", allowed=["127.0.0.0/8"],
                      rate_per_second=1000)
    browser = make_key(urls, dev, name="mem-web", kind="browser",
                       allowed=["https://hall.example.cn"], rate_per_second=1000)
    slow = make_key(urls, dev, name="mem-slow", kind="server", allowed=["127.0.0.0/8"],
                    rate_per_second=5)
    url = urls["zhejiang"] + "/wmts/vec/c/3/6/1.png"
    plain = requests.get(url, timeout=60)
    assert plain.status_code == 200
    assert requests.get(url, timeout=60).headers.get("X-Tile-Cache") == "hit"
    web = {"Origin": "https://hall.example.cn"}
    first = requests.get(url, params={"tk": server["key"]}, timeout=60)
    assert first.status_code == 200 and first.headers.get("X-Key-Check") != "memory"
    assert requests.get(url, params={"tk": browser["key"]}, headers=web,
                        timeout=60).status_code == 200
    assert requests.get(url, params={"tk": slow["key"]}, timeout=60).status_code == 200
    _wait_learned(federation, "zhejiang", f'"{slow["key"]}|vec|i:127.0.0.1"')
    _wait_learned(federation, "zhejiang", f'"{server["key"]}|vec|i:127.0.0.1"')
    _wait_learned(federation, "zhejiang", f'"{browser["key"]}|vec|o:https://hall.example.cn"')
    wait_for(lambda: _from_memory(url, {"tk": server["key"]})
             and _from_memory(url, {"tk": browser["key"]}, web), 15, "nginx took the keys over")
    for params, headers in (({"tk": server["key"]}, {}), ({}, {"X-Api-Key": server["key"]}),
                            ({"tk": browser["key"]}, web),
                            ({"tk": browser["key"]}, {"Referer": "https://hall.example.cn/a"})):
        r = requests.get(url, params=params, headers=headers, timeout=60)
        assert r.status_code == 200 and r.content == plain.content
        assert r.headers.get("X-Tile-Cache") == "hit" and r.headers.get("X-Key-Check") == "memory"
    # nginx holds a learned key to its rate (5/s, burst 5): an OGC exception beyond it
    with requests.Session() as http:
        answers = [http.get(url, params={"tk": slow["key"]}, timeout=60) for _ in range(30)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and len(limited) < 30 and answers[0].status_code == 200
    assert "ExceptionReport" in limited[0].text and "Rate limit" in limited[0].text
    # only the learned layer, only the exact strings, never with a token
    other = requests.get(urls["zhejiang"] + "/wmts/cva/c/3/6/1.png", params={"tk": server["key"]},
                         timeout=60)
    assert other.headers.get("X-Key-Check") != "memory"
    for params, headers, status in (
            ({"tk": server["key"].upper()}, {}, 403),
            ({"tk": browser["key"]}, {"Origin": "https://HALL.example.cn"}, 403),
            ({"tk": browser["key"]}, {"Origin": "https://evil.example"}, 403),
            ({"tk": browser["key"]}, {}, 403),
            ({"tk": server["key"]}, {"Authorization": "Bearer not-a-token"}, 401)):
        r = requests.get(url, params=params, headers=headers, timeout=60)
        assert r.status_code == status, (params, headers, r.status_code)
        assert r.headers.get("X-Key-Check") != "memory" and r.content != plain.content


def test_sweeper_drops_revoked_keys_from_nginx_memory(federation, main_db, urls, dev,
                                                      tmp_path) -> None:
    """The sweeper keeps a learned case while the key is good and drops it once the key is
    revoked or its tile quota is used up (checked against the main node's real key table)."""
    import asyncio

    from services.access import fastpath as emap_fastpath
    from services.access.apikeys import KeyChecker

    key = make_key(urls, dev, name="sweep", kind="server", allowed=["127.0.0.0/8"])
    spent = make_key(urls, dev, name="spent", kind="server", allowed=["127.0.0.0/8"],
                     quotas={"tiles": 2})
    emap_fastpath.reset(tmp_path)
    cases = {}
    for k in (key, spent):
        cases[k["key"]] = emap_fastpath.case_of(k["key"], "vec", "server", None, "127.0.0.1")
        emap_fastpath.learn(tmp_path, cases[k["key"]], k["key"])
    assert emap_fastpath.case_of("x" * 32, "vec", "server", None, "127.0.0.1") is None
    assert emap_fastpath.case_of(key["key"], "vec", "browser", 'https://a"b', "") is None

    def checker() -> KeyChecker:  # a fresh one: no cached key records
        return KeyChecker(main_db, "national", main_db=main_db, node_client=None,
                          public_requires_key=True)

    maps = emap_fastpath.fast_dir(tmp_path) / "ip.map"
    assert asyncio.run(emap_fastpath.Sweeper(tmp_path, checker()).tick(force=True))
    assert all(c in maps.read_text() for c in cases.values())
    rates = (emap_fastpath.fast_dir(tmp_path) / "rates.map").read_text()
    assert f'"{key["key"]}" "c50";' in rates  # the default rate, 50/s
    main_db.execute("INSERT INTO auth.key_usage VALUES (%s, current_date, 'tiles', 2) "
                    "ON CONFLICT (key_id, day, kind) DO UPDATE SET count = 2",
                    (spent["key_id"],))
    assert asyncio.run(emap_fastpath.Sweeper(tmp_path, checker()).tick(force=True))
    assert cases[key["key"]] in maps.read_text()
    assert cases[spent["key"]] not in maps.read_text()
    r = requests.post(f"{urls['national']}/sso/api/keys/{key['key_id']}/revoke",
                      headers=bearer(dev["token"]), timeout=10)
    assert r.status_code == 200
    assert asyncio.run(emap_fastpath.Sweeper(tmp_path, checker()).tick(force=True))
    assert maps.read_text() == ""


def _page_session(urls, username: str) -> requests.Session:
    s = requests.Session()
    r = s.get(urls["national"] + "/sso/keys", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/sso/login?next=/sso/keys"
    login = s.get(urls["national"] + r.headers["Location"], timeout=10)
    r = s.post(urls["national"] + "/sso/login", data={**form_fields(login.text),
               "username": username, "password": PASSWORD}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/sso/keys"
    return s


def test_key_management_page(urls, dev) -> None:
    """A developer creates, uses and revokes a key on the page; CSRF and roles are enforced."""
    import re

    page = urls["national"] + "/sso/keys"
    s = _page_session(urls, "key_dev")
    listing = s.get(page, timeout=10)
    assert listing.status_code == 200 and "Developer keys" in listing.text
    fields = {k: v for k, v in form_fields(listing.text).items() if k == "csrf_token"}
    r = s.post(page, data={"action": "create", "name": "<script>alert(1)</script>",
                           "kind": "server", "allowed": "127.0.0.0/8"}, timeout=10)  # no CSRF
    assert r.status_code == 403 and "<script>alert" not in r.text
    r = s.post(page, data={**fields, "action": "create", "name": "<script>alert(1)</script>",
                           "kind": "server", "allowed": "127.0.0.0/8\n"}, timeout=10)
    assert r.status_code == 200, r.text
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
    value = re.search(r'<code id="new-key">([0-9a-f]{32})</code>', r.text).group(1)
    key_id = value[:8]
    assert r.text.count("<script>alert(1)</script>") == 0 and key_id in r.text
    assert requests.get(urls["hangzhou"] + "/ogc/collections?f=json", params={"tk": value},
                        timeout=30).status_code == 200
    r = s.post(page, data={**fields, "action": "create", "name": "bad", "kind": "browser",
                           "allowed": "javascript:alert(1)"}, timeout=10)
    assert r.status_code == 422 and "not an origin" in r.text
    r = s.post(page, data={**fields, "action": "revoke", "key_id": key_id}, timeout=10)
    assert r.status_code == 200 and f"Key {key_id} revoked." in r.text
    row = dev["db"].one("SELECT revoked_at FROM auth.api_keys WHERE key_id = %s", (key_id,))
    assert row["revoked_at"] is not None
    # another user's page cannot revoke it, and users without the developer role get 403
    plain = _page_session(urls, "key_plain")
    r = plain.get(page, timeout=10)
    assert r.status_code == 403 and "developer role" in r.text
