"""Loading the settings of a geoplat federation from `config/*.yml` (the models are in
`geoplat_settings`, re-exported here for the CLI and the tests).

`config/federation.yml` names the nodes; each node's layers live in `config/layers/{node}.yml`.
Values may use `${VAR}` or `${VAR:-default}`; unknown keys are errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from geoplat_settings import (
    PROJECT_ROOT,
    AccessLevel,
    Extent,
    FederationSettings,
    Identifier,
    LayerFile,
    LayerSettings,
    ManagedPostgres,
    NodeSettings,
    ScaleRange,
    Tier,
)

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "federation.yml"


# --- loading ---------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, located by file and key."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems  # (file, key path, message)
        super().__init__("\n".join(f"{f}: {k}: {m}" for f, k, m in problems))


def substitute(text: str, env: dict[str, str] | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}` from the environment."""
    source: Mapping[str, str] = os.environ if env is None else env

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = source.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise KeyError(name)
            return default
        return value

    return _VAR.sub(repl, text)


def _substitute_values(value: object, path: Path, key: str) -> object:
    """Substitute variables in parsed string values (comments are left alone)."""
    if isinstance(value, dict):
        return {k: _substitute_values(v, path, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_values(v, path, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        try:
            return substitute(value)
        except KeyError as exc:
            raise ConfigError(
                [(str(path), key or "-", f"environment variable {exc.args[0]} is not set")]
            ) from None
    return value


def read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), "-", f"cannot read: {exc.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f"line {where.line + 1}" if where else "-"
        raise ConfigError(
            [(str(path), line, f"YAML syntax: {getattr(exc, 'problem', None) or exc}")]
        ) from None
    return _substitute_values(raw, path, "")


def _pydantic_problems(path: Path, exc: Exception) -> list[tuple[str, str, str]]:
    assert isinstance(exc, ValidationError)
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "-"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((str(path), loc, msg))
    return out


def load(path: str | Path | None = None) -> FederationSettings:
    """Load and fully check a federation config (schema and cross-references)."""
    path = Path(path or os.environ.get("GEOPLAT_CONFIG") or DEFAULT_CONFIG).resolve()
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError([(str(path), "-", "must be a mapping with a 'nodes' list")])
    raw = {**raw, "config_dir": str(path.parent)}
    try:
        settings = FederationSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(path, exc)) from None
    problems = check_references(settings, str(path))
    if problems:
        raise ConfigError(problems)
    return settings


def check_references(settings: FederationSettings, fname: str) -> list[tuple[str, str, str]]:
    """Rules between nodes: parents exist and form a tree, ports unique, extents nested."""
    problems: list[tuple[str, str, str]] = []
    by_id: dict[str, int] = {}
    for i, node in enumerate(settings.nodes):
        if node.id in by_id:
            problems.append((fname, f"nodes.{i}.id", f"node id {node.id!r} appears twice"))
        by_id[node.id] = i
    ports: dict[tuple[str, int], str] = {}
    for i, node in enumerate(settings.nodes):
        key = (node.host, node.port)
        if key in ports:
            problems.append(
                (fname, f"nodes.{i}.port", f"port {node.port} already used by node {ports[key]!r}")
            )
        ports[key] = node.id
        if node.parent is None:
            if node.tier != "main":
                problems.append((fname, f"nodes.{i}.parent", f"a {node.tier} node needs a parent"))
            continue
        if node.parent not in by_id:
            problems.append((fname, f"nodes.{i}.parent", f"unknown parent {node.parent!r}"))
            continue
        parent = settings.nodes[by_id[node.parent]]
        if not parent.extent.contains(node.extent):
            problems.append(
                (fname, f"nodes.{i}.extent", f"extent lies outside parent {parent.id!r}'s extent")
            )
    for i, node in enumerate(settings.nodes):  # composite services name known nodes
        for j, comp in enumerate(node.registry.compositions):
            for k, part in enumerate(comp.parts):
                if part.node not in by_id:
                    problems.append((fname, f"nodes.{i}.registry.compositions.{j}.parts.{k}.node",
                                     f"unknown node {part.node!r}"))
    for i, node in enumerate(settings.nodes):  # supply links go to a parent, once per layer
        targets: set[str] = set()
        for j, link in enumerate(node.supply):
            if node.parent is None:
                problems.append((fname, f"nodes.{i}.supply.{j}",
                                 "only a node with a parent supplies data"))
            if link.parent_layer in targets:
                twice = f"the parent's layer {link.parent_layer!r} is supplied twice by this node"
                problems.append((fname, f"nodes.{i}.supply.{j}.to", twice))
            targets.add(link.parent_layer)
        ancestors, cur = set(), node
        while cur.parent is not None and cur.parent in by_id and cur.parent not in ancestors:
            ancestors.add(cur.parent)
            cur = settings.nodes[by_id[cur.parent]]
        copies: set[str] = set()
        for j, ref in enumerate(node.reference):
            if ref.source not in ancestors:
                problems.append((fname, f"nodes.{i}.reference.{j}.source",
                                 f"{ref.source!r} is not an ancestor of node {node.id!r}"))
            if (ref.to or ref.layer) in copies:
                problems.append((fname, f"nodes.{i}.reference.{j}.to",
                                 f"layer {ref.to or ref.layer!r} is copied twice"))
            copies.add(ref.to or ref.layer)
    for i, node in enumerate(settings.nodes):  # cycles
        seen, cur = {node.id}, node
        while cur.parent is not None and cur.parent in by_id:
            cur = settings.nodes[by_id[cur.parent]]
            if cur.id in seen:
                problems.append((fname, f"nodes.{i}.parent", "cycle in parents: " + node.id))
                break
            seen.add(cur.id)
    mains = [n.id for n in settings.nodes if n.tier == "main"]
    if len(mains) != 1:
        problems.append((fname, "nodes", f"exactly one main node expected, found {len(mains)}"))
    return problems


def load_layers(settings: FederationSettings, node: NodeSettings) -> list[LayerSettings]:
    """The node's layer list; a missing file means no layers."""
    path = settings.layers_path(node)
    if not path.exists():
        return []
    raw = read_yaml(path) or {}
    try:
        return list(LayerFile.model_validate(raw).layers)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(path, exc)) from None


__all__ = ["PROJECT_ROOT", "AccessLevel", "ConfigError", "Extent", "FederationSettings",
           "Identifier", "LayerFile", "LayerSettings", "ManagedPostgres", "NodeSettings",
           "ScaleRange", "Tier", "check_references", "load", "load_layers", "read_yaml",
           "substitute"]
