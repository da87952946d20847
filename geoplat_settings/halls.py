"""A node's government service items (issue 15, services/maps/items.py): the sample catalogue
it loads and the days its offices are closed (`halls:` of a node in config/federation.yml)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator


class HallsSettings(BaseModel):
    """The sample files are loaded at node load into an empty catalogue (or one loaded from
    them before); a catalogue a publisher uploaded is never overwritten by them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items_file: str | None = Field(
        default=None, description="CSV of service items, relative to data_dir (none: empty)")
    offices_file: str | None = Field(
        default=None, description="CSV of the offices and the items they handle (data_dir)")
    poi_layer: str = Field(
        default="poi", pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="the layer whose POIs (their fid) the offices are: where they are")
    holidays: list[dt.date] = Field(
        default_factory=list, max_length=400,
        description="public holidays: every office is closed on them ('PH off'), whatever its"
                    " opening_hours say")
    workdays: list[dt.date] = Field(
        default_factory=list, max_length=100,
        description="make-up working days (调休上班日): weekend days on which offices keep the "
                    "hours of their last regular working day before them")
    timezone: str = Field(default="Asia/Shanghai", description="where opening hours are read")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value
