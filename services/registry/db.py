"""Schema `registry` of a node's database: service records, the outbox, applied batches.

A record's `version` is owned by its origin node and grows with every change there; copies
upstream apply an incoming record only when its version is newer (idempotent, order-proof).
Health is observed, not authored: it travels separately with the time it was observed.
Retiring is a tombstone: the record stays, with status `retired`, so an older copy arriving
late cannot bring it back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from layers.errors import printable
from services.db import Database, connect

SERVICE_TYPES = ("OGCAPI-Features", "OGCAPI-Tiles", "OGCAPI-Records", "WMTS", "WMS", "node")
STATUSES = ("pending", "approved", "rejected", "retired")
HEALTH = ("up", "degraded", "down", "unknown")
ACCESS = ("public", "registered", "restricted")
SOURCES = ("local", "external", "child")

DDL = f"""
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA IF NOT EXISTS registry;
CREATE TABLE IF NOT EXISTS registry.services (
    id text PRIMARY KEY,
    origin_node text NOT NULL,
    origin_path text NOT NULL,
    service_type text NOT NULL CHECK (service_type IN {SERVICE_TYPES!r}),
    url text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    keywords text[] NOT NULL DEFAULT '{{}}',
    anytext text NOT NULL DEFAULT '',
    geom geometry(Polygon, 4490),
    scale_finest integer,
    scale_coarsest integer,
    access text NOT NULL DEFAULT 'public' CHECK (access IN {ACCESS!r}),
    layer_id text,
    status text NOT NULL CHECK (status IN {STATUSES!r}),
    health text NOT NULL DEFAULT 'unknown' CHECK (health IN {HEALTH!r}),
    latency_ms double precision,
    health_history jsonb NOT NULL DEFAULT '[]'::jsonb,
    health_at timestamptz,
    version bigint NOT NULL DEFAULT 1,
    source text NOT NULL CHECK (source IN {SOURCES!r}),
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    submitted_by text,
    decided_by text,
    decided_at timestamptz
);
CREATE INDEX IF NOT EXISTS services_geom ON registry.services USING gist (geom);
CREATE INDEX IF NOT EXISTS services_anytext ON registry.services USING gin (anytext gin_trgm_ops);
CREATE INDEX IF NOT EXISTS services_path ON registry.services (origin_path text_pattern_ops);
CREATE INDEX IF NOT EXISTS services_status ON registry.services (status, service_type);
CREATE TABLE IF NOT EXISTS registry.outbox (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    op text NOT NULL CHECK (op IN ('upsert', 'health', 'delete')),
    record_id text NOT NULL,
    payload jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS registry.inbox (
    child text PRIMARY KEY,
    last_batch bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS registry.state (name text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS registry.refused (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    direction text NOT NULL CHECK (direction IN ('in', 'out')),
    peer text NOT NULL,
    seq bigint,
    op text,
    record_id text,
    reason text NOT NULL,
    payload jsonb
);
"""
# registry.refused: changes a parent refused (`out`: parked at the child, never retried) and
# changes this node refused from a child (`in`); the newest KEEP_REFUSED of each are kept.
KEEP_REFUSED = 1000

COLUMNS = ("id, origin_node, origin_path, service_type, url, title, description, keywords, "
           "ST_XMin(geom) AS minx, ST_YMin(geom) AS miny, ST_XMax(geom) AS maxx, "
           "ST_YMax(geom) AS maxy, scale_finest, scale_coarsest, access, layer_id, status, health, "
           "latency_ms, health_history, health_at, version, source, created, updated, "
           "submitted_by, decided_by, decided_at")


def ensure_schema(dsn: str) -> None:
    """Create schema `registry` (idempotent; serialised between processes)."""
    conn = connect(dsn, "geoplat-registry")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4243)")
            try:
                cur.execute(DDL)
            finally:
                cur.execute("SELECT pg_advisory_unlock(4243)")
    finally:
        conn.close()


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A database row as the record dict that travels between nodes (JSON-ready)."""
    bbox = None
    if row.get("minx") is not None:
        bbox = [round(float(row[k]), 7) for k in ("minx", "miny", "maxx", "maxy")]
    scale = None
    if row.get("scale_finest") is not None or row.get("scale_coarsest") is not None:
        scale = {"finest": row.get("scale_finest"), "coarsest": row.get("scale_coarsest")}
    return {
        "id": row["id"], "origin_node": row["origin_node"], "origin_path": row["origin_path"],
        "type": row["service_type"], "url": row["url"], "title": row["title"],
        "description": row["description"], "keywords": list(row["keywords"] or []),
        "bbox": bbox, "scale": scale, "access": row["access"], "layer_id": row["layer_id"],
        "status": row["status"], "health": row["health"], "latency_ms": row["latency_ms"],
        "health_history": row["health_history"] or [], "health_at": _iso(row["health_at"]),
        "version": int(row["version"]), "source": row["source"], "created": _iso(row["created"]),
        "updated": _iso(row["updated"]),
    }


def anytext(title: str, description: str, keywords: list[str]) -> str:
    return " ".join([title, description, *keywords]).lower()


def write_record(cur: Any, rec: dict[str, Any], source: str, *, keep_health: bool = True) -> None:
    """Insert or replace one record's content (the caller decided that it is newer)."""
    bbox = rec.get("bbox")
    scale = rec.get("scale") or {}
    args = {
        "id": rec["id"], "origin_node": rec["origin_node"], "origin_path": rec["origin_path"],
        "type": rec["type"], "url": rec["url"], "title": rec["title"],
        "description": rec.get("description") or "", "keywords": list(rec.get("keywords") or []),
        "anytext": anytext(rec["title"], rec.get("description") or "", rec.get("keywords") or []),
        "minx": bbox[0] if bbox else None, "miny": bbox[1] if bbox else None,
        "maxx": bbox[2] if bbox else None, "maxy": bbox[3] if bbox else None,
        "finest": scale.get("finest"), "coarsest": scale.get("coarsest"),
        "access": rec.get("access") or "public", "layer_id": rec.get("layer_id"),
        "status": rec["status"], "version": int(rec["version"]), "source": source,
        "health": rec.get("health") or "unknown", "latency_ms": rec.get("latency_ms"),
        "history": json.dumps(rec.get("health_history") or []), "health_at": rec.get("health_at"),
        "submitted_by": rec.get("submitted_by"), "updated": rec.get("updated"),
    }
    health_update = "" if keep_health else (
        ", health = EXCLUDED.health, latency_ms = EXCLUDED.latency_ms, "
        "health_history = EXCLUDED.health_history, health_at = EXCLUDED.health_at")
    cur.execute(
        "INSERT INTO registry.services (id, origin_node, origin_path, service_type, url, title, "
        "description, keywords, anytext, geom, scale_finest, scale_coarsest, access, layer_id, "
        "status, version, source, health, latency_ms, health_history, health_at, submitted_by, "
        "updated) VALUES (%(id)s, %(origin_node)s, %(origin_path)s, %(type)s, %(url)s, %(title)s, "
        "%(description)s, %(keywords)s, %(anytext)s, CASE WHEN %(minx)s::float8 IS NULL THEN NULL "
        "ELSE ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4490) END, %(finest)s, "
        "%(coarsest)s, %(access)s, %(layer_id)s, %(status)s, %(version)s, %(source)s, %(health)s, "
        "%(latency_ms)s, %(history)s::jsonb, %(health_at)s::timestamptz, %(submitted_by)s, "
        "coalesce(%(updated)s::timestamptz, now())) "
        "ON CONFLICT (id) DO UPDATE SET origin_node = EXCLUDED.origin_node, "
        "origin_path = EXCLUDED.origin_path, service_type = EXCLUDED.service_type, "
        "url = EXCLUDED.url, title = EXCLUDED.title, description = EXCLUDED.description, "
        "keywords = EXCLUDED.keywords, anytext = EXCLUDED.anytext, geom = EXCLUDED.geom, "
        "scale_finest = EXCLUDED.scale_finest, scale_coarsest = EXCLUDED.scale_coarsest, "
        "access = EXCLUDED.access, layer_id = EXCLUDED.layer_id, status = EXCLUDED.status, "
        "version = EXCLUDED.version, source = EXCLUDED.source, updated = EXCLUDED.updated"
        + health_update, args)


def outbox_add(cur: Any, op: str, record_id: str, payload: dict[str, Any]) -> None:
    """Queue a change for the parent, inside the caller's transaction.

    The lock (held to commit) makes sequence order equal commit order, so the sender, which
    reads committed rows above its high-water mark, can never skip one committed late.
    """
    cur.execute("SELECT pg_advisory_xact_lock(4246)")
    cur.execute("INSERT INTO registry.outbox (op, record_id, payload) VALUES (%s, %s, %s::jsonb)",
                (op, record_id, json.dumps(payload, ensure_ascii=False, default=str)))


def refusal_add(cur: Any, direction: str, peer: str, reason: str, *, op: Any = None,
                record_id: Any = None, seq: int | None = None,
                payload: dict[str, Any] | None = None) -> None:
    """Keep one refused change (text from a peer is escaped and cut: it is untrusted)."""
    cur.execute(
        "INSERT INTO registry.refused (direction, peer, seq, op, record_id, reason, payload) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
        (direction, printable(peer, 63), seq, printable(op, 20) if isinstance(op, str) else None,
         printable(record_id, 300) if isinstance(record_id, str) else None,
         printable(reason, 1000),
         None if payload is None else json.dumps(payload, ensure_ascii=True, default=str)))
    cur.execute("DELETE FROM registry.refused WHERE direction = %s AND id <= (SELECT max(id) - "
                "%s FROM registry.refused WHERE direction = %s)",
                (direction, KEEP_REFUSED, direction))


def get(db: Database, record_id: str) -> dict[str, Any] | None:
    row = db.one(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s", (record_id,))
    return record_of(row) if row else None


def state_get(db: Database, name: str, default: Any = None) -> Any:
    row = db.one("SELECT value FROM registry.state WHERE name = %s", (name,))
    return row["value"] if row else default


def state_set(cur_or_db: Any, name: str, value: Any) -> None:
    sql = ("INSERT INTO registry.state VALUES (%s, %s::jsonb) ON CONFLICT (name) "
           "DO UPDATE SET value = EXCLUDED.value")
    args = (name, json.dumps(value))
    if isinstance(cur_or_db, Database):
        cur_or_db.execute(sql, args)
    else:
        cur_or_db.execute(sql, args)
