"""The managed PostGIS cluster: a private PostgreSQL under var/ that `geoplat up` and tests run.

A node with its own `database_url` uses that server instead; the cluster is then not needed.
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
        res = subprocess.run(cmd, capture_output=True, text=True)
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
            "-c max_connections=200", "-c shared_buffers=256MB", "-c work_mem=16MB",
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
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://postgres:{password}@{self.host}:{self.port}/{dbname}"


def ensure_database(admin_dsn: str, dbname: str) -> None:
    """Create `dbname` with PostGIS on the server of `admin_dsn` unless it exists."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(dbname)))
    finally:
        conn.close()
    ensure_postgis(admin_dsn.rsplit("/", 1)[0] + "/" + dbname)


def ensure_postgis(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
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
