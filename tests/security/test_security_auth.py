"""Issue 11, items 7, 9, 10 and 14: listings after a publish, CSRF, hostile bytes, OIDC transport.

Against the shared demo federation (keys optional there): real nodes on loopback, a real
browser-like session through the sign-in pages (requests), Authlib's client for PKCE.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import psycopg2
import pyogrio
import pytest
import requests
import shapely
from federations import free_port
from publish_helpers import every_worker, points_frame, sign_in_users
from sso_client import CLI_CLIENT, CLI_REDIRECT, form_fields
from waiting import wait_for

from nodes import federation as federation_mod
from services.access import apikeys
from services.sso import accounts

PASSWORD = "Security-Auth-Pass-1"
EVIL = "https://evil.example"
PROBLEM = "application/problem+json"


# --- shared fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    """Bearer headers: a Hangzhou admin+publisher+developer, a plain user. `web` and `out` (the
    same roles) sign in through the pages instead: signing out at the main node revokes every
    token of a user, so the browser tests must not sign out the bearer tokens' users."""
    roles = ["hangzhou:admin", "hangzhou:publisher", "developer"]
    return sign_in_users(main_db, urls["national"], "secauth", {
        "admin": roles, "user": [], "web": roles, "out": roles}, PASSWORD)


@pytest.fixture(scope="module")
def hz_key(main_db) -> str:
    """A server key of a developer: the key holder at Hangzhou, who sees only public layers."""
    user = accounts.create(main_db, "secauth_keyholder", PASSWORD, roles=["developer"])
    value, _ = apikeys.create_key(main_db, "national", user.id, "listing", "server",
                                  ["127.0.0.0/8"], rate_per_second=5000)
    return value


def node_dsn(federation, node_id: str) -> str:
    return federation_mod.node_dsn(federation, federation.node(node_id))


def audit_rows(federation, node_id: str, event: str, marker: str) -> list[tuple]:
    conn = psycopg2.connect(node_dsn(federation, node_id))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event, ok, detail::text FROM auth.audit WHERE event = %s AND "
                        "detail::text LIKE %s", (event, f"%{marker}%"))
            return cur.fetchall()
    finally:
        conn.close()


