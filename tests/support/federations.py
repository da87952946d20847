"""A test federation's configuration: a copy of config/federation.yml on free loopback ports."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import yaml
from var_dirs import var_dir_for

from nodes.postgres import Cluster

ROOT = Path(__file__).resolve().parents[2]


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
