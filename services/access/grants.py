"""Access grants for restricted layers, stored and decided at the node that provides them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from services.access import audit
from services.access.tokens import Principal
from services.db import Database, where
from services.errors import AuthError

COLUMNS = ("id, user_sub, username, layer_id, status, reason, requested_at, decided_at, "
           "decided_by, expires_at")


def request_grant(db: Database, node_id: str, p: Principal, layer_id: str, reason: str,
                  grantable: Collection[str]) -> dict[str, Any]:
    """A grant request for a restricted layer, or a layer with restricted attributes."""
    if layer_id not in grantable:
        # Same answer for unknown and non-restricted layers: names are not confirmed.
        raise AuthError(404, "Not Found", "No restricted layer of that name on this node.")
    existing = db.one(f"SELECT {COLUMNS} FROM auth.grants WHERE user_sub = %s AND layer_id = %s "
                      "AND status = 'pending'", (p.sub, layer_id))
    if existing:
        return existing
    row = db.one(f"INSERT INTO auth.grants (user_sub, username, layer_id, status, reason) "
                 f"VALUES (%s, %s, %s, 'pending', %s) RETURNING {COLUMNS}",
                 (p.sub, p.username, layer_id, reason[:500]))
    assert row is not None  # INSERT ... RETURNING
    audit.record(db, node_id, "grant.request", actor=p.username or p.sub, subject=layer_id,
                 grant_id=row["id"])
    return row


def decide(db: Database, node_id: str, grant_id: int, action: str, by: str,
           days: float | None = None, expires_at: str | None = None) -> dict[str, Any]:
    """approve / reject (pending grants) or revoke (approved grants)."""
    if action == "approve":
        if expires_at:
            row = db.one(f"UPDATE auth.grants SET status = 'approved', decided_at = now(), "
                         f"decided_by = %s, expires_at = %s::timestamptz WHERE id = %s AND "
                         f"status = 'pending' RETURNING {COLUMNS}", (by, expires_at, grant_id))
        else:
            row = db.one(f"UPDATE auth.grants SET status = 'approved', decided_at = now(), "
                         f"decided_by = %s, expires_at = now() + %s * interval '1 day' "
                         f"WHERE id = %s AND status = 'pending' RETURNING {COLUMNS}",
                         (by, days or 365, grant_id))
    elif action == "reject":
        row = db.one(f"UPDATE auth.grants SET status = 'rejected', decided_at = now(), "
                     f"decided_by = %s WHERE id = %s AND status = 'pending' RETURNING {COLUMNS}",
                     (by, grant_id))
    elif action == "revoke":
        row = db.one(f"UPDATE auth.grants SET status = 'revoked', decided_at = now(), "
                     f"decided_by = %s WHERE id = %s AND status = 'approved' RETURNING {COLUMNS}",
                     (by, grant_id))
    else:
        raise AuthError(400, "Bad request", "action is approve, reject or revoke")
    if row is None:
        raise AuthError(409, "Conflict", f"No grant {grant_id} that can be {action}d.")
    audit.record(db, node_id, f"grant.{action}", actor=by, subject=row["layer_id"],
                 grant_id=grant_id, user=row["username"],
                 expires_at=str(row["expires_at"]) if row["expires_at"] else None)
    return row


def listing(db: Database, *, user_sub: str | None = None, status: str | None = None,
            limit: int = 200) -> list[dict[str, Any]]:
    clause, args = where(("user_sub = %s", user_sub), ("status = %s", status))
    return db.all(f"SELECT {COLUMNS} FROM auth.grants{clause} ORDER BY id DESC LIMIT %s",
                  (*args, limit))


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
