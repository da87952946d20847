"""The child's side of data supply (issue 18): build change-sets of its supplying layers, keep
them in a durable outbox (schema `supply` of its database) and send them to the parent.

- `build_due`: for a link whose layer has a version newer than the last one built for it, and
  no change-set in flight, the change-set from the version the parent last accepted (none yet:
  every feature an insert) to the current one, generalised for the parent's scale, signed with
  the node's key, queued. A configured layer that was never published is its version 1.
- `flush`: every queued change-set is POSTed to the parent (client-credentials token of this
  node); the parent's answer (its review state) is kept. An unreachable parent, a 5xx or 401
  leave it queued for the next round (nothing is lost across restarts: the outbox is in the
  database; the parent takes the same change-set once: its id is its content's). A refusal
  (4xx naming why) parks it as `refused` with the reason.
- `poll`: change-sets the parent holds for review are asked for again; once accepted, the next
  change-set is based on that version. A conflict answered with another version of ours that
  the parent holds (it rolled its layer back) supersedes the change-set: the next is built
  from that version (re-sync).
- `SupplyWorker`: one thread per node process; the one holding the node's supply lock builds,
  flushes and polls every few seconds (a publish of a supplying layer is sent within seconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extras
from psycopg2 import sql

from geoplat_settings import NodeRuntime, SupplyOut
from layers.catalogue import NodeContext
from services.access.clients import SyncClientCredentials, TokenUnavailable
from services.supply import changeset as cs_mod
from services.supply import keys as keys_mod

LOGGER = logging.getLogger("geoplat.supply")
LOCK_KEY = 4320
INTERVAL = 2.0
SCOPE = "geoplat"
MEDIA_TYPE = "application/vnd.geoplat.changeset+ndjson"
SIGNATURE_HEADER = "Geoplat-Signature"
IN_FLIGHT = ("queued", "pending", "conflict")
DECIDED = ("accepted", "rejected", "refused", "superseded")

DDL = """
CREATE SCHEMA IF NOT EXISTS supply;
CREATE TABLE IF NOT EXISTS supply.outbox (
    id text PRIMARY KEY,
    parent text NOT NULL,
    layer text NOT NULL,
    parent_layer text NOT NULL,
    base_version integer,
    new_version integer NOT NULL,
    manifest jsonb NOT NULL,
    signature text NOT NULL,
    body bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('queued', 'pending', 'conflict', 'accepted',
                                         'rejected', 'refused', 'superseded')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    problems jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    decided_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_state ON supply.outbox (state, created_at);
-- per link: the layer version the parent accepted last, and the last one built
CREATE TABLE IF NOT EXISTS supply.links (
    parent text NOT NULL,
    parent_layer text NOT NULL,
    layer text NOT NULL,
    accepted_version integer,
    built_version integer,
    PRIMARY KEY (parent, parent_layer)
);
"""


def ensure_schema(conn: Any) -> None:
    cs_mod.ensure_ddl(conn, DDL)


def current_version(cur: Any, layer: str, configured_access: str = "public"
                    ) -> tuple[int, str, str] | None:
    """(version, table, access) the node serves of `layer` now: the current published version,
    else a configured layer as its version 1; None for a layer without features here."""
    cur.execute("SELECT to_regclass('geoplat_published') IS NOT NULL")
    if cur.fetchone()[0]:
        cur.execute("SELECT p.current_version, v.storage, p.access FROM geoplat_published p "
                    "JOIN geoplat_layer_versions v ON v.name = p.name AND "
                    "v.version = p.current_version WHERE p.name = %s", (layer,))
        row = cur.fetchone()
        if row:
            return int(row[0]), str(row[1]), str(row[2])
    cur.execute("SELECT to_regclass(%s)", (f"public.{layer}",))
    if cur.fetchone()[0]:
        return 1, layer, configured_access
    return None


def version_table(cur: Any, layer: str, version: int) -> str | None:
    """The table of a kept version of `layer` (version 1 of a configured layer: its table)."""
    cur.execute("SELECT to_regclass('geoplat_layer_versions') IS NOT NULL")
    if cur.fetchone()[0]:
        cur.execute("SELECT storage FROM geoplat_layer_versions WHERE name = %s AND "
                    "version = %s AND NOT storage LIKE 'file:%%'", (layer, version))
        row = cur.fetchone()
        if row:
            cur.execute("SELECT to_regclass(%s)", (f"public.{row[0]}",))
            return str(row[0]) if cur.fetchone()[0] else None
    if version == 1:
        cur.execute("SELECT to_regclass(%s)", (f"public.{layer}",))
        if cur.fetchone()[0]:
            return layer
    return None


def _generalised(cur: Any, table: str, out: SupplyOut, fields: list[str], name: str) -> str:
    """A temporary copy of `table` (key, fields, geom) fitted to the parent's scale."""
    link, g = out.link, out.link.generalise
    geom = sql.SQL("geom")
    if g.simplify_m > 0:  # metres to degrees of latitude: the tolerance of a 1:N map
        geom = sql.SQL("ST_SimplifyPreserveTopology(geom, {})").format(
            sql.Literal(g.simplify_m / 111320.0))
    where = [sql.SQL("NOT ST_IsEmpty(geom)")]
    if g.min_area_m2 > 0:
        where.append(sql.SQL("(GeometryType(geom) NOT LIKE '%%POLYGON' OR "
                             "ST_Area(geom::geography) >= {})").format(sql.Literal(g.min_area_m2)))
    for column, values in g.keep.items():
        where.append(sql.SQL("{}::text = ANY({})").format(sql.Identifier(column),
                                                          sql.Literal(list(values))))
    cols = [link.key, *[f for f in fields if f != link.key]]
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {n}; CREATE TEMP TABLE {n} ON COMMIT DROP AS "
                        "SELECT {cols}, {geom} AS geom FROM {t} WHERE {where}").format(
        n=sql.Identifier(name), cols=sql.SQL(", ").join(map(sql.Identifier, cols)), geom=geom,
        t=sql.Identifier(table), where=sql.SQL(" AND ").join(where)))
    return name


