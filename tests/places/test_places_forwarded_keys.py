"""A node forwarding a place-name query states the key it checked (issue 13,
services/access/forwarding.py): with its own `forward` token from the main node beside
`X-Geoplat-Forwarded-Key`, so the children apply the key as its owner's without counting it
again or applying its origin/IP binding to the forwarding node.

Attacks first: the statement without a node token, with a forged, an expired, a user's, a
grandparent's or another scope's token, or sent to a node that has no parent, is ignored (the
caller is as anonymous as without the key), and a node never passes on a statement it ignored.
A `forward` token a child received cannot be replayed as its parent's registry push.
Then what it is for: one main-node query answered by Hangzhou counts once against the key's
`search` quota; a server key bound to the caller's address alone, and a browser key from its
origin, reach Hangzhou's `registered` door plates through the main node; a revoked key, or a
disabled owner's, stated by the parent is still refused by the child.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from sso_client import bearer, login_pkce

from geoplat_settings import NodeRuntime
from services.access import apikeys
from services.access.forwarding import FORWARDED_KEY_HEADER, NODE_TOKEN_HEADER
from services.sso import accounts
from services.sso.signing import Signer

ADDRESS = "浙江省杭州市上城区宏二路2号"
PASSWORD = "places-forward-password-1"
CALLER_IP = "127.0.0.2"  # a loopback address of the caller's own: the nodes talk from 127.0.0.1


def create_key(main_db: Any, user_id: int, kind: str = "server",
               allowed: tuple[str, ...] = ("127.0.0.0/8",), **quotas: int) -> str:
    value, _ = apikeys.create_key(main_db, "test", user_id, "places-forward", kind,
                                  list(allowed), quotas=quotas or None, actor="test")
    return value


@pytest.fixture(scope="module")
def owner(main_db) -> accounts.User:
    return accounts.create(main_db, "places_forward_dev", PASSWORD, roles=["developer"])


@pytest.fixture(scope="module")
def good(main_db, owner) -> str:
    return create_key(main_db, owner.id)


def node_auth(federation, node_id: str) -> Any:
    return NodeRuntime.load(Path(federation.resolve(federation.var_dir)) / "nodes" / node_id).auth


def node_token(federation, node_id: str, scope: str = "forward") -> str:
    """A client-credentials token of `node-<id>`, asked as the node itself asks it."""
    auth = node_auth(federation, node_id)
    r = httpx.post(auth.token_url, data={"grant_type": "client_credentials", "scope": scope},
                   auth=(auth.client_id, auth.client_secret), timeout=30)
    r.raise_for_status()
    assert r.json()["scope"] == scope
    return r.json()["access_token"]


def node_claims(federation, node_id: str, **changes: Any) -> dict[str, Any]:
    auth = node_auth(federation, node_id)
    now = int(time.time())
    return {"iss": auth.issuer, "aud": auth.audience, "iat": now, "nbf": now, "exp": now + 300,
            "jti": f"forged-{now}", "client_id": f"node-{node_id}", "scope": "forward",
            "gty": "client_credentials", "sub": f"node-{node_id}", "roles": [], **changes}


def geocode(base: str, *, key: str | None = None, headers: dict[str, str] | None = None,
            local_address: str | None = None, path: str = "/api/places/geocode"
            ) -> httpx.Response:
    params = {"address": ADDRESS} if path == "/api/places/geocode" else {
        "ds": json.dumps({"keyWord": ADDRESS}, ensure_ascii=False)}
    if key:
        params["tk"] = key
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    with httpx.Client(transport=transport, timeout=60) as client:
        return client.get(base + path, params=params, headers=headers or {})


def kinds(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return [f["properties"]["kind"] for f in r.json()["features"]]


def door_plate_from_hangzhou(r: httpx.Response) -> bool:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    body = r.json()
    best = body["features"][0]["properties"] if body["features"] else {}
    return best.get("kind") == "address" and best.get("node") == "hangzhou" and \
        body["partial"] == []


@pytest.fixture(scope="module")
def usage(urls, main_db):
    """key id -> {node: {kind: count today}}, from each node's `GET /auth/usage`."""
    accounts.create(main_db, "places_forward_admin", PASSWORD, platform_admin=True)
    token = bearer(login_pkce(urls["national"], "places_forward_admin", PASSWORD))

    def read(key: str) -> dict[str, dict[str, int]]:
        out = {}
        for node in ("national", "zhejiang", "hangzhou"):
            r = requests.get(urls[node] + "/auth/usage", params={"key_id": key[:8], "days": 1},
                             headers=token, timeout=30)
            assert r.status_code == 200, r.text[:300]
            out[node] = {row["kind"]: row["count"] for row in r.json()["usage"]}
        return out
    return read


