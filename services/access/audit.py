"""The append-only audit trail (`auth.audit`, one per node database)."""

from __future__ import annotations

import json
import logging
from typing import Any

from services.db import Database, where

LOGGER = logging.getLogger("geoplat.audit")


def clean(value: Any) -> Any:
    """`value` with every string storable as PostgreSQL text: NUL written as `\\x00`, lone
    surrogates and undecodable bytes as backslash escapes (what an attacker sent stays legible)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {clean(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean(v) for v in value]
    return value


def record(db: Database, node_id: str, event: str, *, actor: str | None = None,
           subject: str | None = None, ok: bool = True, ip: str | None = None,
           **detail: Any) -> None:
    """Append one event; a failure to audit is logged, never raised to the caller's user.

    Every value is cleaned first, so hostile input (NUL, invalid UTF-8) is recorded, not lost.
    """
    try:
        db.execute("INSERT INTO auth.audit (node_id, event, actor, subject, ok, ip, detail) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (clean(node_id), clean(event), clean(actor), clean(subject), ok, clean(ip),
                    json.dumps(clean(detail), ensure_ascii=False, default=str)))
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