def build_due(ctx: NodeContext, runtime: NodeRuntime, only: str | None = None) -> list[str]:
    """Build and queue the change-sets now due (see the module); their ids."""
    if not runtime.supply.out:
        return []
    key = keys_mod.node_key(Path(runtime.supply.key_file))
    levels = {layer.id: layer.access for layer in runtime.layers}
    made = []
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        ensure_schema(conn)
        for out in runtime.supply.out:
            link = out.link
            if only and link.layer != only:
                continue
            with conn, conn.cursor() as cur:
                cur.execute("INSERT INTO supply.links (parent, parent_layer, layer) VALUES "
                            "(%s, %s, %s) ON CONFLICT DO NOTHING",
                            (out.parent, link.parent_layer, link.layer))
                cur.execute("SELECT accepted_version, built_version FROM supply.links WHERE "
                            "parent = %s AND parent_layer = %s FOR UPDATE",
                            (out.parent, link.parent_layer))
                accepted, built = cur.fetchone()
                cur.execute("SELECT 1 FROM supply.outbox WHERE parent = %s AND parent_layer = %s"
                            " AND state IN ('queued', 'pending', 'conflict')",
                            (out.parent, link.parent_layer))
                if cur.fetchone():
                    continue  # one change-set in flight per link
                now = current_version(cur, link.layer, levels.get(link.layer, "restricted"))
                if now is None or now[0] == accepted or now[0] == built:
                    continue
                version, table, access = now
                old = None
                if accepted is not None:
                    old = version_table(cur, link.layer, accepted)
                    if old is None:
                        LOGGER.error("supply %s -> %s.%s: version %s (accepted there) is no "
                                     "longer kept here", link.layer, out.parent,
                                     link.parent_layer, accepted)
                        continue
                fields = link.fields or [c for c in cs_mod.columns(cur, table)
                                         if c not in ("fid", "geom", link.key)]
                new_t = _generalised(cur, table, out, fields, "geoplat_supply_new_t")
                old_t = _generalised(cur, old, out, fields, "geoplat_supply_old_t") if old else None
                cs = cs_mod.build(cur, new_table=new_t, old_table=old_t, key=link.key,
                                  fields=fields, child=ctx.id, parent=out.parent,
                                  layer=link.layer, parent_layer=link.parent_layer,
                                  base_version=accepted, new_version=version, access=access)
                signature = cs_mod.sign(cs.manifest, key, ctx.id)
                cur.execute("INSERT INTO supply.outbox (id, parent, layer, parent_layer, "
                            "base_version, new_version, manifest, signature, body, state) VALUES"
                            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued') ON CONFLICT DO "
                            "NOTHING", (cs.id, out.parent, link.layer, link.parent_layer,
                                        accepted, version, json.dumps(cs.manifest),
                                        signature, psycopg2.Binary(cs.body)))
                cur.execute("UPDATE supply.links SET built_version = %s WHERE parent = %s AND "
                            "parent_layer = %s", (version, out.parent, link.parent_layer))
                made.append(cs.id)
                LOGGER.info("supply %s v%s -> %s.%s: change-set %s queued (%s)", link.layer,
                            version, out.parent, link.parent_layer, cs.id, cs.counts)
    finally:
        conn.close()
    return made


