"""Database access for the auth tables: a small thread-safe pool and the DDL of schema `auth`.

Every node has `auth.grants`, `auth.audit`, `auth.key_usage` and `auth.secrets` in its own
database; the main node additionally holds the accounts, OIDC clients, codes, refresh tokens,
signing keys and API keys (central authentication, distributed authorization).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extras
import psycopg2.pool

NODE_DDL = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.secrets (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS auth.audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    node_id text NOT NULL,
    event text NOT NULL,
    actor text,
    subject text,
    ok boolean NOT NULL DEFAULT true,
    ip text,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_event_at ON auth.audit (event, at);
CREATE OR REPLACE FUNCTION auth.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'auth.audit is append-only'; END $$;
DROP TRIGGER IF EXISTS audit_append_only ON auth.audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON auth.audit
    FOR EACH ROW EXECUTE FUNCTION auth.audit_append_only();
DROP TRIGGER IF EXISTS audit_no_truncate ON auth.audit;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON auth.audit
    FOR EACH STATEMENT EXECUTE FUNCTION auth.audit_append_only();
CREATE TABLE IF NOT EXISTS auth.grants (
    id bigserial PRIMARY KEY,
    user_sub text NOT NULL,
    username text NOT NULL,
    layer_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
    reason text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    decided_by text,
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS grants_user ON auth.grants (user_sub, status);
CREATE TABLE IF NOT EXISTS auth.key_usage (
    key_id text NOT NULL,
    day date NOT NULL,
    kind text NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, kind)
);
"""

MAIN_DDL = """
CREATE TABLE IF NOT EXISTS auth.users (
    id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    email text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    platform_admin boolean NOT NULL DEFAULT false,
    disabled boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_via text NOT NULL,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until timestamptz
);
CREATE TABLE IF NOT EXISTS auth.user_roles (
    user_id bigint NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
    node_id text NOT NULL,
    role text NOT NULL CHECK (role IN ('developer', 'publisher', 'admin')),
    PRIMARY KEY (user_id, node_id, role)
);
CREATE TABLE IF NOT EXISTS auth.clients (
    client_id text PRIMARY KEY,
    secret_hash text,
    name text NOT NULL,
    redirect_uris text[] NOT NULL DEFAULT '{}',
    grant_types text[] NOT NULL,
    scope text NOT NULL,
    auth_method text NOT NULL,
    node_id text
);
CREATE TABLE IF NOT EXISTS auth.codes (
    code text PRIMARY KEY,
    client_id text NOT NULL,
    user_id bigint NOT NULL,
    redirect_uri text NOT NULL,
    scope text NOT NULL,
    nonce text,
    code_challenge text,
    code_challenge_method text,
    auth_time bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS auth.refresh_tokens (
    token_hash text PRIMARY KEY,
    client_id text NOT NULL,
    user_id bigint,
    scope text NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS auth.signing_keys (
    kid text PRIMARY KEY,
    alg text NOT NULL,
    private_pem text NOT NULL,
    public_jwk jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    active boolean NOT NULL DEFAULT true,
    retired_at timestamptz
);
CREATE TABLE IF NOT EXISTS auth.api_keys (
    key_id text PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,
    user_id bigint NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('browser', 'server')),
    allowed text[] NOT NULL DEFAULT '{}',
    quotas jsonb NOT NULL,
    rate_per_second integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- a key that acts as an anonymous caller, never for its owner at `registered` level: the key
-- a node embeds in its own public pages (services/provision.py ensure_demo_developer)
ALTER TABLE auth.api_keys ADD COLUMN IF NOT EXISTS public_only boolean NOT NULL DEFAULT false;
-- initial access tokens for node provisioning (services/sso/registration.py): stored hashed,
-- bound to one node, expiring, revocable
CREATE TABLE IF NOT EXISTS auth.initial_tokens (
    token_id text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    node_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_used_at timestamptz
);
-- access tokens revoked before they expire (services/access/revocations.py): one token by `jti`, or
-- every token of `sub` issued before `not_before` (sign-out, disabled account, role removed)
CREATE TABLE IF NOT EXISTS auth.token_revocations (
    id bigserial PRIMARY KEY,
    jti text,
    sub text,
    not_before double precision,
    expires_at timestamptz NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    CHECK (jti IS NOT NULL OR (sub IS NOT NULL AND not_before IS NOT NULL))
);
-- the public Ed25519 keys the nodes sign their supply change-sets with (issue 18,
-- services/supply/keys.py): registered with the node's client credentials, read by parents
CREATE TABLE IF NOT EXISTS auth.supply_keys (
    node_id text PRIMARY KEY,
    public_jwk jsonb NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
"""


