"""Change-sets of a layer (数据增量包): built by the child, signed, checked and applied by the parent.

A change-set is the difference between two versions of a layer, keyed by a stable feature id
(an attribute of the layer, or its `fid`): the features inserted, updated (attributes or
geometry) and deleted. It travels as
- a **manifest** (JSON): the child and parent nodes, both layers, the base version (the last
  one the parent accepted; None for the first supply) and the new version, the key, the
  schema (field -> PostgreSQL type), CRS (always EPSG:4490), the extent of what changed (old
  and new geometries), the counts, the body's size and SHA-256, and its `id` (the SHA-256 of
  the rest: sending the same change-set twice names it the same);
- a **signature**: a compact JWS (RFC 7515, alg `Ed25519`, RFC 9864) over the canonical
  manifest, by the child node's key (joserfc, the project's JOSE library);
- a **body**: gzip of one JSON array a line, `[op, key, properties, WKB hex]`
  (`["delete", key, null, null]` for a deletion).

The parent loads the body into a temporary table and checks it in SQL before anything changes
(`check`): schema and types against its layer, geometry validity, every feature inside the
child's area, updates and deletions only of that child's features inside its area, keys
(an insert of a key it holds, an update or deletion of one it does not hold: a conflict),
attribute domains, and the share of deletions. `apply` then changes the parent's table in the
caller's transaction (the publishing path makes it a new version). The parent's layer keeps,
for every supplied feature, `src_node` and `src_id`: a child can only ever touch its own.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from psycopg2 import sql

FORMAT = "geoplat-changeset/1"
ALG = "Ed25519"
SRID = 4490
SOURCE_COLUMNS = ("src_node", "src_id")  # in the parent's layer: whose feature, which one
OPS = ("insert", "update", "delete")
MAX_NAMED = 20  # features named in one problem


class ChangeSetError(Exception):
    """A change-set that cannot be taken: corrupt, unsigned, signed by another key, or not
    for this layer. Nothing was applied."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Problem:
    """A reason the parent refuses a change-set, with the features concerned."""
    rule: str  # schema, crs, geometry, area, ownership, conflict, domain, deletions
    message: str
    features: list[Any] = field(default_factory=list)
    conflict: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "features": self.features,
                "conflict": self.conflict}


@dataclass
class ChangeSet:
    manifest: dict[str, Any]
    body: bytes
    signature: str = ""

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.manifest["counts"])


# --- keys and signatures --------------------------------------------------------------------

def new_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519")


def private_pem(key: OKPKey) -> bytes:
    return key.as_pem(private=True)


def load_private(pem: bytes) -> OKPKey:
    return OKPKey.import_key(pem)


def public_jwk(key: OKPKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def canonical(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sign(manifest: Mapping[str, Any], key: OKPKey, kid: str) -> str:
    return jws.serialize_compact({"alg": ALG, "kid": kid}, canonical(manifest), key,
                                 algorithms=[ALG])


def verify(signature: str, body: bytes, public: Mapping[str, Any] | OKPKey,
           expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest the signature vouches for, after checking the signature with the child's
    public key, the body against the manifest's size and SHA-256, and the manifest's id and
    `expect`ed members (e.g. child, parent, parent_layer). ChangeSetError otherwise."""
    key = public if isinstance(public, OKPKey) else OKPKey.import_key(dict(public))
    if not isinstance(signature, str) or signature.count(".") != 2 or len(signature) > 65536:
        raise ChangeSetError("the change-set is not signed (a compact JWS is required)")
    try:
        token = jws.deserialize_compact(signature, key, algorithms=[ALG])
    except (JoseError, ValueError, TypeError):
        raise ChangeSetError("the change-set's signature is not the sending node's") from None
    try:
        manifest = json.loads(token.payload)
    except ValueError:
        raise ChangeSetError("the change-set's manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ChangeSetError(f"the change-set's manifest is not {FORMAT}")
    if manifest.get("id") != manifest_id(manifest):
        raise ChangeSetError("the change-set's id does not match its manifest")
    if len(body) != manifest.get("body_bytes") or \
            hashlib.sha256(body).hexdigest() != manifest.get("body_sha256"):
        raise ChangeSetError("the change-set's body does not match its manifest (corrupt or "
                             "truncated)")
    for k, v in (expect or {}).items():
        if manifest.get(k) != v:
            raise ChangeSetError(f"the change-set is for {k} {manifest.get(k)!r}, not {v!r}")
    return manifest


def unverified(signature: str) -> dict[str, Any]:
    """The manifest a signature carries, NOT checked: only to find which link (and so which
    key) it is to be verified with. ChangeSetError if it is not a compact JWS of JSON."""
    unsigned = ChangeSetError("the change-set is not signed (a compact JWS is required)")
    if not isinstance(signature, str) or signature.count(".") != 2:
        raise unsigned
    payload = signature.split(".")[1]
    try:
        manifest = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        raise unsigned from None
    if not isinstance(manifest, dict):
        raise unsigned
    return manifest


_SCHEMAS: set[tuple[str, str]] = set()


def ensure_ddl(conn: Any, ddl: str) -> None:
    """Run a schema's idempotent DDL once per process and database (serialised between
    processes): the supply worker's rounds every few seconds run none of it again."""
    key = (conn.dsn, ddl)
    if key in _SCHEMAS:
        return
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(4318)")
        cur.execute(ddl)
    _SCHEMAS.add(key)


def manifest_id(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in manifest.items() if k != "id"})
                          ).hexdigest()[:32]


