"""Helpers for tests and benchmarks: sign in through the real pages with a real OIDC client.

The client side is Authlib's `OAuth2Session` (requests), not our code: it builds the PKCE
authorization request and redeems the code; we only play the browser between the two.
"""

from __future__ import annotations

import html
import re
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

CLI_CLIENT = "geoplat-cli"
CLI_REDIRECT = "http://127.0.0.1:8765/callback"


def form_fields(page: str) -> dict[str, str]:
    """Hidden inputs of an HTML form (csrf_token, next)."""
    return {m.group(1): html.unescape(m.group(2)) for m in
            re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}


def login_pkce(main_url: str, username: str, password: str, *,
               scope: str = "openid profile geoplat offline_access",
               browser: requests.Session | None = None) -> dict[str, Any]:
    """Authorization code + PKCE against the main node; returns the token response."""
    client = OAuth2Session(CLI_CLIENT, redirect_uri=CLI_REDIRECT, scope=scope,
                           code_challenge_method="S256")
    verifier = generate_token(48)
    url, _state = client.create_authorization_url(main_url + "/sso/authorize",
                                                  code_verifier=verifier)
    b = browser or requests.Session()
    r = b.get(url, timeout=30)
    if r.status_code == 200 and 'name="password"' in r.text:
        r = b.post(main_url + "/sso/login", data={**form_fields(r.text), "username": username,
                                                  "password": password},
                   allow_redirects=False, timeout=30)
        if r.status_code != 303:
            raise PermissionError(f"login refused: {r.status_code}")
        r = b.get(main_url + r.headers["location"], allow_redirects=False, timeout=30)
    location = r.headers.get("location", "")
    if not location.startswith(CLI_REDIRECT):
        raise PermissionError(f"no code: {r.status_code} {location}")
    return client.fetch_token(main_url + "/sso/token", authorization_response=location,
                              code_verifier=verifier)


def bearer(token: dict[str, Any] | str) -> dict[str, str]:
    value = token if isinstance(token, str) else token["access_token"]
    return {"Authorization": f"Bearer {value}"}
