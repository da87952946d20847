"""Single sign-on: a real OIDC client (Authlib's OAuth2Session) against the main node, tokens
used at the Hangzhou node, grants decided there (issue 4)."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from sso_client import CLI_CLIENT, bearer, form_fields, login_pkce
from waiting import wait_for

from services.sso import accounts

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def hz_admin(main_db, urls) -> dict:
    accounts.create(main_db, "sso_hz_admin", PASSWORD, roles=["hangzhou:admin"])
    return login_pkce(urls["national"], "sso_hz_admin", PASSWORD)


def test_discovery_and_jwks(urls) -> None:
    meta = requests.get(urls["national"] + "/sso/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == urls["national"] + "/sso"
    assert "S256" in meta["code_challenge_methods_supported"]
    assert {"authorization_code", "client_credentials", "refresh_token"} <= set(
        meta["grant_types_supported"])
    keys = requests.get(meta["jwks_uri"], timeout=10).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and "d" not in k for k in keys)


def test_pkce_login_then_grant_lifecycle_at_hangzhou(main_db, urls, hz_admin) -> None:
    accounts.create(main_db, "sso_alice", PASSWORD)
    token = login_pkce(urls["national"], "sso_alice", PASSWORD)
    hz = urls["hangzhou"]
    items = hz + "/ogc/collections/control_points/items?f=json&limit=2"

    # the id_token is for the client, signed with a key of the JWKS
    jwks = KeySet.import_key_set(requests.get(urls["national"] + "/sso/jwks", timeout=10).json())
    claims = jwt.decode(token["id_token"], jwks, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(aud={"essential": True, "value": CLI_CLIENT},
                          iss={"essential": True, "value": urls["national"] + "/sso"},
                          exp={"essential": True}).validate(claims)
    assert claims["preferred_username"] == "sso_alice"

    assert requests.get(items, headers=bearer(token), timeout=30).status_code == 403
    r = requests.post(hz + "/auth/grants", json={"layer": "control_points", "reason": "planning study"},
                      headers=bearer(token), timeout=10)
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["status"] == "pending"
    assert requests.get(items, headers=bearer(token), timeout=30).status_code == 403

    # the user cannot approve their own request; the Hangzhou admin can
    r = requests.post(f"{hz}/auth/grants/{grant['id']}/approve", json={"days": 30},
                      headers=bearer(token), timeout=10)
    assert r.status_code == 403
    r = requests.post(f"{hz}/auth/grants/{grant['id']}/approve", json={"days": 30},
                      headers=bearer(hz_admin), timeout=10)
    assert r.status_code == 200, r.text
    r = _answer(items, token, 200, 10, "the approved grant opens control_points")
    assert r.status_code == 200, r.text
    assert r.json()["features"]
    listing = requests.get(hz + "/ogc/collections?f=json", headers=bearer(token), timeout=30).json()
    assert "control_points" in [c["id"] for c in listing["collections"]]

    r = requests.post(f"{hz}/auth/grants/{grant['id']}/revoke", headers=bearer(hz_admin), timeout=10)
    assert r.status_code == 200, r.text
    assert _answer(items, token, 403, 10, "the revoked grant closes control_points").status_code == 403

    # a grant that has expired gives no access either: to a user who never read data (nothing
    # of theirs is in any worker's grant cache, so the answer is the database's)
    accounts.create(main_db, "sso_alice_late", PASSWORD)
    late = login_pkce(urls["national"], "sso_alice_late", PASSWORD)
    g2 = requests.post(hz + "/auth/grants", json={"layer": "control_points"}, headers=bearer(late),
                       timeout=10).json()
    r = requests.post(f"{hz}/auth/grants/{g2['id']}/approve",
                      json={"expires_at": "2000-01-01T00:00:00Z"}, headers=bearer(hz_admin),
                      timeout=10)
    assert r.status_code == 200
    assert requests.get(items, headers=bearer(late), timeout=30).status_code == 403

    # grants are audited at the node that decides them (Hangzhou), not at the main node
    r = requests.get(hz + "/auth/audit", params={"limit": 200}, headers=bearer(hz_admin),
                     timeout=10)
    assert r.status_code == 200 and r.json()["node"] == "hangzhou", r.text
    trail = {(e["event"], e["actor"], e["detail"]["grant_id"]) for e in r.json()["events"]
             if e["event"].startswith("grant.") and e["subject"] == "control_points"}
    assert {("grant.request", "sso_alice", grant["id"]),
            ("grant.approve", "sso_hz_admin", grant["id"]),
            ("grant.revoke", "sso_hz_admin", grant["id"]),
            ("grant.request", "sso_alice_late", g2["id"]),
            ("grant.approve", "sso_hz_admin", g2["id"])} <= trail, trail
    assert main_db.one("SELECT count(*) AS n FROM auth.audit WHERE node_id = 'hangzhou' "
                       "AND event LIKE 'grant.%%'")["n"] == 0


def test_refresh_and_revocation(main_db, urls) -> None:
    accounts.create(main_db, "sso_bob", PASSWORD)
    token = login_pkce(urls["national"], "sso_bob", PASSWORD)
    client = OAuth2Session(CLI_CLIENT, token=token)
    fresh = client.refresh_token(urls["national"] + "/sso/token")
    assert fresh["access_token"] != token["access_token"]
    # the old refresh token was rotated out
    with pytest.raises(OAuthError):
        OAuth2Session(CLI_CLIENT, token=token).refresh_token(urls["national"] + "/sso/token")
    r = requests.post(urls["national"] + "/sso/revoke",
                      data={"token": fresh["refresh_token"], "token_type_hint": "refresh_token",
                            "client_id": CLI_CLIENT}, timeout=10)
    assert r.status_code == 200
    with pytest.raises(OAuthError):
        OAuth2Session(CLI_CLIENT, token=fresh).refresh_token(urls["national"] + "/sso/token")
    info = requests.get(urls["national"] + "/sso/userinfo", headers=bearer(fresh), timeout=10)
    assert info.status_code == 200 and info.json()["preferred_username"] == "sso_bob"


def test_sign_in_once_use_hangzhou_pages(main_db, urls, hz_admin) -> None:
    """Signed in at the main node's page, the Hangzhou node's sign-in needs no password."""
    accounts.create(main_db, "sso_carol", PASSWORD, roles=["hangzhou:publisher"])
    browser = requests.Session()
    login_pkce(urls["national"], "sso_carol", PASSWORD, browser=browser)  # main-node session
    r = browser.get(urls["hangzhou"] + "/auth/login", timeout=30)  # follows the whole dance
    assert r.status_code == 200, r.text[:300]
    assert r.url.startswith(urls["hangzhou"] + "/ogc")
    page = browser.get(urls["hangzhou"] + "/ogc/collections?f=html", timeout=30).text
    assert "control_points" in page  # publisher of Hangzhou sees the restricted layer
    assert "control_points" not in requests.get(urls["hangzhou"] + "/ogc/collections?f=html",
                                         timeout=30).text


def test_node_sign_in_returns_to_the_page_that_asked(main_db, urls) -> None:
    """`/auth/login?next=/publish` comes back to /publish; a `next` off the node goes to /ogc."""
    accounts.create(main_db, "sso_dave", PASSWORD, roles=["hangzhou:publisher"])
    browser = requests.Session()
    login_pkce(urls["national"], "sso_dave", PASSWORD, browser=browser)  # main-node session
    hz = urls["hangzhou"]
    r = browser.get(hz + "/auth/login", params={"next": "/publish?from=test"}, timeout=30)
    assert r.status_code == 200 and r.url == hz + "/publish?from=test", r.url
    assert 'type="file"' in r.text
    # the portal's view lives in the fragment: it comes back too (the callback's Location)
    view = "/#c=120.1600000,30.2700000&z=12&g=c&b=vec&lb=1&l=poi:1"
    r = browser.get(hz + "/auth/login", params={"next": view}, timeout=30)
    assert r.history[-1].headers["location"] == view, [h.headers for h in r.history]
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x",
                "/ok\r\nSet-Cookie: x=1", "publish", "/" + "a" * 2048):
        r = browser.get(hz + "/auth/login", params={"next": bad}, timeout=30)
        assert r.status_code == 200 and r.url.startswith(hz + "/ogc"), (bad, r.url)


def test_login_page_has_csrf_and_exact_redirects(urls) -> None:
    r = requests.get(urls["national"] + "/sso/login", timeout=10)
    assert "csrf_token" in form_fields(r.text)


def test_logout_redirects_only_to_registered_client_origins(urls) -> None:
    """RP-initiated logout: back to the node that asked, never to a foreign site."""
    sso = urls["national"] + "/sso/logout"
    home = urls["hangzhou"] + "/"
    r = requests.post(urls["hangzhou"] + "/auth/logout", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"].startswith(sso + "?")
    r = requests.get(r.headers["Location"], allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == home
    r = requests.get(sso, params={"client_id": "node-hangzhou", "post_logout_redirect_uri": home,
                                  "state": "s1"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == home + "?state=s1"
    for client, uri in (("node-hangzhou", "https://evil.example/"),
                        ("node-hangzhou", "javascript:alert(1)"),
                        ("node-hangzhou", urls["zhejiang"] + "/"),  # another client's origin
                        ("no-such-client", home), ("", home)):
        r = requests.get(sso, params={"client_id": client, "post_logout_redirect_uri": uri},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 200 and "Location" not in r.headers, (client, uri)
        assert "Signed out" in r.text


def _answer(url: str, token: dict, status: int, timeout: float, message: str, *,
            interval: float | None = None) -> requests.Response:
    """The first answer to `token` at `url` with `status`, polled (grant caches and revocation
    lists are refreshed within seconds)."""
    answers: list[requests.Response] = []

    def has_status() -> bool:
        answers.append(requests.get(url, headers=bearer(token), timeout=30))
        return answers[-1].status_code == status

    wait_for(has_status, timeout, message, interval=interval)
    return answers[-1]


def _until_refused(url: str, token: dict, seconds: float = 15.0) -> requests.Response:
    answers: list[requests.Response] = []

    def refused() -> bool:
        answers.append(requests.get(url, headers=bearer(token), timeout=10))
        return answers[-1].status_code != 200

    wait_for(refused, seconds, f"{url} refuses the token", interval=0.5)
    return answers[-1]


def test_revoked_access_tokens_stop_working_at_every_node(main_db, urls) -> None:
    """RFC 7009 revocation of an access token, and signing out at the main node, reach the
    other nodes within seconds (they validate tokens locally)."""
    accounts.create(main_db, "revoke_at", "revoke-password-1")
    me = urls["hangzhou"] + "/auth/me"
    first = login_pkce(urls["national"], "revoke_at", "revoke-password-1")
    second = login_pkce(urls["national"], "revoke_at", "revoke-password-1")
    assert requests.get(me, headers=bearer(first), timeout=10).status_code == 200
    r = requests.post(urls["national"] + "/sso/revoke", timeout=10, data={
        "token": first["access_token"], "token_type_hint": "access_token",
        "client_id": CLI_CLIENT})
    assert r.status_code == 200
    r = _until_refused(me, first)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert requests.get(me, headers=bearer(second), timeout=10).status_code == 200  # only that one
    # a forged "token" is not revoked (and not an error): RFC 7009 answers 200 for unknown tokens
    assert requests.post(urls["national"] + "/sso/revoke", timeout=10, data={
        "token": "x.y.z", "client_id": CLI_CLIENT}).status_code == 200

    # single sign-out: the browser signs out at the main node, every token of the user stops
    browser = requests.Session()
    third = login_pkce(urls["national"], "revoke_at", "revoke-password-1", browser=browser)
    assert requests.get(me, headers=bearer(third), timeout=10).status_code == 200
    page = browser.get(urls["national"] + "/sso/logout", timeout=10)  # the sign-out form
    assert page.status_code == 200
    assert browser.post(urls["national"] + "/sso/logout", data=form_fields(page.text),
                        timeout=10).status_code == 200
    # signing in again at once (the same second, as a browser does after signing out) gives a
    # token the sign-out does not cover
    fresh = login_pkce(urls["national"], "revoke_at", "revoke-password-1")
    for token in (second, third):
        r = _until_refused(me, token)
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    r = requests.get(me, headers=bearer(fresh), timeout=10)
    assert r.status_code == 200, r.text
    assert requests.get(urls["national"] + "/sso/revocations", params={"after": "x"},
                        timeout=10).status_code == 400
