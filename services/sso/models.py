"""The JSON bodies of the main node's `/sso/api` routes."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator

from services.access.apikeys import DEFAULT_RATE
from services.models import RequestModel

INVALID = "Invalid key"


class KeyRequest(RequestModel):
    """`POST /sso/api/keys`: a developer's new API key (its content is checked by create_key)."""

    refusal_status: ClassVar[int] = 422
    refusal_title: ClassVar[str] = INVALID
    not_object: ClassVar[tuple[int, str, str]] = (422, INVALID, "allowed must be a list")
    messages: ClassVar[dict[str, str]] = {
        "allowed": "allowed must be a list",
        "rate_per_second": "rate_per_second is 1-10000",
        "quotas": "quotas are non-negative integers per kind"}

    allowed: list[Any]
    rate_per_second: Annotated[int, Field(ge=1, le=10000)] = DEFAULT_RATE
    quotas: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    name: Any = None  # any JSON value; stored as its text, "key" when empty
    kind: Any = None

    @field_validator("quotas", mode="before")
    @classmethod
    def _no_quotas(cls, value: Any) -> Any:
        return value or {}  # null, {} or any empty value: no quotas, as it always was
