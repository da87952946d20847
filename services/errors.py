"""The access errors of `services` (refusals of who may do what), on the common base.

The base, `ProblemError`, and both renderers live in `tiles.errors` (every package imports
them); `problem` and `ogc_exception` are kept here under their old names for the modules of
`services` that render by hand. The registry's own errors are in `services.registry.errors`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from tiles.errors import (
    OGC_CODES,
    PROBLEM,
    ProblemError,
    ogc_response,
    problem,
    render_problem,
    route_group,
    with_headers,
)

__all__ = ["OGC_CODES", "PROBLEM", "AuthError", "BadRequest", "Forbidden", "NotFound",
           "ProblemError", "TooManyRequests", "Unauthorized", "ogc_exception", "problem",
           "render_problem", "route_group", "with_headers"]


class AuthError(ProblemError):
    """A refusal with an HTTP status and a message safe to show to the caller."""

    status = 403
    title = "Forbidden"
    code = OGC_CODES[403]


class Unauthorized(AuthError):
    """No credentials, or credentials that do not hold (401)."""

    status = 401
    title = "Unauthorized"
    code = OGC_CODES[401]

    def __init__(self, detail: str = "", title: str = "Unauthorized", **extra: Any):
        super().__init__(401, title, detail, **extra)


class Forbidden(AuthError):
    """Credentials that do not allow this (403)."""

    def __init__(self, detail: str = "", title: str = "Forbidden", **extra: Any):
        super().__init__(403, title, detail, **extra)


class TooManyRequests(AuthError):
    """A quota or rate limit reached (429); `retry_after` seconds go into Retry-After."""

    status = 429
    title = "Too Many Requests"
    code = OGC_CODES[429]

    def __init__(self, detail: str = "", title: str = "Too Many Requests",
                 retry_after: int | None = None, **extra: Any):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(429, title, detail, headers=headers, **extra)


class BadRequest(ProblemError):
    """A request body or parameter we cannot use (400 unless said otherwise)."""

    status = 400
    title = "Bad request"
    code = OGC_CODES[400]

    def __init__(self, detail: str = "", title: str = "Bad request", status: int = 400,
                 **extra: Any):
        super().__init__(status, title, detail, **extra)


class NotFound(ProblemError):
    status = 404
    title = "Not Found"
    code = OGC_CODES[404]

    def __init__(self, detail: str = "", title: str = "Not Found", **extra: Any):
        super().__init__(404, title, detail, **extra)


def ogc_exception(status: int, code: str, text: str) -> Response:
    """An OGC ows:ExceptionReport for WMS/WMTS clients (nginx's tile answers)."""
    return ogc_response(status, code, text)