class Sender:
    """Sends the outbox and asks for the parent's decisions (see the module)."""

    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, timeout: float = 60.0):
        self.ctx, self.runtime, self.timeout = ctx, runtime, timeout
        self.parents = {o.parent: o.parent_url for o in runtime.supply.out}
        self._credentials: SyncClientCredentials | None = None

    def _token(self, http: httpx.Client) -> str:
        auth = self.runtime.auth
        if self._credentials is None or self._credentials.http is not http:
            self._credentials = SyncClientCredentials(http, auth.token_url, auth.client_id,
                                                      auth.client_secret, timeout=10.0)
        return self._credentials.token(SCOPE)

    def _rows(self, states: tuple[str, ...], body: bool = False) -> list[dict[str, Any]]:
        conn = psycopg2.connect(self.ctx.dsn, application_name="geoplat-supply")
        try:
            ensure_schema(conn)
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute("SELECT id, parent, parent_layer, base_version, new_version, "
                            "signature, state"
                            + (", body" if body else "") + " FROM supply.outbox WHERE state = "
                            "ANY(%s) ORDER BY created_at", (list(states),))
                return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def _settle(self, row: dict[str, Any], state: str, *, error: str | None = None,
                problems: Any = None, sent: bool = False, resync: Any = False) -> None:
        conn = psycopg2.connect(self.ctx.dsn, application_name="geoplat-supply")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "UPDATE supply.outbox SET state = %s, last_error = %s, problems = "
                    "COALESCE(%s, problems), attempts = attempts + %s, sent_at = CASE WHEN %s "
                    "THEN now() ELSE sent_at END, decided_at = CASE WHEN %s THEN now() ELSE "
                    "decided_at END WHERE id = %s",
                    (state, error, None if problems is None else json.dumps(problems),
                     1 if sent else 0, sent, state in DECIDED, row["id"]))
                if state == "accepted":
                    cur.execute("UPDATE supply.links SET accepted_version = %s WHERE parent = %s"
                                " AND parent_layer = %s", (row["new_version"], row["parent"],
                                                           row["parent_layer"]))
                elif resync is not False:  # the parent's version of ours; built anew from it
                    cur.execute("UPDATE supply.links SET accepted_version = %s, built_version = "
                                "NULL WHERE parent = %s AND parent_layer = %s",
                                (resync, row["parent"], row["parent_layer"]))
        finally:
            conn.close()

    def _answer(self, row: dict[str, Any], r: httpx.Response, sent: bool) -> str:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code in (200, 201) and body.get("state") in ("pending", "conflict",
                                                                 "accepted", "rejected"):
            held = body.get("accepted_version")
            if body["state"] == "conflict" and held != row["base_version"] and \
                    (held is None or isinstance(held, int)):
                # the parent holds another version of ours (it rolled back): send the change
                # from there instead (this one is superseded, no longer in flight)
                self._settle(row, "superseded", sent=sent, problems=body.get("problems"),
                             error=f"{row['parent']} holds version {held}; the next "
                                   "change-set is built from it", resync=held)
                return "superseded"
            self._settle(row, body["state"], problems=body.get("problems"), sent=sent,
                         error=body.get("reason"))
            return str(body["state"])
        detail = f"{r.status_code} {body.get('title', '')}: {body.get('detail', '')}"[:500]
        if r.status_code in (400, 403, 404, 409, 413, 415):
            self._settle(row, "refused", error=detail, problems=body.get("problems"), sent=sent)
            return "refused"
        self._settle(row, "queued", error=detail, sent=sent)  # 401, 429, 5xx: again later
        return "queued"

    def _each(self, states: tuple[str, ...], body: bool = False
              ) -> Iterator[tuple[httpx.Client, str, dict[str, Any]]]:
        """(client, the receiving node's URL, row) for the outbox rows in `states`."""
        rows = self._rows(states, body=body)
        if not rows:
            return
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
            for row in rows:
                base = self.parents.get(row["parent"])
                if base is not None:
                    yield http, base, row

    def flush(self) -> dict[str, str]:
        """Send every queued change-set; id -> the state it is in now."""
        out: dict[str, str] = {}
        for http, base, row in self._each(("queued",), body=True):
            try:
                token = self._token(http)
                r = http.post(base + "/api/supply/changesets", content=bytes(row["body"]),
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": MEDIA_TYPE,
                                       SIGNATURE_HEADER: row["signature"]})
            except (httpx.HTTPError, TokenUnavailable) as exc:
                self._settle(row, "queued", error=f"not sent: {type(exc).__name__}", sent=True)
                out[row["id"]] = "queued"
                continue
            out[row["id"]] = self._answer(row, r, sent=True)
        return out

    def poll(self) -> dict[str, str]:
        """Ask the parent about the change-sets it holds for review; id -> state now."""
        out: dict[str, str] = {}
        for http, base, row in self._each(("pending", "conflict")):
            try:
                r = http.get(f"{base}/api/supply/changesets/{row['id']}",
                             headers={"Authorization": f"Bearer {self._token(http)}"})
            except (httpx.HTTPError, TokenUnavailable):
                continue
            if r.status_code == 200 and r.json().get("state") != row["state"]:
                out[row["id"]] = self._answer(row, r, sent=False)
        return out


