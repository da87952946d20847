"""Access is a dependency of every route group (issue 12).

The app of a real node (the shared federation's node dirs, built by nodes.asgi.create_app in a
process of its own, since pygeoapi reads its config once per process) is walked: every route
and mount of its router must carry a requirement (services/access/require.py) whose wrapper
encloses the route's app. nginx's cached-tile fast path follows the requirement of the routes
serving those URLs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from nodes import supervisor
from services.access import emap, rules
from services.access.require import (
    Enforce,
    Requirement,
    guard,
    guard_group,
    require,
    route_for,
    unguarded,
)
from tiles.service import tile_route_paths

ROOT = Path(__file__).resolve().parents[2]

# builds a node's app and reports its routes; `extra` appends one route without a requirement,
# to show the walk finds it
WALK = r"""
import json, os, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from nodes.asgi import create_app
from services.access.require import requirement_of, unguarded

app = create_app(sys.argv[1])
while not isinstance(app, Starlette):
    app = app.app  # the middlewares around the node's router
if sys.argv[2] == "extra":
    async def sneaky(request):
        return PlainTextResponse("no check")
    app.router.routes.append(Route("/sneaky", sneaky))
rows = [{"path": r.path, "type": type(r).__name__,
         "kind": getattr(requirement_of(r), "kind", None)} for r in app.routes]
print("WALK " + json.dumps({"routes": rows, "unguarded": unguarded(app.routes)}), flush=True)
os._exit(0)  # the app started background threads (registry worker, reloader)
"""


def walk(node_dir: Path, extra: bool = False) -> dict:
    out = subprocess.run([sys.executable, "-c", WALK, str(node_dir), "extra" if extra else ""],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("WALK ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1][5:])


@pytest.mark.parametrize("node", ["national", "hangzhou"])
def test_every_route_of_a_node_carries_a_requirement(federation, node: str) -> None:
    found = walk(supervisor.node_dir(federation, federation.node(node)))
    assert found["unguarded"] == []
    kinds = {r["path"]: r["kind"] for r in found["routes"]}
    assert kinds["/health"] == "public"
    assert kinds["/"] == "public-page"  # the portal (issue 16); the landing JSON for scripts
    assert kinds["/ogc"] == "ogc-api"
    assert kinds["/wms"] == "maps"
    for path in ("/wmts", "/wmts/{rest:path}", "/service", "/tms", "/tms/{rest:path}",
                 "/{tdt}/wmts"):
        assert kinds[path] == "tiles"
    assert kinds["/auth/audit"] == "admin" and kinds["/auth/register"] == "public-page"
    assert kinds["/registry/api/services"] == "publisher"
    assert kinds["/api/layers"] == "publisher" and kinds["/publish"] == "public-page"
    assert ("/sso/token" in kinds) == (node == "national")  # the OIDC provider: main node only
    if node == "national":
        assert kinds["/sso/token"] == kinds["/sso/revoke"] == "client"
        assert kinds["/sso/jwks"] == "public" and kinds["/sso/api/keys"] == "protocol"
    # every route the rules name is mounted (a rule for a route that is gone is a stale rule)
    named = {p for group in rules.GROUPS.values() for p in group}
    if node != "national":
        named -= set(rules.SSO)
    assert named == set(kinds)


def test_the_walk_finds_a_route_without_a_requirement(federation) -> None:
    found = walk(supervisor.node_dir(federation, federation.node("hangzhou")), extra=True)
    assert found["unguarded"] == ["/sneaky"]


def test_a_route_group_cannot_be_mounted_without_rules() -> None:
    async def hello(request):
        return PlainTextResponse("hi")

    with pytest.raises(LookupError):
        guard_group({"/a": rules.PUBLIC}, [Route("/a", hello), Route("/b", hello)])
    route = guard(rules.PUBLIC, Route("/a", hello))
    assert isinstance(route.app, Enforce) and route.requirement == rules.PUBLIC
    with pytest.raises(ValueError):
        guard(rules.PAGE, route)  # one requirement per route
    with pytest.raises(ValueError):
        require("anything")
    with pytest.raises(ValueError):
        require("admin")  # a role says what an anonymous caller is told
    assert unguarded([route, Route("/b", hello)]) == ["/b"]


def test_checked_routes_fail_closed_without_access_control() -> None:
    """An app whose access control was never installed serves no checked route."""

    async def hello(request):
        return PlainTextResponse("hi")

    app = Starlette(routes=[guard(rules.PUBLIC, Route("/open", hello)),
                            *guard_group({"/ogc": rules.OGC_API}, [Route("/ogc", hello)]),
                            guard(rules.AUTH["/auth/me"], Route("/me", hello))])

    async def run() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            return [(await c.get(p)).status_code for p in ("/open", "/ogc", "/me")]

    assert asyncio.run(run()) == [200, 503, 503]


def test_nginx_fast_path_follows_the_tile_routes_requirement() -> None:
    routes = [Route(p, lambda r: None) for p in tile_route_paths()]
    for uri in emap.FAST_PATH_URIS:
        assert rules.TILE_SURFACES[route_for(routes, uri).path] is rules.TILES
    assert emap.fast_path_requirement() is rules.TILES
    keyed = emap.nginx_key_conf(True)
    optional = emap.nginx_key_conf(False)
    assert "set $geoplat_auth_need 1;" in keyed
    assert 'set $geoplat_auth_need "$arg_tk$http_x_api_key";' in optional
    assert rules.TILES.nginx_need(True) == "1"
    # a public requirement would need no subrequest at all
    assert Requirement("public").nginx_need(True) is None
    assert rules.PUBLIC.nginx_need(False) is None and not rules.PAGE.keyed
    assert all(r.keyed for r in rules.TILE_SURFACES.values())


def test_csrf_exemptions_are_the_client_authenticated_routes() -> None:
    """The CSRF guard exempts exactly the routes whose caller is an OAuth client (no cookie)."""
    from services.web.guards import CSRF_EXEMPT

    assert CSRF_EXEMPT == {"/sso/token", "/sso/revoke"} == {
        p for p, r in rules.SSO.items() if r.kind == "client"}
