"""The node's OIDC relying party (`/auth/login`, `/auth/callback`, on Authlib's client): PKCE
S256 bound to the state cookie, and the answers to a wrong state or a refused code."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import requests

STATE_COOKIE = "geoplat_oidc_state"


def state_cookie(jar) -> list[str]:
    """state, verifier, base64 of where to go back (the value is quoted: it holds `=`)."""
    return jar[STATE_COOKIE].strip('"').split(".")


def test_login_redirect_carries_s256_challenge_of_the_cookie_verifier(urls) -> None:
    hz = urls["hangzhou"]
    r = requests.get(hz + "/auth/login", params={"next": "/auth/me"}, allow_redirects=False,
                     timeout=30)
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == urls["national"] + "/sso/authorize"
    q = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == "node-hangzhou"
    assert q["redirect_uri"] == hz + "/auth/callback"
    assert q["scope"] == "openid profile geoplat"
    assert q["code_challenge_method"] == "S256"
    state, verifier, back = state_cookie(r.cookies)
    assert q["state"] == state
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert q["code_challenge"] == expected.decode()
    assert base64.urlsafe_b64decode(back).decode() == "/auth/me"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/auth" in cookie and "samesite=lax" in cookie.lower()


def test_callback_refuses_a_foreign_state_and_a_bad_code(urls) -> None:
    hz = urls["hangzhou"]
    s = requests.Session()
    assert s.get(hz + "/auth/login", allow_redirects=False, timeout=30).status_code == 302
    state = state_cookie(s.cookies)[0]
    # no cookie, or a state that is not this browser's: 400, nothing asked of the main node
    r = requests.get(hz + "/auth/callback", params={"state": state, "code": "x"}, timeout=30)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    r = s.get(hz + "/auth/callback", params={"state": state + "x", "code": "x"}, timeout=30)
    assert r.status_code == 400
    # the right state with a code the main node never issued: 401, no token cookie
    r = s.get(hz + "/auth/callback", params={"state": state, "code": "not-a-code"},
              allow_redirects=False, timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["title"] == "Sign-in failed"
    assert not any(c.name.startswith("geoplat_at_") for c in s.cookies)
