"""The JSON bodies of the `/auth` routes."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import StrictFloat, StrictInt

from services.models import RequestModel


class GrantDecision(RequestModel):
    """`POST /auth/grants/{id}/{approve|reject|revoke}`: optional validity of an approval."""

    messages: ClassVar[dict[str, str]] = {"days": "days must be a number"}

    days: StrictInt | StrictFloat | None = None
    expires_at: Any = None  # checked by grants.decide

    @classmethod
    def of(cls, data: Any) -> GrantDecision:
        """A body that is not an object carries no decision details (as it always was)."""
        return cls.parse(data) if isinstance(data, dict) else cls()
