"""A developer key acts for its owner (issue 13): at `registered` level on every surface.

A valid key sent alone (no token) reaches what its registered owner may see: Hangzhou's
`registered` addresses (features, vector tiles, listings, OpenAPI, records) and the national
node's `registered` places; `restricted` control_points stay refused (401: a signed-in token with a
grant is needed) and unnamed. Attacks: a revoked key, a key over its quotas, a server key from
a disallowed address, a browser key from a disallowed origin or without one, a key of a
disabled or deleted owner: none of them reaches a registered layer on any surface. Place-name
queries count against the key's `search` quota (asked with kind "search", as the places routes
do), reported in the node's usage and the key's record.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from pathlib import Path

import httpx
import pytest
import requests
from sso_client import bearer, form_fields, login_pkce
from waiting import wait_for

from nodes import cli
from services.access import apikeys
from services.db import Database
from services.sso import accounts

PASSWORD = "places-key-password-1"
REGISTERED, RESTRICTED = "addresses", "control_points"
TITLES = {"addresses": "门牌地址", "control_points": "测量控制点"}


def create_key(main_db: Database, user_id: int, kind: str = "server",
               allowed: tuple[str, ...] = ("127.0.0.0/8",), **quotas: int) -> str:
    value, _ = apikeys.create_key(main_db, "test", user_id, "places-access", kind,
                                  list(allowed), quotas=quotas or None, actor="test")
    return value


@pytest.fixture(scope="module")
def owner(main_db) -> accounts.User:
    return accounts.create(main_db, "places_key_dev", PASSWORD, roles=["developer"])


@pytest.fixture(scope="module")
def good(main_db, owner) -> str:
    return create_key(main_db, owner.id)


@pytest.fixture(scope="module")
def tile(urls, good) -> str:
    """A z15 WebMercatorQuad MVT tile holding an address point (found with the valid key)."""
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/{REGISTERED}/items",
                     params={"f": "json", "limit": 1, "tk": good}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    lon, lat = r.json()["features"][0]["geometry"]["coordinates"][:2]
    z = 15
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return f"WebMercatorQuad/{z}/{y}/{x}?f=mvt"


def layer_surfaces(layer: str, tile: str) -> dict[str, str]:
    return {
        "collection": f"/ogc/collections/{layer}?f=json",
        "items": f"/ogc/collections/{layer}/items?f=json&limit=2",
        "item": f"/ogc/collections/{layer}/items/1?f=json",
        "items.html": f"/ogc/collections/{layer}/items?f=html&limit=2",
        "tilesets": f"/ogc/collections/{layer}/tiles?f=json",
        "tile": f"/ogc/collections/{layer}/tiles/{tile}",
        "queryables": f"/ogc/collections/{layer}/queryables?f=json",
    }


LISTINGS = {"landing": "/ogc?f=json", "collections": "/ogc/collections?f=json",
            "collections.html": "/ogc/collections?f=html", "openapi": "/ogc/openapi?f=json",
            "records": "/ogc/collections/catalogue/items?f=json&limit=500"}


def get(base: str, path: str, key: str | None, headers: dict[str, str] | None = None
        ) -> requests.Response:
    params = {"tk": key} if key else None
    r = requests.get(base + path, params=params, headers=headers or {}, timeout=60)
    r.encoding = "utf-8"
    return r


def names(r: requests.Response, layer: str) -> bool:
    """The listing names `layer` (a link to it, or its title)."""
    return f"collections/{layer}" in r.text or TITLES[layer] in r.text or \
        f'"layer_id": "{layer}"' in r.text or f'"layer_id":"{layer}"' in r.text


def search_check(base: str, key: str) -> requests.Response:
    """A `search`-kind check of a request carrying `key` (what a places route asks)."""
    return requests.get(base + "/auth/check", params={"kind": "search"},
                        headers={"X-Original-URI": f"/v2/search?tk={key}"}, timeout=30)


def test_a_valid_key_reaches_registered_layers_on_every_surface(urls, good, tile) -> None:
    hz = urls["hangzhou"]
    anonymous = {s: get(hz, p, None).status_code for s, p in layer_surfaces(REGISTERED, tile).items()}
    assert set(anonymous.values()) == {401}, anonymous  # the rule still holds without a key
    for surface, path in layer_surfaces(REGISTERED, tile).items():
        r = get(hz, path, good)
        assert r.status_code == 200, (surface, r.status_code, r.text[:200])
        assert r.headers["Cache-Control"] == "private, no-store", surface  # never shared
        if surface == "tile":
            assert len(r.content) > 0
    # the same by X-Api-Key, and a browser key from its origin
    r = get(hz, layer_surfaces(REGISTERED, tile)["items"], None, {"X-Api-Key": good})
    assert r.status_code == 200 and r.json()["features"]
    for name, path in LISTINGS.items():
        r = get(hz, path, good)
        assert r.status_code == 200, (name, r.status_code)
        if name != "landing":  # the landing page links to /collections, naming no layer
            assert names(r, REGISTERED), name  # the owner's registered layer is listed
        assert not names(r, RESTRICTED), name  # a restricted one never is
        assert not names(get(hz, path, None), REGISTERED), name
    assert f"/collections/{REGISTERED}/items" in get(hz, LISTINGS["openapi"], good).json()["paths"]
    # the national node's registered places, the same key
    r = get(urls["national"], "/ogc/collections/places/items?f=json&limit=1", good)
    assert r.status_code == 200 and r.json()["features"]
    assert search_check(hz, good).status_code == 204


def test_restricted_stays_refused_with_a_key_alone(urls, main_db, good, tile) -> None:
    hz = urls["hangzhou"]
    for surface, path in layer_surfaces(RESTRICTED, tile).items():
        r = get(hz, path, good)
        assert r.status_code == 401, (surface, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")  # a token is what it needs
        assert "API key alone" in r.json()["detail"]
    r = requests.get(hz + "/auth/check", params={"layer": RESTRICTED, "kind": "tiles"},
                     headers={"X-Original-URI": f"/?tk={good}"}, timeout=30)
    assert r.status_code == 401  # nginx's fast path asks the same

    # with a token the token's user is the caller (the key is still checked and counted)
    admin = accounts.create(main_db, "places_key_hzadmin", PASSWORD, roles=["hangzhou:admin"])
    token = bearer(login_pkce(urls["national"], admin.username, PASSWORD))
    r = get(hz, layer_surfaces(RESTRICTED, tile)["items"], good, token)
    assert r.status_code == 200 and r.json()["features"]
    r = get(hz, layer_surfaces(RESTRICTED, tile)["items"], "0" * 32, token)
    assert r.status_code == 403  # a bad key is refused whoever sends it


def refused_everywhere(urls: dict[str, str], key: str, tile: str, statuses: set[int],
                       headers: dict[str, str] | None = None, *,
                       listings: bool = True) -> None:
    """No registered data, and (with `listings`) no listing naming a registered layer."""
    hz = urls["hangzhou"]
    for surface, path in layer_surfaces(REGISTERED, tile).items():
        r = get(hz, path, key, headers)
        assert r.status_code in statuses, (surface, r.status_code, r.text[:200])
        assert TITLES[REGISTERED] not in r.text and "FeatureCollection" not in r.text, surface
    r = get(urls["national"], "/ogc/collections/places/items?f=json&limit=1", key, headers)
    assert r.status_code in statuses, r.status_code
    if listings:
        for name, path in LISTINGS.items():
            r = get(hz, path, key, headers)
            assert r.status_code in statuses, (name, r.status_code)
            assert not names(r, REGISTERED), name
        for node in ("national", "zhejiang"):
            r = get(urls[node], LISTINGS["collections"], key, headers)
            assert r.status_code in statuses, (node, r.status_code)


def eventually_refused(urls: dict[str, str], key: str, tile: str, timeout: float) -> None:
    """A whole pass of every surface at every node refuses `key` within `timeout`."""
    def one_pass() -> bool:
        refused_everywhere(urls, key, tile, {403})
        assert search_check(urls["hangzhou"], key).status_code == 403
        return True

    wait_for(one_pass, timeout=timeout, interval=0.5)


def test_a_revoked_key_reaches_nothing(urls, main_db, owner, tile) -> None:
    key = create_key(main_db, owner.id)
    assert get(urls["hangzhou"], layer_surfaces(REGISTERED, tile)["items"], key).status_code == 200
    assert apikeys.revoke_key(main_db, "test", key[:8], user_id=owner.id, actor="test")
    # a node worker caches a key record for 30 s (KEY_TTL), but the revocation list (polled
    # every 3 s while requests come, at once by an idle worker's first key request) names the
    # revoked key, so the record is fetched again sooner
    eventually_refused(urls, key, tile, timeout=25)
    fresh = create_key(main_db, owner.id)  # never seen by a node, revoked before its first use
    assert apikeys.revoke_key(main_db, "test", fresh[:8], user_id=owner.id, actor="test")
    refused_everywhere(urls, fresh, tile, {403})


def test_a_key_over_its_quotas_gets_no_registered_data(urls, main_db, owner, tile) -> None:
    """Quotas count data requests (features, tiles, search); descriptions and listings are
    `metadata`, which no quota counts, so they stay as the owner may see them."""
    key = create_key(main_db, owner.id, features=0, tiles=0, search=0)
    hz = urls["hangzhou"]
    for surface in ("items", "item", "items.html", "tile"):
        r = get(hz, layer_surfaces(REGISTERED, tile)[surface], key)
        assert r.status_code == 429, (surface, r.status_code, r.text[:200])
        assert "quota" in r.text and TITLES[REGISTERED] not in r.text
    r = get(urls["national"], "/ogc/collections/places/items?f=json&limit=1", key)
    assert r.status_code == 429
    assert search_check(hz, key).status_code == 429
    r = requests.get(hz + "/ogc/collections/catalogue/items?f=json", params={"tk": key},
                     timeout=30)
    assert r.status_code == 429  # records are features of the catalogue


def test_a_key_from_a_disallowed_address_or_origin_reaches_nothing(urls, main_db, owner,
                                                                   tile) -> None:
    far = create_key(main_db, owner.id, allowed=("10.0.0.0/8",))
    refused_everywhere(urls, far, tile, {403})
    assert search_check(urls["hangzhou"], far).status_code == 403
    web = create_key(main_db, owner.id, kind="browser", allowed=("https://portal.example.cn",))
    for headers in ({"Referer": "https://evil.example/map.html"}, {"Origin": "https://evil.example"},
                    {}):
        refused_everywhere(urls, web, tile, {403}, headers)
    r = get(urls["hangzhou"], layer_surfaces(REGISTERED, tile)["items"], web,
            {"Referer": "https://portal.example.cn/map.html"})
    assert r.status_code == 200 and r.json()["features"]  # from its own origin it works


def test_a_key_of_a_disabled_or_deleted_owner_reaches_nothing(federation, urls, main_db, tile,
                                                              capsys, monkeypatch) -> None:
    user = accounts.create(main_db, "places_key_gone", PASSWORD, roles=["developer"])
    key = create_key(main_db, user.id)
    hz_items = layer_surfaces(REGISTERED, tile)["items"]
    for base in (urls["hangzhou"], urls["national"], urls["zhejiang"]):
        assert get(base, LISTINGS["collections"], key).status_code == 200  # cached by the nodes
    assert get(urls["hangzhou"], hz_items, key).status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    config = str(Path(federation.config_dir) / "federation.yml")
    assert cli.main(["--config", config, "users", "disable", "places_key_gone"]) == 0
    capsys.readouterr()
    # the owner's revocation reaches the nodes' lists (polled every 3 s while requests come),
    # which makes them fetch the key record again: well within the 30 s a record is cached
    eventually_refused(urls, key, tile, timeout=25)
    for base in (urls["hangzhou"], urls["national"], urls["zhejiang"]):
        r = get(base, LISTINGS["collections"], key)
        assert r.status_code == 403 and "disabled" in r.json()["detail"]
    # a key the disabled account still holds, never used before
    refused_everywhere(urls, create_key(main_db, user.id), tile, {403})
    # a deleted account's keys are deleted with it
    doomed = accounts.create(main_db, "places_key_deleted", PASSWORD, roles=["developer"])
    deleted_key = create_key(main_db, doomed.id)
    main_db.execute("DELETE FROM auth.users WHERE id = %s", (doomed.id,))
    refused_everywhere(urls, deleted_key, tile, {403})


def test_the_search_quota_kind(urls, main_db, owner, good) -> None:
    """What the places routes ask (`require("search")`, or `check(..., kind="search")`) counts
    against the key's `search` quota at that node, shown in the key's record and the node's
    usage."""
    key = create_key(main_db, owner.id, search=2)
    hz = urls["hangzhou"]
    assert [search_check(hz, key).status_code for _ in range(4)] == [204, 204, 429, 429]
    r = search_check(hz, key)
    assert r.status_code == 429 and "search quota" in r.json()["detail"]
    assert search_check(urls["zhejiang"], key).status_code == 204  # quotas are per node
    # the other kinds are not touched
    assert get(hz, "/ogc/collections/poi/items?f=json&limit=1", key).status_code == 200

    admin = accounts.create(main_db, "places_key_admin", PASSWORD, roles=["hangzhou:admin"])
    token = login_pkce(urls["national"], admin.username, PASSWORD)

    def counted() -> dict[str, int]:
        rows = requests.get(hz + "/auth/usage", params={"key_id": key[:8]},
                            headers=bearer(token), timeout=30).json()["usage"]
        return {row["kind"]: row["count"] for row in rows}

    assert wait_for(lambda: counted().get("search") == 2, timeout=30)
    # the developer's own view of the key: every kind's quota, search included
    dev = login_pkce(urls["national"], "places_key_dev", PASSWORD)
    keys = requests.get(urls["national"] + "/sso/api/keys", headers=bearer(dev),
                        timeout=30).json()["keys"]
    record = next(k for k in keys if k["key_id"] == key[:8])
    assert record["quotas"] == {**apikeys.DEFAULT_QUOTAS, "search": 2}
    default = next(k for k in keys if k["key_id"] == good[:8])
    assert default["quotas"]["search"] == apikeys.DEFAULT_QUOTAS["search"]
    # and on the developer's key page, beside the other kinds
    page = _page_session(urls, "places_key_dev").get(urls["national"] + "/sso/keys", timeout=30)
    row = re.search(rf"<code>{key[:8]}</code>.*?</tr>", page.text, re.DOTALL)
    assert row and "search 2" in row.group(0) and "tiles 100000" in row.group(0)


def test_a_key_recorded_before_the_search_kind_gets_its_default(urls, main_db, owner) -> None:
    key = create_key(main_db, owner.id)
    main_db.execute("UPDATE auth.api_keys SET quotas = quotas - 'search' WHERE key_id = %s",
                    (key[:8],))
    assert search_check(urls["hangzhou"], key).status_code == 204  # not a quota of 0
    dev = login_pkce(urls["national"], "places_key_dev", PASSWORD)
    keys = requests.get(urls["national"] + "/sso/api/keys", headers=bearer(dev),
                        timeout=30).json()["keys"]
    record = next(k for k in keys if k["key_id"] == key[:8])
    assert record["quotas"]["search"] == apikeys.DEFAULT_QUOTAS["search"]


def _page_session(urls: dict[str, str], username: str) -> requests.Session:
    """Signed in at the main node's key page (its SSO session)."""
    s = requests.Session()
    login = s.get(urls["national"] + "/sso/login?next=/sso/keys", timeout=30)
    r = s.post(urls["national"] + "/sso/login", data={**form_fields(login.text),
               "username": username, "password": PASSWORD}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/sso/keys"
    return s


def test_search_kind_in_process_and_visible_layers(federation, main_db, owner) -> None:
    """`AccessControl.check(scope, None, "search")` then `visible_layers(scope)`: what a
    places route does, for a key alone, a key over its search quota, and no key."""
    from geoplat_settings import NodeRuntime
    from services.access.apikeys import KeyChecker
    from services.access.control import AccessControl
    from services.access.install import JwksStore
    from services.access.tokens import TokenValidator

    runtime = NodeRuntime.load(Path(federation.resolve(federation.var_dir)) / "nodes" / "hangzhou")
    auth = runtime.auth
    db = Database(runtime.dsn, maxconn=2)
    key = create_key(main_db, owner.id, search=1)

    def scope(headers: dict[str, str]) -> dict:
        return {"type": "http", "method": "GET", "path": "/api/places/search",
                "query_string": b"", "client": ("127.0.0.1", 1),
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    async def run() -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            access = AccessControl(auth.node_id, dict(auth.levels), db, TokenValidator(
                auth.issuer, auth.jwks_url, auth.audience, http, store=JwksStore(db)))
            access.keys = KeyChecker(db, auth.node_id, main_db=main_db, node_client=None,
                                     public_requires_key=False)
            keyed = scope({"X-Api-Key": key})
            d = await access.check(keyed, None, "search")
            assert d.allowed and d.principal is not None and d.principal.via_key
            assert d.principal.sub == str(owner.id)
            visible = await access.visible_layers(keyed)
            assert REGISTERED in visible and RESTRICTED not in visible
            anon = scope({})
            assert (await access.check(anon, None, "search")).allowed
            assert REGISTERED not in await access.visible_layers(anon)
            over = await access.check(scope({"X-Api-Key": key}), None, "search")
            assert over.status == 429
            await access.keys.flush()

    asyncio.run(run())
