"""Provisioning nodes over HTTP at the main node (issue 12): initial access tokens, RFC 7591-style
client registration, the e-map cascade key for the node's client credentials, and the CLI.

The multi-host proof (each host its own PostgreSQL cluster, no node holding another node's
database credentials) is in test_netns_federation.py.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
from pathlib import Path

import pytest
import requests
from sso_client import bearer, login_pkce

from nodes import cli
from nodes import federation as federation_mod
from services.access import apikeys
from services.provision import ProvisionError, provision_node, token_file
from services.sso import accounts, registration
from services.sso.registration import CLIENTS_PATH, NODE_KEY_PATH

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def main(urls) -> str:
    return urls["national"]


def metadata(node_id: str, *uris: str) -> dict:
    return {"node_id": node_id, "client_name": f"test node {node_id}",
            "redirect_uris": list(uris) or [f"http://127.0.0.1:9/{node_id}/auth/callback"]}


def register(main: str, token: str | None, body: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(main + CLIENTS_PATH, json=body, headers=headers, timeout=30)


def refusals(db, event: str, since_id: int) -> list[dict]:
    return db.all("SELECT actor, subject, ok, ip, detail FROM auth.audit WHERE event = %s AND "
                  "id > %s ORDER BY id", (event, since_id))


def last_audit_id(db) -> int:
    return db.one("SELECT coalesce(max(id), 0) AS n FROM auth.audit")["n"]


def client_token(main: str, client_id: str, secret: str, scope: str = "keys") -> requests.Response:
    return requests.post(main + "/sso/token", auth=(client_id, secret), timeout=30,
                         data={"grant_type": "client_credentials", "scope": scope})


def assert_problem(r: requests.Response, status: int, error: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers["Content-Type"]
    body = r.json()
    assert body["status"] == status and body["title"]
    if error:
        assert body["error"] == error, body
    return body


def test_refused_registrations_are_problems_and_audited(main, main_db) -> None:
    db = main_db
    mark = last_audit_id(db)
    good, _ = registration.issue_token(db, "national", "prov_a", hours=1, actor="test")
    expired, _ = registration.issue_token(db, "national", "prov_a", hours=1, actor="test")
    db.execute("UPDATE auth.initial_tokens SET expires_at = now() - interval '1 second' "
               "WHERE token_hash = %s", (registration.token_hash(expired),))
    revoked, rec = registration.issue_token(db, "national", "prov_a", hours=1, actor="test")
    assert registration.revoke_token(db, "national", rec["token_id"], actor="test")

    r = register(main, None, metadata("prov_a"))
    assert_problem(r, 401, "invalid_request")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    for token, why in ((expired, "expired"), (revoked, "revoked"), ("gpit_" + "x" * 43, "unknown")):
        body = assert_problem(register(main, token, metadata("prov_a")), 401, "invalid_token")
        assert why in body["detail"], body
    # a token is bound to its node: it registers no other
    assert_problem(register(main, good, metadata("prov_b")), 403, "invalid_token")
    # bad metadata: nothing stored
    for bad in ({"node_id": "prov_a", "redirect_uris": ["javascript:alert(1)"]},
                {"node_id": "prov_a", "redirect_uris": ["http://u:p@127.0.0.1/cb"]},
                {"node_id": "prov_a", "redirect_uris": ["http://127.0.0.1/cb#frag"]},
                {"node_id": "prov_a", "redirect_uris": []},
                {"node_id": "prov_a", "redirect_uris": ["http://127.0.0.1/cb"],
                 "token_endpoint_auth_method": "none"},
                {"node_id": "prov_a", "redirect_uris": ["http://127.0.0.1/cb"],
                 "grant_types": ["password"]},
                {"redirect_uris": ["http://127.0.0.1/cb"]}, ["not", "an", "object"]):
        assert_problem(register(main, good, bad), 400)
    r = requests.post(main + CLIENTS_PATH, data=b"{not json", timeout=30,
                      headers={"Authorization": f"Bearer {good}",
                               "Content-Type": "application/json"})
    assert_problem(r, 400, "invalid_client_metadata")
    assert db.one("SELECT 1 AS x FROM auth.clients WHERE client_id = 'node-prov_a'") is None

    events = refusals(db, "provision.register", mark)
    assert len(events) == 14 and not any(e["ok"] for e in events), events
    assert {e["detail"]["status"] for e in events} == {400, 401, 403}
    assert all(e["ip"] == "127.0.0.1" for e in events)
    wrong = [e for e in events if e["detail"]["status"] == 403]
    assert wrong[0]["actor"] == "prov_a" and wrong[0]["subject"] == "prov_b"


def test_the_main_node_issues_no_token_for_itself(main_db) -> None:
    with pytest.raises(Exception, match="main node provisions itself"):
        registration.issue_token(main_db, "national", "national", actor="test")


def test_registration_then_client_credentials_then_cascade_key(main, main_db) -> None:
    db = main_db
    token, _ = registration.issue_token(db, "national", "prov_c", hours=1, actor="test")
    stored = db.one("SELECT token_hash FROM auth.initial_tokens WHERE token_hash = %s",
                    (registration.token_hash(token),))
    assert stored and token not in json.dumps(db.all("SELECT * FROM auth.initial_tokens",),
                                              default=str)  # hashed only
    first = register(main, token, metadata("prov_c", "http://127.0.0.1:9001/auth/callback"))
    assert first.status_code == 201, first.text
    assert first.headers["Cache-Control"] == "no-store"
    c = first.json()
    assert c["client_id"] == "node-prov_c" and c["client_secret_expires_at"] == 0
    assert c["token_endpoint_auth_method"] == "client_secret_basic"
    assert set(c["grant_types"]) == {"authorization_code", "refresh_token", "client_credentials"}
    # registering again (a rebuild, another deployment): the same client and secret, both URIs
    again = register(main, token, metadata("prov_c", "http://127.0.0.1:9002/auth/callback"))
    assert again.status_code == 201, again.text
    assert again.json()["client_secret"] == c["client_secret"]
    assert again.json()["redirect_uris"] == ["http://127.0.0.1:9001/auth/callback",
                                             "http://127.0.0.1:9002/auth/callback"]
    ok = [e for e in refusals(db, "provision.register", 0) if e["subject"] == "node-prov_c"]
    assert len(ok) == 2 and all(e["ok"] for e in ok)

    # the credentials work: client credentials grant, then the node's cascade key
    r = client_token(main, c["client_id"], c["client_secret"])
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    assert client_token(main, c["client_id"], "wrong").status_code == 401
    made = requests.post(main + NODE_KEY_PATH, headers=bearer(access), timeout=30,
                         json={"allowed": ["127.0.0.0/8", "10.9.8.7"]})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    record = apikeys.lookup(db, apikeys.key_hash(key))
    assert record["allowed"] == ["10.9.8.7/32", "127.0.0.0/8"] and not record["revoked"]
    assert record["user_id"] == accounts.by_name(db, "node_prov_c").id
    kept = requests.post(main + NODE_KEY_PATH, headers=bearer(access), timeout=30,
                         json={"allowed": ["127.0.0.0/8"], "key": key})
    assert kept.status_code == 200 and kept.json()["key"] == key  # kept, rebound
    assert apikeys.lookup(db, apikeys.key_hash(key))["allowed"] == ["127.0.0.0/8"]
    # the key works as a tk at the main node, from where it is bound
    assert requests.get(main + "/ogc/collections", params={"f": "json", "tk": key},
                        timeout=30).status_code == 200
    # someone else's key is never adopted: a new one is made instead
    other = requests.post(main + NODE_KEY_PATH, headers=bearer(access), timeout=30,
                          json={"allowed": ["127.0.0.0/8"], "key": "0" * 32})
    assert other.status_code == 201 and other.json()["key"] != key


def test_node_key_needs_a_node_client(main, main_db) -> None:
    db = main_db
    mark = last_audit_id(db)
    assert_problem(requests.post(main + NODE_KEY_PATH, json={"allowed": ["127.0.0.1"]},
                                 timeout=30), 401)
    accounts.create(db, "prov_user", "prov-user-password-1", roles=["developer"])
    user = login_pkce(main, "prov_user", "prov-user-password-1")
    assert_problem(requests.post(main + NODE_KEY_PATH, json={"allowed": ["127.0.0.1"]},
                                 headers=bearer(user), timeout=30), 403, "insufficient_scope")
    assert_problem(requests.post(main + NODE_KEY_PATH, json={"allowed": ["127.0.0.1"]},
                                 headers=bearer("not-a-token"), timeout=30), 401)
    # a node's token with a bad body
    secret = registration.node_client_secret(db, "hangzhou")
    access = client_token(main, "node-hangzhou", secret).json()["access_token"]
    for body in ({"allowed": "127.0.0.1"}, {"allowed": ["nowhere"]}, {"allowed": []},
                 {"allowed": ["127.0.0.1"], "key": 5}):
        assert_problem(requests.post(main + NODE_KEY_PATH, json=body, headers=bearer(access),
                                     timeout=30), 400, "invalid_request")
    events = refusals(db, "provision.node_key", mark)
    assert [e["detail"]["status"] for e in events] == [401, 403, 401, 400, 400, 400, 400]
    assert events[-1]["actor"] == "node-hangzhou"


def test_sub_nodes_were_provisioned_over_http(federation, main_db) -> None:
    """What the sub-nodes' builds did at the main node: registrations with tokens `geoplat up`
    issued for them, and no main database URL in their files."""
    for nid in ("zhejiang", "hangzhou"):
        events = main_db.all("SELECT actor, subject, ok FROM auth.audit WHERE "
                             "event = 'provision.register' AND subject = %s AND ok",
                             (f"node-{nid}",))
        assert events and events[-1]["actor"] == nid
        tokens = registration.token_listing(main_db, nid)
        assert any(t["created_by"] == "geoplat up" and t["last_used_at"] for t in tokens)
    main_dsn = federation_mod.node_dsn(federation, federation.node("national"))
    var = federation.resolve(federation.var_dir)
    for nid in ("zhejiang", "hangzhou"):
        for path in (var / "nodes" / nid).rglob("*"):
            if "cache" in path.parts or "cache_data" in path.parts:
                continue
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 5_000_000:
                assert main_dsn.encode() not in path.read_bytes(), path
        meta = json.loads((var / "nodes" / nid / "node.json").read_text())
        assert meta["auth"]["main_dsn"] is None


def run_cli(federation, capsys, monkeypatch, *argv: str) -> tuple[int, str, str]:
    config = str(Path(federation.config_dir) / "federation.yml")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = cli.main(["--config", config, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_initial_token_cli(federation, main, main_db, capsys, monkeypatch) -> None:
    code, out, err = run_cli(federation, capsys, monkeypatch, "sso", "initial-token",
                             "--node", "prov_cli", "--hours", "2")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("gpit_") and "prov_cli.token" in err
    code, out, _ = run_cli(federation, capsys, monkeypatch, "sso", "initial-tokens",
                           "--node", "prov_cli", "--json")
    [listed] = json.loads(out)
    assert listed["usable"] and token not in out
    assert register(main, token, metadata("prov_cli")).status_code == 201
    code, out, _ = run_cli(federation, capsys, monkeypatch, "sso", "revoke-initial-token",
                           listed["token_id"])
    assert code == 0
    assert_problem(register(main, token, metadata("prov_cli")), 401, "invalid_token")
    code, _, err = run_cli(federation, capsys, monkeypatch, "sso", "revoke-initial-token",
                           listed["token_id"])
    assert code == 1 and "no usable" in err
    code, _, err = run_cli(federation, capsys, monkeypatch, "sso", "initial-token",
                           "--node", "national")
    assert code == 1 and "main node" in err
    audit = main_db.all("SELECT event, actor FROM auth.audit WHERE event LIKE "
                        "'provision.token_%%' AND actor LIKE 'cli:%%'")
    assert {"provision.token_issue", "provision.token_revoke"} <= {a["event"] for a in audit}


def test_building_a_node_again_gives_the_same_client(federation, main_db, tmp_path) -> None:
    """The client side of a rebuild (what `geoplat up` of hangzhou does), in a var/ of its own
    (the running node's files stay as they are): no token, nothing kept -> what to do; with the
    token -> registered, the same client and secret the running node has; then without the
    token -> the kept credentials and key; a revoked token with kept credentials -> those."""
    s = federation.model_copy(update={"var_dir": str(tmp_path / "var")})
    node = s.node("hangzhou")
    dsn = federation_mod.node_dsn(federation, node)
    running = json.loads((federation.resolve(federation.var_dir) / "nodes" / "hangzhou"
                          / "node.json").read_text())["auth"]
    with pytest.raises(ProvisionError, match="geoplat sso initial-token --node hangzhou"):
        provision_node(s, node, [], dsn, cascade=False)
    mine = token_file(s, node)
    mine.parent.mkdir(parents=True)
    shutil.copy(token_file(federation, node), mine)  # the token `geoplat up` issued
    auth, key = provision_node(s, node, [], dsn, cascade=True)
    assert auth["client_id"] == "node-hangzhou" and auth["main_dsn"] is None
    assert auth["client_secret"] == running["client_secret"]  # running deployments keep working
    kept = tmp_path / "var" / "nodes" / "hangzhou"
    for name in ("oidc-client.json", "node-key.json"):
        assert stat.S_IMODE((kept / name).stat().st_mode) == 0o600
    assert key and apikeys.lookup(main_db, apikeys.key_hash(key))["user_id"] == \
        accounts.by_name(main_db, "node_hangzhou").id
    mine.unlink()
    again, key_again = provision_node(s, node, [], dsn, cascade=True)
    assert again["client_secret"] == auth["client_secret"] and key_again == key
    value, rec = registration.issue_token(main_db, "national", "hangzhou", hours=1, actor="test")
    registration.revoke_token(main_db, "national", rec["token_id"], actor="test")
    mine.write_text(value)
    third, _ = provision_node(s, node, [], dsn, cascade=False)
    assert third["client_secret"] == auth["client_secret"]


def test_the_input_guard_covers_registration(main, main_db) -> None:
    """NUL in the client metadata: refused by the guard in front of every JSON API, audited,
    nothing stored."""
    token, _ = registration.issue_token(main_db, "national", "prov_nul", hours=1, actor="test")
    mark = last_audit_id(main_db)
    r = requests.post(main + CLIENTS_PATH, timeout=30,
                      data=b'{"node_id": "prov_nul", "client_name": "a\\u0000b", '
                           b'"redirect_uris": ["http://127.0.0.1/cb"]}',
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "application/json"})
    assert_problem(r, 400)
    assert refusals(main_db, "request.bad_input", mark)
    assert main_db.one("SELECT 1 AS x FROM auth.clients WHERE client_id = 'node-prov_nul'") is None
