"""The publishing API and upload page of a node: `/api/layers`, `/publish`.

- `POST /api/layers` (multipart: file + name, title, access, crs, keywords, layer, all_layers,
  emap: `true` draws a public layer on the node's e-map and offers it as a WMS layer,
  places: how it feeds place search, `layers.publish.parse_places`)
  streams the upload to disk in chunks, refusing it (413) as soon as it passes the size limit;
- `GET /api/layers`, `GET /api/layers/{name}/versions`, `POST /api/layers/{name}/rollback`,
  `DELETE /api/layers/{name}` (retire);
- `GET /publish`: a plain upload form.

Progress in the response stream: a `POST /api/layers` with `Accept: application/x-ndjson`
(or the form field / query parameter `progress=ndjson`) is answered, once the upload is in and
checked (auth, CSRF, name, size: refused with the usual problem+json statuses), with
`200 application/x-ndjson`: one JSON object per line as the publish goes,
`{"stage": "reading"}`, `{"stage": "loading", "done": N, "total": M}` (at most ~10 a second,
the first and the last always), `{"stage": "swapping"}`, and as the last line either
`{"result": {"layers": [...]}}` (the body a 201 would have) or `{"error": {problem+json}}`.
The status is 200 because the outcome is not known when the headers go out. A client that
goes away during the stream cancels the publish like Ctrl-C: it is rolled back (the previous
version keeps serving, no staging table or file is left) and audited as a failed publish.

Every route needs a token (Bearer, or the node's session cookie plus the CSRF token for forms)
of a user with the `publisher` or `admin` role of this node: anonymous 401, others 403.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from geoplat_settings import NodeRuntime
from layers import publish as pub
from layers.errors import PROBLEM_TITLES, Refused
from layers.field_rules import parse_field_access
from layers.formats import PublishError, remove_tree
from layers.publish_page import PAGE, PAGE_SIGNIN
from tiles.errors import ProblemError, route_group, with_headers

LOGGER = logging.getLogger("geoplat.publish")
FIELDS = {"name", "title", "access", "crs", "keywords", "layer", "all_layers", "emap", "csrf_token",
          "progress", "places", "field_access"}
TRUE = ("1", "true", "on", "yes")
MULTIPART_SLACK = 64 * 1024  # form fields and part headers around the file
NDJSON = "application/x-ndjson"
MAX_FILENAME_BYTES = 255  # the longest name ext4 and most other file systems store
__all__ = ["PROBLEM_TITLES", "PublishRoutes"]
# a 401 from the publishing routes names the scheme (cookie and bearer sign-ins both work)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="geoplat"'}


def node_context(runtime: NodeRuntime, node_dir: Path | None = None,
                 hooks: pub.PublishHooks | None = None) -> pub.NodeContext:
    """The publishing context of a built node, from its runtime (`node_dir`: where its files
    are, default the runtime's own directory)."""
    node_dir = Path(node_dir) if node_dir is not None else runtime.node_dir
    dirs = [node_dir]
    parent = runtime.server.parent
    while parent:
        d = node_dir.parent / parent
        dirs.append(d)
        try:
            parent = NodeRuntime.load(d).server.parent
        except (OSError, ValueError):
            break
    return pub.NodeContext(
        id=runtime.server.id, dsn=runtime.dsn, node_dir=node_dir, settings=runtime.publish,
        config_layers=frozenset(runtime.auth.levels),
        service_names=pub.configured_names(runtime, node_dir),
        cache_dirs=tuple(dirs), base_url=runtime.server.base_url,
        workers=runtime.server.workers, hooks=hooks or pub.PublishHooks())


def upload_filename(raw: bytes) -> str:
    """The base name of an uploaded file's name; PublishError 400 for one we will not store.

    Browsers send a base name; older ones a path (kept: its last part). A name that is not
    UTF-8, holds NUL or control characters, names no file (`..`) or is too long for the file
    system is refused before anything is written.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PublishError("the file name is not valid UTF-8", 400) from None
    if any(not c.isprintable() for c in text):
        raise PublishError("the file name contains NUL or control characters", 400)
    base = text.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", ".."):
        raise PublishError(f"the file name {text[:80]!r} names no file", 400)
    size = len(base.encode("utf-8"))
    if size > MAX_FILENAME_BYTES:
        raise PublishError(f"the file name is {size} bytes long (limit {MAX_FILENAME_BYTES})", 400)
    return base


class Upload:
    """A multipart body parsed as it streams in: small fields in memory, the file on disk."""

    def __init__(self, dest: Path, limit: int):
        self.dest, self.limit = dest, limit
        self.fields: dict[str, str] = {}
        self.file: Path | None = None
        self.filename = ""
        self.raw_filename = b""
        self.size = 0
        self._name = ""
        self._fh: Any = None
        self._buf = bytearray()
        self._hname = b""
        self._hvalue = b""
        self._headers: dict[bytes, bytes] = {}

    async def read(self, request: Request) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        ctype, opts = parse_options_header(request.headers.get("content-type", ""))
        if ctype != b"multipart/form-data" or b"boundary" not in opts:
            raise PublishError("send the file as multipart/form-data", 415)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit + MULTIPART_SLACK:
            raise PublishError(f"the upload is over the limit of {self.limit} bytes", 413)

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._hname += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._hvalue += data[start:end]

        def on_header_end() -> None:
            self._headers[self._hname.lower()] = self._hvalue
            self._hname, self._hvalue = b"", b""

        def on_headers_finished() -> None:
            _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
            self._name = params.get(b"name", b"").decode("utf-8", "replace")
            filename = params.get(b"filename")
            if filename is not None:
                if self.file is not None:
                    raise PublishError("send one file per request", 400)
                self.raw_filename = filename
                self.filename = upload_filename(filename)
                suffix = "".join(Path(self.filename).suffixes[-1:]).lower()[:10]
                self.dest.mkdir(parents=True, exist_ok=True)
                self.file = self.dest / f"upload{suffix}"
                self._fh = open(self.file, "wb")  # noqa: SIM115 - closed in on_part_end/finally

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if self._fh is not None:
                self.size += end - start
                if self.size > self.limit:
                    raise PublishError(f"the file is over the limit of {self.limit} bytes", 413)
                self._fh.write(data[start:end])
            else:
                self._buf += data[start:end]
                if len(self._buf) > 8192:
                    raise PublishError(f"form field {self._name!r} is too long", 400)

        def on_part_end() -> None:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            elif self._name in FIELDS:
                self.fields[self._name] = self._buf.decode("utf-8", "replace")
            self._buf = bytearray()
            self._headers = {}

        parser = MultipartParser(opts[b"boundary"], {
            "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data, "on_part_end": on_part_end})
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > self.limit + MULTIPART_SLACK:
                    raise PublishError(f"the upload is over the limit of {self.limit} bytes", 413)
                parser.write(chunk)
            parser.finalize()
        finally:
            if self._fh is not None:
                self._fh.close()
        if self.file is None:
            raise PublishError("no file in the upload (field 'file')", 400)


class ClientGone(PublishError):
    """The client of a progress stream went away: the publish stops as on Ctrl-C (rolled back)."""

    def __init__(self) -> None:
        super().__init__("the client disconnected during the publish; it was cancelled and "
                         "nothing changed", 499)


def wants_progress(request: Request, fields: dict[str, str]) -> bool:
    """Whether the client asked for progress lines (Accept header, form field or query)."""
    accept = request.headers.get("accept", "").lower()
    asked = fields.get("progress") or request.query_params.get("progress") or ""
    return NDJSON in accept or asked.strip().lower() == "ndjson"


def problem_body(exc: PublishError) -> dict[str, Any]:
    """The problem+json object of a failed publish (never internals: PublishError texts are ours)."""
    return exc.problem_body()


class ProgressStream:
    """Progress of a publish, handed from its worker thread to the response as JSON lines.

    The worker calls `progress` (the `publish()` callback) and `finish`; each line goes through
    an anyio memory stream on the event loop. Once the response is gone (client disconnected),
    the next `progress` call raises `ClientGone`, which rolls the publish back.
    """

    INTERVAL = 0.1  # at most ~10 loading lines a second

    def __init__(self) -> None:
        self._send, self.receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        self._token = anyio.lowlevel.current_token()
        self.gone = threading.Event()
        self._stage = ""
        self._last = 0.0
        self._done = -1
        self._pending: dict[str, Any] | None = None

    def _put(self, obj: dict[str, Any]) -> None:
        if self.gone.is_set():
            raise ClientGone()
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        try:
            anyio.from_thread.run_sync(self._send.send_nowait, line, token=self._token)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.RunFinishedError):
            self.gone.set()
            raise ClientGone() from None

    def _flush(self) -> None:
        if self._pending is not None:
            line, self._pending = self._pending, None
            self._put(line)

    def progress(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        if self.gone.is_set():
            raise ClientGone()
        if stage == "loading":
            line = {"stage": "loading", "done": done, "total": total}
            now = time.monotonic()
            last = done is not None and total is not None and done >= total
            # a new run of loading lines (first layer, next layer, or a reload from 0) starts at once
            restart = self._stage != "loading" or (done or 0) < self._done
            self._done = done or 0
            if restart or last or now - self._last >= self.INTERVAL:
                self._pending = None
                self._put(line)
                self._last = now
            else:
                self._pending = line  # sent when the interval is over, or before the next stage
        else:
            self._flush()
            self._put({"stage": stage})
        self._stage = stage

    def finish(self, obj: dict[str, Any] | None) -> None:
        """The last line (result or error, or none), then the end of the stream. Never raises."""
        try:
            if obj is not None:
                if "result" in obj:
                    self._flush()
                self._put(obj)
        except ClientGone:
            pass
        finally:
            try:
                anyio.from_thread.run_sync(self._send.close, token=self._token)
            except anyio.RunFinishedError:
                pass

    async def lines(self) -> AsyncIterator[str]:
        try:
            async with self.receive:
                async for line in self.receive:
                    yield line
        finally:
            self.gone.set()  # disconnected (cancelled) or done: later progress calls stop


def stream_publish(run: Callable[[Callable[..., None]], list[pub.PublishResult]],
                   cleanup: Callable[[], None]) -> StreamingResponse:
    """Run `run(progress)` in a thread of its own; answer its progress as an NDJSON stream.

    The thread is not tied to the request: when the client goes away the publish stops at its
    next progress call (rolled back, audited as failed) and `cleanup` still runs.
    """
    stream = ProgressStream()

    def work() -> None:
        last: dict[str, Any] | None = {"error": {
            "type": "about:blank", "title": "Internal Server Error", "status": 500,
            "detail": "The publish could not be completed."}}  # never internals
        try:
            results = run(stream.progress)
            last = {"result": {"layers": [r.as_dict() for r in results]}}
        except ClientGone:
            LOGGER.info("publish cancelled: the client disconnected")
            last = None
        except PublishError as exc:
            last = {"error": problem_body(exc)}
        except Exception:
            LOGGER.exception("publish failed")
        finally:
            try:
                cleanup()
            finally:
                stream.finish(last)  # also on BaseException: the response must end

    threading.Thread(target=work, name="geoplat-publish-stream").start()
    return StreamingResponse(stream.lines(), status_code=200, media_type=NDJSON, headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no",  # nginx: pass lines at once
        "X-Content-Type-Options": "nosniff"})


class PublishAccess(Protocol):
    """Who may publish, injected by the app: each method raises `Refused` to refuse."""

    async def principal(self, request: Request) -> Any:
        """The caller (None: anonymous)."""

    def is_privileged(self, principal: Any) -> bool:
        """A publisher or admin of this node."""

    def verify_csrf(self, request: Request, token: str | None) -> None:
        """A cookie-authenticated change carries the CSRF token of a form of ours."""

    def issue_csrf(self, request: Request) -> tuple[str, dict[str, str]]:
        """A CSRF token for the upload form and the cookies that go with it."""


class PublishRoutes:
    """`/api/layers` and `/publish` (a router factory: `routes()` given its dependencies)."""

    def __init__(self, ctx: pub.NodeContext, access: PublishAccess):
        self.ctx, self.access = ctx, access

    def routes(self) -> list[BaseRoute]:
        return route_group([
            Route("/api/layers", self.collection, methods=["GET", "POST"]),
            Route("/api/layers/{name}/versions", self.versions, methods=["GET"]),
            Route("/api/layers/{name}/rollback", self.rollback, methods=["POST"]),
            Route("/api/layers/{name}", self.layer, methods=["GET", "DELETE"]),
            Route("/publish", self.page, methods=["GET"]),
        ], {ProblemError: with_headers(CHALLENGE, status=401)})

    async def _publisher(self, request: Request) -> Any:
        p = await self.access.principal(request)
        if p is None:
            raise Refused(401, "Unauthorized", "Sign in as a publisher of this node.")
        if not (p.is_user and self.access.is_privileged(p)):
            raise Refused(403, "Forbidden",
                          f"Publishing needs the publisher or admin role of node {self.ctx.id}.")
        return p

    def _csrf(self, request: Request, token: str | None) -> None:
        if request.headers.get("authorization", "")[:7].lower() != "bearer ":
            self.access.verify_csrf(request, token)  # cookie-authenticated: a form of ours only

    def _preflight(self, f: dict[str, str]) -> None:
        """The checks publish() starts with, made before a progress stream answers 200."""
        pub.validate_name(f["name"].strip(), self.ctx)
        access = f.get("access") or "public"
        if access not in pub.LEVELS:
            raise PublishError(f"access must be one of {', '.join(pub.LEVELS)}", 400)
        if f.get("emap", "").strip().lower() in TRUE and access != "public":
            raise PublishError("only public layers can be drawn on the e-map (emap): publish "
                               "with access public, or without emap", 400)

    async def _audit_refusal(self, up: Upload, actor: str, exc: PublishError) -> None:
        """A refused upload in the audit trail, like the refusals of publish() itself."""
        raw = up.raw_filename.decode("utf-8", "backslashreplace")
        name = up.fields.get("name", "").strip()
        await anyio.to_thread.run_sync(lambda: pub._audit(
            self.ctx, "layer.publish", name, actor, ok=False, error=exc.message, source=raw))

    async def collection(self, request: Request) -> Response:
        p = await self._publisher(request)
        if request.method == "GET":
            return JSONResponse(await anyio.to_thread.run_sync(pub.list_layers, self.ctx),
                                headers={"Cache-Control": "no-store"})
        work = self.ctx.work_root / ("upload-" + uuid.uuid4().hex)
        streamed = False
        up = Upload(work, self.ctx.settings.max_upload_bytes)
        try:
            try:
                await up.read(request)
            except PublishError as exc:  # publish() audits what it refuses; this is ours
                await self._audit_refusal(up, p.username, exc)
                raise
            assert up.file is not None  # read() refuses an upload without a file
            f = up.fields
            self._csrf(request, f.get("csrf_token"))
            if not f.get("name"):
                raise PublishError("the field 'name' is required", 400)
            src = up.file.with_name(up.filename) if up.filename else up.file
            up.file.replace(src)
            keywords = [k.strip() for k in f.get("keywords", "").split(",") if k.strip()]
            places = pub.parse_places(f.get("places"))
            field_access = parse_field_access(f.get("field_access"))

            def run(progress: pub.Progress = pub._noop) -> list[pub.PublishResult]:
                return pub.publish(
                    self.ctx, src, f["name"].strip(), title=f.get("title") or None,
                    access=f.get("access") or "public", crs=f.get("crs") or None,
                    keywords=keywords, layer=f.get("layer") or None,
                    all_layers=f.get("all_layers", "").lower() in TRUE,
                    actor=p.username, progress=progress,
                    emap=None if "emap" not in f else f["emap"].strip().lower() in TRUE,
                    places=places, field_access=field_access)

            if wants_progress(request, f):
                self._preflight(f)  # what is cheap to check gets its status, not a stream
                streamed = True  # the upload dir is the publishing thread's to remove now
                return stream_publish(run, lambda: remove_tree(work))
            results = await anyio.to_thread.run_sync(run)
        finally:
            if not streamed:
                remove_tree(work)
        return JSONResponse({"layers": [r.as_dict() for r in results]}, status_code=201,
                            headers={"Cache-Control": "no-store"})

    async def layer(self, request: Request) -> Response:
        name = request.path_params["name"]
        p = await self._publisher(request)
        if request.method == "GET":
            rows = await anyio.to_thread.run_sync(pub.list_layers, self.ctx)
            row = next((r for r in rows if r["name"] == name), None)
            if row is None:
                raise PublishError(f"no published layer {name!r}", 404)
            return JSONResponse(row, headers={"Cache-Control": "no-store"})
        self._csrf(request, request.query_params.get("csrf_token"))
        purge = request.query_params.get("purge", "") in ("1", "true")
        out = await anyio.to_thread.run_sync(
            lambda: pub.retire(self.ctx, name, actor=p.username, purge=purge))
        return JSONResponse(out)

    async def versions(self, request: Request) -> Response:
        await self._publisher(request)
        out = await anyio.to_thread.run_sync(pub.versions, self.ctx, request.path_params["name"])
        return JSONResponse(out, headers={"Cache-Control": "no-store"})

    async def rollback(self, request: Request) -> Response:
        p = await self._publisher(request)
        self._csrf(request, request.query_params.get("csrf_token"))
        raw = request.query_params.get("version")
        if raw is None and request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
                raw = body.get("version") if isinstance(body, dict) else None
            except ValueError:
                raise PublishError("a JSON object is expected", 400) from None
        try:
            version = int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            raise PublishError("version must be an integer", 400) from None
        out = await anyio.to_thread.run_sync(
            lambda: pub.rollback(self.ctx, request.path_params["name"], version,
                                 actor=p.username))
        return JSONResponse(out)

    async def page(self, request: Request) -> Response:
        try:
            await self._publisher(request)
        except ProblemError as exc:
            if exc.status == 401:
                return HTMLResponse(PAGE_SIGNIN, status_code=401,
                                    headers={"Cache-Control": "no-store"})
            raise
        token, cookies = self.access.issue_csrf(request)
        html = PAGE.replace("{{csrf}}", token).replace("{{node}}", self.ctx.id).replace(
            "{{nonce}}", request.scope.get("geoplat.csp_nonce", ""))  # nodes/security_headers.py
        resp = HTMLResponse(html, headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                       "script-src 'unsafe-inline'"})
        for k, v in cookies.items():
            resp.set_cookie(k, v, httponly=True, samesite="strict", path="/")
        return resp
