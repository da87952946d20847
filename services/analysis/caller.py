"""Who calls a process or a job: kept with the job and applied by the worker.

The OGC routes of processes and jobs need a caller (a signed-in user, or a developer key that
acts for its owner: services/access/require.py `ogc_api`). Around pygeoapi's API functions of
OGC API Processes, `execute_with_caller` sets `CALLER`: the caller's `sub`, whether they
administer the node, the layers they may see (`AccessControl.visible_layers`) and, per layer
with attribute rules, their attribute rights (`AccessControl.field_rights`). The manager stores
it with the job; the process reads only those layers and attributes, in the web worker (sync)
or the queue worker (async), so a later change of grants does not widen a queued job.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.web.pages import execute_as_caller


@dataclass(frozen=True)
class Caller:
    sub: str
    admin: bool = False
    layers: frozenset[str] = frozenset()  # layers of the node the caller may see
    rights: Mapping[str, frozenset[str]] = field(default_factory=dict)  # layer -> levels held
    publisher: bool = False  # a user who may publish layers on the node (publisher or admin)
    username: str = ""  # a user's name, for the audit trail of what a process publishes

    def as_json(self) -> dict[str, Any]:
        return {"sub": self.sub, "admin": self.admin, "layers": sorted(self.layers),
                "rights": {k: sorted(v) for k, v in self.rights.items()},
                "publisher": self.publisher, "username": self.username}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Caller:
        return cls(str(data["sub"]), bool(data.get("admin")), frozenset(data.get("layers", [])),
                   {k: frozenset(v) for k, v in (data.get("rights") or {}).items()},
                   bool(data.get("publisher")), str(data.get("username") or ""))


CALLER: ContextVar[Caller | None] = ContextVar("geoplat_analysis_caller", default=None)
PATHS = ("/ogc/processes", "/ogc/jobs")


def is_process_path(path: str) -> bool:
    return path.startswith(PATHS)


async def caller_of(request: Request, control: Any) -> Caller | None:
    p = await control.caller(request)
    if p is None:
        return None
    layers = await control.visible_layers(request)
    rights = {layer: await control.field_rights(request, layer)
              for layer in control.fields if layer in layers}
    publisher = bool(p.is_user and control.is_privileged(p))  # as /api/layers requires
    return Caller(p.sub, control.is_admin(p), frozenset(layers), rights, publisher,
                  p.username if p.is_user else "")


def with_content_type(api_function: Any) -> Any:
    """pygeoapi 0.21's `delete_job` answers without headers, which its Starlette adapter
    cannot send (KeyError 'Content-Type'): its JSON gets its type (tests/analysis)."""

    def call(*a: Any, **k: Any) -> Any:
        headers, status, content = api_function(*a, **k)
        if "Content-Type" not in headers:
            headers = {**headers, "Content-Type": "application/json"}
        return headers, status, content

    return call


def execute_with_caller(original: Any, control: Any) -> Any:
    """Wrap pygeoapi's `execute_from_starlette`: calls under /ogc/processes and /ogc/jobs run
    with `CALLER` set (None outside them: no job is anyone's)."""

    async def execute(api_function: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not is_process_path(request.url.path):
            return await original(api_function, request, *args, **kwargs)
        caller = await caller_of(request, control)
        return await execute_as_caller(original, with_content_type(api_function), request,
                                       CALLER, caller, *args, **kwargs)

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute
