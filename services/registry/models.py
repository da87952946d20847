"""The JSON bodies of the registry's API."""

from __future__ import annotations

from typing import ClassVar

from services.models import RequestModel

TEXT_FIELDS = ("url", "type", "title", "description", "access")


class ServiceRegistration(RequestModel):
    """`POST /registry/api/services`: an external service to register (checked by review)."""

    messages: ClassVar[dict[str, str]] = {
        "keywords": "keywords must be a list of strings",
        **{k: f"{k} must be a string" for k in TEXT_FIELDS}}

    keywords: list[str] | None = None
    url: str | None = None
    type: str | None = None
    title: str | None = None
    description: str | None = None
    access: str | None = None
