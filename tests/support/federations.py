"""A test federation's configuration: a copy of config/federation.yml on free loopback ports."""

from __future__ import annotations

import itertools
import shutil
import socket
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql
from var_dirs import var_dir_for

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes.postgres import Cluster, ensure_database, revoke_public_connect

ROOT = Path(__file__).resolve().parents[2]
_TAGS = itertools.count(1)
_TEMPLATES: dict[tuple[str, str], str] = {}  # (cluster, node id) -> its loaded template


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port never handed out before in this session: the kernel may give the
    same free port to two calls in a row (two nodes of one federation got one port, CI)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def new_tag() -> str:
    """A tag no other federation of this session has (`t1`, `t2`, ...)."""
    return f"t{next(_TAGS)}"


def _template(cluster: Cluster, settings: settings_mod.FederationSettings,
              node: settings_mod.NodeSettings) -> str:
    """`geoplat_template_<id>`: the node's sample layers loaded once per cluster (by the
    superuser; nothing connects to it afterwards), to copy federations' databases from."""
    key = (str(cluster.data_dir), node.id)
    if key not in _TEMPLATES:
        name = f"geoplat_template_{node.id}"
        ensure_database(cluster.dsn(), name)
        revoke_public_connect(cluster.dsn(), name)
        federation_mod.load_node_layers(
            settings, node.model_copy(update={"database_url": cluster.dsn(name)}),
            show_progress=False)
        _TEMPLATES[key] = name
    return _TEMPLATES[key]


def own_database(cluster: Cluster, settings: settings_mod.FederationSettings,
                 node: settings_mod.NodeSettings, tag: str) -> str:
    """A database and a login role `geoplat_<id>_<tag>` of their own in the test cluster, made
    as `geoplat up` makes a managed node's (nodes/postgres.py: no superuser, owner of only its
    database and of every object in it, CONNECT revoked from PUBLIC); the role's URL.

    The database starts as a copy of the node's template (its sample layers already loaded,
    so `geoplat up` finds them unchanged): a copy takes a fraction of a load.
    """
    name = f"geoplat_{node.id}_{tag}"
    template = _template(cluster, settings, node)
    conn = psycopg2.connect(cluster.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
    finally:
        conn.close()
    return cluster.ensure_node_role(name, name)


def write_federation(base: Path, cluster: Cluster, ports: dict[str, int] | None = None,
                     require_keys: bool = False, tag: str | None = None,
                     supply: bool = False) -> Path:
    """A copy of config/federation.yml with var/, PostGIS and ports of this test run.

    Most suites call public layers anonymously, so keys are optional unless `require_keys`
    (the shipped default, tested in tests/auth/test_auth_default_keys.py).

    With `tag`, every node gets a database and role of its own (`own_database`), given to it
    as its `database_url`, so that this federation shares no data with any other one running
    on the cluster. Without, the nodes use the managed cluster's names `geoplat_<id>`: only the
    suite-wide federation does (tests/conftest.py), so that path of `geoplat up` is tested too.

    The demo's data supply links (issue 18: Hangzhou's layers making Zhejiang's, Zhejiang's
    halls in the national POIs) are kept only with `supply` (tests/supply/): the other suites
    count the layers and places of each node as its own configuration makes them.
    """
    raw = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))
    raw["var_dir"] = str(var_dir_for(base))  # not under `base`: the nodes' user must enter it
    raw["data_dir"] = str(ROOT / "data-samples")
    raw["postgres"] = {"data_dir": str(cluster.data_dir), "port": cluster.port}
    for node in raw["nodes"]:
        if not supply:
            node.pop("supply", None)
            node.pop("reference", None)
        node["host"] = "127.0.0.1"
        node["port"] = (ports or {}).get(node["id"]) or free_port()
        node["database_url"] = ""
        node["auth"] = {**(node.get("auth") or {}), "public_requires_key": require_keys}
        # a long job to cancel or kill (tests/analysis: the `test_delay` input), and a dead
        # queue worker long enough down for `geoplat status` to show it; downloads of items
        # stop at 3,000 features (Hangzhou's parcels, 3,500, are over it: tests/analysis)
        node["analysis"] = {**(node.get("analysis") or {}), "test_hooks": True, "restart_delay": 6,
                            "download_limit": 3000}
    cfg_dir = base / "config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    if (cfg_dir / "layers").exists():
        shutil.rmtree(cfg_dir / "layers")
    shutil.copytree(ROOT / "config" / "layers", cfg_dir / "layers")
    path = cfg_dir / "federation.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    if tag:
        settings = settings_mod.load(path)
        for node in raw["nodes"]:
            node["database_url"] = own_database(cluster, settings, settings.node(node["id"]), tag)
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    return path


def isolated_federation(base: Path, cluster: Cluster, ports: dict[str, int] | None = None,
                        require_keys: bool = False, tag: str | None = None,
                        supply: bool = False) -> Path:
    """`write_federation` with databases and roles of its own: a new tag each call, unless the
    caller names one (tests that restart the same federation)."""
    return write_federation(base, cluster, ports, require_keys, tag=tag or new_tag(),
                            supply=supply)
