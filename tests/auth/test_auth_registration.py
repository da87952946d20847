"""Distributed registration, central storage (issue 4): register at any node, the account is
kept at the main node; with the main node down, registration and sign-in are refused cleanly
while tokens already issued keep working at Hangzhou until they expire."""

from __future__ import annotations

import re
import time

import pytest
import requests
from sso_client import bearer, form_fields, login_pkce

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from services.db import Database


def main_db(settings: settings_mod.FederationSettings) -> Database:
    main = next(n for n in settings.nodes if n.tier == "main")
    return Database(federation_mod.node_dsn(settings, main), maxconn=2)


def test_json_registration_at_hangzhou_is_stored_at_main(federation, urls) -> None:
    body = {"username": "reg_hz_json", "email": "hz@example.org", "display_name": "杭州用户",
            "password": "a-long-password-1"}
    r = requests.post(urls["hangzhou"] + "/auth/register", json=body, timeout=30)
    assert r.status_code == 201, r.text
    db = main_db(federation)
    row = db.one("SELECT username, registered_via, password_hash FROM auth.users "
                 "WHERE username = 'reg_hz_json'")
    assert row["registered_via"] == "hangzhou"
    assert row["password_hash"].startswith("$argon2")
    events = db.all("SELECT actor, detail FROM auth.audit WHERE event = 'registration' "
                    "AND actor = 'reg_hz_json'")
    assert events and events[0]["detail"]["via"] == "hangzhou"
    # the new account signs in at the main node and is a user at Hangzhou
    token = login_pkce(urls["national"], "reg_hz_json", "a-long-password-1")
    me = requests.get(urls["hangzhou"] + "/auth/me", headers=bearer(token), timeout=30).json()
    assert me["username"] == "reg_hz_json" and "addresses" in me["layers"]
    # the same name again is refused, wherever it is tried
    r = requests.post(urls["zhejiang"] + "/auth/register", json=body, timeout=30)
    assert r.status_code == 409
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_form_registration_with_csrf_at_zhejiang(federation, urls) -> None:
    browser = requests.Session()
    page = browser.get(urls["zhejiang"] + "/auth/register", timeout=30)
    assert page.status_code == 200
    fields = form_fields(page.text)
    r = browser.post(urls["zhejiang"] + "/auth/register", data={
        **fields, "username": "reg_zj_form", "email": "zj@example.org", "password": "another-pass-2"},
        timeout=30)
    assert r.status_code == 201, r.text[:300]
    assert main_db(federation).one("SELECT registered_via FROM auth.users WHERE "
                                   "username = 'reg_zj_form'")["registered_via"] == "zhejiang"


@pytest.fixture()
def own_federation(tmp_path, pg_cluster, make_federation):
    """A second national + hangzhou on the session's PostGIS (databases of their own)."""
    settings = settings_mod.load(make_federation(tmp_path, pg_cluster))
    procs, _ = supervisor.up(settings, only=["national", "hangzhou"], echo=lambda *a: None)
    yield settings, {p.node.id: p for p in procs}
    for p in procs:
        supervisor.stop_group(p.pgid)


@pytest.mark.slow
def test_main_node_down(own_federation) -> None:
    settings, procs = own_federation
    main, hz = settings.node("national").base_url, settings.node("hangzhou").base_url
    db = main_db(settings)
    from services.sso import accounts

    accounts.create(db, "reg_down_user", "down-password-1", roles=["hangzhou:publisher"])
    token = login_pkce(main, "reg_down_user", "down-password-1")
    control_points = hz + "/ogc/collections/control_points/items?f=json&limit=1"
    assert requests.get(control_points, headers=bearer(token), timeout=30).status_code == 200

    supervisor.stop_group(procs["national"].pgid)
    with pytest.raises(requests.ConnectionError):
        requests.get(main + "/health", timeout=5)

    # tokens issued before keep working at Hangzhou (every worker: JWKS kept in its database)
    for _ in range(6):
        assert requests.get(control_points, headers=bearer(token), timeout=30).status_code == 200
    # registration is refused cleanly and nothing is stored
    r = requests.post(hz + "/auth/register", json={
        "username": "reg_while_down", "email": "d@example.org", "password": "a-long-password-1"},
        timeout=30)
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert "main node" in r.json()["detail"]
    assert db.one("SELECT 1 AS x FROM auth.users WHERE username = 'reg_while_down'") is None
    page = requests.Session()
    form = page.get(hz + "/auth/register", timeout=30)
    r = page.post(hz + "/auth/register", data={**form_fields(form.text), "username": "reg_while_down",
                                               "email": "d@example.org",
                                               "password": "a-long-password-1"}, timeout=30)
    assert r.status_code == 503 and re.search(r"main node", r.text)
    # sign-in through Hangzhou is refused with a clear message, not a hanging redirect
    r = requests.get(hz + "/auth/login", allow_redirects=False, timeout=30)
    assert r.status_code == 503
    # a token that expires is refused after its expiry, main node or not
    exp = token["expires_at"]
    assert exp > time.time()
