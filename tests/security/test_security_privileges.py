"""Issue 11, item 3: the nodes run unprivileged, each over its own non-superuser database role.

On the shared demo federation: every process of each node's process group (nginx master and
workers, uvicorn and its workers) runs as the unprivileged user when the suite runs as root; each
node's database role is no superuser, owns only its database and cannot connect to another
node's; the secrets on disk are 0600 and owned by that user, and no world-readable file under
var/nodes holds a secret; the nodes still serve health, tiles and features.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest
import requests
import yaml
from publish_helpers import items, points_frame
from tile_helpers import image, tdt_url_at
from waiting import wait_for

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes.privileges import RUN_USER


def run_user() -> pwd.struct_passwd:
    """Whom the nodes must run as: the unprivileged user when we are root (`make test` is),
    else ourselves (a non-root operator keeps running as themself)."""
    if os.geteuid() == 0:
        return pwd.getpwnam(RUN_USER)  # created by `make install`; KeyError is a failure
    return pwd.getpwuid(os.geteuid())


def node_dir(fed: settings_mod.FederationSettings, nid: str) -> Path:
    return fed.resolve(fed.var_dir) / "nodes" / nid


def node_meta(fed: settings_mod.FederationSettings, nid: str) -> dict:
    return json.loads((node_dir(fed, nid) / "node.json").read_text(encoding="utf-8"))


def group_processes(pgid: int) -> list[tuple[int, str, int]]:
    """(pid, command name, real uid) of every process in process group `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if int(fields[2]) != pgid:  # after "pid (comm)": state, ppid, pgrp
            continue
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
        name = next(line.split(None, 1)[1] for line in status.splitlines()
                    if line.startswith("Name:"))
        found.append((int(entry.name), name.strip(), uid))
    return found


def test_every_node_process_runs_as_the_unprivileged_user(federation) -> None:
    user = run_user()
    run = federation.resolve(federation.var_dir) / "run"
    for node in federation.nodes:
        pgid = int((run / f"{node.id}.pid").read_text())
        procs = group_processes(pgid)
        names = [name for _, name, _ in procs]
        assert sum(n == "nginx" for n in names) >= 2, (node.id, procs)  # master + workers
        assert sum(n.startswith("python") or n == "uvicorn" for n in names) >= 2, (node.id, procs)
        wrong = [(pid, name, uid) for pid, name, uid in procs if uid != user.pw_uid]
        assert not wrong, f"{node.id}: processes not running as {RUN_USER}: {wrong}"
        assert all(uid != 0 for _, _, uid in procs)


def _role(dsn: str) -> dict:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, "
                        "rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            name, *flags = cur.fetchone()
            cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database "
                        "WHERE datname = current_database()")
            owner = cur.fetchone()[0]
            cur.execute("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = "
                        "current_user")
            owned = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT current_database()")
            db = cur.fetchone()[0]
    finally:
        conn.close()
    return {"name": name, "flags": flags, "owner": owner, "owned": owned, "db": db}


def test_each_node_has_its_own_unprivileged_database_role(federation) -> None:
    roles = {}
    for node in federation.nodes:
        dsn = node_meta(federation, node.id)["database"]["dsn"]  # what the node itself connects with
        assert dsn == federation_mod.node_dsn(federation, node)
        cfg = yaml.safe_load((node_dir(federation, node.id) / "pygeoapi.yml").read_text())
        pg = [psycopg2.extensions.parse_dsn(p["data"]["dsn"])
              for r in cfg["resources"].values() for p in r.get("providers") or []
              if isinstance(p.get("data"), dict) and "dsn" in p["data"]]
        role = _role(dsn)
        roles[node.id] = (role, dsn)
        assert role["flags"] == [False] * 5, f"{node.id}: {role}"  # super, createrole, createdb, ...
        assert role["owner"] == role["name"] and role["owned"] == [role["db"]], role
        assert pg and all(p["user"] == role["name"] for p in pg), (node.id, pg)
    assert len({r["name"] for r, _ in roles.values()}) == len(roles)  # one role per node
    for nid, (role, dsn) in roles.items():
        for other, (orole, _) in roles.items():
            if other == nid:
                continue
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                psycopg2.connect(dsn.rsplit("/", 1)[0] + "/" + orole["db"], connect_timeout=5)
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(dsn.rsplit("/", 1)[0] + "/postgres", connect_timeout=5)


def _secrets(fed: settings_mod.FederationSettings) -> set[str]:
    """Every secret a node keeps on disk: database passwords, client secrets, node keys."""
    found = {federation_mod.managed_cluster(fed).password_file.read_text().strip()}
    for node in fed.nodes:
        meta = node_meta(fed, node.id)
        found.add(psycopg2.extensions.parse_dsn(meta["database"]["dsn"])["password"])
        found.add(meta["auth"]["client_secret"])
        key_file = node_dir(fed, node.id) / "node-key.json"
        if key_file.exists():
            found.add(json.loads(key_file.read_text())["key"])
    return {s for s in found if s and len(s) >= 12}


def test_secrets_on_disk_are_private_to_the_run_user(federation) -> None:
    user = run_user()
    secrets = _secrets(federation)
    for node in federation.nodes:
        ndir = node_dir(federation, node.id)
        assert ndir.stat().st_uid == user.pw_uid
        must = [ndir / "node.json", ndir / "pygeoapi.yml", ndir / "tiles" / "mapproxy.yaml"]
        must += [p for p in [ndir / "node-key.json"] if p.exists()]
        for path in must:
            st = path.stat()
            assert stat.S_IMODE(st.st_mode) == 0o600, f"{path}: {oct(st.st_mode)}"
            assert st.st_uid == user.pw_uid, f"{path}: owned by uid {st.st_uid}"
        leaks = []
        for path in ndir.rglob("*"):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 5_000_000:
                continue
            st = path.stat()
            if st.st_uid != user.pw_uid:
                leaks.append((str(path), f"owned by uid {st.st_uid}"))
            if st.st_mode & stat.S_IROTH:
                text = path.read_bytes()
                if any(s.encode() in text for s in secrets):
                    leaks.append((str(path), oct(st.st_mode)))
        assert not leaks, leaks


def test_nodes_still_serve_health_tiles_and_features(federation, urls) -> None:
    for nid, base in urls.items():
        assert requests.get(f"{base}/health", timeout=10).json()["status"] == "ok", nid
    r = requests.get(f"{urls['hangzhou']}/ogc/collections/poi/items", params={"limit": 2},
                     timeout=30)
    assert r.status_code == 200 and r.json()["features"], r.text[:300]
    tile = requests.get(tdt_url_at(urls["hangzhou"], "vec", "c", 12, 120.16, 30.27), timeout=60)
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png", tile.text[:300]
    assert image(tile).std() > 0  # drawn, not blank
    again = requests.get(tdt_url_at(urls["hangzhou"], "vec", "c", 12, 120.16, 30.27), timeout=60)
    assert again.headers.get("X-Tile-Cache") == "hit"  # nginx (worker as the run user) read it


def test_a_database_made_by_the_superuser_is_handed_to_the_node_role(pg_cluster) -> None:
    """Databases of an install from before per-node roles: every object the superuser made is
    handed over, so the node (now connecting as its role) keeps working."""
    from nodes.postgres import ensure_database

    name = "geoplat_privs_legacy"
    ensure_database(pg_cluster.dsn(), name)  # as before: everything owned by the superuser
    conn = psycopg2.connect(pg_cluster.dsn(name))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS auth CASCADE; DROP TABLE IF EXISTS poi; "
                    "CREATE SCHEMA auth; CREATE TABLE auth.t (id bigserial PRIMARY KEY, v text);"
                    "CREATE FUNCTION auth.f() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RETURN NEW; END $$;"
                    "CREATE TRIGGER tr BEFORE INSERT ON auth.t FOR EACH ROW EXECUTE FUNCTION auth.f();"
                    "CREATE TABLE poi (fid serial PRIMARY KEY, geom geometry(Point, 4490));"
                    "CREATE VIEW auth.v AS SELECT * FROM auth.t")
    conn.close()
    dsn = pg_cluster.ensure_node_role(name, name)
    assert pg_cluster.ensure_node_role(name, name) == dsn  # idempotent
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO auth.t (v) VALUES ('a'); "
                        "INSERT INTO poi (geom) VALUES (ST_SetSRID(ST_Point(120, 30), 4490))")
            cur.execute("SELECT count(*) FROM auth.v")
            assert cur.fetchone()[0] >= 1
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname IN ('auth', 'public') "
                        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                        "AND c.relowner <> current_user::regrole AND NOT EXISTS (SELECT 1 FROM "
                        "pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')")
            assert cur.fetchall() == []  # only PostGIS's own objects stay the superuser's
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone()[0] is False
    finally:
        conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops to the run user")
def test_up_as_root_says_what_to_do_when_the_user_cannot_enter_var(tmp_path, pg_cluster,
                                                                    make_federation) -> None:
    """pytest's tmp dirs are 0700: a var/ there is out of the run user's reach."""
    from nodes import supervisor
    from nodes.privileges import PrivilegeError

    config = make_federation(tmp_path, pg_cluster)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["var_dir"] = str(tmp_path / "var")
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    s = settings_mod.load(config)
    os.chmod(tmp_path, 0o700)
    with pytest.raises(PrivilegeError, match=r"cannot reach .*/var/nodes.*make install"):
        supervisor.up(s, echo=lambda *a: None)
    assert supervisor.running_nodes(s) == {}


def test_cli_publishing_as_root_leaves_everything_to_the_run_user(federation, urls,
                                                                  tmp_path) -> None:
    """`geoplat layers publish` by root, of a file only root can read (pytest's tmp is 0700):
    published, served, and every file it left in var/nodes belongs to the node's user."""
    src = tmp_path / "privs_cli.csv"
    points_frame(12).to_csv(src, index=False)
    os.chmod(src, 0o600)
    config = Path(federation.config_dir) / "federation.yml"
    root = Path(__file__).resolve().parents[2]

    def geoplat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nodes.cli", "--config", str(config),
                               "layers", *args, "--node", "hangzhou"], check=False, cwd=root,
                              capture_output=True, text=True, timeout=300)

    done = geoplat("publish", str(src), "--name", "privs_cli", "--crs", "EPSG:4490")
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        assert len(wait_for(lambda: items(urls["hangzhou"], "privs_cli"), timeout=60)) == 12
        user = run_user()
        foreign = [str(p) for p in node_dir(federation, "hangzhou").rglob("*")
                   if p.lstat().st_uid != user.pw_uid]
        assert not foreign, foreign
    finally:
        gone = geoplat("retire", "privs_cli", "--purge")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    staged = Path(tempfile.gettempdir()).glob("geoplat-stage-*/privs_cli.csv")
    assert src.exists() and not list(staged)  # the user's copy is removed, the source kept
