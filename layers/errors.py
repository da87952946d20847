"""The publishing error (its own light module: the CLI imports it without pandas or shapely)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from tiles.errors import ProblemError, ogc_code_for, problem

PROBLEM_TITLES = {400: "Bad Request", 404: "Not Found", 409: "Conflict",
                  413: "Content Too Large", 415: "Unsupported Media Type",
                  422: "Unprocessable Content"}


class PublishError(ProblemError):
    """A publish refused or failed; nothing changed. `status` is the HTTP status to answer.

    A status without a title of ours (499: the client went away) answers as a 500.
    """

    status = 422
    title = PROBLEM_TITLES[422]
    code = ogc_code_for(422)

    def __init__(self, message: str, status: int = 422):
        super().__init__(status, PROBLEM_TITLES.get(status, "Internal Server Error"), message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def answer_status(self) -> int:
        """The HTTP status answered: ours, or 500 for one without a title of ours."""
        return self.status if self.status in PROBLEM_TITLES else 500

    def problem_body(self) -> dict[str, Any]:
        """The problem+json object (never internals: PublishError texts are ours)."""
        return {"type": "about:blank", "title": self.title, "status": self.answer_status,
                "detail": self.message}

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        return problem(self.answer_status, self.title, self.message,
                       headers={**self.headers, **(headers or {})})


def printable(text: str, limit: int = 300) -> str:
    """`text` with non-printable characters (NUL, control characters, lone surrogates) escaped
    and cut to `limit`: storable, and legible, in the audit trail and the registry."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]


class Refused(ProblemError):
    """A caller refused by the access or CSRF checks the app injects into the publishing routes
    (layers/web.py): an HTTP status and a message safe to show (rendered as problem+json)."""
