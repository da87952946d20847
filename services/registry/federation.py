"""Upward aggregation: a child pushes its outbox to its parent; the parent checks and applies.

Wire format (JSON), `POST {parent}/registry/api/push`:
    {"sender": "<child id>", "batch": <int, grows>, "changes": [
        {"op": "upsert", "record": {...}} | {"op": "health", "id": ..., "health": ...,
         "latency_ms": ..., "health_history": [...], "health_at": "..."} |
        {"op": "delete", "id": ...}]}
Each change is checked on its own: the parent applies the good ones and answers 200 with
`refused: [{"index", "op", "id", "reason"}]` for the others (a batch whose every change is refused
is a 400 carrying the same list, and changes nothing). The child parks refused changes
(registry.refused) instead of sending them again, so one bad record never blocks the rest.
`POST {parent}/registry/api/sync` reconciles: {"sender", "digest"} answers whether the parent's
copy of the sender's subtree matches; {"sender", "as_of_batch", "records": [...]} replaces it.
The sender authenticates with a client-credentials token of `node-<id>` from the main node.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from geoplat_settings import NodeRef, NodeView
from services.db import Database
from services.errors import AuthError
from services.registry.db import (
    ACCESS,
    COLUMNS,
    HEALTH,
    SERVICE_TYPES,
    outbox_add,
    record_of,
    refusal_add,
    write_record,
)
from services.registry.errors import RegistryError

LOGGER = logging.getLogger("geoplat.registry")
PUSH_SCOPE = "geoplat"  # of the token a child pushes with (services/registry/worker.py)
MAX_CHANGES = 5000
MAX_SNAPSHOT = 200_000


def bad(detail: str) -> RegistryError:
    return RegistryError(400, "Malformed push", detail)


def in_subtree(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def check_sender(view: NodeView, principal: Any, sender: Any) -> NodeRef:
    """The child entry for an authenticated push; 401/403 otherwise."""
    if principal is None:
        raise AuthError(401, "Unauthorized", "Pushes need a node's client-credentials token.")
    if principal.is_user or not isinstance(sender, str) or principal.client_id != f"node-{sender}":
        raise AuthError(403, "Forbidden", "The token does not belong to the sending node.")
    # the scope pushes are made with (services/registry/worker.py): a node's token of another
    # scope, e.g. the `forward` token a parent sends its children with place-name queries,
    # must not let a child that received it push as that node
    if PUSH_SCOPE not in str(principal.claims.get("scope", "")).split():
        raise AuthError(403, "Forbidden", f"Pushes need a node token of scope {PUSH_SCOPE}.")
    for child in view.registry.children:
        if child.id == sender:
            return child
    raise AuthError(403, "Forbidden", "Only direct child nodes push to this node.")


def _time(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"{what} must be an RFC 3339 time")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise bad(f"{what} must be an RFC 3339 time") from None
    return value


def _str(rec: dict, key: str, limit: int, *, required: bool = True) -> None:
    value = rec.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise bad(f"record field {key!r} must be a string of at most {limit} characters")


def check_record(rec: Any, root: str) -> dict[str, Any]:
    """A pushed record, validated; its origin must lie in the sender's subtree."""
    if not isinstance(rec, dict):
        raise bad("a record must be an object")
    for key, limit in (("id", 300), ("origin_node", 63), ("origin_path", 1000), ("url", 2000),
                       ("title", 1000)):
        _str(rec, key, limit)
    _str(rec, "description", 10000, required=False)
    _str(rec, "layer_id", 300, required=False)
    if not in_subtree(rec["origin_path"], root):
        raise bad(f"record {rec['id'][:80]!r} does not originate in the sender's subtree")
    if rec["origin_path"].rsplit("/", 1)[-1] != rec["origin_node"]:
        raise bad("origin_node must be the last part of origin_path")
    if not rec["id"].startswith(rec["origin_node"] + ":"):
        raise bad("a record id starts with its origin node")
    if rec.get("type") not in SERVICE_TYPES:
        raise bad("record type must be one of " + ", ".join(SERVICE_TYPES))
    if rec.get("status") not in ("approved", "retired"):
        raise bad("only approved or retired records travel upward")
    if rec.get("access", "public") not in ACCESS:
        raise bad("access must be public, registered or restricted")
    if not rec["url"].startswith(("http://", "https://")):
        raise bad("a service URL is http or https")
    version = rec.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**62:
        raise bad("version must be a non-negative integer")
    kw = rec.get("keywords") or []
    if not isinstance(kw, list) or len(kw) > 100 or not all(
            isinstance(k, str) and len(k) < 200 for k in kw):
        raise bad("keywords must be a list of short strings")
    bbox = rec.get("bbox")
    if bbox is not None:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise bad("bbox must be 4 numbers")
        # a one-point layer, or points on one latitude, has an empty box: it is still a place
        if not (-180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90):
            raise bad("bbox must be minx, miny, maxx, maxy in degrees")
    scale = rec.get("scale")
    if scale is not None and not (isinstance(scale, dict) and all(
            v is None or (isinstance(v, int) and 0 < v < 2**31)
            for v in (scale.get("finest"), scale.get("coarsest")))):
        raise bad("scale must hold finest/coarsest denominators")
    _check_health(rec, partial=True)
    return rec


