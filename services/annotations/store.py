"""The annotations of a node's users in the node's PostGIS: table `geoplat_annotations`.

Every query names the owner (the token's `sub`) beside the id, so a user reaches only their own
rows, and "someone else's" and "none" cannot be told apart. A shared annotation is found by its
share token only, read-only. The table is created on first use (idempotent, under an advisory
lock, as the service items' tables are).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from typing import Any

from services.annotations.model import MAX_PER_USER, AnnotationError, Change
from services.db import Database

DDL = """
CREATE TABLE IF NOT EXISTS geoplat_annotations (
    id text PRIMARY KEY,
    owner text NOT NULL,
    owner_name text NOT NULL,
    title text NOT NULL,
    note text NOT NULL DEFAULT '',
    geom geometry(Geometry, 4490) NOT NULL
        CHECK (GeometryType(geom) IN ('POINT', 'LINESTRING', 'POLYGON')),
    share_token text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS geoplat_annotations_owner ON geoplat_annotations (owner, created_at);
"""
LOCK = 4247  # advisory lock of the DDL (auth's is 4242)
COLUMNS = ("id, owner_name, title, note, share_token, created_at, updated_at, "
           "ST_AsGeoJSON(geom, 9, 0)::json AS geometry")


class Annotations:
    """CRUD of annotations, always for one owner (or one share token)."""

    def __init__(self, db: Database):
        self.db = db
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        with self._lock:
            if self._ready:
                return
            with self.db.transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
                cur.execute(DDL)
            self._ready = True

    def list(self, owner: str) -> list[dict[str, Any]]:
        self.ensure()
        return self.db.all(f"SELECT {COLUMNS} FROM geoplat_annotations WHERE owner = %s "
                           "ORDER BY created_at, id", (owner,))

    def get(self, owner: str, annotation_id: str) -> dict[str, Any] | None:
        self.ensure()
        return self.db.one(f"SELECT {COLUMNS} FROM geoplat_annotations WHERE owner = %s "
                           "AND id = %s", (owner, annotation_id))

    def shared(self, token: str) -> dict[str, Any] | None:
        self.ensure()
        return self.db.one(f"SELECT {COLUMNS} FROM geoplat_annotations WHERE share_token = %s",
                           (token,))

    def create(self, owner: str, owner_name: str, change: Change) -> dict[str, Any]:
        self.ensure()
        new_id = uuid.uuid4().hex
        with self.db.transaction() as cur:
            # one owner's creations one at a time, so the count limit holds under concurrency
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK, owner))
            cur.execute("SELECT count(*) AS n FROM geoplat_annotations WHERE owner = %s",
                        (owner,))
            row = cur.fetchone()
            if row is not None and row["n"] >= MAX_PER_USER:
                raise AnnotationError(409, "Conflict",
                                      f"You keep at most {MAX_PER_USER} annotations at this "
                                      "node; delete some first.")
            cur.execute(f"INSERT INTO geoplat_annotations (id, owner, owner_name, title, note, "
                        f"geom) VALUES (%s, %s, %s, %s, %s, ST_GeomFromText(%s, 4490)) "
                        f"RETURNING {COLUMNS}",
                        (new_id, owner, owner_name[:200], change.title, change.note or "",
                         change.wkt))
            created = cur.fetchone()
        assert created is not None
        return dict(created)

    def update(self, owner: str, annotation_id: str, change: Change) -> dict[str, Any] | None:
        self.ensure()
        sets, args = ["updated_at = now()"], []
        if change.title is not None:
            sets.append("title = %s")
            args.append(change.title)
        if change.note is not None:
            sets.append("note = %s")
            args.append(change.note)
        if change.wkt is not None:
            sets.append("geom = ST_GeomFromText(%s, 4490)")
            args.append(change.wkt)
        return self.db.one(f"UPDATE geoplat_annotations SET {', '.join(sets)} WHERE owner = %s "
                           f"AND id = %s RETURNING {COLUMNS}", (*args, owner, annotation_id))

    def delete(self, owner: str, annotation_id: str) -> bool:
        self.ensure()
        return self.db.execute("DELETE FROM geoplat_annotations WHERE owner = %s AND id = %s",
                               (owner, annotation_id)) == 1

    def share(self, owner: str, annotation_id: str) -> dict[str, Any] | None:
        """The annotation with its share token (a new one unless it has one)."""
        self.ensure()
        return self.db.one(
            "UPDATE geoplat_annotations SET share_token = COALESCE(share_token, %s) "
            f"WHERE owner = %s AND id = %s RETURNING {COLUMNS}",
            (secrets.token_urlsafe(24), owner, annotation_id))

    def unshare(self, owner: str, annotation_id: str) -> dict[str, Any] | None:
        self.ensure()
        return self.db.one("UPDATE geoplat_annotations SET share_token = NULL WHERE owner = %s "
                           f"AND id = %s RETURNING {COLUMNS}", (owner, annotation_id))
