"""Access matrix (issue 4): roles x surfaces x access levels on the Hangzhou node.

Hangzhou's `poi` is public, `addresses` registered, `control_points` restricted. Each cell asserts the
exact status, and that a layer the caller may not use is never named in a listing, the landing
page, the OpenAPI document or an HTML page. `key` is a developer key sent alone (no token): it
acts for its registered owner, so it reaches `registered` layers, and never `restricted` ones
(401: those need a signed-in token with a grant) (issue 13).
"""

from __future__ import annotations

import httpx
import pytest
import requests
from sso_client import bearer, login_pkce

from nodes import federation as federation_mod
from services.access import apikeys
from services.db import Database
from services.sso import accounts

PASSWORD = "matrix-password-1"
ROLES = {  # role -> (roles given at the main node, platform admin); "key": a key alone
    "anonymous": None,
    "key": (["developer"], False),
    "user": ([], False),
    "developer": (["developer"], False),
    "publisher": (["hangzhou:publisher"], False),
    "other_node_admin": (["zhejiang:admin"], False),
    "node_admin": (["hangzhou:admin"], False),
    "platform_admin": ([], True),
}
LAYERS = {"poi": "public", "addresses": "registered", "control_points": "restricted"}
TITLES = {"addresses": "门牌地址", "control_points": "测量控制点", "poi": "兴趣点"}
PRIVILEGED = {"publisher", "node_admin", "platform_admin"}


def expected(role: str, level: str) -> int:
    if level == "public":
        return 200
    if role == "anonymous":
        return 401
    if role == "key":  # a key acts for its registered owner; restricted needs a token
        return 200 if level == "registered" else 401
    if level == "registered" or role in PRIVILEGED:
        return 200
    return 403


@pytest.fixture(scope="module")
def headers(federation, urls) -> dict[str, dict[str, str]]:
    main = next(n for n in federation.nodes if n.tier == "main")
    db = Database(federation_mod.node_dsn(federation, main), maxconn=2)
    out: dict[str, dict[str, str]] = {}
    for role, spec in ROLES.items():
        if spec is None:
            out[role] = {}
            continue
        user = accounts.create(db, f"matrix_{role}", PASSWORD, roles=spec[0],
                               platform_admin=spec[1])
        if role == "key":
            value, _ = apikeys.create_key(db, "test", user.id, "matrix", "server",
                                          ["127.0.0.0/8"], actor="test")
            out[role] = {"X-Api-Key": value}
            continue
        out[role] = bearer(login_pkce(urls["national"], f"matrix_{role}", PASSWORD))
    return out


@pytest.fixture(scope="module")
def tile_of(urls, headers) -> dict[str, str]:
    """A z15 WebMercatorQuad tile holding a feature of each layer (found as node admin)."""
    import math

    out = {}
    for layer in LAYERS:
        f = requests.get(f"{urls['hangzhou']}/ogc/collections/{layer}/items?f=json&limit=1",
                         headers=headers["node_admin"], timeout=30).json()["features"][0]
        coords = f["geometry"]["coordinates"]
        while isinstance(coords[0], list):
            coords = coords[0]
        lon, lat = coords[0], coords[1]
        z = 15
        x = int((lon + 180) / 360 * 2**z)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
        out[layer] = f"WebMercatorQuad/{z}/{y}/{x}?f=mvt"
    return out


@pytest.mark.parametrize("role", list(ROLES))
def test_access_matrix(urls, headers, tile_of, role) -> None:
    hz, h = urls["hangzhou"], headers[role]

    def get(path: str) -> requests.Response:
        r = requests.get(hz + path, headers=h, timeout=60)
        r.encoding = "utf-8"  # pygeoapi's HTML declares no charset in the header
        return r

    visible = {layer for layer, level in LAYERS.items() if expected(role, level) == 200}
    hidden = set(LAYERS) - visible

    listing = get("/ogc/collections?f=json")
    assert listing.status_code == 200
    assert {c["id"] for c in listing.json()["collections"]} & set(LAYERS) == visible
    pages = {
        "landing": get("/ogc?f=json"),
        "landing.html": get("/ogc?f=html"),
        "collections": listing,
        "collections.html": get("/ogc/collections?f=html"),
        "openapi": get("/ogc/openapi?f=json"),
    }
    for name, r in pages.items():
        assert r.status_code == 200, (name, r.status_code)
        for layer in hidden:
            assert f"collections/{layer}" not in r.text, (name, layer)
            assert TITLES[layer] not in r.text, (name, layer)
    paths = pages["openapi"].json()["paths"]
    for layer in visible:
        assert f"/collections/{layer}/items" in paths
        assert TITLES[layer] in pages["collections.html"].text

    for layer, level in LAYERS.items():
        want = expected(role, level)
        surfaces = {
            "collection": f"/ogc/collections/{layer}?f=json",
            "items": f"/ogc/collections/{layer}/items?f=json&limit=2",
            "item": f"/ogc/collections/{layer}/items/1?f=json",
            "tilesets": f"/ogc/collections/{layer}/tiles?f=json",
            "tile": f"/ogc/collections/{layer}/tiles/{tile_of[layer]}",
            "items.html": f"/ogc/collections/{layer}/items?f=html&limit=2",
            "queryables": f"/ogc/collections/{layer}/queryables?f=json",
        }
        for surface, path in surfaces.items():
            r = get(path)
            assert r.status_code == want, (role, layer, surface, r.status_code, r.text[:200])
            if want != 200:
                assert r.headers["Content-Type"].startswith("application/problem+json")
                if want == 401:
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
            elif surface == "tile":
                assert len(r.content) > 0


