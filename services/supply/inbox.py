"""The parent's review queue of change-sets (schema `supply` of its database) and their
acceptance through the publishing path (layers/publish.py `derive`).

- `receive`: a signed change-set from a child is verified (signature by the child's key, body,
  manifest, the link: child, parent, layer), stored once (the same change-set received again
  changes nothing: its id is its content's), compared with the version of the child the parent
  last accepted (another base: `conflict`) and checked against the parent's layer in a
  transaction rolled back (changeset.check): `pending` with its problems, or accepted at once
  where the link says `auto_accept` and there are none.
- `accept`: the change-set is checked again and applied to a copy of the parent layer's
  current version, which becomes the next version, and the queue row and the accepted version
  change in the same transaction: killed half-way, nothing is applied and it stays pending.
  A parent layer that does not exist yet is made from the first change-set (version 1).
- `reject`: refused with a reason, nothing applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2 import sql

from geoplat_settings import SupplyIn
from geoplat_settings.federation import ACCESS_ORDER
from layers.catalogue import NodeContext
from layers.formats import PublishError
from layers.publish import NewLayer, derive
from services.supply import changeset as cs_mod
from services.supply.changeset import ChangeSet, Problem

DDL = """
CREATE SCHEMA IF NOT EXISTS supply;
CREATE TABLE IF NOT EXISTS supply.changesets (
    id text PRIMARY KEY,
    child text NOT NULL,
    layer text NOT NULL,
    parent_layer text NOT NULL,
    base_version integer,
    new_version integer NOT NULL,
    manifest jsonb NOT NULL,
    signature text NOT NULL,
    body bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'conflict', 'accepted', 'rejected')),
    problems jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    decided_by text,
    reason text,
    applied_version integer
);
CREATE INDEX IF NOT EXISTS changesets_state ON supply.changesets (state, received_at);
-- the child's version the parent last accepted, per link
CREATE TABLE IF NOT EXISTS supply.accepted (
    child text NOT NULL,
    parent_layer text NOT NULL,
    version integer NOT NULL,
    changeset text NOT NULL,
    PRIMARY KEY (child, parent_layer)
);
"""
# the PostgreSQL types a supplied field may have (the manifest is the child's word: it names
# no type outside these, so no text of it reaches DDL unchecked)
FIELD_TYPE = re.compile(r"(text|integer|bigint|smallint|real|double precision|boolean|date|"
                        r"numeric(\(\d{1,4}(,\d{1,4})?\))?|character varying(\(\d{1,5}\))?|"
                        r"timestamp with(out)? time zone|jsonb?)")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
GEOMETRY_TYPES = ("POINT", "MULTIPOINT", "LINESTRING", "MULTILINESTRING", "POLYGON",
                  "MULTIPOLYGON")


class SupplyRefused(Exception):
    """A change-set that may not be applied (its problems say why); nothing was applied."""

    def __init__(self, message: str, problems: list[Problem] | None = None, status: int = 409):
        super().__init__(message)
        self.message, self.problems, self.status = message, problems or [], status


@dataclass(frozen=True)
class Link:
    """What the parent takes from one child into one of its layers (config/federation.yml)."""
    child: str
    parent: str
    layer: str  # the child's
    parent_layer: str
    area_wkt: str  # the child's area, EPSG:4490
    public_jwk: Mapping[str, Any] = field(default_factory=dict)
    access: str = "public"  # of the parent layer when the first change-set makes it
    title: str = ""
    domains: Mapping[str, list[Any]] = field(default_factory=dict)
    max_delete_share: float = 0.2
    repair: bool = False
    auto_accept: bool = False
    max_bytes: int = 256 << 20


LEVEL_ORDER = ("province", "city", "county", "township")


def child_area(ctx: NodeContext, layers: Sequence[Any], supply_in: SupplyIn) -> str:
    """The child's area (WKT, EPSG:4490) as this node knows it: the union of this node's
    division units under the child's area code (the first level, from provinces down, that has
    any), widened by the link's tolerance; else the child's configured extent."""
    tol = supply_in.link.area_tolerance_m
    code = supply_in.area_code or ""
    prefix = code
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    divisions = sorted((LEVEL_ORDER.index(layer.places.level), layer.id, layer.places.code)
                        for layer in layers if layer.places is not None
                        and layer.places.kind == "division" and layer.places.level in LEVEL_ORDER
                        and layer.geometry_type in ("Polygon", "MultiPolygon"))
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        with conn, conn.cursor() as cur:
            for _, table, column in divisions if prefix else ():
                cur.execute(sql.SQL(
                    "SELECT ST_AsText(ST_SetSRID(ST_Buffer(ST_Union(geom)::geography, %s)"
                    "::geometry, 4490)) FROM {t} WHERE {c}::text LIKE %s").format(
                    t=sql.Identifier(table), c=sql.Identifier(column)), (tol, prefix + "%"))
                row = cur.fetchone()
                if row and row[0]:
                    return str(row[0])
            x0, y0, x1, y1 = supply_in.extent
            if not tol:  # a reference layer: anywhere in its source's extent
                return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
            cur.execute("SELECT ST_AsText(ST_SetSRID(ST_Buffer(ST_MakeEnvelope(%s, %s, %s, %s,"
                        " 4326)::geography, %s)::geometry, 4490))", (x0, y0, x1, y1, tol))
            return str(cur.fetchone()[0])
    finally:
        conn.close()


class LinkCache:
    """The links this node receives on, as `Link`s: the child's area (computed once per
    process) and its public key (from the main node, services/supply/keys.py)."""

    def __init__(self, ctx: NodeContext, layers: Sequence[Any], keys: Any):
        self.ctx, self.layers, self.keys = ctx, layers, keys
        self._areas: dict[tuple[str, str], str] = {}

    def get(self, supply_in: SupplyIn) -> Link:
        k = (supply_in.child, supply_in.link.layer)
        if k not in self._areas:
            self._areas[k] = child_area(self.ctx, self.layers, supply_in)
        link = supply_in.link
        return Link(child=supply_in.child, parent=self.ctx.id, layer=link.layer,
                    parent_layer=link.parent_layer, area_wkt=self._areas[k],
                    public_jwk=self.keys.public_jwk(supply_in.child), access=link.access,
                    title=link.title, domains=dict(link.domains),
                    max_delete_share=link.max_delete_share, repair=link.repair,
                    auto_accept=link.auto_accept, max_bytes=int(link.max_mb * 1024 * 1024))


def signed_layer(signature: str) -> str:
    """The child's layer a signed manifest names (not yet verified: to find its link)."""
    return str(cs_mod.unverified(signature).get("layer", ""))[:100]


