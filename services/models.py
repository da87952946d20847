"""Request bodies as pydantic models: a body that does not fit is a 4xx problem with a detail
of ours (never pydantic's text, which echoes the input)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request

from services.errors import BadRequest


class RequestModel(BaseModel):
    """A JSON object body. Subclasses name the refusal of each field in `messages`.

    Strict: no coercion of numbers to strings or strings to numbers; unknown members are
    ignored, as they always were. The first failing field (in declaration order) is reported.
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    refusal_status: ClassVar[int] = 400
    refusal_title: ClassVar[str] = "Bad request"
    messages: ClassVar[dict[str, str]] = {}
    # the refusal of a body that is not a JSON object: (status, title, detail)
    not_object: ClassVar[tuple[int, str, str]] = (400, "Bad request", "A JSON object is expected.")

    @classmethod
    def parse(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            status, title, detail = cls.not_object
            raise BadRequest(detail, title, status)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            field = str(loc[0]) if loc else ""
            raise BadRequest(cls.messages.get(field, f"{field} is not valid"),
                             cls.refusal_title, cls.refusal_status) from None


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body, else a 400 problem."""
    try:
        data = await request.json()
    except ValueError:
        raise BadRequest("A JSON object is expected.") from None
    if not isinstance(data, dict):
        raise BadRequest("A JSON object is expected.")
    return data
