"""pygeoapi listings (landing, collections, OpenAPI) served per caller without hidden layers.

pygeoapi's `API` class can be instantiated many times: for each set of hidden layers we build
one over a copy of the node's config without those resources and an OpenAPI document without
their paths, and let pygeoapi render JSON and HTML as usual. Few distinct sets exist (one per
combination of non-public layers), so the instances are cached.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from services.web.pages import worker_id


def filter_openapi(doc: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    """The OpenAPI document without paths, tags or parameters naming hidden collections."""
    out = copy.deepcopy(doc)
    out["paths"] = {p: v for p, v in doc.get("paths", {}).items()
                    if not any(p == f"/collections/{h}" or p.startswith(f"/collections/{h}/")
                               for h in hidden)}
    if "tags" in out:
        out["tags"] = [t for t in out["tags"] if t.get("name") not in hidden]
    params = out.get("components", {}).get("parameters", {})
    for name in list(params):
        if any(name == h or name.startswith((f"{h}.", f"{h}_")) for h in hidden):
            del params[name]
    return out


class FilteredViews:
    """Per-hidden-set pygeoapi API instances and the three listing views."""

    def __init__(self, max_entries: int = 64):
        self._apis: OrderedDict[frozenset[str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.generation = 0  # bumped by clear(): an API built from an older config is not kept

    def clear(self) -> None:
        """Forget every instance: pygeoapi's config changed (a publish, rollback or retire)."""
        with self._lock:
            self._apis.clear()
            self.generation += 1

    def api(self, hidden: frozenset[str]) -> Any:
        from pygeoapi import starlette_app
        from pygeoapi.api import API

        with self._lock:
            hit = self._apis.get(hidden)
            if hit is not None:
                self._apis.move_to_end(hidden)
                return hit
            generation = self.generation
        config = dict(starlette_app.CONFIG)
        config["resources"] = {k: v for k, v in starlette_app.CONFIG["resources"].items()
                               if k not in hidden}
        api = API(config, filter_openapi(starlette_app.OPENAPI, hidden))
        with self._lock:
            if generation != self.generation:
                return api  # the config changed while we built it: serve it once, don't keep it
            self._apis[hidden] = api
            while len(self._apis) > self.max_entries:
                self._apis.popitem(last=False)
        return api

    async def serve(self, view: str, hidden: frozenset[str], scope: Scope, receive: Any,
                    send: Any) -> None:
        import anyio
        import pygeoapi.api as core_api
        from pygeoapi import starlette_app

        api = await anyio.to_thread.run_sync(self.api, hidden)
        func = {"landing": core_api.landing_page, "collections": core_api.describe_collections,
                "openapi": core_api.openapi_}[view]
        request = Request(scope, receive)
        response = await starlette_app.execute_from_starlette(func, request, alternative_api=api)
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Vary"] = "Authorization, Cookie, X-Api-Key"

        response.headers["X-Geoplat-Worker"] = worker_id()  # every worker's listing can be checked
        await response(scope, receive, send)
