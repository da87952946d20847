"""Data supply between tiers (数据汇交, issue 18): what a node's layer supplies to its parent's
layer (`supply:` of the child node in config/federation.yml), and the review rules the parent
applies to it. The child sends change-sets (services/supply/outbox.py); the parent checks them
in its review queue (services/supply/inbox.py) against the child's area: the union of the
parent's own division units under the child's `area_code`, else the child's `extent`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_LAYER_ID = r"^[a-z][a-z0-9_]{0,62}$"
AccessLevel = Literal["public", "registered", "restricted"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Generalise(_Model):
    """How the child's features are fitted to the parent's scale before they are sent."""

    simplify_m: float = Field(default=0, ge=0, le=10000,
                              description="Douglas-Peucker tolerance in metres (0: none)")
    min_area_m2: float = Field(default=0, ge=0,
                               description="polygons smaller than this are not sent (0: all)")
    keep: dict[str, list[str]] = Field(
        default={}, description="field -> the values kept (e.g. the categories the parent's "
                                "scale shows); features with other values are not sent")


class SupplyLink(_Model):
    """One layer of this node supplying one layer of its parent."""

    layer: str = Field(pattern=_LAYER_ID, description="this node's layer")
    to: str | None = Field(default=None, pattern=_LAYER_ID,
                           description="the parent's layer (default: the same name)")
    key: str = Field(pattern=_LAYER_ID,
                     description="the stable feature id: the field that keys features across "
                                 "versions (a change is an insert, update or delete by key)")
    fields: list[str] = Field(default=[], description="the fields sent (default: all)")
    generalise: Generalise = Generalise()
    title: str = Field(default="", description="the parent layer's title when supply makes it")
    access: AccessLevel = Field(
        default="public", description="the parent layer's access level: at least as strict as "
                                      "this node's layer (else the link is refused at build)")
    auto_accept: bool = Field(default=False,
                              description="the parent accepts a change-set without problems "
                                          "at once (else a node admin reviews it)")
    domains: dict[str, list[str | int | float]] = Field(
        default={}, description="field -> the values the parent allows (e.g. GB/T 21010 codes)")
    max_delete_share: float = Field(default=0.2, ge=0, le=1,
                                    description="a change-set deleting more of the parent's "
                                                "features from this node is refused")
    repair: bool = Field(default=False, description="the parent repairs invalid geometries "
                                                    "(ST_MakeValid) instead of refusing them")
    area_tolerance_m: float = Field(
        default=1000, ge=0, le=50000,
        description="the child's area is widened by this much (the parent's division "
                    "boundaries are of a smaller scale than the child's data)")
    max_mb: float = Field(default=256, gt=0, description="the largest change-set the parent takes")

    @property
    def parent_layer(self) -> str:
        return self.to or self.layer


class ReferenceLink(_Model):
    """A layer of an ancestor node that this node holds a copy of, kept current by the
    ancestor's change-sets (reference layers pushed down the tree, e.g. the national provinces
    at a city). The copy is the source's: this node applies what it is sent, nothing else."""

    source: str = Field(pattern=_LAYER_ID, description="the ancestor node that pushes it")
    layer: str = Field(pattern=_LAYER_ID, description="the source node's layer")
    to: str | None = Field(default=None, pattern=_LAYER_ID,
                           description="this node's copy (default: the same name)")
    key: str = Field(pattern=_LAYER_ID, description="the stable feature id (see SupplyLink)")
    fields: list[str] = Field(default=[], description="the fields copied (default: all)")
    title: str = ""
    access: AccessLevel = "public"
    auto_accept: bool = Field(default=True, description="applied as it comes (else reviewed)")

    def as_supply(self) -> SupplyLink:
        """The same as a supply link, as sender and receiver handle it: anywhere in the
        source's extent, deletions as the source makes them."""
        return SupplyLink(layer=self.layer, to=self.to, key=self.key, fields=self.fields,
                          title=self.title, access=self.access, auto_accept=self.auto_accept,
                          max_delete_share=1.0, area_tolerance_m=0)


class SupplyOut(_Model):
    """A link this node sends on (its runtime): to which node (its parent; for a reference
    layer, the descendant holding the copy), at which URL."""

    link: SupplyLink
    parent: str
    parent_url: str


class SupplyIn(_Model):
    """A link this node receives on (its runtime): from which node (its child; for a
    reference layer, the ancestor), over which area."""

    link: SupplyLink
    child: str
    area_code: str | None = None
    extent: tuple[float, float, float, float]


class SupplySection(_Model):
    """`supply` of a node's runtime file."""

    out: list[SupplyOut] = []
    incoming: list[SupplyIn] = []
    key_file: str = Field(default="", description="this node's Ed25519 signing key (PEM, 0600)")

    def incoming_link(self, child: str, layer: str) -> SupplyIn | None:
        return next((s for s in self.incoming if s.child == child and s.link.layer == layer),
                    None)
