"""`NodeRuntime`: everything a running node needs, typed, written once by `geoplat up`.

`nodes/build.py` makes it from the federation's settings (reading the layer files once) and
writes it as the node's `node.json` (mode 600: it holds the database password and the node's
client secret); the node app reads it back with `NodeRuntime.load` and never re-validates
parts of it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from geoplat_settings.analysis import AnalysisSettings
from geoplat_settings.auth import NodeAuth
from geoplat_settings.cadastre import CadastreSettings
from geoplat_settings.federation import AccessLevel, Extent, LayerSettings, ScaleRange, Tier
from geoplat_settings.halls import HallsSettings
from geoplat_settings.publish import PublishSettings
from geoplat_settings.registry import RegistrySettings
from geoplat_settings.supply import SupplySection
from geoplat_settings.tiles import TileCache

RUNTIME_FILE = "node.json"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Section):
    """Who the node is and how it serves."""

    id: str
    title: str
    tier: Tier
    parent: str | None = None
    base_url: str
    extent: Extent
    scale: ScaleRange
    workers: int = Field(ge=1)

    def summary(self) -> dict[str, Any]:
        """The node as `/` and `/health` show it (extent as a list)."""
        return {"id": self.id, "title": self.title, "tier": self.tier, "parent": self.parent,
                "base_url": self.base_url, "extent": self.extent.as_list(),
                "scale": {"finest": self.scale.finest, "coarsest": self.scale.coarsest},
                "workers": self.workers}


class DatabaseSection(_Section):
    dsn: str = Field(description="the node's own role on its own database")


class AuthSection(_Section):
    """Sign-on and access control of the node (provisioned at build time)."""

    node_id: str
    is_main: bool
    main_url: str
    issuer: str
    jwks_url: str
    token_url: str
    audience: str
    client_id: str
    client_secret: str
    main_dsn: str | None = Field(default=None, description="the main node's own database only")
    levels: dict[str, AccessLevel] = {}
    fields: dict[str, dict[str, AccessLevel]] = Field(
        default={}, description="layer -> attribute -> level, for attributes stricter than "
        "their layer (services/access/fields.py)")
    settings: NodeAuth = NodeAuth()


class NodeRef(_Section):
    id: str
    base_url: str
    path: str | None = Field(default=None, description="origin path (children only)")
    extent: tuple[float, float, float, float] | None = Field(
        default=None, description="children only: lon/lat box of the child's data")
    area_code: str | None = Field(default=None, description="children only: its GB/T 2260 code")
    subtree_codes: list[str] = Field(
        default=[], description="children only: area codes of the child and its descendants")


class RegistrySection(_Section):
    path: str = Field(description="`national/zhejiang/hangzhou`: the node's ancestors and itself")
    parent: NodeRef | None = None
    children: list[NodeRef] = []
    settings: RegistrySettings = RegistrySettings()


class CompositionRef(_Section):
    id: str
    title: str


class Providers(_Section):
    """pygeoapi provider classes of published layers (named by nodes/, which holds them)."""

    feature: str
    tile: str
    coverage: str


class NodeView(_Section):
    """A node as its registry sees it (the registry CLI makes one from the settings alone)."""

    server: ServerSection
    registry: RegistrySection


class NodeRuntime(NodeView):
    """The node's runtime file (`node.json`), every section typed."""

    directory: str = Field(description="the node's directory (generated configs, caches)")
    database: DatabaseSection
    layers: list[LayerSettings] = []
    tiles: TileCache = TileCache()
    auth: AuthSection
    publish: PublishSettings = PublishSettings()
    halls: HallsSettings = HallsSettings()  # service items, holidays (issue 15)
    cadastre: CadastreSettings = CadastreSettings()  # the /cadastre page's layers (issue 15)
    analysis: AnalysisSettings = AnalysisSettings()  # OGC API Processes, its queue (issue 17)
    providers: Providers
    compositions: list[CompositionRef] = []
    supply: SupplySection = SupplySection()  # data supply between tiers (issue 18)

    @property
    def node_dir(self) -> Path:
        return Path(self.directory)

    @property
    def dsn(self) -> str:
        return self.database.dsn

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeRuntime:
        """Read a runtime file (`var/nodes/<id>/node.json`, or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / RUNTIME_FILE
        return cls.model_validate_json(p.read_text(encoding="utf-8"))

    def write(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the runtime file, mode 600 (it holds the node's secrets)."""
        p = Path(path) if path is not None else self.node_dir / RUNTIME_FILE
        if p.is_dir():
            p = p / RUNTIME_FILE
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.model_dump_json(indent=2))
        os.chmod(p, 0o600)
        return p
