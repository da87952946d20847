"""`geoplat users/grants/audit/sso` and signing-key rotation followed by the nodes (issue 4)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import requests
from joserfc import jws
from sso_client import bearer, login_pkce
from waiting import wait_for

from nodes import cli


def run(federation, capsys, monkeypatch, *argv: str, stdin: str = "") -> tuple[int, str]:
    config = str(Path(federation.config_dir) / "federation.yml")
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["--config", config, *argv])
    return code, capsys.readouterr().out


def test_users_grants_audit_cli(federation, urls, capsys, monkeypatch) -> None:
    code, out = run(federation, capsys, monkeypatch, "users", "add", "cli_user",
                    "--password-stdin", stdin="cli-password-123\n")
    assert code == 0 and "cli_user" in out
    code, out = run(federation, capsys, monkeypatch, "users", "list", "--json")
    assert any(u["username"] == "cli_user" for u in json.loads(out))

    token = login_pkce(urls["national"], "cli_user", "cli-password-123")
    g = requests.post(urls["zhejiang"] + "/auth/grants", json={"layer": "contours"},
                      headers=bearer(token), timeout=10).json()
    code, out = run(federation, capsys, monkeypatch, "grants", "list", "--node", "zhejiang",
                    "--status", "pending", "--json")
    assert g["id"] in [r["id"] for r in json.loads(out)]
    code, out = run(federation, capsys, monkeypatch, "grants", "approve", str(g["id"]),
                    "--node", "zhejiang", "--days", "1")
    assert code == 0 and json.loads(out)["status"] == "approved"
    r = wait_for(lambda: (r := requests.get(  # grant caches expire within 1 s
        urls["zhejiang"] + "/ogc/collections/contours/items?f=json&limit=1",
        headers=bearer(token), timeout=30)).status_code == 200 and r, 10,
        "the approved grant opens contours")
    assert r.status_code == 200
    code, out = run(federation, capsys, monkeypatch, "audit", "--node", "zhejiang",
                    "--event", "grant.approve", "--json")
    assert any(e["subject"] == "contours" and e["actor"].startswith("cli:")
               for e in json.loads(out))
    code, out = run(federation, capsys, monkeypatch, "audit", "--event", "admin.user_add", "--json")
    assert any(e["subject"] == "cli_user" for e in json.loads(out))
    code, _ = run(federation, capsys, monkeypatch, "grants", "list", "--node", "nowhere")
    assert code == 1


def kid_of(token: str) -> str:
    """The `kid` in a JWT's protected header (not verified)."""
    return str(jws.extract_compact(token.encode()).headers()["kid"])


def test_signing_key_rotation(federation, urls, capsys, monkeypatch) -> None:
    old = login_pkce(urls["national"], "cli_user", "cli-password-123")
    code, _ = run(federation, capsys, monkeypatch, "sso", "rotate-key")
    assert code == 0
    old_kid = kid_of(old["access_token"])

    # the new key signs only once every worker of the main node publishes it (each re-reads
    # its keys every 10 s; 2 s margin), so a node shown a token signed by it finds it on refetch
    def signed_with_the_new_key() -> dict | None:
        token = login_pkce(urls["national"], "cli_user", "cli-password-123")
        return token if kid_of(token["access_token"]) != old_kid else None

    new = wait_for(signed_with_the_new_key, 45, "tokens signed with the new key", interval=0.5)
    for _ in range(8):  # whichever worker answers, at once: no wait once the key signs
        keys = requests.get(urls["national"] + "/sso/jwks", timeout=10).json()["keys"]
        assert {kid_of(new["access_token"]), old_kid} <= {k["kid"] for k in keys}
    assert kid_of(new["access_token"]) != old_kid
    for token in (old, new):  # Hangzhou follows the rotation (refetch on unknown kid)
        r = requests.get(urls["hangzhou"] + "/auth/me", headers=bearer(token), timeout=10)
        assert r.status_code == 200, r.text
