"""Database access for the auth tables: a small thread-safe pool and the DDL of schema `auth`.

Every node has `auth.grants`, `auth.audit`, `auth.key_usage` and `auth.secrets` in its own
database; the main node additionally holds the accounts, OIDC clients, codes, refresh tokens,
signing keys and API keys (central authentication, distributed authorization).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras

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


POOL_IDLE = 4  # idle connections a process keeps per database (unless a Database says more)
POOL_CHECK_AFTER = 5.0  # seconds idle after which a connection is checked before reuse
POOL_IDLE_SECONDS = 10.0  # an idle connection is closed after this: an idle node holds none


class ConnectionPool:
    """A process's idle connections to one database (per application name), lent to one thread
    at a time: the one pool of `Database` (autocommit) and of the analysis processes
    (services/analysis/processes.py `connection`, transactions of their own).

    A sign-on with SCRAM costs ~11 ms (a node worker spent ~5 % of its samples in
    `psycopg2.connect` under 8 concurrent place-name queries when psycopg2's own pool closed
    returned connections), so up to `keep` idle ones are kept for the next borrower. Unlike
    psycopg2.pool, a borrower never fails when all are lent (it gets a new connection, closed
    when given back over `keep`); a forked process (an RQ work horse, a uvicorn worker) never
    uses its parent's; connections idle for POOL_IDLE_SECONDS are closed by a reaper thread:
    many nodes on one PostgreSQL (the tests' federations, a bureau's tiers) must not hold its
    connection slots idle."""

    _pools: ClassVar[dict[tuple[int, str, str], ConnectionPool]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, dsn: str, application_name: str, keep: int = POOL_IDLE,
                 connect_timeout: int | None = None):
        self.dsn, self.application_name, self.keep = dsn, application_name, keep
        self.connect_timeout = connect_timeout
        self.idle: list[tuple[Any, float]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._reap, name="geoplat-pool-reaper", daemon=True).start()

    def _reap(self) -> None:
        while True:
            time.sleep(POOL_IDLE_SECONDS / 4)
            now = time.monotonic()
            with self.lock:
                stale = [c for c, since in self.idle if now - since > POOL_IDLE_SECONDS]
                self.idle = [(c, since) for c, since in self.idle
                             if now - since <= POOL_IDLE_SECONDS]
            _close(stale)

    @classmethod
    def of(cls, dsn: str, application_name: str, keep: int = POOL_IDLE,
           connect_timeout: int | None = None) -> ConnectionPool:
        key = (os.getpid(), dsn, application_name)
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = cls(dsn, application_name, keep, connect_timeout)
            pool.keep = max(pool.keep, keep)
            return pool

    def borrow(self, autocommit: bool = False) -> Any:
        while True:
            with self.lock:
                conn, since = self.idle.pop() if self.idle else (None, 0.0)
            if conn is None:
                extra = {} if self.connect_timeout is None else \
                    {"connect_timeout": self.connect_timeout}
                conn = psycopg2.connect(self.dsn, application_name=self.application_name,
                                        **extra)
            elif conn.closed or (time.monotonic() - since > POOL_CHECK_AFTER
                                 and not _alive(conn)):
                conn.close()
                continue
            conn.autocommit = autocommit
            return conn

    def give_back(self, conn: Any) -> None:
        if conn.closed:
            return
        try:
            if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                conn.rollback()
            reusable = conn.info.transaction_status == \
                psycopg2.extensions.TRANSACTION_STATUS_IDLE
        except psycopg2.Error:
            reusable = False
        with self.lock:
            if reusable and len(self.idle) < self.keep:
                self.idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close_idle(self) -> None:
        """Close the idle connections now (the pool opens new ones on the next borrow)."""
        with self.lock:
            idle, self.idle = self.idle, []
        _close(c for c, _ in idle)


def _close(conns: Iterable[Any]) -> None:
    for conn in conns:
        try:
            conn.close()
        except psycopg2.Error:
            pass


def _alive(conn: Any) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        if not conn.autocommit:
            conn.rollback()
        return True
    except psycopg2.Error:
        return False


class Database:
    """Autocommit connections of this process's ConnectionPool (application `geoplat-auth`),
    at most `maxconn` at a time (callers wait for one); rows come back as dicts."""

    def __init__(self, dsn: str, maxconn: int = 8):
        self.dsn, self.maxconn = dsn, maxconn
        self._slots = threading.BoundedSemaphore(maxconn)

    def _pool(self) -> ConnectionPool:
        return ConnectionPool.of(self.dsn, "geoplat-auth", keep=self.maxconn, connect_timeout=3)

    def close(self) -> None:
        """Close the pool's idle connections (it opens new ones on the next use)."""
        self._pool().close_idle()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        with self._slots:
            pool = self._pool()
            conn = pool.borrow(autocommit=True)
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                conn.close()  # broken: never lent again
                raise
            finally:
                pool.give_back(conn)

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
