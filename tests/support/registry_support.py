"""Shared pieces of the registry tests: a federation of its own, sign-in, a real test server.

The registry federation uses node ids of its own (`r_national`, `r_zhejiang`, `r_hangzhou`), so
its databases and background workers never mix with the session's shared federation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import yaml
from sso_client import bearer, login_pkce

from nodes import federation as federation_mod
from nodes import settings as settings_mod
from nodes import supervisor
from services.db import Database
from services.sso import accounts

PASSWORD = "registry-password-1"
IDS = {"national": "r_national", "zhejiang": "r_zhejiang", "hangzhou": "r_hangzhou"}
HEALTH_INTERVAL = 1.5
REGISTRY = {"health_interval": HEALTH_INTERVAL, "push_interval": 0.3, "full_sync_interval": 4.0,
            "allow_networks": ["127.0.0.0/8"], "fetch_timeout": 2.0,
            "max_document_bytes": 200_000}
USERS = {  # name -> (roles at the main node, platform admin)
    "reg_admin": (["r_hangzhou:admin"], False),
    "reg_publisher": (["r_hangzhou:publisher"], False),
    "reg_other_admin": (["r_zhejiang:admin"], False),
    "reg_user": ([], False),
    "reg_platform": ([], True),
}


def ids_with(prefix: str) -> dict[str, str]:
    """Node ids of a registry federation: `<prefix>_national`, ... (own databases per prefix)."""
    return {k: f"{prefix}_{k}" for k in IDS}


def registry_config(make_federation: Any, base: Path, cluster: Any, *, prefix: str = "r",
                    registry: dict[str, Any] | None = None) -> Path:
    path = make_federation(base, cluster)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    ids = ids_with(prefix)
    for node in raw["nodes"]:
        node["layers_file"] = f"layers/{node['id']}.yml"
        node["id"] = ids[node["id"]]
        if node.get("parent"):
            node["parent"] = ids[node["parent"]]
        node["registry"] = {**REGISTRY, **(registry or {})}
        node["workers"] = 2
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class Fed:
    """The running registry federation of a test module."""

    def __init__(self, settings: settings_mod.FederationSettings, procs: list[Any],
                 prefix: str = "r"):
        self.settings, self.prefix = settings, prefix
        self.procs = {p.node.id: p for p in procs}
        self.urls = {n.id: n.base_url for n in settings.nodes}
        self.dbs = {n.id: Database(federation_mod.node_dsn(settings, n), maxconn=2)
                    for n in settings.nodes}
        self.main = self.urls[f"{prefix}_national"]
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}

    def sign_in_all(self) -> None:
        """The USERS, their roles moved to this federation's node ids."""
        for name, (roles, admin) in USERS.items():
            roles = [f"{self.prefix}_{r[2:]}" for r in roles]
            accounts.create(self.dbs[f"{self.prefix}_national"], name, PASSWORD, roles=roles,
                            platform_admin=admin)
            self.headers[name] = bearer(login_pkce(self.main, name, PASSWORD))

    def node_token(self, node_id: str) -> dict[str, str]:
        """A client-credentials token of `node-<id>`, as the node itself gets one."""
        ndir = self.settings.resolve(self.settings.var_dir) / "nodes" / node_id
        auth = json.loads((ndir / "node.json").read_text())["auth"]
        r = httpx.post(auth["token_url"], data={"grant_type": "client_credentials",
                                                "scope": "geoplat"},
                       auth=(auth["client_id"], auth["client_secret"]), timeout=30)
        r.raise_for_status()
        return bearer(r.json()["access_token"])

    def stop(self, node_id: str) -> None:
        supervisor.stop_group(self.procs[node_id].pgid)

    def start(self, node_id: str) -> None:
        node = self.settings.node(node_id)
        ndir = self.settings.resolve(self.settings.var_dir) / "nodes" / node_id
        proc = supervisor.start_node(self.settings, node, ndir)
        self.procs[node_id] = proc
        supervisor.wait_healthy([proc])

    def close(self) -> None:
        for p in self.procs.values():
            supervisor.stop_group(p.pgid)


