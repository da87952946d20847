"""The hooks every publish, rollback and retire of a node calls, given to `layers/` (which
imports no `services`): the audit trail (services/access/audit.py), the registry sync
(services/registry/local.py), the gazetteer rebuild (services/places/gazetteer.py) and the
routing topology rebuild (services/maps/topology.py). Used by the node's publishing routes and
CLI (nodes/publishing.py) and by processes that publish (services/analysis/thematic.py)."""

from __future__ import annotations

from typing import Any

from geoplat_settings import NodeRuntime
from layers.publish import NodeContext, PublishHooks
from layers.serving import full_config
from services.access import audit
from services.db import Database
from services.maps import topology
from services.places import gazetteer
from services.registry.local import sync_local_services


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
