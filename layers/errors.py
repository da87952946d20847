"""The publishing error (its own light module: the CLI imports it without pandas or shapely)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

PROBLEM = "application/problem+json"


class PublishError(Exception):
    """A publish refused or failed; nothing changed. `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status


def printable(text: str, limit: int = 300) -> str:
    """`text` with non-printable characters (NUL, control characters, lone surrogates) escaped
    and cut to `limit`: storable, and legible, in the audit trail and the registry."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]


class Refused(Exception):
    """A caller refused by the access or CSRF checks the app injects into the publishing routes
    (layers/web.py): an HTTP status and a message safe to show."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any):
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return problem(self.status, self.title, self.detail, headers=headers, **self.extra)


def problem(status: int, title: str, detail: str = "", *, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document (the same form as services.errors.problem)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if k != "locked"})
    h = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=h)