def test_cql_post_search_is_checked_too(urls, headers) -> None:
    body = {"op": "=", "args": [{"property": "fid"}, 1]}
    r = requests.post(urls["hangzhou"] + "/ogc/collections/control_points/items?f=json", json=body,
                      headers={"Content-Type": "application/query-cql-json"}, timeout=30)
    assert r.status_code == 401
    r = requests.post(urls["hangzhou"] + "/ogc/collections/control_points/items?f=json", json=body,
                      headers={"Content-Type": "application/query-cql-json",
                               **headers["node_admin"]}, timeout=30)
    assert r.status_code == 200, r.text[:300]


def test_other_nodes_have_their_own_levels(urls, headers) -> None:
    zj = urls["zhejiang"]
    r = requests.get(zj + "/ogc/collections/contours/items?f=json&limit=1",
                     headers=headers["node_admin"], timeout=30)
    assert r.status_code == 403  # Hangzhou's admin has no say over Zhejiang's layers
    r = requests.get(zj + "/ogc/collections/contours/items?f=json&limit=1",
                     headers=headers["other_node_admin"], timeout=30)
    assert r.status_code == 200
    r = requests.get(urls["national"] + "/ogc/collections/places/items?f=json&limit=1", timeout=30)
    assert r.status_code == 401
    r = requests.get(urls["national"] + "/ogc/collections/places/items?f=json&limit=1",
                     headers=headers["user"], timeout=30)
    assert r.status_code == 200


def test_hook_for_tile_services(federation, urls, headers) -> None:
    """`AccessControl.check`/`visible`, as the WMTS/WMS/TMS and Tianditu routes call them."""
    import asyncio
    from pathlib import Path

    from geoplat_settings import NodeRuntime
    from services.access.apikeys import KeyChecker
    from services.access.control import AccessControl
    from services.access.install import JwksStore
    from services.access.tokens import TokenValidator

    runtime = NodeRuntime.load(Path(federation.resolve(federation.var_dir)) / "nodes" / "hangzhou")
    auth = runtime.auth
    db = Database(runtime.dsn, maxconn=2)
    main = next(n for n in federation.nodes if n.tier == "main")
    main_db = Database(federation_mod.node_dsn(federation, main), maxconn=2)

    def scope(h: dict[str, str]) -> dict:
        return {"type": "http", "method": "GET", "path": "/wmts", "query_string": b"",
                "headers": [(k.lower().encode(), v.encode()) for k, v in h.items()],
                "client": ("127.0.0.1", 1)}

    async def run(requires_key: bool) -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:  # one per event loop
            await checks(requires_key, http)

    async def checks(requires_key: bool, http: httpx.AsyncClient) -> None:
        access = AccessControl(
            auth.node_id, dict(auth.levels), db,
            TokenValidator(auth.issuer, auth.jwks_url, auth.audience, http, store=JwksStore(db)),
            public_requires_key=requires_key)
        access.keys = KeyChecker(db, auth.node_id, main_db=main_db, node_client=None,
                                 public_requires_key=requires_key)
        anon, admin, user = scope({}), scope(headers["node_admin"]), scope(headers["user"])
        d = await access.check(anon, "vec", "tiles")  # e-map layer, not in the layer config
        assert d.allowed is (not requires_key) and (d.allowed or d.status == 401)
        assert (await access.check(admin, "vec", "tiles")).allowed
        assert (await access.check(anon, "control_points", "tiles")).status == 401
        assert (await access.check(user, "control_points", "tiles")).status == 403
        assert (await access.check(user, "vec", "tiles", level="restricted")).status == 403
        assert (await access.check(admin, "control_points", "maps")).allowed
        assert await access.visible(anon, ["vec", "control_points", "poi"]) == ["vec", "poi"]
        assert await access.visible(admin, ["vec", "control_points"]) == ["vec", "control_points"]
        bad = scope({"Authorization": "Bearer x.y.z"})
        assert (await access.check(bad, "vec", "tiles")).status == 401
        # a key alone acts for its owner: registered layers on every tile surface, not restricted
        key = headers["key"]
        assert (await access.check(scope(key), "vec", "tiles")).allowed
        assert (await access.check(scope(key), "addresses", "tiles")).allowed
        assert (await access.check(scope(key), "vec", "maps", level="registered")).allowed
        assert (await access.check(scope(key), "control_points", "tiles")).status == 401
        assert (await access.check(scope(key), "vec", "tiles", level="restricted")).status == 401
        keyed = scope(key)  # capabilities: what the checked caller may see
        assert (await access.check(keyed, None, "metadata")).allowed
        assert await access.visible(keyed, ["vec", "addresses", "control_points"]) == ["vec", "addresses"]
        assert await access.visible_layers(keyed) == {
            layer for layer, level in access.levels.items() if level != "restricted"}
        assert {"poi", "addresses"} <= await access.visible_layers(keyed)
        assert "addresses" not in await access.visible_layers(anon)

    asyncio.run(run(False))
    asyncio.run(run(True))
