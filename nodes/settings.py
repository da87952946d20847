"""Typed settings of a geoplat federation, loaded from `config/*.yml`.

`config/federation.yml` names the nodes; each node's layers live in `config/layers/{node}.yml`.
Values may use `${VAR}` or `${VAR:-default}`; unknown keys are errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from layers.settings import PublishSettings
from services.access.settings import NodeAuth
from services.registry.settings import RegistrySettings
from tiles.settings import TileCache

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "federation.yml"

Tier = Literal["main", "sub", "base"]
AccessLevel = Literal["public", "registered", "restricted"]
GeometryType = Literal[
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"
]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Extent(_Model):
    """A lon/lat box in EPSG:4490."""

    minx: float = Field(ge=-180, le=180)
    miny: float = Field(ge=-90, le=90)
    maxx: float = Field(ge=-180, le=180)
    maxy: float = Field(ge=-90, le=90)

    @model_validator(mode="after")
    def _ordered(self) -> Extent:
        if self.minx >= self.maxx or self.miny >= self.maxy:
            raise ValueError("extent must have minx < maxx and miny < maxy")
        return self

    def contains(self, other: Extent, tolerance: float = 1e-9) -> bool:
        return (
            other.minx >= self.minx - tolerance
            and other.miny >= self.miny - tolerance
            and other.maxx <= self.maxx + tolerance
            and other.maxy <= self.maxy + tolerance
        )

    def as_list(self) -> list[float]:
        return [self.minx, self.miny, self.maxx, self.maxy]


class ScaleRange(_Model):
    """Denominators of the data scales a node holds (e.g. 1:50000 -> 50000)."""

    finest: int = Field(gt=0)
    coarsest: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleRange:
        if self.finest > self.coarsest:
            raise ValueError("scale.finest must be a smaller denominator than scale.coarsest")
        return self


class LayerSettings(_Model):
    """One vector layer a node loads and serves."""

    id: Identifier
    title: str
    description: str = ""
    keywords: list[str] = []
    file: str = Field(description="path below data-samples/ (or absolute)")
    source_layer: str | None = Field(default=None, description="layer inside a multi-layer file")
    geometry_type: GeometryType
    id_column: str | None = Field(
        default=None, description="source attribute kept as the feature id; default: row number"
    )
    label_field: str | None = None
    access: AccessLevel = "public"
    sensitive: bool = Field(
        default=False, description="surveying-professional content: never drawn on the e-map"
    )
    synthetic: bool = False
    min_zoom: int = Field(default=0, ge=0, le=24, description="WebMercatorQuad zoom it appears at")
    max_zoom: int = Field(default=22, ge=0, le=24)
    attribution: str = ""

    @model_validator(mode="after")
    def _zooms(self) -> LayerSettings:
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom must not exceed max_zoom")
        return self


class LayerFile(_Model):
    layers: list[LayerSettings] = []

    @field_validator("layers")
    @classmethod
    def _unique(cls, layers: list[LayerSettings]) -> list[LayerSettings]:
        seen: set[str] = set()
        for layer in layers:
            if layer.id in seen:
                raise ValueError(f"layer id {layer.id!r} appears twice")
            seen.add(layer.id)
        return layers


class NodeSettings(_Model):
    """One node of the federation."""

    id: Identifier
    title: str
    tier: Tier
    parent: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    public_url: str | None = Field(
        default=None, description="URL users reach the node at; default http://host:port"
    )
    extent: Extent
    scale: ScaleRange
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; empty: a database in the managed cluster"
    )
    workers: int = Field(default=2, ge=1, le=64)
    layers_file: str | None = Field(
        default=None, description="layer file below config/; default layers/{id}.yml"
    )
    auth: NodeAuth = NodeAuth()
    tile_cache: TileCache = TileCache()
    registry: RegistrySettings = RegistrySettings()
    publish: PublishSettings = PublishSettings()

    @field_validator("database_url", "parent", "public_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class ManagedPostgres(_Model):
    """The private PostGIS cluster `geoplat up` runs when a node has no database_url."""

    data_dir: str = "var/pg"
    port: int = Field(default=54329, ge=1, le=65535)
    host: str = "127.0.0.1"


class FederationSettings(_Model):
    name: str = "geoplat"
    var_dir: str = "var"
    postgres: ManagedPostgres = ManagedPostgres()
    data_dir: str = "data-samples"
    max_items_limit: int = Field(default=1000, ge=1)
    nodes: list[NodeSettings]

    # Filled in by load(): where the file came from, for resolving relative paths.
    config_dir: str = Field(default=str(PROJECT_ROOT / "config"), exclude=True)

    def node(self, node_id: str) -> NodeSettings:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def resolve(self, path: str) -> Path:
        """A path from config, relative to the project root (the config dir's parent)."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.config_dir).parent / p

    def layers_path(self, node: NodeSettings) -> Path:
        return Path(self.config_dir) / (node.layers_file or f"layers/{node.id}.yml")

    def children(self, node_id: str) -> list[NodeSettings]:
        return [n for n in self.nodes if n.parent == node_id]


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
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "-"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((str(path), loc, msg))
    return out


def load(path: str | Path | None = None) -> FederationSettings:
    """Load and fully check a federation config (schema and cross-references)."""
    from pydantic import ValidationError

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
    from pydantic import ValidationError

    path = settings.layers_path(node)
    if not path.exists():
        return []
    raw = read_yaml(path) or {}
    try:
        return list(LayerFile.model_validate(raw).layers)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(path, exc)) from None