def _check_health(change: dict, partial: bool = False) -> None:
    if change.get("health", "unknown" if partial else None) not in HEALTH:
        raise bad("health must be up, degraded, down or unknown")
    lat = change.get("latency_ms")
    if lat is not None and (not isinstance(lat, (int, float)) or isinstance(lat, bool)
                            or not 0 <= lat < 1e9):
        raise bad("latency_ms must be a number")
    hist = change.get("health_history") or []
    if not isinstance(hist, list) or len(hist) > 100 or not all(isinstance(h, dict) for h in hist):
        raise bad("health_history must be a short list of objects")
    _time(change.get("health_at"), "health_at")


def refusal(index: int, change: Any, reason: str) -> dict[str, Any]:
    """How one refused change is reported to its sender."""
    ch = change if isinstance(change, dict) else {}
    rec: dict[str, Any] = ch["record"] if isinstance(ch.get("record"), dict) else {}
    rid = ch.get("id", rec.get("id")) if ch.get("op") != "upsert" else rec.get("id")
    return {"index": index, "op": ch.get("op") if isinstance(ch.get("op"), str) else None,
            "id": rid[:300] if isinstance(rid, str) else None, "reason": reason}


def check_change(ch: Any, root: str) -> None:
    """One change of a push; `bad` (400) with the reason if it cannot be applied."""
    if not isinstance(ch, dict) or ch.get("op") not in ("upsert", "health", "delete"):
        raise bad("op must be upsert, health or delete")
    if ch["op"] == "upsert":
        check_record(ch.get("record"), root)
        return
    rid = ch.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > 300:
        raise bad("id must be a string")
    if ch["op"] == "health":
        _check_health(ch)


