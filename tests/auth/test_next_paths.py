"""Where sign-in leads back to (`next` of /auth/login and /auth/register): a path of this node,
query and fragment included (the portal's view lives in the fragment), and never another site."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import pytest
import requests
from sso_client import form_fields

from services.access.routes import DEFAULT_AFTER_LOGIN, MAX_NEXT, local_path

VIEW = "/#c=120.1600000,30.2700000&z=12&g=c&b=vec&lb=1&l=poi:1,roads:0.5"


@pytest.mark.parametrize("value", [
    "/", "/publish?x=1", VIEW, "/?note=abcdefghijklmnopqrstuvwxyz012345#c=120,30&z=9",
    "/" + "a" * (MAX_NEXT - 1)])
def test_paths_of_this_node_are_kept(value: str) -> None:
    assert local_path(value) == value


@pytest.mark.parametrize("value", [
    None, "", "//evil.example/", "/\\evil.example", "http://evil.example/", "https:evil",
    "evil.example/#x", "javascript:alert(1)", "/\x00", "/a\r\nSet-Cookie: x=1", "/\x7f",
    "/\x85", "#c=120,30", "?next=/", "/" + "a" * MAX_NEXT, " /x"])
def test_anything_else_goes_to_the_default(value: str | None) -> None:
    assert local_path(value) == DEFAULT_AFTER_LOGIN


def test_registration_leads_to_a_sign_in_back_to_the_view(urls) -> None:
    """The portal's 注册 Register link: the form keeps `next`, the success page's sign-in link
    carries it on; a foreign `next` is dropped on the way."""
    browser = requests.Session()
    hz = urls["hangzhou"]
    page = browser.get(hz + "/auth/register", params={"next": VIEW}, timeout=30)
    assert page.status_code == 200 and form_fields(page.text)["next"] == VIEW
    evil = browser.get(hz + "/auth/register", params={"next": "//evil.example/"}, timeout=30)
    assert form_fields(evil.text)["next"] == DEFAULT_AFTER_LOGIN
    r = browser.post(hz + "/auth/register", data={
        **form_fields(page.text), "username": "next_path_reg", "email": "np@example.org",
        "password": "next-path-pass-1"}, timeout=30)
    assert r.status_code == 201, r.text[:300]
    link = re.search(r'<a href="([^"]+)">Sign in</a>', r.text)
    assert link is not None
    assert html.unescape(link.group(1)) == "/auth/login?" + urlencode({"next": VIEW})


def test_a_script_signing_out_is_told_where_the_federation_signs_out(urls) -> None:
    """The portal's 退出 Sign out: a same-origin JSON POST; the node's cookie goes and the answer
    names the main node's sign-out (fetch cannot follow a redirect to another origin)."""
    hz = urls["hangzhou"]
    cookie = {"Cookie": "geoplat_at_hangzhou=x"}
    r = requests.post(hz + "/auth/logout", json={}, timeout=30, allow_redirects=False,
                      headers={**cookie, "Origin": hz, "Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["location"].startswith(urls["national"] + "/sso/logout?client_id=")
    assert 'geoplat_at_hangzhou=""' in r.headers["set-cookie"]
    forged = requests.post(hz + "/auth/logout", json={}, timeout=30, allow_redirects=False,
                           headers={**cookie, "Origin": "http://evil.example",
                                    "Accept": "application/json"})
    assert forged.status_code == 403
    plain = requests.post(hz + "/auth/logout", json={}, timeout=30, allow_redirects=False,
                          headers={**cookie, "Origin": hz})
    assert plain.status_code == 303 and plain.headers["location"] == r.json()["location"]
