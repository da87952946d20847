"""How a layer feeds the node's gazetteer (the `places:` key of a layer in config/layers/*.yml,
and the `places` mapping a publisher may give): services/places/gazetteer.py reads it.

Column names are the layer's source attribute names (as in the file); a column the layer does
not have is reported when the gazetteer is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PlacesKind = Literal["address", "road", "poi", "place", "division"]
DivisionLevel = Literal["province", "city", "county", "township"]
Column = str


class PlacesMapping(BaseModel):
    """Which gazetteer entries a layer's features become, and which columns give their parts.

    - `address`: door plates (`address` = the full formatted address, `road`, `number`);
    - `road`: road lines, merged per name within a county (`name`);
    - `poi`: points of interest (`name`, `category`, `address`, `phone`);
    - `place`: place names (`name`);
    - `division`: administrative units of `level`, whose `code` (GB/T 2260, 6 or 9 digits)
      ties the polygon (boundary) or point (centre) to data-samples/divisions.csv.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PlacesKind
    name: Column | None = Field(default=None, description="the entry's name (door plates: "
                                "default the address)")
    address: Column | None = None
    road: Column | None = None
    number: Column | None = Field(default=None, description="door number as written: 2号")
    category: Column | None = None
    phone: Column | None = None
    code: Column | None = Field(default=None, description="division code column (division kind)")
    level: DivisionLevel | None = Field(default=None, description="division kind: the level")
    category_default: str | None = Field(default=None, description="category of every entry "
                                         "when there is no category column")
    boundary_note: str | None = Field(default=None, description="division kind: where its "
                                      "outlines come from (e.g. 1999 county units)")
    note: Column | None = Field(default=None, description="division kind: a column with that "
                                "note per feature (overrides boundary_note)")
    extra: list[Column] = Field(default=[], max_length=20, description="columns copied as they "
                                "are into the entry's `extra` (opening hours, services ...)")

    @model_validator(mode="after")
    def _complete(self) -> PlacesMapping:
        if self.kind == "division" and (self.code is None or self.level is None):
            raise ValueError("a division mapping needs `code` and `level`")
        if self.kind == "address" and self.address is None:
            raise ValueError("an address mapping needs `address` (the full formatted address)")
        if self.kind in ("road", "poi", "place") and self.name is None:
            raise ValueError(f"a {self.kind} mapping needs `name`")
        return self

    def columns(self) -> dict[str, str]:
        """Part -> source column, for the parts that are set."""
        parts = ("name", "address", "road", "number", "category", "phone", "code", "note")
        return {p: getattr(self, p) for p in parts if getattr(self, p) is not None}

    def all_columns(self) -> list[str]:
        """Every source column the mapping reads (its parts and its extras)."""
        return [*self.columns().values(), *self.extra]
