"""Session fixtures: a private PostGIS cluster on a free port and the demo federation on free ports."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from federations import free_port, isolated_federation, write_federation
from publish_helpers import ctx_of
from var_dirs import remove_all

from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    remove_all()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: that is mode 0700 and the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="geoplat-test-pg-"))
    base.chmod(0o755)
    cluster = Cluster(data_dir=base / "cluster", port=free_port(), fast=True, max_connections=400)
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
    """The configuration of a federation for tests that start their own nodes: its databases
    and roles are its own (`geoplat_<id>_t<n>`), never the suite-wide federation's."""
    return isolated_federation


@pytest.fixture(scope="module")
def ctx(federation: settings_mod.FederationSettings):
    """Hangzhou's publishing context (`layers.web.node_context`) in the shared federation, per
    module (tests/publish/, tests/security/test_security_uploads.py)."""
    return ctx_of(federation, "hangzhou")


@pytest.fixture(scope="session")
def main_db(federation: settings_mod.FederationSettings):
    """The main node's database (accounts, keys) of the shared federation."""
    from nodes import federation as federation_mod
    from services.db import Database

    main = next(n for n in federation.nodes if n.tier == "main")
    return Database(federation_mod.node_dsn(federation, main), maxconn=2)


@pytest.fixture(scope="session")
def keyed(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Cluster) -> Iterator[dict]:
    """A federation of its own (databases `geoplat_<id>_keyed`) with `public_requires_key` at
    its default (true), shared by the suites of keys (test_auth_default_keys, test_security_keys,
    test_clients_qgis): base URLs `hz`/`zj`/`nat`, a server key `key` for 127.0.0.0/8,
    `main_db`, `settings`."""
    from nodes import federation as federation_mod
    from services.access import apikeys
    from services.db import Database
    from services.sso import accounts

    base = tmp_path_factory.mktemp("keyed")
    settings = settings_mod.load(write_federation(base, pg_cluster, require_keys=True,
                                                  tag="keyed"))
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
