"""Original attribute names as the titles of `/collections/{id}/queryables` (a pygeoapi patch).

pygeoapi 0.21 writes `title: <name>` for every queryable whatever the provider's fields say
(its `/schema` passes our fields through, titles included); `install_queryable_titles` wraps
its handler to put the feature provider's `titles` option in.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pygeoapi.api import itemtypes
from pygeoapi.util import to_json


def column_titles(value: Any) -> dict[str, str]:
    """The provider option `titles` ({column: original attribute name}), non-text entries dropped."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and v}


def _titled_queryables(api: Any, dataset: Any, status: Any, content: Any) -> Any:
    """pygeoapi's JSON queryables with each property's title taken from the `titles` option."""
    if status != 200 or not isinstance(content, (str, bytes)):
        return content
    providers = ((api.config.get("resources") or {}).get(dataset) or {}).get("providers") or []
    titles: dict[str, str] = {}
    for p in providers:
        if p.get("type") == "feature":
            titles = column_titles(p.get("titles"))
            break
    if not titles:
        return content
    try:
        doc = json.loads(content)
    except ValueError:  # the HTML page: it shows names and types only
        return content
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        return content
    for name, spec in props.items():
        if name in titles and isinstance(spec, dict):
            spec["title"] = titles[name]
    return to_json(doc, api.pretty_print)


_queryables_installed = False


def install_queryable_titles() -> None:
    """Make `/collections/{id}/queryables` show the original attribute names as titles.

    pygeoapi 0.21 writes `title: <name>` for every queryable whatever the provider's fields
    say (its `/schema` passes our fields through, titles included); this wraps its handler,
    looked up per request by the Starlette app, to put the `titles` option in. Idempotent.
    """
    global _queryables_installed
    if _queryables_installed:
        return
    original = itemtypes.get_collection_queryables

    @functools.wraps(original)
    def get_collection_queryables(api: Any, request: Any, dataset: Any = None) -> tuple:
        headers, status, content = original(api, request, dataset)
        return headers, status, _titled_queryables(api, dataset, status, content)

    itemtypes.get_collection_queryables = get_collection_queryables
    _queryables_installed = True