# --- building (the child) -------------------------------------------------------------------

def columns(cur: Any, table: str) -> dict[str, str]:
    """column -> PostgreSQL type (format_type: `text`, `geometry(MultiPolygon,4490)`)."""
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum", (sql.Identifier(table).as_string(cur),))
    return dict(cur.fetchall())


def table_schema(cur: Any, table: str, fields: Sequence[str]) -> dict[str, str]:
    """field -> PostgreSQL type of `table`'s columns `fields` (all must exist)."""
    types = columns(cur, table)
    missing = [f for f in fields if f not in types]
    if missing:
        raise ChangeSetError(f"layer table {table!r} has no field {', '.join(missing)}")
    return {f: types[f] for f in fields}


def _row_hash(alias: str, fields: Sequence[str]) -> sql.Composable:
    cols = [sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(f)) for f in fields]
    cols.append(sql.SQL("ST_AsBinary({}.geom)").format(sql.Identifier(alias)))
    return sql.SQL("md5(ROW({})::text)").format(sql.SQL(", ").join(cols))


def build(cur: Any, *, new_table: str, old_table: str | None, key: str, fields: Sequence[str],
          child: str, parent: str, layer: str, parent_layer: str, base_version: int | None,
          new_version: int, created: str | None = None, access: str = "public") -> ChangeSet:
    """The change-set from `old_table` (the version the parent accepted; None: nothing yet) to
    `new_table`, both with columns `key`, `fields` and `geom`. Unsigned: see `sign`."""
    fields = [f for f in fields if f != key]
    schema = table_schema(cur, new_table, [key, *fields])
    kind = geometry_kind(columns(cur, new_table).get("geom", "")) or "GEOMETRY"
    for table in filter(None, (new_table, old_table)):
        cur.execute(sql.SQL("SELECT count(*) = count(DISTINCT {k}) AND count({k}) = count(*) "
                            "FROM {t}").format(k=sql.Identifier(key), t=sql.Identifier(table)))
        if not cur.fetchone()[0]:
            raise ChangeSetError(f"key {key!r} is not unique and set in every feature of "
                                 f"{table!r}: a change-set needs a stable feature id")
    props = sql.SQL("json_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, n.{}").format(sql.Literal(f), sql.Identifier(f)) for f in fields))
    k = sql.Identifier(key)
    if old_table is None:
        diff = sql.SQL("SELECT 'insert' AS op, to_json(n.{k}) AS k, {props} AS p, n.geom AS g, "
                       "NULL::geometry AS og FROM {new} n").format(
            k=k, props=props, new=sql.Identifier(new_table))
    else:
        diff = sql.SQL("""
SELECT CASE WHEN o.{k} IS NULL THEN 'insert' WHEN n.{k} IS NULL THEN 'delete' ELSE 'update' END
       AS op, to_json(COALESCE(n.{k}, o.{k})) AS k,
       CASE WHEN n.{k} IS NULL THEN NULL ELSE {props} END AS p, n.geom AS g, o.geom AS og
FROM {new} n FULL JOIN {old} o ON n.{k} = o.{k}
WHERE o.{k} IS NULL OR n.{k} IS NULL OR {hn} <> {ho}""").format(
            k=k, props=props, new=sql.Identifier(new_table), old=sql.Identifier(old_table),
            hn=_row_hash("n", fields), ho=_row_hash("o", fields))
    cur.execute(sql.SQL("""
DROP TABLE IF EXISTS geoplat_supply_diff;
CREATE TEMP TABLE geoplat_supply_diff AS {diff};
SELECT op, count(*) FROM geoplat_supply_diff GROUP BY op;""").format(diff=diff))
    counts = {op: 0 for op in OPS} | {op: int(n) for op, n in cur.fetchall()}
    cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Extent(x) AS e FROM (SELECT g AS x FROM geoplat_supply_diff UNION ALL "
                "SELECT og FROM geoplat_supply_diff) u) v")
    ext = cur.fetchone()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        cur.execute("SELECT json_build_array(op, k, p, encode(ST_AsBinary(g), 'hex'))::text "
                    "FROM geoplat_supply_diff ORDER BY op, k::text")
        while rows := cur.fetchmany(5000):
            gz.write("".join(r[0] + "\n" for r in rows).encode("utf-8"))
    cur.execute("DROP TABLE geoplat_supply_diff")
    body = buf.getvalue()
    manifest: dict[str, Any] = {
        "format": FORMAT, "child": child, "parent": parent, "layer": layer,
        "parent_layer": parent_layer, "base_version": base_version, "new_version": new_version,
        "access": access,
        "key": key, "schema": schema, "geometry_type": kind, "crs": f"EPSG:{SRID}",
        "extent": None if ext[0] is None else [float(v) for v in ext], "counts": counts,
        "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    manifest["id"] = manifest_id(manifest)
    return ChangeSet(manifest, body)


# --- checking and applying (the parent) -----------------------------------------------------

STAGE = "geoplat_supply_stage"


def stage(cur: Any, cs: ChangeSet) -> None:
    """Load the body into a temporary table (op, k, p, geom), dropped at the transaction's end.
    A body that is not what build writes: ChangeSetError, nothing changed."""
    if cur.connection.autocommit:
        raise RuntimeError("stage, check and apply run in one transaction (not autocommit)")
    try:
        text = gzip.decompress(cs.body)
    except (OSError, EOFError):
        raise ChangeSetError("the change-set's body is not gzip") from None
    cur.execute("SAVEPOINT geoplat_supply_stage")
    try:
        cur.execute(f"CREATE TEMP TABLE {STAGE}_raw (line text) ON COMMIT DROP")
        # CSV with quote and delimiter characters JSON never holds unescaped: a line is a field
        cur.copy_expert(f"COPY {STAGE}_raw FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x02', "
                        "QUOTE E'\\x01')", io.BytesIO(text))
        cur.execute(f"""
CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS
SELECT j->>0 AS op, j->>1 AS k, j->2 AS p,
       ST_Force2D(ST_SetSRID(ST_GeomFromWKB(decode(j->>3, 'hex')), {SRID})) AS geom
FROM (SELECT line::jsonb AS j FROM {STAGE}_raw) x;
DROP TABLE {STAGE}_raw;
SELECT count(*) FILTER (WHERE op NOT IN ('insert', 'update', 'delete') OR k IS NULL
                        OR (op <> 'delete' AND (geom IS NULL OR jsonb_typeof(p) <> 'object'))),
       count(*) - count(DISTINCT k), count(*) FILTER (WHERE op = 'insert'),
       count(*) FILTER (WHERE op = 'update'), count(*) FILTER (WHERE op = 'delete')
FROM {STAGE}""")
        bad, dup, *counts = cur.fetchone()
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT geoplat_supply_stage")
        raise ChangeSetError("the change-set's body is corrupt (not what a node writes)") \
            from None
    cur.execute("RELEASE SAVEPOINT geoplat_supply_stage")
    if bad or dup:
        raise ChangeSetError(f"the change-set's body is corrupt ({bad} malformed records, "
                             f"{dup} keys twice)")
    if dict(zip(OPS, counts, strict=True)) != cs.counts:
        raise ChangeSetError("the change-set's body does not hold the counts of its manifest")


def _named(cur: Any, query: sql.Composable, params: Mapping[str, Any]) -> tuple[int, list[Any]]:
    cur.execute(sql.SQL("SELECT count(*) OVER (), k FROM ({}) q ORDER BY k LIMIT {}").format(
        query, sql.Literal(MAX_NAMED)), params)
    rows = cur.fetchall()
    return (rows[0][0] if rows else 0), [r[1] for r in rows]


def check(cur: Any, cs: ChangeSet, *, target: str, area_wkt: str,
          domains: Mapping[str, Iterable[Any]] | None = None,
          max_delete_share: float = 0.2, repair: bool = False) -> list[Problem]:
    """What keeps the parent from taking the staged change-set (`stage` first) into its table
    `target`; empty when it may. `area_wkt`: the child's area (EPSG:4490). With `repair`,
    invalid geometries are made valid (ST_MakeValid) instead of refused."""
    m = cs.manifest
    problems: list[Problem] = []
    if m.get("crs") != f"EPSG:{SRID}":
        problems.append(Problem("crs", f"the change-set is in {m.get('crs')}, not EPSG:{SRID}"))
    schema = m.get("schema") or {}
    fields = [f for f in schema if f != m.get("key")]
    have = columns(cur, target)
    missing = [c for c in SOURCE_COLUMNS if c not in have]
    if missing:
        problems.append(Problem("schema", f"layer {target!r} is not a supplied layer (no "
                                          f"{', '.join(missing)})"))
        return problems
    wrong = [f"{f} ({t}; the parent has {have.get(f, 'no such field')})"
             for f, t in schema.items() if f != m.get("key") and have.get(f) != t]
    if wrong:
        problems.append(Problem("schema", "fields do not match the parent's layer: "
                                + "; ".join(wrong)))
        return problems
    p = {"area": area_wkt, "child": m["child"]}
    area = sql.SQL("ST_GeomFromText(%(area)s, {})").format(sql.Literal(SRID))
    t = sql.Identifier(target)
    n, named = _named(cur, sql.SQL(f"SELECT k FROM {STAGE} WHERE op <> 'delete' "
                                   "AND NOT ST_IsValid(geom)"), p)
    if n and repair:
        cur.execute(f"UPDATE {STAGE} SET geom = ST_MakeValid(geom) WHERE op <> 'delete' "
                    "AND NOT ST_IsValid(geom)")
    elif n:
        problems.append(Problem("geometry", f"{n} features have an invalid geometry", named))
    kind = geometry_kind(have.get("geom", ""))
    if kind:  # a single part where the parent's layer is multi is made multi by apply
        n, named = _named(cur, sql.SQL(
            "SELECT k FROM {s} WHERE op <> 'delete' AND NOT (GeometryType(geom) = ANY(%(kinds)s))"
        ).format(s=sql.Identifier(STAGE)), {**p, "kinds": [kind, kind.removeprefix("MULTI")]})
        if n:
            problems.append(Problem("geometry", f"{n} features are not of the layer's geometry "
                                                f"type ({kind})", named))
    n, named = _named(cur, sql.SQL("SELECT k FROM {s} WHERE op <> 'delete' AND ST_IsValid(geom) "
                                   "AND NOT ST_CoveredBy(geom, {a})").format(
        s=sql.Identifier(STAGE), a=area), p)
    if n:
        problems.append(Problem("area", f"{n} features lie outside {m['child']}'s area",
                                named))
    n, named = _named(cur, sql.SQL(
        "SELECT s.k FROM {s} s JOIN {t} x ON x.src_node = %(child)s AND x.src_id = s.k "
        "WHERE s.op <> 'insert' AND NOT ST_CoveredBy(x.geom, {a})").format(
        s=sql.Identifier(STAGE), t=t, a=area), p)
    if n:
        problems.append(Problem("area", f"{n} features to change or delete lie outside "
                                        f"{m['child']}'s area at the parent", named))
    n, named = _named(cur, sql.SQL(
        "SELECT s.k FROM {s} s WHERE s.op = 'insert' AND EXISTS (SELECT 1 FROM {t} x "
        "WHERE x.src_node = %(child)s AND x.src_id = s.k)").format(s=sql.Identifier(STAGE), t=t),
        p)
    if n:
        problems.append(Problem("conflict", f"{n} inserted features are already at the parent",
                                named, conflict=True))
    n, named = _named(cur, sql.SQL(
        "SELECT s.k FROM {s} s WHERE s.op <> 'insert' AND NOT EXISTS (SELECT 1 FROM {t} x "
        "WHERE x.src_node = %(child)s AND x.src_id = s.k)").format(s=sql.Identifier(STAGE), t=t),
        p)
    if n:
        problems.append(Problem("conflict", f"{n} features to change or delete are not at the "
                                            "parent", named, conflict=True))
    for f, allowed in (domains or {}).items():
        if f not in fields:
            continue
        values = [str(v) for v in allowed]
        n, named = _named(cur, sql.SQL(
            "SELECT k FROM {s} WHERE op <> 'delete' AND p->>{f} IS NOT NULL "
            "AND NOT (p->>{f} = ANY(%(values)s))").format(s=sql.Identifier(STAGE),
                                                          f=sql.Literal(f)),
            {**p, "values": values})
        if n:
            problems.append(Problem("domain", f"{n} features have a {f} outside its domain",
                                    named))
    cur.execute(sql.SQL("SELECT (SELECT count(*) FROM {s} WHERE op = 'delete'), "
                        "(SELECT count(*) FROM {t} WHERE src_node = %(child)s)").format(
        s=sql.Identifier(STAGE), t=t), p)
    deletes, held = cur.fetchone()
    if deletes and deletes > max_delete_share * max(held, 1):
        problems.append(Problem("deletions", f"{deletes} of {held} features deleted, over the "
                                             f"layer's limit of {max_delete_share:.0%}"))
    return problems


def geometry_kind(column_type: str) -> str:
    """`geometry(MultiPolygon,4490)` -> `MULTIPOLYGON` (GeometryType's spelling); '' for any."""
    inner = column_type.partition("(")[2].partition(",")[0].strip().upper()
    return "" if inner in ("", "GEOMETRY") else inner


def apply(cur: Any, cs: ChangeSet, *, target: str) -> dict[str, int]:
    """Apply the staged, checked change-set to `target` in the caller's transaction: the
    counts. Updated features keep their `fid` at the parent; the types are the parent's."""
    m = cs.manifest
    have = columns(cur, target)
    fields = [f for f in m["schema"] if f != m["key"]]
    t, s = sql.Identifier(target), sql.Identifier(STAGE)
    geom = sql.SQL("ST_Multi(s.geom)" if geometry_kind(have["geom"]).startswith("MULTI")
                   else "s.geom")

    def value(f: str) -> sql.Composable:  # have[f]: format_type of the parent's own column
        return sql.SQL("(s.p->>{})::{}").format(sql.Literal(f), sql.SQL(have[f]))

    child = {"child": m["child"]}
    cur.execute(sql.SQL("DELETE FROM {t} x USING {s} s WHERE x.src_node = %(child)s "
                        "AND x.src_id = s.k AND s.op = 'delete'").format(t=t, s=s), child)
    deleted = cur.rowcount
    sets = sql.SQL(", ").join([*(sql.SQL("{} = {}").format(sql.Identifier(f), value(f))
                                 for f in fields), sql.SQL("geom = {}").format(geom)])
    cur.execute(sql.SQL("UPDATE {t} x SET {sets} FROM {s} s WHERE x.src_node = %(child)s "
                        "AND x.src_id = s.k AND s.op = 'update'").format(t=t, sets=sets, s=s),
                child)
    updated = cur.rowcount
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("fid", *SOURCE_COLUMNS, *fields,
                                                          "geom"))
    values = sql.SQL(", ").join([
        sql.SQL("(SELECT COALESCE(max(fid), 0) FROM {t}) + row_number() OVER (ORDER BY s.k)"
                ).format(t=t),
        sql.SQL("%(child)s"), sql.SQL("s.k"), *(value(f) for f in fields), geom])
    cur.execute(sql.SQL("INSERT INTO {t} ({cols}) SELECT {values} FROM {s} s "
                        "WHERE s.op = 'insert'").format(t=t, cols=cols, values=values, s=s),
                child)
    return {"insert": cur.rowcount, "update": updated, "delete": deleted}