def known(ctx: NodeContext, signature: str) -> bool:
    """Whether the change-set of this signature was received before."""
    cid = cs_mod.unverified(signature).get("id")
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM supply.changesets WHERE id = %s", (str(cid),))
            return cur.fetchone() is not None
    finally:
        conn.close()


def ensure_schema(conn: Any) -> None:
    cs_mod.ensure_ddl(conn, DDL)


def supplied_columns(manifest: Mapping[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """The (field, type) list and geometry type a supplied parent layer gets from a change-set's
    manifest; SupplyRefused for a field name or type outside what a layer may have."""
    key = manifest.get("key")
    schema = manifest.get("schema")
    gtype = str(manifest.get("geometry_type", ""))
    if not isinstance(schema, dict) or gtype not in GEOMETRY_TYPES:
        raise SupplyRefused("the change-set's schema or geometry type is not one a layer may "
                            "have", status=400)
    out = []
    for name, typ in schema.items():
        if name == key:
            continue
        if not (isinstance(name, str) and FIELD_NAME.fullmatch(name) and isinstance(typ, str)
                and FIELD_TYPE.fullmatch(typ)) or name in ("fid", "geom", *cs_mod.SOURCE_COLUMNS):
            raise SupplyRefused(f"the change-set's field {str(name)[:60]!r} ({str(typ)[:40]}) is "
                                "not one a layer may have", status=400)
        out.append((name, typ))
    return out, gtype


def create_supplied_table(cur: Any, table: str, manifest: Mapping[str, Any],
                          temporary: bool = False) -> None:
    fields, gtype = supplied_columns(manifest)
    cur.execute(sql.SQL("CREATE {temp} TABLE {t} (fid bigint NOT NULL, src_node text NOT NULL, "
                        "src_id text NOT NULL, {cols} geom geometry({g}, 4490) NOT NULL)").format(
        temp=sql.SQL("TEMP" if temporary else ""), t=sql.Identifier(table),
        cols=sql.SQL("").join(sql.SQL("{} {}, ").format(sql.Identifier(n), sql.SQL(t))
                              for n, t in fields),
        g=sql.SQL(gtype)))


def _current_table(cur: Any, layer: str) -> str | None:
    cur.execute("SELECT to_regclass('geoplat_published') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT v.storage FROM geoplat_published p JOIN geoplat_layer_versions v "
                "ON v.name = p.name AND v.version = p.current_version WHERE p.name = %s",
                (layer,))
    row = cur.fetchone()
    return row[0] if row else None


def _accepted(cur: Any, link: Link, lock: bool = False) -> int | None:
    cur.execute("SELECT version FROM supply.accepted WHERE child = %s AND parent_layer = %s"
                + (" FOR UPDATE" if lock else ""), (link.child, link.parent_layer))
    row = cur.fetchone()
    return row[0] if row else None


def resync(cur: Any, link: Link) -> int | None:
    """The child's version this node holds, after a rollback of the parent layer: when the
    layer no longer serves the version the last accepted change-set made, the child's version
    it serves is the one of the last change-set applied at or below the current version (the
    accepted version is set back to it: the child's next change-set is built from there)."""
    cur.execute("SELECT to_regclass('geoplat_published') IS NOT NULL")
    if not cur.fetchone()[0]:  # nothing published here yet
        return _accepted(cur, link)
    cur.execute("SELECT c.applied_version, p.current_version FROM supply.accepted a "
                "JOIN supply.changesets c ON c.id = a.changeset JOIN geoplat_published p "
                "ON p.name = a.parent_layer WHERE a.child = %s AND a.parent_layer = %s "
                "FOR UPDATE OF a", (link.child, link.parent_layer))
    row = cur.fetchone()
    if row is None or row[0] == row[1]:
        return _accepted(cur, link)
    cur.execute("SELECT id, new_version FROM supply.changesets WHERE child = %s AND "
                "parent_layer = %s AND state = 'accepted' AND applied_version <= %s "
                "ORDER BY applied_version DESC LIMIT 1", (link.child, link.parent_layer, row[1]))
    held = cur.fetchone()
    if held is None:
        cur.execute("DELETE FROM supply.accepted WHERE child = %s AND parent_layer = %s",
                    (link.child, link.parent_layer))
        return None
    cur.execute("UPDATE supply.accepted SET version = %s, changeset = %s WHERE child = %s AND "
                "parent_layer = %s", (held[1], held[0], link.child, link.parent_layer))
    return int(held[1])


def _problems(cur: Any, cs: ChangeSet, link: Link, target: str | None) -> list[Problem]:
    """changeset.check against `target` (None: against the empty layer the change-set would
    make, a temporary table)."""
    if target is None:
        target = "geoplat_supply_new"
        create_supplied_table(cur, target, cs.manifest, temporary=True)
    cs_mod.stage(cur, cs)
    return cs_mod.check(cur, cs, target=target, area_wkt=link.area_wkt,
                        domains=link.domains, max_delete_share=link.max_delete_share,
                        repair=link.repair)


def receive(ctx: NodeContext, link: Link, signature: str, body: bytes) -> dict[str, Any]:
    """Take a change-set into the queue (see the module): its row as `show` gives it."""
    if len(body) > link.max_bytes:
        raise SupplyRefused(f"the change-set is over this node's limit of "
                            f"{link.max_bytes >> 20} MiB", status=413)
    manifest = cs_mod.verify(signature, body, link.public_jwk,
                             {"child": link.child, "parent": link.parent, "layer": link.layer,
                              "parent_layer": link.parent_layer})
    if ACCESS_ORDER.get(str(manifest.get("access", "public")), 9) > ACCESS_ORDER[link.access]:
        raise SupplyRefused(f"{link.child}'s layer {link.layer} is {manifest.get('access')}: "
                            f"this node's {link.parent_layer} ({link.access}) would protect it "
                            "less", status=403)
    cs = ChangeSet(manifest, body, signature)
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM supply.changesets WHERE id = %s", (cs.id,))
            if cur.fetchone():
                return show(ctx, cs.id)  # received before: nothing changes
            supplied_columns(manifest)
            base = resync(cur, link)
            cur.execute("SAVEPOINT geoplat_supply_check")
            if manifest.get("base_version") != base:
                state = "conflict"
                problems = [Problem("conflict", f"the change-set is based on version "
                                    f"{manifest.get('base_version')} of {link.child}'s "
                                    f"{link.layer}; this node holds version {base}",
                                    conflict=True)]
            else:
                problems = _problems(cur, cs, link, _current_table(cur, link.parent_layer))
                state = "conflict" if any(p.conflict for p in problems) else "pending"
            cur.execute("ROLLBACK TO SAVEPOINT geoplat_supply_check")
            cur.execute(
                "INSERT INTO supply.changesets (id, child, layer, parent_layer, base_version,"
                " new_version, manifest, signature, body, state, problems) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (cs.id, link.child, link.layer, link.parent_layer, manifest.get("base_version"),
                 manifest["new_version"], json.dumps(manifest, ensure_ascii=False), signature,
                 psycopg2.Binary(body), state,
                 json.dumps([p.as_dict() for p in problems], ensure_ascii=False)))
            if state == "pending":  # the child's conflicts before it are superseded by it
                cur.execute("UPDATE supply.changesets SET state = 'rejected', decided_at = now(),"
                            " decided_by = 'supply', reason = %s WHERE child = %s AND "
                            "parent_layer = %s AND state = 'conflict' AND id <> %s",
                            (f"superseded by change-set {cs.id}", link.child, link.parent_layer,
                             cs.id))
    finally:
        conn.close()
    if link.auto_accept and state == "pending" and not problems:
        accept(ctx, link, cs.id, actor=f"auto-accept ({link.child})")
    return show(ctx, cs.id)


def accept(ctx: NodeContext, link: Link, changeset_id: str, *, actor: str | None
           ) -> dict[str, Any]:
    """Apply a pending change-set (see the module); SupplyRefused with its problems if it may
    not be, and then nothing changed."""
    row = show(ctx, changeset_id, body=True)
    if row["state"] != "pending":
        raise SupplyRefused(f"change-set {changeset_id} is {row['state']}, not pending")
    cs = ChangeSet(row["manifest"], bytes(row["body"]), row["signature"])

    def change(cur: Any, table: str) -> dict[str, Any]:
        cur.execute("SELECT state FROM supply.changesets WHERE id = %s FOR UPDATE",
                    (changeset_id,))
        if cur.fetchone()[0] != "pending":
            raise SupplyRefused(f"change-set {changeset_id} was decided meanwhile")
        held = resync(cur, link)  # (after a rollback of the layer: what it serves now)
        if held != cs.manifest.get("base_version"):
            raise SupplyRefused(f"change-set {changeset_id} is based on version "
                                f"{cs.manifest.get('base_version')} of {link.child}'s "
                                f"{link.layer}; this node's {link.parent_layer} holds version "
                                f"{held} (a conflict: the child sends one from there)")
        cs_mod.stage(cur, cs)
        problems = cs_mod.check(cur, cs, target=table, area_wkt=link.area_wkt,
                                domains=link.domains, max_delete_share=link.max_delete_share,
                                repair=link.repair)
        if problems:
            raise SupplyRefused(f"change-set {changeset_id} may not be applied", problems)
        counts = cs_mod.apply(cur, cs, target=table)
        version = int(table.rsplit("__v", 1)[1])
        cur.execute("UPDATE supply.changesets SET state = 'accepted', decided_at = now(), "
                    "decided_by = %s, applied_version = %s WHERE id = %s",
                    (actor, version, changeset_id))
        cur.execute("INSERT INTO supply.accepted (child, parent_layer, version, changeset) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (child, parent_layer) DO UPDATE SET "
                    "version = EXCLUDED.version, changeset = EXCLUDED.changeset",
                    (link.child, link.parent_layer, cs.manifest["new_version"], changeset_id))
        return counts

    fields, gtype = supplied_columns(cs.manifest)
    def create(cur: Any, table: str) -> None:
        create_supplied_table(cur, table, cs.manifest)
        # a supplied layer feeds no place names here: the child answers for its own area
        # (federated search, services/places/federation.py), so its places are not found twice
        cur.execute("UPDATE geoplat_published SET places = 'false'::jsonb WHERE name = %s",
                    (link.parent_layer,))

    new = NewLayer(title=link.title or link.parent_layer, access=link.access,
                   geometry_type=gtype, columns={n: n for n, _ in fields}, create=create)
    try:
        derive(ctx, link.parent_layer, change, new=new, actor=actor, event="supply.accept",
               source=f"supply from {link.child} ({link.layer} v{cs.manifest['new_version']}, "
                      f"change-set {changeset_id})", checksum=cs.manifest["body_sha256"])
    except PublishError as exc:
        raise SupplyRefused(exc.message, status=exc.status) from None
    return show(ctx, changeset_id)


def reject(ctx: NodeContext, changeset_id: str, *, actor: str | None, reason: str
           ) -> dict[str, Any]:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE supply.changesets SET state = 'rejected', decided_at = now(), "
                        "decided_by = %s, reason = %s WHERE id = %s AND state IN "
                        "('pending', 'conflict') RETURNING id", (actor, reason[:500],
                                                                 changeset_id))
            if cur.fetchone() is None:
                raise SupplyRefused(f"change-set {changeset_id} is not pending", status=409)
    finally:
        conn.close()
    return show(ctx, changeset_id)


def show(ctx: NodeContext, changeset_id: str, body: bool = False) -> dict[str, Any]:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            # with the child's version this node holds now (the child builds its next from it)
            cur.execute("SELECT c.*, (SELECT a.version FROM supply.accepted a WHERE a.child = "
                        "c.child AND a.parent_layer = c.parent_layer) AS accepted_version FROM "
                        "supply.changesets c WHERE c.id = %s", (changeset_id,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise SupplyRefused(f"no change-set {changeset_id}", status=404)
    if not body:
        row.pop("body")
        row.pop("signature")
    return dict(row)


def listing(ctx: NodeContext, state: str | None = None) -> list[dict[str, Any]]:
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-supply")
    try:
        ensure_schema(conn)
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT id, child, layer, parent_layer, base_version, new_version, state,"
                        " manifest->'counts' AS counts, received_at, decided_at, decided_by,"
                        " applied_version FROM supply.changesets"
                        " WHERE %s::text IS NULL OR state = %s ORDER BY received_at",
                        (state, state))
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()