def check_changes(body: Any, root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The changes that can be applied, and the refusals (with their index) of the others."""
    changes = body.get("changes")
    if not isinstance(changes, list) or len(changes) > MAX_CHANGES:
        raise bad(f"changes must be a list of at most {MAX_CHANGES}")
    good, refused = [], []
    for i, ch in enumerate(changes):
        try:
            check_change(ch, root)
        except RegistryError as exc:
            refused.append(refusal(i, ch, exc.detail))
        else:
            good.append(ch)
    return good, refused


def _note_refused(db: Database, sender: str, refused: list[dict[str, Any]]) -> None:
    """Log and keep what a child sent that this node refused (for its operators)."""
    if not refused:
        return
    with db.transaction() as cur:
        for r in refused:
            refusal_add(cur, "in", sender, r["reason"], op=r["op"], record_id=r["id"])
    LOGGER.warning("registry push from %s: %d change(s) refused, e.g. %r: %s", sender,
                   len(refused), refused[0]["id"], refused[0]["reason"])


def _apply_upsert(cur: Any, rec: dict[str, Any], upward: bool) -> bool:
    cur.execute("SELECT version, source FROM registry.services WHERE id = %s FOR UPDATE",
                (rec["id"],))
    row = cur.fetchone()
    if row is not None and (row["version"] >= rec["version"] or row["source"] != "child"):
        return False  # older or equal copy (replays, reordering), or not the child's to change
    write_record(cur, rec, "child", keep_health=row is not None)
    if upward:
        cur.execute(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s", (rec["id"],))
        outbox_add(cur, "upsert", rec["id"], record_of(cur.fetchone()))
    return True


def _apply_health(cur: Any, ch: dict[str, Any], root: str, own_probes: set[str],
                  upward: bool) -> bool:
    if ch["id"] in own_probes:
        return False  # this node probes its direct children itself
    import json

    cur.execute("UPDATE registry.services SET health = %s, latency_ms = %s, "
                "health_history = %s::jsonb, health_at = %s::timestamptz WHERE id = %s "
                "AND source = 'child' AND (origin_path = %s OR origin_path LIKE %s) AND "
                "(health_at IS NULL OR health_at <= %s::timestamptz) RETURNING id",
                (ch["health"], ch.get("latency_ms"), json.dumps(ch.get("health_history") or []),
                 ch.get("health_at"), ch["id"], root, root + "/%", ch.get("health_at")))
    if cur.fetchone() is None:
        return False
    if upward:
        outbox_add(cur, "health", ch["id"], {k: ch.get(k) for k in (
            "id", "health", "latency_ms", "health_history", "health_at")})
    return True


def _apply_delete(cur: Any, rid: str, root: str, upward: bool) -> bool:
    cur.execute("DELETE FROM registry.services WHERE id = %s AND source = 'child' AND "
                "(origin_path = %s OR origin_path LIKE %s) RETURNING id", (rid, root, root + "/%"))
    if cur.fetchone() is None:
        return False
    if upward:
        outbox_add(cur, "delete", rid, {"id": rid})
    return True


def own_probe_ids(view: NodeView) -> set[str]:
    return {f"{c.id}:node" for c in view.registry.children}


def apply_push(db: Database, view: NodeView, principal: Any, body: Any) -> dict[str, Any]:
    """Check one batch from a direct child; apply its good changes, report the others."""
    if not isinstance(body, dict):
        raise bad("a JSON object is expected")
    child = check_sender(view, principal, body.get("sender"))
    batch = body.get("batch")
    if not isinstance(batch, int) or isinstance(batch, bool) or not 0 < batch < 2**62:
        raise bad("batch must be a positive integer")
    good, refused = check_changes(body, str(child.path))
    if refused and not good:
        _note_refused(db, child.id, refused)
        first = refused[0]
        raise RegistryError(400, "Malformed push", f"change {first['index']}: {first['reason']}",
                        refused=refused)
    upward = view.registry.parent is not None
    own = own_probe_ids(view)
    applied = 0
    with db.transaction() as cur:
        cur.execute("INSERT INTO registry.inbox (child, last_batch) VALUES (%s, 0) "
                    "ON CONFLICT DO NOTHING", (child.id,))
        cur.execute("SELECT last_batch FROM registry.inbox WHERE child = %s FOR UPDATE",
                    (child.id,))
        last = cur.fetchone()["last_batch"]
        if batch <= last:
            raise RegistryError(409, "Replayed push", "This batch was already applied.",
                            last_batch=last)
        for ch in good:
            if ch["op"] == "upsert":
                applied += _apply_upsert(cur, ch["record"], upward)
            elif ch["op"] == "health":
                applied += _apply_health(cur, ch, str(child.path), own, upward)
            else:
                applied += _apply_delete(cur, ch["id"], str(child.path), upward)
        cur.execute("UPDATE registry.inbox SET last_batch = %s, at = now() WHERE child = %s",
                    (batch, child.id))
    _note_refused(db, child.id, refused)
    return {"applied": applied, "received": len(good) + len(refused), "last_batch": batch,
            "refused": refused}


# --- full sync ------------------------------------------------------------------------------

DIGEST_SQL = ("SELECT count(*) AS n, md5(coalesce(string_agg(id || ':' || version, ',' "
              "ORDER BY id COLLATE \"C\"), '')) AS digest FROM registry.services WHERE status IN "
              "('approved', 'retired') AND version > 0 AND (origin_path = %s OR origin_path LIKE %s)")


def subtree_digest(db: Database, root: str) -> str:
    row = db.one(DIGEST_SQL, (root, root + "/%"))
    assert row is not None
    return f"{row['n']}:{row['digest']}"


def snapshot(db: Database, root: str) -> list[dict[str, Any]]:
    rows = db.all(f"SELECT {COLUMNS} FROM registry.services WHERE status IN ('approved', "
                  "'retired') AND version > 0 AND (origin_path = %s OR origin_path LIKE %s) "
                  "ORDER BY id", (root, root + "/%"))
    return [record_of(r) for r in rows]


def apply_sync(db: Database, view: NodeView, principal: Any, body: Any) -> dict[str, Any]:
    """Compare digests, or reconcile the child's subtree with its full snapshot."""
    if not isinstance(body, dict):
        raise bad("a JSON object is expected")
    child = check_sender(view, principal, body.get("sender"))
    root = str(child.path)
    if "records" not in body:
        digest = body.get("digest")
        if not isinstance(digest, str):
            raise bad("digest or records expected")
        return {"in_sync": digest == subtree_digest(db, root)}
    records = body.get("records")
    as_of = body.get("as_of_batch")
    if not isinstance(records, list) or len(records) > MAX_SNAPSHOT:
        raise bad("records must be a list")
    if not isinstance(as_of, int) or isinstance(as_of, bool) or as_of < 0:
        raise bad("as_of_batch must be an integer")
    good, refused = [], []
    for i, rec in enumerate(records):
        try:
            good.append(check_record(rec, root))
        except RegistryError as exc:
            refused.append(refusal(i, {"op": "upsert", "record": rec}, exc.detail))
    if refused:  # not kept: a snapshot is sent again until the digests match
        LOGGER.warning("registry sync from %s: %d record(s) refused, e.g. %r: %s", child.id,
                       len(refused), refused[0]["id"], refused[0]["reason"])
    upward = view.registry.parent is not None
    # a refused record's older copy stays: refusing a record is not deleting it
    keep = {r["id"] for r in good} | {r["id"] for r in refused if r["id"]}
    applied = removed = 0
    with db.transaction() as cur:
        cur.execute("INSERT INTO registry.inbox (child, last_batch) VALUES (%s, 0) "
                    "ON CONFLICT DO NOTHING", (child.id,))
        cur.execute("SELECT last_batch FROM registry.inbox WHERE child = %s FOR UPDATE",
                    (child.id,))
        if as_of < cur.fetchone()["last_batch"]:
            raise RegistryError(409, "Stale snapshot", "Newer changes were applied since.")
        for rec in good:
            applied += _apply_upsert(cur, rec, upward)
        cur.execute("SELECT id FROM registry.services WHERE source = 'child' AND version > 0 "
                    "AND (origin_path = %s OR origin_path LIKE %s)", (root, root + "/%"))
        for row in cur.fetchall():
            if row["id"] not in keep:
                removed += _apply_delete(cur, row["id"], root, upward)
    return {"applied": applied, "removed": removed, "refused": refused}


def digest_for(records: list[dict[str, Any]]) -> str:
    text = ",".join(f"{r['id']}:{r['version']}" for r in sorted(records, key=lambda r: r["id"]))
    return f"{len(records)}:{hashlib.md5(text.encode()).hexdigest()}"
