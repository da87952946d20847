"""The error tree and its renderers: every class has a status and an OGC code, both renderers
escape hostile text, route groups render what their endpoints raise, and a 5xx never carries
a traceback, SQL or a path. (Real servers on loopback; the federation-level 5xx checks live in
tests/security/test_security_*.py and tests/publish/test_publish_progress.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import psycopg2
import pytest
import requests
import uvicorn
from federations import free_port
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from waiting import wait_for

from layers.errors import PublishError
from layers.formats import NeedsMulti
from layers.web import ClientGone
from nodes.asgi import GuardMiddleware
from services.access.fastpath import RATE_EXCEEDED
from services.access.routes import MainUnavailable
from services.errors import AuthError, BadRequest, Forbidden, TooManyRequests, Unauthorized
from services.registry.errors import RegistryError
from services.registry.external import BadURL, HarvestError
from services.registry.models import ServiceRegistration
from services.sso.models import KeyRequest
from tiles.errors import (
    OGC_CODES,
    OGCError,
    OGCFlavour,
    ProblemError,
    nginx_exception_xml,
    ogc_exception_xml,
    ogc_response,
    problem,
    route_group,
    with_headers,
)
from tiles.frontdoor import _OGC_400

HOSTILE = ("</ows:ExceptionText><ows:Exception exceptionCode=\"x\"/>&amp;&lt;<![CDATA[]]>"
           "\"'<script>alert(1)</script>\u202e\u0000\u001b[31m 名 &#x1F4A9;")
HOSTILE_XML = HOSTILE.replace("\u0000", "").replace("\u001b", "")  # not representable in XML 1.0
LEAKS = ("Traceback", "SELECT", "psycopg2", "/etc/", "/work/", "/tmp/", "File \"", ".py")


def all_subclasses(cls: type[ProblemError]) -> list[type[ProblemError]]:
    out: list[type[ProblemError]] = []
    for sub in cls.__subclasses__():
        out += [sub, *all_subclasses(sub)]
    return out


def test_every_error_class_has_a_status_and_an_ogc_code() -> None:
    classes: list[type[ProblemError]] = [ProblemError, *all_subclasses(ProblemError)]
    # the tree of every package, not only the one this test happens to import first
    assert {AuthError, Unauthorized, Forbidden, TooManyRequests, BadRequest, RegistryError,
            HarvestError, BadURL, PublishError, ClientGone, NeedsMulti, OGCError,
            MainUnavailable} <= set(classes)
    for cls in classes:
        assert isinstance(cls.status, int) and 400 <= cls.status < 600, cls
        assert isinstance(cls.code, str) and cls.code and cls.code.isidentifier(), cls
        assert isinstance(cls.title, str) and cls.title, cls
    assert not issubclass(HarvestError, AuthError)  # the registry's errors are not refusals of access
    assert issubclass(HarvestError, RegistryError)


@pytest.mark.parametrize("exc,status,code", [
    (Unauthorized("Send a bearer token."), 401, "NotAuthorized"),
    (Forbidden("No."), 403, "Forbidden"),
    (TooManyRequests("Slow down.", retry_after=3), 429, "TooManyRequests"),
    (AuthError(404, "Not Found", "No such key."), 404, "NotFound"),
    (BadRequest("since is an ISO 8601 timestamp"), 400, "InvalidParameterValue"),
    (RegistryError(409, "Replayed push", "This batch was already applied.", last_batch=3), 409,
     "NoApplicableCode"),
    (HarvestError("The service did not answer in time.", 504), 504, "NoApplicableCode"),
    (PublishError("layer 'x' is being published", 409), 409, "NoApplicableCode"),
    (OGCError("TileOutOfRange", "TILEROW is outside the tile matrix.", "TILEROW"), 400,
     "TileOutOfRange"),
])
def test_instances_render_their_status_code_and_members(exc: ProblemError, status: int,
                                                        code: str) -> None:
    assert exc.status == status and exc.code == code == exc.ogc_code
    r = exc.response()
    body = json.loads(bytes(r.body))
    assert r.status_code == status and r.media_type == "application/problem+json"
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert r.headers["Cache-Control"] == "no-store"
    for k, v in exc.extra.items():
        assert body[k] == v
    x = exc.ogc_response()
    root = etree.fromstring(x.body)
    assert x.status_code == status
    assert root.find("{*}Exception").get("exceptionCode") == code


def test_extra_headers_and_audit_only_members() -> None:
    r = TooManyRequests("Slow down.", retry_after=7).response()
    assert r.headers["Retry-After"] == "7"
    r = AuthError(423, "Locked", "Try later.", locked=True).response()
    assert "locked" not in json.loads(bytes(r.body))  # for the audit trail, never for the caller
    assert str(PublishError("nothing changed", 400)) == "nothing changed"  # the CLI prints it
    assert PublishError("gone", 499).response().status_code == 500  # no title of ours: a 500


def test_problem_json_keeps_hostile_text_as_data() -> None:
    r = problem(400, HOSTILE, HOSTILE, field=HOSTILE)
    body = json.loads(bytes(r.body))
    assert body == {"type": "about:blank", "title": HOSTILE, "status": 400, "detail": HOSTILE,
                    "field": HOSTILE}
    raw = bytes(r.body).decode()
    assert "\u0000" not in raw and "\u001b" not in raw  # control characters are \u escapes
    assert r.media_type == "application/problem+json"  # never text/html: no script runs


@pytest.mark.parametrize("flavour", ["ows", "wms-1.1.1", "wms-1.3.0"])
def test_ogc_xml_escapes_hostile_text(flavour: OGCFlavour) -> None:
    xml = ogc_exception_xml(HOSTILE_XML, HOSTILE_XML, locator=HOSTILE_XML, flavour=flavour)
    root = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    exceptions = list(root)
    assert len(exceptions) == 1  # nothing injected beside it
    exc = exceptions[0]
    if flavour == "ows":
        assert root.tag == "{http://www.opengis.net/ows/1.1}ExceptionReport"
        assert root.get("version") == "1.0.0"
        assert exc.get("exceptionCode") == HOSTILE_XML
        assert [t.text for t in exc] == [HOSTILE_XML]
    else:
        assert etree.QName(root).localname == "ServiceExceptionReport"
        assert root.get("version") == flavour.removeprefix("wms-")
        assert exc.get("code") == HOSTILE_XML and exc.text == HOSTILE_XML and len(exc) == 0
    assert exc.get("locator") == HOSTILE_XML


def test_wms_media_types_are_what_each_version_asks_for() -> None:
    assert ogc_response(400, "InvalidCRS", "x", flavour="wms-1.3.0").media_type == "text/xml"
    assert ogc_response(400, "InvalidSRS", "x", flavour="wms-1.1.1").media_type == \
        "application/vnd.ogc.se_xml"
    assert ogc_response(403, "Forbidden", "x").media_type == "application/xml"


def test_nginx_pages_come_from_the_same_renderer() -> None:
    assert _OGC_400 == nginx_exception_xml(OGC_CODES[400], "Invalid request.")
    assert RATE_EXCEEDED == nginx_exception_xml(OGC_CODES[429],
                                                "Rate limit of this API key exceeded.")
    for page in (_OGC_400, RATE_EXCEEDED):
        assert etree.fromstring(page.encode()).find("{*}Exception") is not None
        assert "\n" not in page and "'" not in page and "$" not in page
    for bad in ("it's", "a $var", "back\\slash"):
        with pytest.raises(ValueError):
            nginx_exception_xml("InvalidParameterValue", bad)


@pytest.mark.parametrize("model,body,status,detail", [
    (ServiceRegistration, [], 400, "A JSON object is expected."),
    (ServiceRegistration, {"keywords": "a,b"}, 400, "keywords must be a list of strings"),
    (ServiceRegistration, {"keywords": ["a"], "url": 1}, 400, "url must be a string"),
    (ServiceRegistration, {"access": ["public"]}, 400, "access must be a string"),
    (KeyRequest, "x", 422, "allowed must be a list"),
    (KeyRequest, {"allowed": "tiles"}, 422, "allowed must be a list"),
    (KeyRequest, {"allowed": [], "rate_per_second": 10001}, 422, "rate_per_second is 1-10000"),
    (KeyRequest, {"allowed": [], "rate_per_second": "5"}, 422, "rate_per_second is 1-10000"),
    (KeyRequest, {"allowed": [], "quotas": {"tiles": -1}}, 422,
     "quotas are non-negative integers per kind"),
])
def test_request_models_refuse_with_our_own_detail(model, body, status, detail) -> None:
    with pytest.raises(ProblemError) as info:
        model.parse(body)
    assert (info.value.status, info.value.detail) == (status, detail)
    assert "pydantic" not in info.value.detail  # never pydantic's text, which echoes the input


# --- route groups on a real server ---------------------------------------------------------


async def raises_problem(request: Request) -> Response:
    raise Unauthorized("Send a bearer token.")


async def raises_publish(request: Request) -> Response:
    raise PublishError(f"layer {request.query_params.get('name', '')!r} is not valid", 400)


async def raises_sql(request: Request) -> Response:
    raise psycopg2.ProgrammingError('relation "auth.secret" does not exist\nLINE 1: SELECT * '
                                    'FROM auth.secret WHERE path = \'/etc/geoplat/node.json\'')


async def raises_server_problem(request: Request) -> Response:
    raise RegistryError(502, "Bad gateway", "The service could not be reached.")


async def fine(request: Request) -> Response:
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Starlette(routes=[
        *route_group([Route("/json/problem", raises_problem), Route("/json/publish", raises_publish),
                      Route("/json/sql", raises_sql), Route("/json/fine", fine),
                      Route("/json/bad-gateway", raises_server_problem)]),
        *route_group([Route("/challenge", raises_problem)],
                     {ProblemError: with_headers({"WWW-Authenticate": 'Bearer realm="t"'},
                                                 status=401)}),
        Route("/ungrouped", raises_problem),
    ])
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(GuardMiddleware(app), host="127.0.0.1", port=port,
                                        log_level="critical"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, 30, "test server started", interval=0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_a_route_group_renders_what_its_endpoints_raise(server: str) -> None:
    r = requests.get(server + "/json/problem", timeout=10)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "about:blank", "title": "Unauthorized", "status": 401,
                        "detail": "Send a bearer token."}
    assert "WWW-Authenticate" not in r.headers
    r = requests.get(server + "/challenge", timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="t"'
    r = requests.get(server + "/json/publish", params={"name": "<b>x</b>"}, timeout=10)
    assert r.status_code == 400 and r.json()["title"] == "Bad Request"
    assert r.json()["detail"] == "layer '<b>x</b>' is not valid"
    assert requests.get(server + "/json/fine", timeout=10).json() == {"ok": True}


def test_outside_a_group_an_error_is_not_rendered_as_a_refusal(server: str) -> None:
    """Only route groups that say so render ProblemErrors: elsewhere it is a plain 500."""
    r = requests.get(server + "/ungrouped", timeout=10)
    assert r.status_code == 500
    assert_no_leak(r)


@pytest.mark.parametrize("path", ["/json/sql", "/json/bad-gateway", "/ungrouped"])
def test_no_5xx_carries_a_traceback_sql_or_a_path(server: str, path: str) -> None:
    r = requests.get(server + path, timeout=10)
    assert r.status_code >= 500
    assert_no_leak(r)


def assert_no_leak(r: requests.Response) -> None:
    for leak in LEAKS:
        assert leak not in r.text, (leak, r.text)
