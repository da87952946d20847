"""The state of a node's supply links (issue 18): `geoplat supply status`, `GET /api/supply`.

Per link this node sends on: the version of its layer the parent accepted last, the last one
built, what is in flight (queued, pending review, conflict) and the last failure. Per link it
receives on: the child's version accepted last, the change-sets waiting (pending, conflict).
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extras

from geoplat_settings import SupplySection
from layers.catalogue import NodeContext
from services.supply import inbox, outbox


def node_status(ctx: NodeContext, supply: SupplySection) -> dict[str, Any]:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        outbox.ensure_schema(conn)
        inbox.ensure_schema(conn)
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            sends = []
            for o in supply.out:
                cur.execute("SELECT accepted_version, built_version FROM supply.links WHERE "
                            "parent = %s AND parent_layer = %s", (o.parent, o.link.parent_layer))
                row = cur.fetchone() or {}
                cur.execute("SELECT state, count(*) AS n FROM supply.outbox WHERE parent = %s "
                            "AND parent_layer = %s GROUP BY state",
                            (o.parent, o.link.parent_layer))
                states = {r["state"]: r["n"] for r in cur.fetchall()}
                cur.execute("SELECT id, state, last_error, created_at FROM supply.outbox WHERE "
                            "parent = %s AND parent_layer = %s ORDER BY created_at DESC LIMIT 1",
                            (o.parent, o.link.parent_layer))
                last = cur.fetchone()
                sends.append({"layer": o.link.layer, "parent": o.parent,
                              "parent_layer": o.link.parent_layer,
                              "accepted_version": row.get("accepted_version"),
                              "built_version": row.get("built_version"), "changesets": states,
                              "last": dict(last) if last else None})
            takes = []
            for i in supply.incoming:
                cur.execute("SELECT version FROM supply.accepted WHERE child = %s AND "
                            "parent_layer = %s", (i.child, i.link.parent_layer))
                row = cur.fetchone() or {}
                cur.execute("SELECT state, count(*) AS n FROM supply.changesets WHERE "
                            "child = %s AND parent_layer = %s GROUP BY state",
                            (i.child, i.link.parent_layer))
                takes.append({"child": i.child, "layer": i.link.layer,
                              "parent_layer": i.link.parent_layer,
                              "auto_accept": i.link.auto_accept,
                              "accepted_version": row.get("version"),
                              "changesets": {r["state"]: r["n"] for r in cur.fetchall()}})
    finally:
        conn.close()
    return {"node": ctx.id, "sends": sends, "receives": takes}
