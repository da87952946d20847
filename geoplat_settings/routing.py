"""Which layer is a node's road network and how its columns read (the `routing:` key of a
layer in config/layers/*.yml): services/maps/topology.py builds the routing topology from it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Column = str

DEFAULT_SPEEDS = {"expressway": 80.0, "arterial": 50.0, "secondary": 40.0, "local": 30.0,
                  "高速": 80.0, "快速路": 70.0, "主干道": 50.0, "次干道": 40.0, "支路": 30.0}


class RoutingMapping(BaseModel):
    """A road layer feeding the routing topology: road class, name and one-way columns, the
    driving speed of each class and the walking speed.

    One-way values follow OpenStreetMap: `yes`/`true`/`1` only in the digitised direction,
    `-1`/`reverse` only against it, anything else (or NULL) both ways.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Column = Field(default="kind", description="road class column (speeds by class)")
    name: Column | None = Field(default="name", description="road name column (route steps)")
    oneway: Column | None = Field(default=None, description="one-way column (OSM values)")
    speeds_kmh: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SPEEDS),
                                         description="driving speed (km/h) of each road class")
    default_speed_kmh: float = Field(default=30.0, gt=0, le=200,
                                     description="speed of a class not in speeds_kmh")
    walk_speed_kmh: float = Field(default=5.0, gt=0, le=20)
    no_walking: list[str] = Field(default=["expressway", "高速", "快速路"],
                                  description="road classes closed to pedestrians")

    def columns(self) -> list[str]:
        return [c for c in (self.kind, self.name, self.oneway) if c is not None]