# --- attacks: a statement nobody proved is ignored ---------------------------------------------

def test_a_stated_key_without_the_parents_node_token_is_ignored(federation, urls, main_db,
                                                                good) -> None:
    hz = urls["hangzhou"]
    assert "address" in kinds(geocode(hz, key=good))  # the key itself reaches the door plates
    assert "address" not in kinds(geocode(hz))        # anonymous callers do not
    stated = {FORWARDED_KEY_HEADER: good}
    signer = Signer(main_db)
    forged_key = RSAKey.generate_key(2048)
    forged = jwt.encode({"alg": "RS256", "kid": signer.kid, "typ": "at+jwt"},
                        node_claims(federation, "zhejiang"), forged_key)
    expired = signer.sign(node_claims(federation, "zhejiang", iat=int(time.time()) - 900,
                                      nbf=int(time.time()) - 900,
                                      exp=int(time.time()) - 600), typ="at+jwt")
    unsigned = forged.rsplit(".", 1)[0] + "."
    accounts.create(main_db, "places_forward_user", PASSWORD)
    user_token = login_pkce(urls["national"], "places_forward_user", PASSWORD)["access_token"]
    cases = {
        "no node token": {},
        "forged signature": {NODE_TOKEN_HEADER: forged},
        "no signature": {NODE_TOKEN_HEADER: unsigned},
        "expired": {NODE_TOKEN_HEADER: expired},
        "a user's token": {NODE_TOKEN_HEADER: user_token},
        # the main node is Hangzhou's grandparent: only a node's parent forwards to it
        "not the parent": {NODE_TOKEN_HEADER: node_token(federation, "national")},
        "another scope": {NODE_TOKEN_HEADER: node_token(federation, "zhejiang", "keys")},
        "as the bearer": {"Authorization": "Bearer " + node_token(federation, "zhejiang")},
        "junk": {NODE_TOKEN_HEADER: "x" * 5000},
    }
    for name, headers in cases.items():
        for path in ("/api/places/geocode", "/geocoder"):
            r = geocode(hz, headers={**stated, **headers}, path=path)
            if path == "/geocoder":
                assert r.status_code == 200, (name, r.text[:300])
                assert (r.json().get("location") or {}).get("level") != "门址", name
            else:
                assert "address" not in kinds(r), name
    # a real token of the parent with the statement is what the child trusts
    real = {NODE_TOKEN_HEADER: node_token(federation, "zhejiang")}
    assert "address" in kinds(geocode(hz, headers={**stated, **real}))
    # for place-name queries only: parents forward nothing else
    r = requests.get(hz + "/ogc/collections/addresses/items", params={"f": "json", "limit": 1},
                     headers={**stated, **real}, timeout=30)
    assert r.status_code == 401, r.text[:300]
    assert requests.get(hz + "/ogc/collections/addresses/items",
                        params={"f": "json", "limit": 1, "tk": good},
                        timeout=30).status_code == 200


def test_a_node_never_passes_on_a_statement_it_ignored(federation, urls, good) -> None:
    """The main node has no parent, so it trusts no statement, and forwards only the key its
    own check accepted (none here): Hangzhou's door plates stay out of its answer. Zhejiang,
    given a forged statement, does not launder it with its own token either."""
    stated = {FORWARDED_KEY_HEADER: good}
    own = node_token(federation, "national")
    for headers in (stated, {**stated, NODE_TOKEN_HEADER: own}):
        r = geocode(urls["national"], headers=headers)
        assert "address" not in kinds(r)
    forged = {**stated, NODE_TOKEN_HEADER: node_token(federation, "hangzhou")}  # not its parent
    assert "address" not in kinds(geocode(urls["zhejiang"], headers=forged))
    # while the same query with the key gets them, through both
    assert door_plate_from_hangzhou(geocode(urls["national"], key=good))


