"""Field-level access: attributes with their own access level, stricter than their layer's.

A layer's config (`field_access: {right_holder: restricted}` in config/layers/<node>.yml) or its
publish option (`--field-access right_holder=restricted`, form field `field_access`) gives some
attributes a level of their own: `registered` (any signed-in user or developer key) or
`restricted` (the node's grant for that layer, its admins and publishers). A caller below an
attribute's level never receives it, on any surface: items and item by id (GeoJSON, HTML, CSV),
queryables, schema, OpenAPI, MVT tiles, WMS GetFeatureInfo, free-text `q` (which must not search
it either) and the registry; filtering (CQL2, `name=value`), sorting or selecting `properties` by
it is refused (403), never silently ignored.

How it is carried: the OGC routes compute the caller's rights for the collection once
(`AccessControl.field_rights`) and run pygeoapi's API function with `RIGHTS` set to them; the
providers (nodes/providers/features.py, mvt.py) read `hidden(rules)` when they are built. Outside
a request (OpenAPI built at start, a provider made by other code) no right is held: every
restricted attribute is hidden (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.errors import AuthError
from services.web.pages import execute_as_caller

RIGHTS: ContextVar[frozenset[str]] = ContextVar("geoplat_field_rights", default=frozenset())
LEVELS = ("registered", "restricted")


def hidden(rules: Mapping[str, str] | None, rights: frozenset[str] | None = None
           ) -> frozenset[str]:
    """The attributes of `rules` ({attribute: level}) a caller holding `rights` (default: the
    current request's) must not receive."""
    if not rules:
        return frozenset()
    held = RIGHTS.get() if rights is None else rights
    return frozenset(name for name, level in rules.items() if level not in held)


def execute_with_field_rights(original: Any, control: Any) -> Any:
    """Wrap pygeoapi's `execute_from_starlette`: a call on a collection with attribute rules
    runs with `RIGHTS` set to the caller's rights (services.web.pages.execute_as_caller: in the
    worker thread, never kept by shared caches), after refusing a query string that names
    hidden attributes."""

    async def execute(api_function: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        layer = request.path_params.get("collection_id")
        if not layer or not control.fields.get(layer):
            return await original(api_function, request, *args, **kwargs)
        rights = await control.field_rights(request, layer)
        named = named_in_query(request.query_params, hidden(control.fields[layer], rights))
        if named:
            return refusal(layer, named).response()
        return await execute_as_caller(original, api_function, request, RIGHTS, rights,
                                       *args, **kwargs)

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute


def refusal(layer_id: str, names: list[str] | set[str] | frozenset[str]) -> AuthError:
    """403 for a request that filters, sorts or selects by attributes it may not see."""
    listed = ", ".join(sorted(names))
    return AuthError(403, "Forbidden",
                     f"The attribute(s) {listed} of layer {layer_id} need a grant from the node "
                     "that provides it (or a signed-in user); they cannot be filtered, sorted "
                     "or selected without it.")


def named_in_query(params: Mapping[str, str], hidden_names: frozenset[str]) -> set[str]:
    """Hidden attributes a query string names: `name=value`, `sortby`, `properties`."""
    if not hidden_names:
        return set()
    named = {k for k in params if k in hidden_names}
    for key in ("sortby", "properties"):
        for part in (params.get(key) or "").split(","):
            name = part.strip().lstrip("+-")
            if name in hidden_names:
                named.add(name)
    return named
