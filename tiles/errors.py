"""The base of every package's error tree, and its two renderers.

`ProblemError` carries an HTTP status, an OGC exception code, a title and a detail safe to show
to the caller; each package subclasses it where a class adds meaning (`services.errors.AuthError`,
`services.registry.errors.RegistryError`, `layers.errors.PublishError`, `OGCError` here). It
lives in `tiles`, the one package that imports no other project package, so that `layers`,
`services` and `nodes` may all import it (it moves to `geoplat_settings` once that base exists).

Rendering: `problem()` writes RFC 9457 problem+json (our JSON APIs); `ogc_exception_xml()` writes
the OGC exception documents (ows:ExceptionReport 1.1 for WMTS, the Tianditu routes, OGC API
and nginx's static pages; ServiceExceptionReport for WMS 1.1.1 and 1.3.0). `route_group()`
attaches exception handlers to a group of routes, so their endpoints just `raise`.

Messages are fixed strings chosen by us: no request parameter is ever copied into an OGC
exception (locators are parameter *names* we know); both renderers escape whatever they get.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

PROBLEM = "application/problem+json"
OGC_CODES = {400: "InvalidParameterValue", 401: "NotAuthorized", 403: "Forbidden",
             404: "NotFound", 429: "TooManyRequests", 503: "ServiceUnavailable"}
NO_CODE = "NoApplicableCode"
OWS = "http://www.opengis.net/ows/1.1"
OWS_VERSION = "1.0.0"  # the ExceptionReport version of WMTS 1.0.0 (OWS Common 1.1) examples

Handler = Callable[[Request, Exception], Awaitable[Response]]
OGCFlavour = Literal["ows", "wms-1.1.1", "wms-1.3.0"]


def ogc_code_for(status: int) -> str:
    """The OGC exception code of an HTTP status (ours: the OGC standards leave most open)."""
    return OGC_CODES.get(status, NO_CODE)


class ProblemError(Exception):
    """A refusal or failure with an HTTP status, an OGC code and a message safe to show.

    `extra` members go into the problem document (except `locked`, which is for audit only);
    `headers` go onto the response (WWW-Authenticate, Retry-After).
    """

    status: int = 500
    title: str = "Internal Server Error"
    code: str = NO_CODE
    locator: str | None = None  # the OGC locator: the name of the parameter at fault

    def __init__(self, status: int | None = None, title: str | None = None, detail: str = "", *,
                 code: str | None = None, headers: Mapping[str, str] | None = None, **extra: Any):
        status = type(self).status if status is None else status
        title = type(self).title if title is None else title
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.code = code or ogc_code_for(status)
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def ogc_code(self) -> str:
        return self.code

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        """The problem+json answer (the OGC XML one is `ogc_response`)."""
        return problem(self.status, self.title, self.detail,
                       headers={**self.headers, **(headers or {})}, **self.extra)

    def ogc_response(self, flavour: OGCFlavour = "ows") -> Response:
        return ogc_response(self.status, self.code, self.detail or self.title, flavour=flavour,
                            locator=self.locator, headers=self.headers)


class OGCError(ProblemError):
    """A request the tile services refuse; carries status, OGC code, locator and a safe text."""

    status = 400
    title = "Bad Request"
    code = "InvalidParameterValue"

    def __init__(self, code: str, message: str, locator: str | None = None, status: int = 400):
        super().__init__(status, code, message, code=code)
        self.locator = locator

    @property
    def message(self) -> str:
        return self.detail

    def __str__(self) -> str:
        return self.detail


def problem(status: int, title: str, detail: str = "", *,
            headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document (never cached)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if k != "locked"})
    h = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=h)


def ogc_exception_xml(code: str, text: str, *, locator: str | None = None,
                      flavour: OGCFlavour = "ows", declaration: bool = True,
                      pretty: bool = True) -> str:
    """The OGC exception document for `code` and `text` (both escaped, whatever they hold).

    `ows`: ows:ExceptionReport (OWS Common 1.1, version 1.0.0) for WMTS, TMS, the Tianditu
    routes and nginx's pages; `wms-1.1.1` / `wms-1.3.0`: the WMS ServiceExceptionReport.
    `pretty=False` gives one line (for nginx `return` directives).
    """
    nl, ind = ("\n", "  ") if pretty else ("", "")
    loc = f" locator={quoteattr(locator)}" if locator else ""
    head = '<?xml version="1.0" encoding="UTF-8"?>' + (nl or "") if declaration else ""
    if flavour == "ows":
        return (f'{head}<ows:ExceptionReport xmlns:ows="{OWS}" version="{OWS_VERSION}" '
                f'xml:lang="en">{nl}'
                f"{ind}<ows:Exception exceptionCode={quoteattr(code)}{loc}>{nl}"
                f"{ind}{ind}<ows:ExceptionText>{escape(text)}</ows:ExceptionText>{nl}"
                f"{ind}</ows:Exception>{nl}</ows:ExceptionReport>{nl}")
    if flavour == "wms-1.1.1":
        root = '<ServiceExceptionReport version="1.1.1">'
    else:
        root = '<ServiceExceptionReport xmlns="http://www.opengis.net/ogc" version="1.3.0">'
    return (f"{head}{root}{nl}"
            f"{ind}<ServiceException code={quoteattr(code)}{loc}>{escape(text)}"
            f"</ServiceException>{nl}</ServiceExceptionReport>{nl}")


def nginx_exception_xml(code: str, text: str) -> str:
    """`ogc_exception_xml` on one line, for an nginx `return <status> '...'` (static pages)."""
    xml = ogc_exception_xml(code, text, pretty=False)
    if any(c in xml for c in "'$\\\n"):  # would end or interpolate nginx's quoted string
        raise ValueError("not an nginx literal: " + xml)
    return xml


OGC_MEDIA = {"ows": "application/xml", "wms-1.1.1": "application/vnd.ogc.se_xml",
             "wms-1.3.0": "text/xml"}


def ogc_response(status: int, code: str, text: str, *, flavour: OGCFlavour = "ows",
                 locator: str | None = None,
                 headers: Mapping[str, str] | None = None) -> Response:
    """An OGC exception answer with `status` (never cached)."""
    # WMS clients expect exceptions with 200 in 1.1.1; 400 is clearer and OWSLib copes.
    return Response(ogc_exception_xml(code, text, locator=locator, flavour=flavour),
                    status_code=status, media_type=OGC_MEDIA[flavour],
                    headers={"Cache-Control": "no-store", **(headers or {})})


def wmts_exception(err: OGCError) -> Response:
    return err.ogc_response("ows")


def wms_exception(err: OGCError, version: str = "1.3.0") -> Response:
    return err.ogc_response("wms-1.1.1" if version == "1.1.1" else "wms-1.3.0")


# --- exception handlers per route group ------------------------------------------------------


async def render_problem(request: Request, exc: Exception) -> Response:
    """The default handler of a route group: the error's problem+json."""
    assert isinstance(exc, ProblemError)
    return exc.response()


