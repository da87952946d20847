"""The exception tree of `services`: each error carries status, OGC code and a safe message."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

PROBLEM = "application/problem+json"
OGC_CODES = {400: "InvalidParameterValue", 401: "NotAuthorized", 403: "Forbidden",
             404: "NotFound", 429: "TooManyRequests", 503: "ServiceUnavailable"}


class AuthError(Exception):
    """A refusal with an HTTP status and a message safe to show to the caller."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any):
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    @property
    def ogc_code(self) -> str:
        return OGC_CODES.get(self.status, "NoApplicableCode")

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return problem(self.status, self.title, self.detail, headers=headers, **self.extra)


def problem(status: int, title: str, detail: str = "", *, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if k != "locked"})
    h = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=h)


def ogc_exception(status: int, code: str, text: str) -> Response:
    """An OGC ows:ExceptionReport for WMS/WMTS clients."""
    from xml.sax.saxutils import escape

    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">'
           f'<ows:Exception exceptionCode="{escape(code)}"><ows:ExceptionText>{escape(text)}'
           '</ows:ExceptionText></ows:Exception></ows:ExceptionReport>')
    return Response(xml, status_code=status, media_type="application/xml",
                    headers={"Cache-Control": "no-store"})
