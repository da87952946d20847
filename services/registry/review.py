"""Registering external services at a node and the review decisions (审核), audited."""

from __future__ import annotations

from typing import Any

from geoplat_settings import NodeView
from layers.errors import printable
from services.access import audit
from services.db import Database
from services.registry.db import (
    ACCESS,
    COLUMNS,
    SERVICE_TYPES,
    outbox_add,
    record_of,
    write_record,
)
from services.registry.errors import RegistryError
from services.registry.external import BadURL, harvest, new_record

ACTIONS = {"approve": ("pending", "approved"), "reject": ("pending", "rejected"),
           "retire": ("approved", "retired")}


def register_external(db: Database, view: NodeView, url: str, *, wanted: str | None = None,
                      title: str | None = None, description: str | None = None,
                      keywords: list[str] | None = None, access: str = "public",
                      actor: str, ip: str | None = None) -> dict[str, Any]:
    """Harvest `url` and store a pending record; nothing is stored when harvesting fails."""
    node = view.server
    cfg = view.registry.settings
    if wanted is not None and wanted not in SERVICE_TYPES[:-1]:
        raise RegistryError(400, "Bad request", "type must be one of " + ", ".join(SERVICE_TYPES[:-1]))
    if access not in ACCESS:
        raise RegistryError(400, "Bad request", "access must be public, registered or restricted")
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise BadURL("url is required (at most 2000 characters)")
    try:
        info = harvest(url, cfg, wanted)
    except RegistryError as exc:
        audit.record(db, node.id, "registry.register", actor=actor, subject=printable(url, 2000),
                     ok=False, ip=ip, reason=exc.detail)
        raise
    rec = new_record(node.id, view.registry.path, info, title=title, description=description,
                     keywords=keywords, access=access, submitted_by=actor)
    with db.transaction() as cur:
        write_record(cur, rec, "external", keep_health=False)
    audit.record(db, node.id, "registry.register", actor=actor, subject=rec["id"], ip=ip,
                 url=rec["url"], type=rec["type"])
    got = db.one(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s", (rec["id"],))
    assert got is not None
    return record_of(got)


def decide(db: Database, view: NodeView, record_id: str, action: str, *, actor: str,
           ip: str | None = None) -> dict[str, Any]:
    """approve / reject / retire one external record of this node, or approve / reject a
    pending record of a layer published here (`registry.review_published`); 404/409 otherwise."""
    node = view.server
    if action not in ACTIONS:
        raise RegistryError(404, "Not Found", "Unknown action.")
    before, after = ACTIONS[action]
    with db.transaction() as cur:
        cur.execute(f"SELECT {COLUMNS}, source FROM registry.services WHERE id = %s "
                    "AND origin_node = %s AND (source = 'external' OR (source = 'local' "
                    "AND status IN ('pending', 'rejected') AND %s <> 'retire')) FOR UPDATE",
                    (record_id, node.id, action))
        row = cur.fetchone()
        if row is None:
            raise RegistryError(404, "Not Found", "No such external service, or published layer "
                                              "awaiting review, at this node.")
        source = row["source"]
        rec = record_of(row)
        if rec["status"] != before:
            raise RegistryError(409, "Conflict", f"Only a {before} service can be {action}d; this one "
                                             f"is {rec['status']}.")
        rec = {**rec, "status": after, "version": rec["version"] + 1, "updated": None}
        write_record(cur, rec, source)
        cur.execute("UPDATE registry.services SET decided_by = %s, decided_at = now() "
                    "WHERE id = %s", (actor, record_id))
        cur.execute(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s", (record_id,))
        out = record_of(cur.fetchone())
        if node.parent and after in ("approved", "retired"):
            outbox_add(cur, "upsert", record_id, out)
    audit.record(db, node.id, f"registry.{action}", actor=actor, subject=record_id, ip=ip,
                 url=out["url"])
    return out


def listing(db: Database, node_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """External services registered at this node, and published layers' records awaiting
    review or rejected (for its reviewers)."""
    args: list[Any] = [node_id]
    sql = (f"SELECT {COLUMNS} FROM registry.services WHERE origin_node = %s AND (source = "
           "'external' OR (source = 'local' AND status IN ('pending', 'rejected')))")
    if status:
        sql += " AND status = %s"
        args.append(status)
    return [record_of(r) for r in db.all(sql + " ORDER BY created, id", tuple(args))]
