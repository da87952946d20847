"""Attacks on sign-on and access control are refused, never with a 5xx (issue 4)."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws, jwt
from joserfc.jwk import RSAKey
from sso_client import CLI_CLIENT, CLI_REDIRECT, bearer, form_fields, login_pkce

from services.sso import accounts

PASSWORD = "attack-password-1"


@pytest.fixture(scope="module")
def good(main_db, urls) -> dict:
    accounts.create(main_db, "atk_admin", PASSWORD, roles=["hangzhou:admin"])
    return login_pkce(urls["national"], "atk_admin", PASSWORD)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return json.loads(jws.extract_compact(token.encode()).payload)


def forged(main_db, urls, **changes) -> str:
    """A token signed with the real key but with changed claims (aud, iss, exp...)."""
    row = main_db.one("SELECT kid, private_pem FROM auth.signing_keys WHERE active "
                      "ORDER BY created_at DESC LIMIT 1")
    now = int(time.time())
    claims = {"iss": urls["national"] + "/sso", "aud": "geoplat-demo", "sub": "1", "iat": now,
              "exp": now + 300, "roles": ["platform_admin"], "preferred_username": "x"}
    claims.update(changes)
    return jwt.encode({"alg": "RS256", "kid": row["kid"], "typ": "at+jwt"}, claims,
                      RSAKey.import_key(row["private_pem"]), algorithms=["RS256"])


def assert_refused(urls, token: str) -> None:
    r = requests.get(urls["hangzhou"] + "/ogc/collections/control_points/items?f=json&limit=1",
                     headers=bearer(token), timeout=30)
    assert r.status_code == 401, (r.status_code, r.text[:200])
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    listing = requests.get(urls["hangzhou"] + "/ogc/collections?f=json", headers=bearer(token),
                           timeout=30)
    assert listing.status_code == 401


def test_valid_forgery_baseline(main_db, urls) -> None:
    """The forging helper itself makes accepted tokens: the refusals below are meaningful."""
    r = requests.get(urls["hangzhou"] + "/ogc/collections/control_points/items?f=json&limit=1",
                     headers=bearer(forged(main_db, urls)), timeout=30)
    assert r.status_code == 200


def test_alg_none(urls, good) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": jws.extract_compact(good["access_token"].encode()).headers()["kid"]}
    body = claims_of(good["access_token"]) | {"roles": ["platform_admin"]}
    token = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode()) + "."
    assert_refused(urls, token)


def test_hs256_signed_with_public_key(main_db, urls, good) -> None:
    jwk = requests.get(urls["national"] + "/sso/jwks", timeout=10).json()["keys"][0]
    public = RSAKey.import_key(jwk).public_key
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    body = claims_of(good["access_token"]) | {"roles": ["platform_admin"]}
    header = {"alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"]}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    import hashlib
    import hmac

    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert_refused(urls, signing_input + "." + b64(sig))


@pytest.mark.parametrize("changes", [
    {"aud": "another-federation"},
    {"iss": "http://127.0.0.1:1/sso"},
    {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
])
def test_wrong_audience_issuer_or_expired(main_db, urls, changes) -> None:
    assert_refused(urls, forged(main_db, urls, **changes))


def test_tampered_signature(urls, good) -> None:
    head, body, sig = good["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["platform_admin"]
    assert_refused(urls, f"{head}.{b64(json.dumps(claims).encode())}.{sig}")
    assert_refused(urls, f"{head}.{body}.{sig[:-4]}AAAA")
    assert_refused(urls, "not-a-jwt")


def test_foreign_issuer(urls, good) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = claims_of(good["access_token"]) | {"roles": ["platform_admin"]}
    token = jwt.encode({"alg": "RS256", "kid": "foreign-1", "typ": "at+jwt"}, body,
                       RSAKey.import_key(key), algorithms=["RS256"])
    assert_refused(urls, token)


def test_login_brute_force_lockout_is_audited(main_db, urls) -> None:
    accounts.create(main_db, "atk_victim", PASSWORD)
    browser = requests.Session()
    statuses = []
    for _ in range(6):
        page = browser.get(urls["national"] + "/sso/login", timeout=10)
        r = browser.post(urls["national"] + "/sso/login", data={
            **form_fields(page.text), "username": "atk_victim", "password": "wrong-guess"},
            allow_redirects=False, timeout=10)
        statuses.append(r.status_code)
    assert statuses[:4] == [401] * 4 and statuses[4:] == [423, 423]
    # even the right password is refused while locked
    with pytest.raises(PermissionError):
        login_pkce(urls["national"], "atk_victim", PASSWORD)
    rows = main_db.all("SELECT event, ok FROM auth.audit WHERE actor = 'atk_victim' "
                       "AND event LIKE 'login.%%'")
    assert sum(r["event"] == "login.fail" for r in rows) == 4
    assert sum(r["event"] == "login.locked" for r in rows) >= 2
    assert not any(r["ok"] for r in rows)
    assert accounts.unlock(main_db, "atk_victim")
    assert login_pkce(urls["national"], "atk_victim", PASSWORD)["access_token"]


def test_csrf_on_login_and_registration(main_db, urls) -> None:
    accounts.create(main_db, "atk_csrf", PASSWORD)
    # no token, a token from another browser, and a token without its cookie
    r = requests.post(urls["national"] + "/sso/login",
                      data={"username": "atk_csrf", "password": PASSWORD}, timeout=10)
    assert r.status_code == 403 and "geoplat_sso" not in r.cookies
    other = requests.Session()
    stolen = form_fields(other.get(urls["national"] + "/sso/login", timeout=10).text)
    r = requests.post(urls["national"] + "/sso/login",
                      data={**stolen, "username": "atk_csrf", "password": PASSWORD}, timeout=10)
    assert r.status_code == 403
    victim = requests.Session()
    victim.get(urls["national"] + "/sso/login", timeout=10)  # has its own cookie
    r = victim.post(urls["national"] + "/sso/login",
                    data={**stolen, "username": "atk_csrf", "password": PASSWORD}, timeout=10)
    assert r.status_code == 403
    r = requests.post(urls["hangzhou"] + "/auth/register", data={
        "username": "atk_csrf_reg", "email": "c@example.org", "password": "a-long-password-1"},
        timeout=10)
    assert r.status_code == 403
    assert main_db.one("SELECT 1 AS x FROM auth.users WHERE username = 'atk_csrf_reg'") is None


@pytest.mark.parametrize("redirect_uri", [
    "http://evil.example/callback",
    CLI_REDIRECT + "/../../evil",
    CLI_REDIRECT + ".evil.example",
    CLI_REDIRECT + "?next=http://evil.example",
    "//evil.example/callback",
])
def test_open_redirect_via_redirect_uri(urls, redirect_uri) -> None:
    r = requests.get(urls["national"] + "/sso/authorize", params={
        "response_type": "code", "client_id": CLI_CLIENT, "redirect_uri": redirect_uri,
        "scope": "openid", "state": "s", "code_challenge": "x" * 43,
        "code_challenge_method": "S256"}, allow_redirects=False, timeout=10)
    assert r.status_code == 400
    assert "location" not in r.headers
    # the refused URI is never offered as a link, a form target or a refresh (shown as text
    # if at all)
    assert not re.search(r"""(?:href|action|src|url)\s*=\s*["']?[^"'>\s]*evil""", r.text, re.IGNORECASE), \
        r.text[:300]


def test_login_next_cannot_leave_the_site(main_db, urls) -> None:
    accounts.create(main_db, "atk_next", PASSWORD)
    browser = requests.Session()
    page = browser.get(urls["national"] + "/sso/login", timeout=10)
    r = browser.post(urls["national"] + "/sso/login", data={
        **form_fields(page.text), "next": "x=1&redirect_uri=http://evil.example/",
        "username": "atk_next", "password": PASSWORD}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].startswith("/sso/authorize?")
    r = browser.get(urls["national"] + r.headers["location"], allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "location" not in r.headers


@pytest.mark.parametrize("field, value", [
    ("username", "robert'); DROP TABLE auth.users;--"),
    ("username", "<script>alert(1)</script>"),
    ("display_name", "<img src=x onerror=alert(1)>"),
    ("email", "a@b.c'; DELETE FROM auth.users;--"),
])
def test_injection_in_registration_fields(main_db, urls, field, value) -> None:
    body = {"username": "atk_inject", "email": "i@example.org", "password": "a-long-password-1",
            field: value}
    r = requests.post(urls["hangzhou"] + "/auth/register", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert field in r.json()["fields"]
    browser = requests.Session()
    page = browser.get(urls["hangzhou"] + "/auth/register", timeout=10)
    r = browser.post(urls["hangzhou"] + "/auth/register", data={**form_fields(page.text), **body},
                     timeout=30)
    assert r.status_code == 422
    assert "<script>" not in r.text and "<img src=x" not in r.text
    assert main_db.one("SELECT count(*) AS n FROM auth.users")["n"] > 0  # table intact
    r = requests.post(urls["national"] + "/sso/login", data={"username": value, "password": "x"},
                      timeout=10)
    assert r.status_code < 500
