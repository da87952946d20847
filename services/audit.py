"""The append-only audit trail (`auth.audit`, one per node database)."""

from __future__ import annotations

import json
import logging
from typing import Any

from services.db import Database, where

LOGGER = logging.getLogger("geoplat.audit")


def record(db: Database, node_id: str, event: str, *, actor: str | None = None,
           subject: str | None = None, ok: bool = True, ip: str | None = None,
           **detail: Any) -> None:
    """Append one event; a failure to audit is logged, never raised to the caller's user."""
    try:
        db.execute("INSERT INTO auth.audit (node_id, event, actor, subject, ok, ip, detail) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (node_id, event, actor, subject, ok, ip,
                    json.dumps(detail, ensure_ascii=False, default=str)))
    except Exception:
        LOGGER.exception("could not write audit event %s", event)


def query(db: Database, *, event: str | None = None, actor: str | None = None,
          since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest events first, optionally filtered."""
    clause, args = where(("event = %s", event), ("actor = %s", actor),
                         ("at >= %s::timestamptz", since))
    sql = ("SELECT id, at, node_id, event, actor, subject, ok, ip, detail FROM auth.audit"
           + clause + " ORDER BY id DESC LIMIT %s")
    return db.all(sql, (*args, limit))