def test_a_forward_token_cannot_be_replayed_as_the_parents_registry_push(federation,
                                                                         urls) -> None:
    """Hangzhou receives Zhejiang's `forward` token with every forwarded query; pushing to the
    main node as Zhejiang needs Zhejiang's token of scope `geoplat`."""
    body = {"sender": "zhejiang", "batch": 0, "changes": []}
    r = requests.post(urls["national"] + "/registry/api/push", json=body,
                      headers=bearer(node_token(federation, "zhejiang")), timeout=30)
    assert r.status_code == 403 and "scope geoplat" in r.json()["detail"], r.text[:300]
    # the push scope gets past the check (and is refused for its body, changing nothing)
    r = requests.post(urls["national"] + "/registry/api/push", json=body,
                      headers=bearer(node_token(federation, "zhejiang", "geoplat")), timeout=30)
    assert r.status_code == 400 and "batch" in r.json()["detail"], r.text[:300]


# --- what it is for -----------------------------------------------------------------------------

def test_one_main_node_query_counts_once(urls, main_db, owner, usage) -> None:
    """A key with a small `search` quota is counted in the database at once (within
    NEAR_QUOTA of its quota), so each node's count is final when the answer arrives."""
    key = create_key(main_db, owner.id, search=5)
    assert door_plate_from_hangzhou(geocode(urls["national"], key=key))
    assert usage(key) == {"national": {"search": 1}, "zhejiang": {}, "hangzhou": {}}
    r = geocode(urls["national"], key=key, path="/geocoder")  # Tianditu's form: the same
    assert r.status_code == 200 and r.json()["location"]["level"] == "门址", r.text[:300]
    assert usage(key) == {"national": {"search": 2}, "zhejiang": {}, "hangzhou": {}}
    # a query at Zhejiang that Hangzhou answers counts at Zhejiang
    assert door_plate_from_hangzhou(geocode(urls["zhejiang"], key=key))
    assert usage(key) == {"national": {"search": 2}, "zhejiang": {"search": 1}, "hangzhou": {}}


def test_a_key_bound_to_the_callers_address_or_origin_works_through_the_main_node(
        urls, main_db, owner) -> None:
    key = create_key(main_db, owner.id, allowed=(f"{CALLER_IP}/32",))
    # the binding holds for the caller: from another address every node refuses it
    for node in ("national", "zhejiang", "hangzhou"):
        assert geocode(urls[node], key=key).status_code == 403, node
    assert "address" in kinds(geocode(urls["hangzhou"], key=key, local_address=CALLER_IP))
    # the main node checked it against the caller; its children do not check it against
    # the main node's address (127.0.0.1)
    r = geocode(urls["national"], key=key, local_address=CALLER_IP)
    assert door_plate_from_hangzhou(r)
    r = geocode(urls["national"], key=key, local_address=CALLER_IP, path="/geocoder")
    assert r.status_code == 200 and r.json()["location"]["level"] == "门址", r.text[:300]
    # a browser key: the caller's Origin at the main node; its children see none
    web = create_key(main_db, owner.id, kind="browser", allowed=("https://portal.example.cn",))
    assert geocode(urls["national"], key=web).status_code == 403
    r = geocode(urls["national"], key=web, headers={"Origin": "https://portal.example.cn"})
    assert door_plate_from_hangzhou(r)


def test_a_revoked_key_or_a_disabled_owners_key_stated_by_the_parent_is_refused(
        federation, urls, main_db, owner, usage) -> None:
    hz = urls["hangzhou"]
    parent = {NODE_TOKEN_HEADER: node_token(federation, "zhejiang")}
    # a key Hangzhou would refuse from this address (10/8 only): stated by its parent it is
    # applied, at registered level, and not counted at Hangzhou
    far = create_key(main_db, owner.id, allowed=("10.0.0.0/8",), search=5)
    assert geocode(hz, key=far).status_code == 403
    assert "address" in kinds(geocode(hz, headers={**parent, FORWARDED_KEY_HEADER: far}))
    assert usage(far)["hangzhou"] == {}
    revoked = create_key(main_db, owner.id)
    assert apikeys.revoke_key(main_db, "test", revoked[:8], user_id=owner.id, actor="test")
    r = geocode(hz, headers={**parent, FORWARDED_KEY_HEADER: revoked})
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    r = geocode(hz, headers={**parent, FORWARDED_KEY_HEADER: "0" * 32})
    assert r.status_code == 403  # unknown
    gone = accounts.create(main_db, "places_forward_gone", PASSWORD, roles=["developer"])
    disabled = create_key(main_db, gone.id)
    main_db.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (gone.id,))
    r = geocode(hz, headers={**parent, FORWARDED_KEY_HEADER: disabled})
    assert r.status_code == 403 and "disabled" in r.json()["detail"]
