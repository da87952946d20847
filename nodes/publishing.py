"""Publishing wired into a node: what `layers/` is given instead of importing `services`.

- `hooks`: the audit trail (services/access/audit.py) and the registry sync
  (services/registry/local.py), the gazetteer rebuild (services/places/gazetteer.py) and the
  routing topology rebuild (services/maps/topology.py) that
  every publish, rollback and retire calls;
- `ControlAccess`: the publishing routes' access and CSRF checks over the node's
  `AccessControl` and `Csrf`, refusing with `layers.errors.Refused`;
- `publish_context`: a built node's publishing context with those hooks (app, CLI, tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request

from geoplat_settings import NodeRuntime
from layers.errors import Refused
from layers.publish import NodeContext, PublishHooks
from layers.serving import full_config
from layers.web import node_context
from services.access import audit
from services.access.control import AccessControl
from services.db import Database
from services.errors import AuthError
from services.maps import topology
from services.places import gazetteer
from services.registry.local import sync_local_services
from services.web.pages import Csrf


def audit_hook(ctx: NodeContext, event: str, subject: str, actor: str | None, ok: bool,
               detail: dict[str, Any]) -> None:
    db = Database(ctx.dsn, maxconn=1)
    try:
        audit.record(db, ctx.id, event, actor=actor, subject=subject, ok=ok, **detail)
    finally:
        db.close()


def registry_hook(ctx: NodeContext) -> None:
    """The registry reads the runtime of the context's directory (its node and settings)."""
    runtime = NodeRuntime.load(ctx.node_dir)
    config, levels = full_config(ctx.node_dir, ctx.dsn, runtime)
    sync_local_services(runtime, config, levels)


def places_hook(ctx: NodeContext) -> None:
    """The gazetteer follows the layers served: the node's configured layers (their `places`
    mappings) and its published ones (services/places/gazetteer.py)."""
    runtime = NodeRuntime.load(ctx.node_dir)
    gazetteer.build(ctx.dsn, ctx.id, runtime.layers)


def routing_hook(ctx: NodeContext) -> None:
    """The routing topology follows the road layers served (services/maps/topology.py)."""
    runtime = NodeRuntime.load(ctx.node_dir)
    topology.build(ctx.dsn, ctx.id, runtime.layers)


HOOKS = PublishHooks(audit=audit_hook, sync_registry=registry_hook, refresh_places=places_hook,
                     refresh_routing=routing_hook)


def publish_context(runtime: NodeRuntime, node_dir: Path | None = None) -> NodeContext:
    return node_context(runtime, node_dir, HOOKS)


class ControlAccess:
    """`layers.web.PublishAccess` over the node's access control and CSRF tokens."""

    def __init__(self, control: AccessControl, csrf: Csrf):
        self.control, self.csrf = control, csrf

    async def principal(self, request: Request) -> Any:
        try:
            return await self.control.principal(request)
        except AuthError as exc:
            raise Refused(exc.status, exc.title, exc.detail, **exc.extra) from None

    def is_privileged(self, principal: Any) -> bool:
        return self.control.is_privileged(principal)

    def verify_csrf(self, request: Request, token: str | None) -> None:
        try:
            self.csrf.verify(request, token)
        except AuthError as exc:
            raise Refused(exc.status, exc.title, exc.detail, **exc.extra) from None

    def issue_csrf(self, request: Request) -> tuple[str, dict[str, str]]:
        return self.csrf.issue(request)
