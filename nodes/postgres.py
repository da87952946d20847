"""The managed PostGIS cluster: a private PostgreSQL under var/ that `geoplat up` and tests run.

Each node gets its own login role `geoplat_<id>` (no superuser, no CREATEDB/CREATEROLE), owner of
its database `geoplat_<id>` and of nothing else; CONNECT on the databases is revoked from PUBLIC,
so a node's role cannot open another node's database. The superuser connection (`dsn()`) is for
build steps only: creating roles, databases and extensions. A node with its own `database_url`
uses that server instead; the cluster is then not needed.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql


class PostgresError(RuntimeError):
    """The managed cluster could not be set up or started."""


def pg_bindir() -> Path:
    """Directory of the newest installed PostgreSQL server binaries."""
    env = os.environ.get("GEOPLAT_PG_BINDIR")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        exe = shutil.which("initdb")
        if exe:
            return Path(exe).resolve().parent
        raise PostgresError("PostgreSQL server binaries not found (apt-get install postgresql-15)")
    return Path(found[-1]).parent


@dataclass
class Cluster:
    """A private PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    fast: bool = False  # fsync off: for tests only
    # the test suite's cluster serves several federations at once (each node process keeps
    # its pooled connections): more slots than one federation's managed cluster needs
    max_connections: int = 200

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "superuser.password"

    def _owner(self) -> str | None:
        """Run server commands as `postgres` when we are root (initdb refuses root)."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresError("running as root needs a 'postgres' system user") from None
        return "postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        cmd = [str(pg_bindir() / args[0]), *args[1:]]
        if owner:
            cmd = ["runuser", "-u", owner, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and res.returncode != 0:
            raise PostgresError(f"{args[0]} failed: {res.stderr.strip() or res.stdout.strip()}")
        return res

    def _chown(self, *paths: Path) -> None:
        owner = self._owner()
        if owner:
            pw = pwd.getpwnam(owner)
            for p in paths:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialized:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.password_file.write_text(secrets.token_urlsafe(24))
        os.chmod(self.password_file, 0o600)
        pwfile = self.data_dir / ".initpw"
        pwfile.write_text(self.password_file.read_text())
        os.chmod(pwfile, 0o600)
        self._chown(self.data_dir, self.socket_dir, pwfile)
        try:
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8", "-A", "scram-sha-256", f"--pwfile={pwfile}",
                *(["--no-sync"] if self.fast else []),
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        return self._run("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def start(self) -> None:
        self.init()
        if self.is_running():
            return
        if not self.log_file.exists():
            self.log_file.touch()
            self._chown(self.log_file)
        opts = [
            f"-p {self.port}", f"-k {self.socket_dir}", f"-c listen_addresses={self.host}",
            f"-c max_connections={self.max_connections}", "-c shared_buffers=256MB",
            "-c work_mem=16MB",
            "-c jit=off",
        ]
        if self.fast:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60",
            "-o", " ".join(opts), "start",
        )

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)

    def dsn(self, dbname: str = "postgres") -> str:
        """The superuser's URL: for build steps only, never handed to a node."""
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://postgres:{password}@{self.host}:{self.port}/{dbname}"

    def role_password_file(self, role: str) -> Path:
        return self.data_dir / "roles" / f"{role}.password"

    def role_dsn(self, role: str, dbname: str) -> str:
        """The URL of a node's own role (set up by `ensure_node_role`)."""
        try:
            password = self.role_password_file(role).read_text().strip()
        except FileNotFoundError:
            raise PostgresError(f"database role {role} is not set up yet: run `geoplat up` "
                                "(or `geoplat load`) once") from None
        return f"postgresql://{role}:{quote(password, safe='')}@{self.host}:{self.port}/{dbname}"

    def ensure_node_role(self, role: str, dbname: str) -> str:
        """Create (or bring back in line) a node's role and its database; the role's URL."""
        path = self.role_password_file(role)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(24))
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        ensure_role(self.dsn(), role, path.read_text().strip())
        ensure_database(self.dsn(), dbname, owner=role)
        revoke_public_connect(self.dsn(), "postgres")
        return self.role_dsn(role, dbname)


_ROLE_LIMITS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def _admin(dsn: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def ensure_role(admin_dsn: str, role: str, password: str) -> None:
    """A login role with no special rights and this password (created or reset)."""
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER ROLE {} WITH " if cur.fetchone() else "CREATE ROLE {} WITH "
            cur.execute(sql.SQL(verb + _ROLE_LIMITS + " PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
    finally:
        conn.close()


def revoke_public_connect(admin_dsn: str, dbname: str) -> None:
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(dbname)))
    finally:
        conn.close()


def ensure_database(admin_dsn: str, dbname: str, owner: str | None = None) -> None:
    """Create `dbname` with PostGIS on the server of `admin_dsn` unless it exists.

    With `owner`, that role owns the database and every object in it (objects an earlier,
    superuser-run version created are handed over), and only it (and superusers) may connect.
    """
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(dbname)))
            if owner:
                cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(owner)))
    finally:
        conn.close()
    if owner:
        revoke_public_connect(admin_dsn, dbname)
    db_dsn = admin_dsn.rsplit("/", 1)[0] + "/" + dbname
    ensure_postgis(db_dsn)
    if owner:
        hand_over(db_dsn, owner)


def ensure_postgis(dsn: str) -> None:
    """PostGIS, pg_trgm (the registry's search) and pgRouting (services/maps: routes over the
    node's roads): extensions a node role cannot create."""
    conn = _admin(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            cur.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    finally:
        conn.close()


# Everything outside the system schemas that no extension owns: schemas, tables (with their
# indexes and sequences), views, sequences of their own, functions.
_HAND_OVER = r"""
DO $$
DECLARE
    target oid := %(role)s::regrole;
    r record;
BEGIN
    FOR r IN SELECT format('ALTER SCHEMA %%I OWNER TO %%I', n.nspname, %(role)s) AS stmt
             FROM pg_namespace n
             WHERE n.nspowner <> target AND n.nspname NOT LIKE 'pg\_%%'
               AND n.nspname NOT IN ('information_schema', 'public')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                               AND d.objid = n.oid AND d.deptype = 'e')
           UNION ALL
           SELECT format('ALTER %%s %%s OWNER TO %%I',
                         CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                        ELSE 'TABLE' END, c.oid::regclass, %(role)s)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relowner <> target
               AND n.nspname NOT LIKE 'pg\_%%' AND n.nspname <> 'information_schema'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
           UNION ALL
           SELECT format('ALTER ROUTINE %%s OWNER TO %%I', p.oid::regprocedure, %(role)s)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proowner <> target AND p.prokind IN ('f', 'p') AND n.nspname NOT LIKE 'pg\_%%'
               AND n.nspname <> 'information_schema'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                               AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE r.stmt;
    END LOOP;
END $$
"""


def hand_over(db_dsn: str, role: str) -> None:
    """Make `role` the owner of every object in the database that is not an extension's."""
    conn = _admin(db_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(_HAND_OVER, {"role": role})
    finally:
        conn.close()


def wait_for(dsn: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(dsn, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
