"""The publishing API and upload page of a node: `/api/layers`, `/publish`.

- `POST /api/layers` (multipart: file + name, title, access, crs, keywords, layer, all_layers,
  emap: `true` draws a public layer on the node's e-map and offers it as a WMS layer)
  streams the upload to disk in chunks, refusing it (413) as soon as it passes the size limit;
- `GET /api/layers`, `GET /api/layers/{name}/versions`, `POST /api/layers/{name}/rollback`,
  `DELETE /api/layers/{name}` (retire);
- `GET /publish`: a plain upload form.

Every route needs a token (Bearer, or the node's session cookie plus the CSRF token for forms)
of a user with the `publisher` or `admin` role of this node: anonymous 401, others 403.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from layers import publish as pub
from layers.formats import PublishError, remove_tree
from layers.settings import PublishSettings
from services.errors import AuthError, problem

FIELDS = {"name", "title", "access", "crs", "keywords", "layer", "all_layers", "emap", "csrf_token"}
TRUE = ("1", "true", "on", "yes")
MULTIPART_SLACK = 64 * 1024  # form fields and part headers around the file


def node_context(meta: dict[str, Any], node_dir: Path) -> pub.NodeContext:
    """The publishing context of a running node, from its generated node.json."""
    dirs = [node_dir]
    parent = meta["node"].get("parent")
    while parent:
        d = node_dir.parent / parent
        dirs.append(d)
        try:
            parent = json.loads((d / "node.json").read_text(encoding="utf-8"))["node"].get("parent")
        except (OSError, ValueError, KeyError):
            break
    return pub.NodeContext(
        id=meta["node"]["id"], dsn=meta["dsn"], node_dir=node_dir,
        settings=PublishSettings(**(meta.get("publish") or {})),
        config_layers=frozenset(((meta.get("auth") or {}).get("levels") or {}).keys()),
        cache_dirs=tuple(dirs), node_meta=meta["node"])


class Upload:
    """A multipart body parsed as it streams in: small fields in memory, the file on disk."""

    def __init__(self, dest: Path, limit: int):
        self.dest, self.limit = dest, limit
        self.fields: dict[str, str] = {}
        self.file: Path | None = None
        self.filename = ""
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
                self.filename = Path(filename.decode("utf-8", "replace").replace("\\", "/")).name
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


class PublishRoutes:
    def __init__(self, ctx: pub.NodeContext, control: Any, csrf: Any):
        self.ctx, self.control, self.csrf = ctx, control, csrf

    def routes(self) -> list[Route]:
        return [
            Route("/api/layers", self.collection, methods=["GET", "POST"]),
            Route("/api/layers/{name}/versions", self.versions, methods=["GET"]),
            Route("/api/layers/{name}/rollback", self.rollback, methods=["POST"]),
            Route("/api/layers/{name}", self.layer, methods=["GET", "DELETE"]),
            Route("/publish", self.page, methods=["GET"]),
        ]

    async def _publisher(self, request: Request) -> Any:
        p = await self.control.principal(request)
        if p is None:
            raise AuthError(401, "Unauthorized", "Sign in as a publisher of this node.")
        if not (p.is_user and self.control.is_privileged(p)):
            raise AuthError(403, "Forbidden",
                            f"Publishing needs the publisher or admin role of node {self.ctx.id}.")
        return p

    def _csrf(self, request: Request, token: str | None) -> None:
        if request.headers.get("authorization", "")[:7].lower() != "bearer ":
            self.csrf.verify(request, token)  # cookie-authenticated: a form of ours only

    @staticmethod
    def _error(exc: Exception) -> Response:
        if isinstance(exc, AuthError):
            headers = {"WWW-Authenticate": 'Bearer realm="geoplat"'} if exc.status == 401 else None
            return exc.response(headers)
        if isinstance(exc, PublishError):
            titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict",
                      413: "Content Too Large", 415: "Unsupported Media Type",
                      422: "Unprocessable Content"}
            status = exc.status if exc.status in titles else 500
            return problem(status, titles.get(status, "Internal Server Error"), exc.message)
        raise exc

    async def collection(self, request: Request) -> Response:
        try:
            p = await self._publisher(request)
            if request.method == "GET":
                return JSONResponse(await anyio.to_thread.run_sync(pub.list_layers, self.ctx),
                                    headers={"Cache-Control": "no-store"})
            work = self.ctx.work_root / ("upload-" + uuid.uuid4().hex)
            try:
                up = Upload(work, self.ctx.settings.max_upload_bytes)
                await up.read(request)
                f = up.fields
                self._csrf(request, f.get("csrf_token"))
                if not f.get("name"):
                    raise PublishError("the field 'name' is required", 400)
                src = up.file.with_name(up.filename) if up.filename else up.file
                up.file.replace(src)
                keywords = [k.strip() for k in f.get("keywords", "").split(",") if k.strip()]

                def run() -> list[pub.PublishResult]:
                    return pub.publish(
                        self.ctx, src, f["name"].strip(), title=f.get("title") or None,
                        access=f.get("access") or "public", crs=f.get("crs") or None,
                        keywords=keywords, layer=f.get("layer") or None,
                        all_layers=f.get("all_layers", "").lower() in TRUE,
                        actor=p.username,
                        emap=None if "emap" not in f else f["emap"].strip().lower() in TRUE)

                results = await anyio.to_thread.run_sync(run)
            finally:
                remove_tree(work)
            return JSONResponse({"layers": [r.as_dict() for r in results]}, status_code=201,
                                headers={"Cache-Control": "no-store"})
        except (AuthError, PublishError) as exc:
            return self._error(exc)

    async def layer(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
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
        except (AuthError, PublishError) as exc:
            return self._error(exc)

    async def versions(self, request: Request) -> Response:
        try:
            await self._publisher(request)
            out = await anyio.to_thread.run_sync(pub.versions, self.ctx, request.path_params["name"])
            return JSONResponse(out, headers={"Cache-Control": "no-store"})
        except (AuthError, PublishError) as exc:
            return self._error(exc)

    async def rollback(self, request: Request) -> Response:
        try:
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
        except (AuthError, PublishError) as exc:
            return self._error(exc)

    async def page(self, request: Request) -> Response:
        try:
            await self._publisher(request)
        except AuthError as exc:
            if exc.status == 401:
                return HTMLResponse(PAGE_SIGNIN, status_code=401,
                                    headers={"Cache-Control": "no-store"})
            return exc.response()
        token, cookies = self.csrf.issue(request)
        html = PAGE.replace("{{csrf}}", token).replace("{{node}}", self.ctx.id)
        resp = HTMLResponse(html, headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                       "script-src 'unsafe-inline'"})
        for k, v in cookies.items():
            resp.set_cookie(k, v, httponly=True, samesite="strict", path="/")
        return resp


PAGE_SIGNIN = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>发布图层 Publish</title>
</head><body><h1>发布图层 Publish a layer</h1><p>Sign in first: <a href="/auth/login?next=/publish">登录 Sign in</a></p></body></html>"""

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>发布图层 Publish a layer · {{node}}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}label{display:block;margin:.6em 0}
input,select{width:100%;padding:.3em}progress{width:100%}pre{white-space:pre-wrap}</style></head><body>
<h1>发布图层 Publish a layer</h1><p>Node {{node}}: zipped Shapefile, GeoPackage, GeoJSON, CSV (lon/lat), GeoTIFF.</p>
<form id="f" method="post" action="/api/layers" enctype="multipart/form-data">
<input type="hidden" name="csrf_token" value="{{csrf}}">
<label>文件 File <input type="file" name="file" required></label>
<label>名称 Name (a-z, 0-9, _) <input name="name" required pattern="[a-z][a-z0-9_]{0,44}"></label>
<label>标题 Title <input name="title"></label>
<label>访问 Access <select name="access"><option>public</option><option>registered</option><option>restricted</option></select></label>
<label>坐标系 CRS (if the file has none) <input name="crs" placeholder="EPSG:4490"></label>
<label>关键词 Keywords (comma separated) <input name="keywords"></label>
<label>GeoPackage layer <input name="layer"></label>
<label><input type="checkbox" name="emap" value="true" style="width:auto"> 叠加到电子地图 Draw on the e-map (vec) and offer as a WMS layer (public layers only)</label>
<button>发布 Publish</button></form>
<progress id="p" value="0" max="1" hidden></progress><pre id="out"></pre>
<script>
document.getElementById('f').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var xhr = new XMLHttpRequest(), p = document.getElementById('p'), out = document.getElementById('out');
  p.hidden = false;
  xhr.upload.onprogress = function (e) { if (e.lengthComputable) { p.max = e.total; p.value = e.loaded; } };
  xhr.onload = function () { out.textContent = xhr.status + '\\n' + xhr.responseText; };
  xhr.onerror = function () { out.textContent = 'upload failed'; };
  xhr.open('POST', '/api/layers');
  xhr.send(new FormData(ev.target));
});
</script></body></html>"""


def install_publishing(auth_app: Any, app: Any, meta: dict[str, Any], node_dir: Path) -> Any:
    """Add the publishing routes to `app` and keep this worker serving published layers."""
    from layers.serving import Reloader
    from services import access
    from services.db import Database, secret
    from services.web import Csrf

    control = access.current()
    ctx = node_context(meta, Path(node_dir))
    csrf = Csrf(secret(Database(meta["dsn"], maxconn=1), "node-web"))
    app.router.routes.extend(PublishRoutes(ctx, control, csrf).routes())
    from layers.emap import TileReloader, find_tile_service

    service = find_tile_service(app)
    tiles = TileReloader(service, Path(node_dir), meta["dsn"]) if service is not None else None
    Reloader(meta["dsn"], control, getattr(auth_app, "views", None), tiles).start()
    return auth_app
