"""Session fixtures: a private PostGIS cluster on a free port and the demo federation on free ports."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from var_dirs import remove_all, var_dir_for

from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_federation(base: Path, cluster: Cluster, ports: dict[str, int] | None = None,
                     require_keys: bool = False) -> Path:
    """A copy of config/federation.yml with var/, PostGIS and ports of this test run.

    Most suites call public layers anonymously, so keys are optional unless `require_keys`
    (the shipped default, tested in test_auth_default_keys.py).
    """
    raw = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))
    raw["var_dir"] = str(var_dir_for(base))  # not under `base`: the nodes' user must enter it
    raw["data_dir"] = str(ROOT / "data-samples")
    raw["postgres"] = {"data_dir": str(cluster.data_dir), "port": cluster.port}
    for node in raw["nodes"]:
        node["host"] = "127.0.0.1"
        node["port"] = (ports or {}).get(node["id"]) or free_port()
        node["database_url"] = ""
        node["auth"] = {**(node.get("auth") or {}), "public_requires_key": require_keys}
    cfg_dir = base / "config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    if (cfg_dir / "layers").exists():
        shutil.rmtree(cfg_dir / "layers")
    shutil.copytree(ROOT / "config" / "layers", cfg_dir / "layers")
    path = cfg_dir / "federation.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    remove_all()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: that is mode 0700 and the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="geoplat-test-pg-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory,
               pg_cluster: Cluster) -> Iterator[settings_mod.FederationSettings]:
    """The three demo nodes, loaded with the sample data and serving on loopback."""
    base = tmp_path_factory.mktemp("fed")
    settings = settings_mod.load(write_federation(base, pg_cluster))
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    yield settings
    for p in procs:
        supervisor.stop_group(p.pgid)


@pytest.fixture(scope="session")
def urls(federation: settings_mod.FederationSettings) -> dict[str, str]:
    return {n.id: n.base_url for n in federation.nodes}


@pytest.fixture(scope="session")
def make_federation():
    """`write_federation` for tests that start their own nodes."""
    return write_federation


@pytest.fixture(scope="session")
def main_db(federation: settings_mod.FederationSettings):
    """The main node's database (accounts, keys) of the shared federation."""
    from nodes import federation as federation_mod
    from services.db import Database

    main = next(n for n in federation.nodes if n.tier == "main")
    return Database(federation_mod.node_dsn(federation, main), maxconn=2)


@pytest.fixture(scope="session")
def keyed(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Cluster) -> Iterator[dict]:
    """A federation of its own with `public_requires_key` at its default (true), shared by the
    suites of keys (test_auth_default_keys, test_security_keys, test_clients_qgis): base URLs
    `hz`/`zj`/`nat`, a server key `key` for 127.0.0.0/8, `main_db`, `settings`."""
    from nodes import federation as federation_mod
    from services.access import apikeys
    from services.db import Database
    from services.sso import accounts

    base = tmp_path_factory.mktemp("keyed")
    settings = settings_mod.load(write_federation(base, pg_cluster, require_keys=True))
    assert all(n.auth.public_requires_key for n in settings.nodes)
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    try:
        main = settings.node("national")
        db = Database(federation_mod.node_dsn(settings, main), maxconn=1)
        user = accounts.create(db, "keyed_dev", "keyed-dev-password-1", roles=["developer"])
        key, _ = apikeys.create_key(db, "test", user.id, "keyed", "server", ["127.0.0.0/8"],
                                    actor="test")
        yield {"hz": settings.node("hangzhou").base_url, "zj": settings.node("zhejiang").base_url,
               "nat": main.base_url, "key": key, "main_db": db, "user_id": user.id,
               "settings": settings}
    finally:
        for p in procs:
            supervisor.stop_group(p.pgid)
