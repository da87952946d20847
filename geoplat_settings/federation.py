"""The federation, node and layer models of `config/federation.yml` and `config/layers/*.yml`.

Only the models: reading the YAML files (variables, cross-references) is the CLI's
(nodes/settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geoplat_settings.analysis import AnalysisSettings
from geoplat_settings.auth import NodeAuth
from geoplat_settings.cadastre import CadastreSettings
from geoplat_settings.halls import HallsSettings
from geoplat_settings.places import PlacesMapping
from geoplat_settings.publish import PublishSettings
from geoplat_settings.registry import RegistrySettings
from geoplat_settings.routing import RoutingMapping
from geoplat_settings.supply import ReferenceLink, SupplyLink
from geoplat_settings.tiles import TileCache

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Tier = Literal["main", "sub", "base"]
AccessLevel = Literal["public", "registered", "restricted"]
ACCESS_ORDER: dict[str, int] = {"public": 0, "registered": 1, "restricted": 2}
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
    field_access: dict[Identifier, AccessLevel] = Field(
        default={}, description="attributes with their own access level, stricter than the "
        "layer's (e.g. the holder fields of public parcels restricted): hidden on every surface "
        "from a caller below it (services/access/fields.py)")
    sensitive: bool = Field(
        default=False, description="surveying-professional content: never drawn on the e-map"
    )
    synthetic: bool = False
    wms: bool = Field(
        default=False, description="offered as a WMS layer of its own name on its node (GetMap, "
        "and GetFeatureInfo with the attributes the caller may see: tiles/featureinfo.py); "
        "public, not sensitive layers only")
    min_zoom: int = Field(default=0, ge=0, le=24, description="WebMercatorQuad zoom it appears at")
    max_zoom: int = Field(default=22, ge=0, le=24)
    attribution: str = ""
    places: PlacesMapping | None = Field(
        default=None, description="how its features feed the node's gazetteer (place search)")
    routing: RoutingMapping | None = Field(
        default=None, description="the layer is (part of) the node's road network for routing")

    @model_validator(mode="after")
    def _zooms(self) -> LayerSettings:
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom must not exceed max_zoom")
        return self

    @model_validator(mode="after")
    def _wms_public(self) -> LayerSettings:
        if self.wms and (self.access != "public" or self.sensitive):
            raise ValueError("wms: only a public layer that is not sensitive is offered on the "
                             "WMS (images are for anyone)")
        return self

    @model_validator(mode="after")
    def _field_levels(self) -> LayerSettings:
        for name, level in self.field_access.items():
            if ACCESS_ORDER[level] <= ACCESS_ORDER[self.access]:
                raise ValueError(f"field_access.{name}: {level!r} must be stricter than the "
                                 f"layer's access {self.access!r}")
        used = {c for c in (self.label_field, self.id_column) if c}
        if self.places is not None:
            used.update(self.places.all_columns())
        if self.routing is not None:
            used.update(c for c in (self.routing.kind, self.routing.name, self.routing.oneway) if c)
        clash = sorted(used & set(self.field_access))
        if clash:
            raise ValueError(f"field_access: {', '.join(clash)} label, identify, feed the "
                             "gazetteer or the routing network, which are public; restrict "
                             "other columns")
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
    area_code: str | None = Field(
        default=None, pattern=r"^[1-9]\d{5}$",
        description="GB/T 2260 code of the division the node is responsible for (330000, 330100);"
                    " its parent asks it for places there. None: the whole country (main node)")
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
    halls: HallsSettings = HallsSettings()
    analysis: AnalysisSettings = AnalysisSettings()  # processes and their queue (issue 17)
    cadastre: CadastreSettings = CadastreSettings()
    supply: list[SupplyLink] = Field(
        default=[], description="this node's layers supplying its parent's (issue 18)")
    reference: list[ReferenceLink] = Field(
        default=[], description="layers of ancestor nodes this node holds copies of, pushed "
                                "down as change-sets (issue 18)")

    @field_validator("database_url", "parent", "public_url", "area_code", mode="before")
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

    def subtree(self, node_id: str) -> list[NodeSettings]:
        """The node and all its descendants, parents first."""
        out = [self.node(node_id)]
        for child in self.children(node_id):
            out += self.subtree(child.id)
        return out
