"""OGC exception documents for the tile services. Messages are fixed strings chosen by us:
no request parameter is ever copied into them (locators are parameter *names* we know)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response


class OGCError(Exception):
    """A request the tile services refuse; carries status, OGC code, locator and a safe text."""

    status = 400

    def __init__(self, code: str, message: str, locator: str | None = None, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.locator, self.status = code, message, locator, status


def wmts_exception(err: OGCError) -> Response:
    loc = f" locator={quoteattr(err.locator)}" if err.locator else ""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="1.0.0" '
            'xml:lang="en">\n'
            f'  <ows:Exception exceptionCode={quoteattr(err.code)}{loc}>\n'
            f"    <ows:ExceptionText>{escape(err.message)}</ows:ExceptionText>\n"
            "  </ows:Exception>\n</ows:ExceptionReport>\n")
    return Response(body, status_code=err.status, media_type="application/xml",
                    headers={"Cache-Control": "no-store"})


def wms_exception(err: OGCError, version: str = "1.3.0") -> Response:
    loc = f" locator={quoteattr(err.locator)}" if err.locator else ""
    if version == "1.1.1":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<ServiceExceptionReport version="1.1.1">\n'
                f"  <ServiceException code={quoteattr(err.code)}{loc}>{escape(err.message)}"
                "</ServiceException>\n</ServiceExceptionReport>\n")
        media = "application/vnd.ogc.se_xml"
    else:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<ServiceExceptionReport xmlns="http://www.opengis.net/ogc" version="1.3.0">\n'
                f"  <ServiceException code={quoteattr(err.code)}{loc}>{escape(err.message)}"
                "</ServiceException>\n</ServiceExceptionReport>\n")
        media = "text/xml"
    # WMS clients expect exceptions with 200 in 1.1.1; 400 is clearer and OWSLib copes.
    return Response(body, status_code=err.status, media_type=media,
                    headers={"Cache-Control": "no-store"})
