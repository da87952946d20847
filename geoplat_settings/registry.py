"""The `registry:` key of a node in config/federation.yml."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# the government e-map layers (tiles.styles draws them); a composite may not take their names
EMAP_LAYERS = ("vec", "cva", "img", "cia", "ter", "cta")


class CompositionPart(BaseModel):
    """One service of a composite: a layer of a node, by its tiles or its WMS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(description="id of the node that serves the layer")
    layer: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$",
                       description="an e-map layer (vec, cva, img, cia, ter) or a WMS layer of it")
    via: Literal["tiles", "wms"] = Field(
        default="tiles", description="tiles: the node's Tianditu tile route (e-map layers); "
                                     "wms: GetMap of the node's WMS (e.g. a published layer)")


class Composition(BaseModel):
    """A composite service: layers of several nodes stacked into one WMTS/WMS layer (bottom first),
    the way the e-map cascade stacks a node's own tiles and its children's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    title: str
    format: Literal["image/png", "image/jpeg"] = "image/png"
    parts: list[CompositionPart] = Field(min_length=2)

    @model_validator(mode="after")
    def _not_emap(self) -> Composition:
        if self.id in EMAP_LAYERS:
            raise ValueError(f"composition id {self.id!r} is an e-map layer name")
        return self


class RegistrySettings(BaseModel):
    """Service registry of a node: health probes, pushes to the parent, harvesting limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    health_interval: float = Field(default=30.0, gt=0, le=3600,
                                   description="seconds between health probes of the node's area")
    push_interval: float = Field(default=2.0, gt=0, le=600,
                                 description="seconds between outbox pushes to the parent")
    full_sync_interval: float = Field(default=300.0, gt=0,
                                      description="seconds between full reconciliations with the parent")
    history: int = Field(default=10, ge=1, le=100, description="health checks kept per record")
    degraded_ms: float = Field(default=2000.0, gt=0,
                               description="a slower probe answer marks a service degraded")
    allow_networks: list[str] = Field(
        default=[], description="networks (CIDR) external services may live in even though they "
                                "are loopback/private; public addresses are always allowed")
    fetch_timeout: float = Field(default=10.0, gt=0, le=120,
                                 description="connect/read timeout when reading capabilities (s)")
    max_document_bytes: int = Field(default=5_000_000, ge=10_000,
                                    description="capabilities documents larger than this are refused")
    max_redirects: int = Field(default=5, ge=0, le=20)
    review_published: bool = Field(
        default=False,
        description="records of layers published on this node (geoplat layers publish, "
                    "/api/layers) start as pending until a node admin approves them "
                    "(geoplat registry approve, POST /registry/api/services/{id}/approve); "
                    "the layer itself is served at once")
    compositions: list[Composition] = Field(
        default=[], description="composite WMTS/WMS layers this node serves from several nodes")

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value