@contextmanager
def running_federation(make_federation: Any, base: Path, cluster: Any, *, prefix: str = "r",
                       registry: dict[str, Any] | None = None) -> Iterator[Fed]:
    """A registry federation `<prefix>_*`, its users signed in; stopped on exit.
    `registry` overrides keys of REGISTRY."""
    settings = settings_mod.load(registry_config(make_federation, base, cluster, prefix=prefix,
                                                 registry=registry))
    procs, _ = supervisor.up(settings, echo=lambda *a: None)
    fed = Fed(settings, procs, prefix)
    try:
        fed.sign_in_all()
        yield fed
    finally:
        fed.close()


# --- a real HTTP server with well-behaved and badly-behaved "services" ----------------------

WMS_CAPS = """<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms"
  xmlns:xlink="http://www.w3.org/1999/xlink">
<Service><Name>WMS</Name><Title>西湖区规划 West Lake planning WMS</Title>
<Abstract>Department planning maps 规划图</Abstract>
<KeywordList><Keyword>规划</Keyword><Keyword>planning</Keyword></KeywordList>
<OnlineResource xlink:href="http://127.0.0.1/"/></Service>
<Capability><Request><GetCapabilities><Format>text/xml</Format><DCPType><HTTP><Get>
<OnlineResource xlink:href="http://127.0.0.1/"/></Get></HTTP></DCPType></GetCapabilities>
<GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://127.0.0.1/"/>
</Get></HTTP></DCPType></GetMap></Request>
<Exception><Format>XML</Format></Exception>
<Layer><Title>root</Title><CRS>EPSG:4490</CRS>
<Layer queryable="0"><Name>zoning</Name><Title>Zoning 控规</Title>
<EX_GeographicBoundingBox><westBoundLongitude>120.0</westBoundLongitude>
<eastBoundLongitude>120.2</eastBoundLongitude><southBoundLatitude>30.1</southBoundLatitude>
<northBoundLatitude>30.3</northBoundLatitude></EX_GeographicBoundingBox></Layer>
</Layer></Capability></WMS_Capabilities>"""


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/xml",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        server: Any = self.server
        with server.lock:
            server.hits += 1
        if path == "/redirect":  # /redirect?to=<URL>: a hop to any target the test names
            target = parse_qs(query).get("to", [""])[0]
            self._send(302, b"", headers={"Location": target})
        elif server.down and path.startswith("/wms"):
            self._send(503, b"down", "text/plain")
        elif path.startswith("/wms"):
            self._send(200, WMS_CAPS.encode())
        elif path == "/html":
            self._send(200, b"<html><body>hello, not a service</body></html>", "text/html")
        elif path == "/json":
            self._send(200, b'{"hello": "world"}', "application/json")
        elif path == "/sleep":  # a service that hangs: answers only when the server closes
            server.closing.wait(timeout=6)
            self._send(200, WMS_CAPS.encode())
        elif path == "/to-file":
            self._send(302, b"", headers={"Location": "file:///etc/passwd"})
        elif path == "/to-private":
            self._send(302, b"", headers={"Location": "http://10.1.2.3/wms"})
        elif path == "/to-wms":
            self._send(302, b"", headers={"Location": "/wms?SERVICE=WMS&REQUEST=GetCapabilities"})
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()  # no Content-Length: the cap must hold while streaming
            try:
                self.wfile.write(b'<?xml version="1.0"?><WMS_Capabilities version="1.3.0">')
                chunk = b"<Layer><Title>x</Title></Layer>" * 2000
                for _ in range(400):  # ~25 MB
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/entity":
            self._send(200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM '
                            b'"file:///etc/passwd">]><WMS_Capabilities>&e;</WMS_Capabilities>')
        else:
            self._send(404, b"no", "text/plain")


class ServiceServer:
    """The services on `host` (any loopback address); `hits` counts every request it got."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.httpd = ThreadingHTTPServer((host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.down = False  # type: ignore[attr-defined]
        self.httpd.hits = 0  # type: ignore[attr-defined]
        self.httpd.lock = threading.Lock()  # type: ignore[attr-defined]
        self.httpd.closing = threading.Event()  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> int:
        return self.httpd.hits  # type: ignore[attr-defined]

    def set_down(self, down: bool) -> None:
        self.httpd.down = down  # type: ignore[attr-defined]

    def close(self) -> None:
        self.httpd.closing.set()  # type: ignore[attr-defined]
        self.httpd.shutdown()
        self.httpd.server_close()


def serving() -> Iterator[ServiceServer]:
    srv = ServiceServer()
    try:
        yield srv
    finally:
        srv.close()