def with_headers(headers: Mapping[str, str], *, status: int | None = None) -> Handler:
    """A problem+json handler that adds `headers` (to answers of `status` only, if given)."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response(headers if status is None or exc.status == status else None)

    return handler


class GroupHandlers:
    """ASGI wrapper of one route: adds its group's exception handlers to those of the app.

    Starlette's `request_response` looks handlers up in `scope["starlette.exception_handlers"]`
    (set by the app's ExceptionMiddleware); this layers the group's over them for the route's
    call, so the app's own 404/500 handlers still apply to everything else.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, Handler]):
        self.app, self.handlers = app, dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = "starlette.exception_handlers"
        outer = scope.get(key)
        exc_handlers, status_handlers = outer if outer is not None else ({}, {})
        scope[key] = ({**exc_handlers, **self.handlers}, status_handlers)
        try:
            await self.app(scope, receive, send)
        finally:
            if outer is None:
                scope.pop(key, None)
            else:
                scope[key] = outer


def route_group(routes: Iterable[BaseRoute],
                handlers: Mapping[Any, Handler] | None = None) -> list[BaseRoute]:
    """`routes` with the group's exception handlers (default: any ProblemError as problem+json)."""
    handlers = handlers or {ProblemError: render_problem}
    out = list(routes)
    for route in out:
        if isinstance(route, Route):
            route.app = GroupHandlers(route.app, handlers)
    return out
