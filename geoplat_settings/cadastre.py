"""A node's public cadastral map (issue 15, `/cadastre`, services/web/sdk_routes.py): which of
its layers are the parcels and the pre-sale projects (`cadastre:` of a node in
config/federation.yml). A node without it answers `/cadastre` with a 404 page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_LAYER_ID = r"^[a-z][a-z0-9_]{0,62}$"


class CadastreSettings(BaseModel):
    """The page queries the parcels layer (OGC API Features, CQL2 `s_intersects`) and lists
    the projects layer's features on the parcels found (by `parcel_no`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parcels: str | None = Field(
        default=None, pattern=_LAYER_ID,
        description="the node's layer of land parcels (with parcel_no); none: no /cadastre page")
    projects: str | None = Field(
        default=None, pattern=_LAYER_ID,
        description="the node's layer of pre-sale housing projects (with parcel_no), if any")
    max_parcels: int = Field(
        default=500, ge=1, le=5000,
        description="a query lists at most this many parcels (the page says when it stopped)")