def outbox_listing(ctx: NodeContext) -> list[dict[str, Any]]:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        ensure_schema(conn)
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT id, parent, layer, parent_layer, base_version, new_version, state,"
                        " attempts, last_error, manifest->'counts' AS counts, created_at, "
                        "sent_at, decided_at FROM supply.outbox ORDER BY created_at")
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


class SupplyWorker(threading.Thread):
    """One per node process; works only while holding the node's supply lock."""

    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, interval: float = INTERVAL):
        super().__init__(name="geoplat-supply", daemon=True)
        self.ctx, self.runtime, self.interval = ctx, runtime, interval
        self._stop = threading.Event()
        self._lock_conn: Any = None
        self._locked = False

    def _holds_lock(self) -> bool:
        """The node's supply lock, on a session of this thread's (held until it ends)."""
        try:
            if self._lock_conn is None or self._lock_conn.closed:
                self._locked = False
                self._lock_conn = psycopg2.connect(self.ctx.dsn, connect_timeout=5,
                                                   application_name="geoplat-supply-lock")
                self._lock_conn.autocommit = True
            with self._lock_conn.cursor() as cur:
                if self._locked:
                    cur.execute("SELECT 1")  # the session (and so the lock) is still there
                else:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                    self._locked = bool(cur.fetchone()[0])
            return self._locked
        except psycopg2.Error:
            self._lock_conn, self._locked = None, False
            return False

    def run(self) -> None:
        sender = Sender(self.ctx, self.runtime)
        while not self._stop.wait(self.interval):
            if not self._holds_lock():
                continue
            try:
                build_due(self.ctx, self.runtime)
                sender.flush()
                sender.poll()
            except Exception:  # logged; the next round tries again
                LOGGER.exception("supply round failed")

    def stop(self) -> None:
        self._stop.set()
        if self.is_alive():
            self.join(timeout=10)
        if self._lock_conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._lock_conn.close()