def connect(dsn: str, app: str = "geoplat-auth") -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn, connect_timeout=3, application_name=app)
    conn.autocommit = True
    return conn


def ensure_schema(dsn: str, *, main: bool) -> None:
    """Create the auth tables (idempotent)."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4242)")
            try:
                cur.execute(NODE_DDL)
                if main:
                    cur.execute(MAIN_DDL)
            finally:
                cur.execute("SELECT pg_advisory_unlock(4242)")
    finally:
        conn.close()


def secret(db: Database, name: str) -> str:
    """A random secret kept in `auth.secrets`, created on first use."""
    db.execute("INSERT INTO auth.secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
               (name, secrets.token_urlsafe(32)))
    row = db.one("SELECT value FROM auth.secrets WHERE name = %s", (name,))
    assert row is not None  # inserted just above
    return row["value"]


class KeepingPool(psycopg2.pool.ThreadedConnectionPool):
    """psycopg2's pool, keeping every returned connection for the next caller (up to `maxconn`,
    opened lazily). psycopg2 closes a returned connection whenever `minconn` are already idle,
    so under concurrent requests nearly every request opened a new connection: a backend fork
    and a SCRAM-SHA-256 exchange each time (measured: ~5 % of a node worker's samples in
    `psycopg2.connect` under 8 concurrent place-name queries)."""

    def __init__(self, maxconn: int, *args: Any, **kwargs: Any):
        super().__init__(1, maxconn, *args, **kwargs)  # opens one connection now
        self.minconn = maxconn  # read by _putconn: keep idle connections up to maxconn


class Database:
    """A lazily opened pool of autocommit connections; rows come back as dicts."""

    def __init__(self, dsn: str, maxconn: int = 8):
        self.dsn, self.maxconn = dsn, maxconn
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        # psycopg2's pool raises when exhausted; callers wait for a connection instead
        self._slots = threading.BoundedSemaphore(maxconn)

    def close(self) -> None:
        """Close every pooled connection (the pool opens again on the next use)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.closeall()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        with self._lock:
            if self._pool is None:
                self._pool = KeepingPool(self.maxconn, self.dsn, connect_timeout=3,
                                         application_name="geoplat-auth")
        with self._slots, self._pooled() as cur:
            yield cur

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        assert self._pool is not None
        conn = self._pool.getconn()
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self._pool.putconn(conn, close=broken or conn.closed != 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        with self.cursor() as cur:
            cur.connection.autocommit = False
            try:
                yield cur
                cur.connection.commit()
            except BaseException:
                cur.connection.rollback()
                raise
            finally:
                cur.connection.autocommit = True

    def all(self, sql: str, args: tuple | dict = ()) -> list[dict[str, Any]]:
        with self.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def one(self, sql: str, args: tuple | dict = ()) -> dict[str, Any] | None:
        with self.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()

    def execute(self, sql: str, args: tuple | dict = ()) -> int:
        with self.cursor() as cur:
            cur.execute(sql, args)
            return cur.rowcount


def where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """` WHERE a AND b` from (SQL with one %s, value) pairs whose value is not None/empty."""
    kept = [(cond, value) for cond, value in conditions if value not in (None, "")]
    if not kept:
        return "", []
    return " WHERE " + " AND ".join(c for c, _ in kept), [v for _, v in kept]
