"""The jobs table: pygeoapi's PostgreSQLManager columns, and ours (owner, rights, worker)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from services.db import ConnectionPool

SCHEMA = "analysis"
DDL = """
CREATE SCHEMA IF NOT EXISTS analysis;
CREATE TABLE IF NOT EXISTS analysis.jobs (
    identifier varchar(64) PRIMARY KEY,
    type varchar(32) NOT NULL DEFAULT 'process',
    process_id varchar(64) NOT NULL,
    created text, started text, finished text, updated text,
    status varchar(16) NOT NULL,
    location text,
    mimetype text,
    message text,
    progress integer NOT NULL DEFAULT 0,
    owner text NOT NULL,
    rights jsonb NOT NULL DEFAULT '{}'::jsonb,
    worker text,
    worker_pid integer,
    worker_host text
);
CREATE INDEX IF NOT EXISTS jobs_owner ON analysis.jobs (owner, started);
CREATE INDEX IF NOT EXISTS jobs_live ON analysis.jobs (status) WHERE status IN ('accepted', 'running');
-- executions started per caller and day (analysis.jobs_per_day; jobs expire, these stay)
CREATE TABLE IF NOT EXISTS analysis.usage (
    owner text NOT NULL,
    day date NOT NULL DEFAULT current_date,
    executions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, day)
);
"""
LIVE = ("accepted", "running")
def ensure_schema(dsn: str) -> None:
    """Create schema `analysis` and its jobs table (idempotent; serialised between processes)."""
    conn = psycopg2.connect(dsn, application_name="geoplat-analysis")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4317)")
            try:
                cur.execute(DDL)
            finally:
                cur.execute("SELECT pg_advisory_unlock(4317)")
    finally:
        conn.close()


def connection_def(dsn: str) -> dict[str, Any]:
    """pygeoapi's `manager.connection` (host, port, database, user, password, search_path)."""
    u = urlsplit(dsn)
    return {"host": u.hostname or "127.0.0.1", "port": u.port or 5432,
            "database": unquote(u.path.lstrip("/")), "user": unquote(u.username or ""),
            "password": unquote(u.password or ""), "search_path": [SCHEMA]}


class Jobs:
    """Direct access for the workers and the pool (no SQLAlchemy, one connection)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: Any = None

    def _cur(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = ConnectionPool.of(self.dsn, "geoplat-analysis-worker").borrow(
                autocommit=True)
        return self._conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def close(self) -> None:
        if self._conn is not None:
            ConnectionPool.of(self.dsn, "geoplat-analysis-worker").give_back(self._conn)
            self._conn = None

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._cur() as cur:
            cur.execute("SELECT * FROM analysis.jobs WHERE identifier = %s", (job_id,))
            return cur.fetchone()

    def update_live(self, job_id: str, **values: Any) -> bool:
        """Update a job still accepted or running (a dismissed or failed job stays so)."""
        cols = ", ".join(f"{k} = %s" for k in values)
        with self._cur() as cur:
            cur.execute(f"UPDATE analysis.jobs SET {cols} WHERE identifier = %s "
                        "AND status IN ('accepted', 'running')",
                        (*[json.dumps(v) if isinstance(v, dict) else v for v in values.values()],
                         job_id))
            return bool(cur.rowcount)

    def take_execution(self, owner: str, per_day: int, live: int) -> str | None:
        """Count one execution of `owner` today; why not when over a quota (nothing counted)."""
        with self._cur() as cur:
            cur.execute("SELECT count(*) AS n FROM analysis.jobs WHERE owner = %s "
                        "AND status IN ('accepted', 'running')", (owner,))
            if cur.fetchone()["n"] >= live:
                return (f"You have {live} jobs queued or running at this node, its limit; wait "
                        "for one to end or dismiss one (DELETE /ogc/jobs/{jobId}).")
            cur.execute("INSERT INTO analysis.usage AS u (owner, executions) VALUES (%s, 1) "
                        "ON CONFLICT (owner, day) DO UPDATE SET executions = u.executions + 1 "
                        "WHERE u.executions < %s RETURNING executions", (owner, per_day))
            if cur.fetchone() is None or per_day == 0:
                return (f"The daily quota of {per_day} process executions at this node is used "
                        "up; it resets at midnight.")
            return None

    def finished_before(self, hours: float) -> list[str]:
        """Ids of ended jobs that ended more than `hours` ago."""
        with self._cur() as cur:
            cur.execute("SELECT identifier FROM analysis.jobs WHERE status NOT IN "
                        "('accepted', 'running') AND COALESCE(finished, updated, created)"
                        "::timestamptz < now() - %s * interval '1 hour'", (hours,))
            return [r["identifier"] for r in cur.fetchall()]

    def ended_oldest_first(self) -> list[str]:
        with self._cur() as cur:
            cur.execute("SELECT identifier FROM analysis.jobs WHERE status NOT IN "
                        "('accepted', 'running') ORDER BY COALESCE(finished, updated, created)")
            return [r["identifier"] for r in cur.fetchall()]

    def known(self) -> set[str]:
        with self._cur() as cur:
            cur.execute("SELECT identifier FROM analysis.jobs")
            return {r["identifier"] for r in cur.fetchall()}

    def delete(self, job_ids: list[str]) -> None:
        with self._cur() as cur:
            cur.execute("DELETE FROM analysis.jobs WHERE identifier = ANY(%s) AND status NOT IN "
                        "('accepted', 'running')", (job_ids,))

    def live(self) -> list[dict[str, Any]]:
        with self._cur() as cur:
            cur.execute("SELECT identifier, status, worker, worker_pid, worker_host, updated "
                        "FROM analysis.jobs WHERE status IN ('accepted', 'running')")
            return list(cur.fetchall())
