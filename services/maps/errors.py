"""The errors of the routing service: a request it refuses (RFC 9457 problem+json on /api/route;
Tianditu's XML form on /drive, services/maps/drive.py). Messages are fixed strings (a parameter
name at most, never the caller's text)."""

from __future__ import annotations

from typing import Any

from tiles.errors import ProblemError

# Tianditu's web-service status codes (place search's infocode table, the only one published;
# TIANDITU-API.md 1.3): reused by the /drive error form
BAD_PARAMETER = 2001
BAD_JSON = 2002
MISSING = 2003
BAD_ENUM = 2004
BAD_LONLAT = 2005
OUT_OF_RANGE = 2006
NO_DATA = 3001


class RouteError(ProblemError):
    """A route request refused before or instead of an answer; nothing was changed."""

    def __init__(self, status: int, infocode: int, detail: str, *, param: str | None = None,
                 **extra: Any):
        title = {400: "Bad Request", 422: "Unprocessable Content"}.get(status, "Error")
        if param:
            extra["param"] = param
        super().__init__(status, title, detail, infocode=infocode, **extra)
        self.infocode, self.message, self.param = infocode, detail, param


def bad(infocode: int, detail: str, param: str | None = None) -> RouteError:
    return RouteError(400, infocode, detail, param=param)


def unroutable(infocode: int, detail: str, **extra: Any) -> RouteError:
    return RouteError(422, infocode, detail, **extra)