def browser(urls, username: str, node: str = "hangzhou") -> requests.Session:
    """A browser-like session signed in at `node` through the real pages (cookie, no header)."""
    s = requests.Session()
    r = s.get(urls[node] + "/auth/login?next=/auth/me", timeout=30)
    assert 'name="password"' in r.text, r.text[:300]
    r = s.post(urls["national"] + "/sso/login", data={
        **form_fields(r.text), "username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200 and r.json()["username"] == username, r.text[:300]
    return s


# --- item 7: the listing follows publish and retire in every worker ---------------------------


def _geojson() -> bytes:
    src = points_frame(5, seed=7)
    gdf = gpd.GeoDataFrame({"code": src.code}, geometry=list(shapely.points(src.lon, src.lat)),
                           crs="EPSG:4326")
    buf = io.BytesIO()
    pyogrio.write_dataframe(gdf, buf, driver="GeoJSON")
    return buf.getvalue()


def test_listing_follows_publish_and_retire_in_every_worker(federation, urls, people,
                                                            hz_key) -> None:
    base, workers = urls["hangzhou"], federation.node("hangzhou").workers
    name = "seclist_" + uuid.uuid4().hex[:6]
    listing = f"{base}/ogc/collections?f=json&tk={hz_key}"
    openapi = f"{base}/ogc/openapi?f=json&tk={hz_key}"

    def ids(r) -> set[str]:
        return {c["id"] for c in r.json()["collections"]}

    def paths(r) -> set[str]:
        return set(r.json()["paths"])

    before = every_worker(listing, workers, ids)  # every worker builds its cached listing
    assert all(name not in v and "control_points" not in v for v in before.values()), before
    assert all(f"/collections/{name}" not in v for v in every_worker(openapi, workers, paths).values())

    r = requests.post(f"{base}/api/layers", headers=people["admin"], timeout=120,
                      data={"name": name, "title": "listing test", "access": "public"},
                      files={"file": ("p.geojson", _geojson(), "application/geo+json")})
    assert r.status_code == 201, r.text
    # the publish returns once every worker serves it: each worker's listing must show it now
    after = every_worker(listing, workers, ids)
    assert all(name in v for v in after.values()), {w: name in v for w, v in after.items()}
    assert all("control_points" not in v for v in after.values())
    spec = every_worker(openapi, workers, paths)
    assert all(f"/collections/{name}" in v for v in spec.values())
    landing = every_worker(f"{base}/ogc?f=json&tk={hz_key}", workers, lambda r: r.json()["links"])
    assert len(landing) == workers

    r = requests.delete(f"{base}/api/layers/{name}", headers=people["admin"], timeout=60)
    assert r.status_code == 200, r.text
    gone = every_worker(listing, workers, ids)
    assert all(name not in v for v in gone.values()), {w: name in v for w, v in gone.items()}
    assert all(f"/collections/{name}" not in v
               for v in every_worker(openapi, workers, paths).values())


# --- item 9: CSRF on cookie-authenticated state changes -----------------------------------------


@pytest.fixture(scope="module")
def admin_browser(urls, people) -> requests.Session:
    return browser(urls, "secauth_web")


@pytest.fixture(scope="module")
def grant_id(urls, people) -> int:
    r = requests.post(urls["hangzhou"] + "/auth/grants", json={"layer": "control_points"},
                      headers=people["user"], timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


FORGED = [  # (method, path, content type, body): what a foreign page can make a browser send
    ("POST", "/auth/grants", "text/plain", '{"layer": "control_points", "reason": "csrf"}'),
    ("POST", "/auth/grants", "application/x-www-form-urlencoded", '{"layer": "control_points", "r": "=x"}'),
    ("POST", "/auth/grants", "multipart/form-data; boundary=b",
     '--b\r\nContent-Disposition: form-data; name="layer"\r\n\r\ncontrol_points\r\n--b--\r\n'),
    ("POST", "/auth/grants/{grant}/approve", "text/plain", '{"days": 3650}'),
    ("POST", "/auth/grants/{grant}/revoke", "application/x-www-form-urlencoded", "a=b"),
    ("POST", "/auth/grants/{grant}/reject", "text/plain", ""),
    ("POST", "/registry/api/services", "text/plain", '{"url": "http://127.0.0.1:9/wms"}'),
    ("POST", "/registry/api/services/hangzhou:ext:00/approve", "text/plain", "{}"),
    ("DELETE", "/api/layers/roads", "", ""),
    ("POST", "/api/layers/roads/rollback", "text/plain", '{"version": 1}'),
    ("POST", "/auth/logout", "application/x-www-form-urlencoded", ""),
    # OGC API Processes (issue 17): a job on the victim's account, or one of theirs dismissed
    ("POST", "/ogc/processes/buffer/execution", "text/plain",
     '{"inputs": {"geometry": {"type": "Point", "coordinates": [120.2, 30.2]}, "distance": 9}}'),
    ("DELETE", "/ogc/jobs/00000000-0000-0000-0000-000000000000", "", ""),
]


@pytest.mark.parametrize("origin", [EVIL, "null", None])
@pytest.mark.parametrize("method,path,ctype,body", FORGED)
def test_forged_cookie_requests_are_refused(urls, admin_browser, grant_id, method, path, ctype,
                                            body, origin) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    if origin:
        headers["Origin"] = origin
    url = urls["hangzhou"] + path.format(grant=grant_id)
    r = admin_browser.request(method, url, data=body.encode(), headers=headers,
                              allow_redirects=False, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["title"] == "CSRF check failed"
    # nothing changed: the grant is still pending and the session still works
    me = admin_browser.get(urls["hangzhou"] + "/auth/me", timeout=30)
    assert me.status_code == 200
    g = admin_browser.get(urls["hangzhou"] + "/auth/grants?all=1", timeout=30).json()["grants"]
    assert next(x for x in g if x["id"] == grant_id)["status"] == "pending"


def test_json_from_own_origin_token_or_bearer_are_accepted(urls, admin_browser, people) -> None:
    hz = urls["hangzhou"]
    own = {"Origin": hz}
    r = admin_browser.post(hz + "/auth/grants", json={"layer": "control_points"}, headers=own, timeout=30)
    assert r.status_code == 201, r.text
    # JSON from a foreign origin is refused even with the JSON content type
    r = admin_browser.post(hz + "/auth/grants", json={"layer": "control_points"},
                           headers={"Origin": EVIL}, timeout=30)
    assert r.status_code == 403
    # the CSRF token of one of the node's pages, as a header
    page = admin_browser.get(hz + "/auth/logout", timeout=30)
    assert page.status_code == 200 and 'method="post"' in page.text
    token = form_fields(page.text)["csrf_token"]
    r = admin_browser.post(hz + "/auth/grants", data='{"layer": "control_points"}',
                           headers={"X-CSRF-Token": token, "Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 201, r.text
    r = admin_browser.post(hz + "/auth/grants", data='{"layer": "control_points"}',
                           headers={"X-CSRF-Token": token + "x", "Content-Type": "text/plain"},
                           timeout=30)
    assert r.status_code == 403
    # a bearer token without cookies is not CSRF-able: any content type
    r = requests.post(hz + "/auth/grants", data='{"layer": "control_points"}', timeout=30,
                      headers={**people["user"], "Content-Type": "text/plain", "Origin": EVIL})
    assert r.status_code == 201, r.text


def test_main_node_sso_forms_need_their_token(urls, main_db) -> None:
    """The keys page and sign-out of the main node (SSO session cookie)."""
    accounts.create(main_db, "secauth_dev", PASSWORD, roles=["developer"])
    main = urls["national"]
    s = requests.Session()
    r = s.get(main + "/sso/keys", timeout=30)  # -> login page
    r = s.post(main + "/sso/login", data={**form_fields(r.text), "username": "secauth_dev",
                                          "password": PASSWORD}, timeout=30)
    assert r.status_code == 200 and "My keys" in r.text
    for data in ({"action": "create", "kind": "server", "allowed": "127.0.0.1/32", "name": "x"},
                 {"action": "create", "kind": "server", "allowed": "127.0.0.1/32", "name": "x",
                  "csrf_token": "forged"}):
        r = s.post(main + "/sso/keys", data=data, headers={"Origin": EVIL}, timeout=30)
        assert r.status_code == 403, r.text[:300]
    r = s.post(main + "/sso/logout", data={}, headers={"Origin": EVIL}, allow_redirects=False,
               timeout=30)
    assert r.status_code == 403
    assert "My keys" in s.get(main + "/sso/keys", timeout=30).text  # still signed in
    # the page's own forms still work: create a key, then sign out with the page's form
    page = s.get(main + "/sso/keys", timeout=30).text
    r = s.post(main + "/sso/keys", data={**form_fields(page), "action": "create",
                                         "kind": "server", "allowed": "127.0.0.1/32",
                                         "name": "ok"}, headers={"Origin": main}, timeout=30)
    assert r.status_code == 200 and 'id="new-key"' in r.text
    fields = form_fields(r.text)
    assert 'action="/sso/logout"' in r.text
    r = s.post(main + "/sso/logout", data={"csrf_token": fields["csrf_token"]},
               headers={"Origin": main}, timeout=30)
    assert r.status_code == 200 and "Signed out" in r.text
    assert s.get(main + "/sso/keys", allow_redirects=False, timeout=30).status_code == 303


def test_logout_is_a_post_through_the_pages(urls, people) -> None:
    hz, main = urls["hangzhou"], urls["national"]
    s = browser(urls, "secauth_out")
    page = s.get(hz + "/auth/logout", timeout=30)
    assert page.status_code == 200 and "<script" not in page.text
    assert s.get(hz + "/auth/me", timeout=30).status_code == 200  # a GET signs nobody out
    r = s.post(hz + "/auth/logout", data=form_fields(page.text), headers={"Origin": hz},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"].startswith(main + "/sso/logout?")
    assert s.get(hz + "/auth/me", timeout=30).status_code == 401  # the node's cookie is gone
    confirm = s.get(r.headers["Location"], allow_redirects=False, timeout=30)
    assert confirm.status_code == 200 and 'action="/sso/logout"' in confirm.text
    r = s.post(main + "/sso/logout", data=form_fields(confirm.text), headers={"Origin": main},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == hz + "/"
    again = s.get(hz + "/auth/login", timeout=30)  # the SSO session is gone too
    assert 'name="password"' in again.text


# --- item 10: NUL bytes and text that is not UTF-8 -----------------------------------------------

BAD_QUERY = {"nul": "%00", "invalid": "%ff", "overlong": "%c0%af", "surrogate": "%ed%a0%80"}
BAD_JSON = {"nul": "\\u0000", "surrogate": "\\ud800", "low-surrogate": "\\udfff"}
QUERY_ROUTES = [  # (node, path with {p}, auth): every JSON API group and OGC API filters
    ("hangzhou", "/auth/grants?status={p}", "admin"),
    ("hangzhou", "/auth/audit?event={p}", "admin"),
    ("hangzhou", "/auth/usage?key_id={p}", "admin"),
    ("hangzhou", "/auth/me?x={p}", "admin"),
    ("hangzhou", "/registry/api/services?status={p}", "admin"),
    ("hangzhou", "/api/layers?x={p}", "admin"),
    ("hangzhou", "/api/layers/roa{p}ds/versions", "admin"),
    ("hangzhou", "/ogc/collections/poi/items?f=json&filter=name%3D%27a{p}b%27", "key"),
    ("hangzhou", "/ogc/collections/catalogue/items?f=json&q={p}", "key"),
    ("hangzhou", "/ogc/collections/po{p}i?f=json", "key"),
    ("national", "/sso/revocations?after={p}", None),
    ("national", "/sso/api/keys?x={p}", "admin"),
    ("national", "/sso/authorize?response_type=code&client_id={p}", None),
]
BODY_ROUTES = [  # (node, path, content type, body with {p}, auth)
    ("hangzhou", "/auth/grants", "application/json", '{{"layer": "a{p}b"}}', "admin"),
    ("hangzhou", "/auth/register", "application/json",
     '{{"username": "u{p}", "email": "x@example.org", "password": "long-enough-1"}}', None),
    ("hangzhou", "/registry/api/services", "application/json", '{{"url": "http://x/{p}"}}', "admin"),
    ("hangzhou", "/api/layers/roads/rollback", "application/json", '{{"version": "{p}"}}', "admin"),
    ("hangzhou", "/ogc/collections/poi/items", "application/query-cql-json",
     '{{"op": "=", "args": [{{"property": "name"}}, "a{p}"]}}', "key"),
    ("national", "/sso/api/keys", "application/json",
     '{{"name": "k{p}", "kind": "server", "allowed": ["127.0.0.1/32"]}}', "admin"),
]
FORM_ROUTES = [  # (node, path, body with {p})
    ("hangzhou", "/auth/register", "username=u{p}&email=x%40example.org&password=long-enough-1"),
    ("national", "/sso/token", "grant_type=client_credentials&client_id=a{p}"),
    ("national", "/sso/login", "username=u{p}&password=x"),
]


def _auth(kind, people, hz_key) -> tuple[dict[str, str], str]:
    if kind == "admin":
        return people["admin"], ""
    if kind == "key":
        return {}, f"tk={hz_key}"
    return {}, ""


def _assert_refused_and_audited(federation, node: str, r: requests.Response, marker: str) -> None:
    assert r.status_code == 400, (r.status_code, r.headers.get("content-type"), r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 400 and "UTF-8" in body["detail"]
    rows = audit_rows(federation, node, "request.bad_input", marker)
    assert len(rows) == 1 and rows[0][1] is False, rows


@pytest.mark.parametrize("payload", BAD_QUERY.values(), ids=BAD_QUERY.keys())
@pytest.mark.parametrize("node,path,auth", QUERY_ROUTES)
def test_bad_bytes_in_paths_and_queries(federation, urls, people, hz_key, node, path, auth,
                                        payload) -> None:
    headers, extra = _auth(auth, people, hz_key)
    marker = uuid.uuid4().hex
    url = urls[node] + path.format(p=payload)
    url += ("&" if "?" in url else "?") + "&".join(x for x in (extra, f"m={marker}") if x)
    r = requests.get(url, headers=headers, timeout=30)
    if "%00" in path.format(p=payload).split("?")[0]:
        # nginx in front refuses a NUL in the path itself, before the app (never a 5xx)
        assert r.status_code == 400
        return
    _assert_refused_and_audited(federation, node, r, marker)


@pytest.mark.parametrize("payload", BAD_JSON.values(), ids=BAD_JSON.keys())
@pytest.mark.parametrize("node,path,ctype,body,auth", BODY_ROUTES)
def test_escaped_nul_and_lone_surrogates_in_json(federation, urls, people, hz_key, node, path,
                                                 ctype, body, auth, payload) -> None:
    headers, extra = _auth(auth, people, hz_key)
    marker = uuid.uuid4().hex
    url = f"{urls[node]}{path}?m={marker}" + (f"&{extra}" if extra else "")
    r = requests.post(url, data=body.format(p=payload).encode(), timeout=30,
                      headers={**headers, "Content-Type": ctype})
    _assert_refused_and_audited(federation, node, r, marker)


@pytest.mark.parametrize("payload", BAD_QUERY.values(), ids=BAD_QUERY.keys())
@pytest.mark.parametrize("node,path,body", FORM_ROUTES)
def test_bad_bytes_in_form_bodies(federation, urls, node, path, body, payload) -> None:
    marker = uuid.uuid4().hex
    r = requests.post(f"{urls[node]}{path}?m={marker}", data=body.format(p=payload).encode(),
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    _assert_refused_and_audited(federation, node, r, marker)


def test_hostile_user_agent_is_audited_with_the_attempt(federation, urls) -> None:
    """Header bytes go into the audit row as text; a NUL in a header never reaches the app
    (nginx answers 400 itself)."""
    marker = uuid.uuid4().hex
    r = requests.get(f"{urls['hangzhou']}/auth/grants?status=%00&m={marker}", timeout=30,
                     headers={"User-Agent": "curl/\xff\xfe"})  # sent as the bytes ff fe
    _assert_refused_and_audited(federation, "hangzhou", r, marker)
    detail = json.loads(audit_rows(federation, "hangzhou", "request.bad_input", marker)[0][2])
    assert detail["user_agent"] == "curl/\xff\xfe" and detail["where"] == "query"
    parts = urlsplit(urls["hangzhou"])
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"GET /auth/me HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\r\n"
                     b"Connection: close\r\n\r\n")
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"400", status_line


def test_good_text_still_passes(main_db, urls, hz_key) -> None:
    """Chinese text, emoji (a surrogate pair in JSON) and `%` itself are ordinary input."""
    hz = urls["hangzhou"]
    fresh = sign_in_users(main_db, urls["national"], "secgood", {"u": []}, PASSWORD)["u"]
    r = requests.get(f"{hz}/ogc/collections/catalogue/items?f=json&q=%E6%9D%AD%E5%B7%9E&tk={hz_key}",
                     timeout=30)
    assert r.status_code == 200
    r = requests.post(hz + "/auth/grants", data='{"layer": "control_points", "reason": "\\ud83d\\uddfa 地图 100%"}',
                      headers={**fresh, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["reason"] == "\U0001f5fa 地图 100%"


def test_audit_writer_keeps_hostile_values(federation) -> None:
    """NUL and undecodable text in any field are stored escaped, never lost."""
    from services.access import audit
    from services.db import Database

    db = Database(node_dsn(federation, "hangzhou"), maxconn=1)
    marker = uuid.uuid4().hex
    audit.record(db, "hangzhou", "test.hostile", actor="a\x00b", subject="\ud800", ip="127.0.0.1",
                 marker=marker, user_agent="curl\x00/\udcff", raw=b"\xff\x00")
    rows = db.all("SELECT actor, subject, detail FROM auth.audit WHERE event = 'test.hostile' "
                  "AND detail->>'marker' = %s", (marker,))
    assert len(rows) == 1
    row = rows[0]
    assert row["actor"] == "a\\x00b" and row["subject"] == "\\ud800"
    assert row["detail"]["user_agent"] == "curl\\x00/\\udcff" and row["detail"]["raw"] == "\\xff\\x00"


def test_authorize_with_a_quote_in_redirect_uri(urls) -> None:
    r = requests.get(urls["national"] + "/sso/authorize", timeout=30, allow_redirects=False,
                     params={"response_type": "code", "client_id": CLI_CLIENT,
                             "redirect_uri": CLI_REDIRECT + '"', "code_challenge": "a" * 43,
                             "code_challenge_method": "S256"})
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert "Location" not in r.headers and "redirect_uri" in r.text


# --- item 14: transport and PKCE -------------------------------------------------------------------


def test_discovery_offers_only_s256(urls) -> None:
    doc = requests.get(urls["national"] + "/sso/.well-known/openid-configuration", timeout=30).json()
    assert doc["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize("method", ["plain", None])
def test_plain_pkce_is_refused_at_authorize(urls, method) -> None:
    params = {"response_type": "code", "client_id": CLI_CLIENT, "redirect_uri": CLI_REDIRECT,
              "scope": "openid", "state": "s", "code_challenge": "a" * 43}
    if method:
        params["code_challenge_method"] = method
    r = requests.get(urls["national"] + "/sso/authorize", params=params, allow_redirects=False,
                     timeout=30)
    assert 'name="password"' not in r.text  # no sign-in page for a plain challenge
    assert r.status_code in (302, 303), (r.status_code, r.text[:200])
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["error"] == ["invalid_request"], query


def test_insecure_transport_is_not_set_at_import() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTHLIB_INSECURE_TRANSPORT"}
    code = "import os, services.sso.provider; print(os.environ.get('AUTHLIB_INSECURE_TRANSPORT'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "None"


def test_transport_policy_follows_the_public_url() -> None:
    from authlib.common.security import is_secure_transport

    from services.sso.provider import transport_policy

    saved = os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
    try:
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # whatever the environment says...
        assert transport_policy("https://sso.example.gov.cn/sso") is False
        assert not is_secure_transport("http://sso.example.gov.cn/sso/token")  # ...TLS only
        assert transport_policy("http://127.0.0.1:8000/sso") is True  # loopback: Authlib's rule
        assert "AUTHLIB_INSECURE_TRANSPORT" not in os.environ
        assert is_secure_transport("http://127.0.0.1:8000/sso/token")
        assert transport_policy("http://intranet.example:8000/sso") is True  # operator's choice
        assert is_secure_transport("http://intranet.example:8000/sso/token")
    finally:
        os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        if saved is not None:
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = saved


def _serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn started", interval=0.05, ignore=())
    return server, thread


@pytest.mark.parametrize("public,secure", [("https://map.example.gov.cn", True),
                                           ("http://127.0.0.1:8000", False)])
def test_cookies_are_secure_when_the_public_url_is_https(public, secure) -> None:
    """The node's sign-in pages set cookies through SecureCookies (real server, real client)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from services.web.guards import SecureCookies
    from services.web.pages import LOGIN, Csrf, render

    csrf = Csrf("test-secret")

    async def page(request):
        token, cookies = csrf.issue(request)
        return render(LOGIN, title="t", node_title="n", csrf=token, cookies=cookies, action="/",
                      next="", register_url="/")

    port = free_port()
    server, thread = _serve(SecureCookies(Starlette(routes=[Route("/", page)]), public), port)
    try:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("geoplat_csrf=")
        assert ("; Secure" in cookie) is secure, cookie
    finally:
        server.should_exit = True
        thread.join(timeout=10)
