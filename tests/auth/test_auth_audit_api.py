"""The audit trail and key usage over HTTP (`/auth/audit`, `/auth/usage`): node admins only."""

from __future__ import annotations

import requests
from sso_client import bearer, login_pkce

from services.sso import accounts

PASSWORD = "audit-password-1"


def test_audit_and_usage_api_for_node_admins(urls, main_db) -> None:
    accounts.create(main_db, "audit_hz_admin", PASSWORD, roles=["hangzhou:admin"])
    accounts.create(main_db, "audit_zj_admin", PASSWORD, roles=["zhejiang:admin"])
    accounts.create(main_db, "audit_user", PASSWORD)
    admin = bearer(login_pkce(urls["national"], "audit_hz_admin", PASSWORD))
    other = bearer(login_pkce(urls["national"], "audit_zj_admin", PASSWORD))
    user = bearer(login_pkce(urls["national"], "audit_user", PASSWORD))
    base = urls["hangzhou"]
    # something to audit at Hangzhou: a grant request by the user, rejected by the admin
    r = requests.post(base + "/auth/grants", json={"layer": "control_points", "reason": "audit test"},
                      headers=user, timeout=10)
    assert r.status_code == 201, r.text
    grant = r.json()["id"]
    assert requests.post(f"{base}/auth/grants/{grant}/reject", headers=admin,
                         timeout=10).status_code == 200

    r = requests.get(base + "/auth/audit", params={"limit": 50}, headers=admin, timeout=10)
    assert r.status_code == 200 and r.json()["node"] == "hangzhou"
    events = r.json()["events"]
    mine = [(e["event"], e["actor"], e["subject"]) for e in events
            if e["actor"] in ("audit_hz_admin", "audit_user")]
    assert mine[:2] == [("grant.reject", "audit_hz_admin", "control_points"),
                        ("grant.request", "audit_user", "control_points")]
    r = requests.get(base + "/auth/audit", params={"event": "grant.reject", "actor": "audit_hz_admin"},
                     headers=admin, timeout=10)
    assert {e["event"] for e in r.json()["events"]} == {"grant.reject"}
    assert requests.get(base + "/auth/usage", headers=admin, timeout=10).status_code == 200

    assert requests.get(base + "/auth/audit", timeout=10).status_code == 401
    for who in (user, other):  # a user, and the admin of another node
        r = requests.get(base + "/auth/audit", headers=who, timeout=10)
        assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/problem")
        assert requests.get(base + "/auth/usage", headers=who, timeout=10).status_code == 403
    for params in ({"since": "yesterday'; DROP TABLE auth.audit; --"}, {"limit": "0"},
                   {"limit": "x"}):
        r = requests.get(base + "/auth/audit", params=params, headers=admin, timeout=10)
        assert r.status_code == 400, params
        assert "DROP" not in r.text and "Traceback" not in r.text
    r = requests.get(base + "/auth/usage", params={"days": "-1"}, headers=admin, timeout=10)
    assert r.status_code == 400
