"""Publishing wired into a node: what `layers/` is given instead of importing `services`.

- `HOOKS` (services/publish_hooks.py): the audit trail, the registry sync, the gazetteer and
  routing rebuilds that every publish, rollback and retire calls;
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
from layers.publish import NodeContext
from layers.web import node_context
from services.access.control import AccessControl
from services.errors import AuthError
from services.publish_hooks import HOOKS
from services.web.pages import Csrf


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
