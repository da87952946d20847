"""`NodeServices`: every long-lived part of one node app, made once per worker process.

`create_app` (nodes/asgi.py) builds it from the node's `NodeRuntime` and hands its parts to the
router factories; the app's lifespan calls `start()` (background tasks and threads) and
`close()` (every task stopped, every pool and client closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import anyio
import httpx
from starlette.routing import BaseRoute

from geoplat_settings import NodeRuntime
from layers.emap import TileReloader
from layers.serving import Reloader
from layers.web import PublishRoutes
from nodes.health import Health
from nodes.publishing import ControlAccess, publish_context
from services.access.forwarding import NodeCredential
from services.access.install import NodeAuthServices, build_auth
from services.access.views import FilteredViews
from services.annotations.routes import AnnotationRoutes
from services.annotations.store import Annotations
from services.db import Database
from services.maps.halls import Halls
from services.maps.hours import Hours
from services.maps.item_routes import ItemRoutes
from services.maps.routes import RoutingRoutes
from services.maps.routing import Router
from services.places.federation import children_of
from services.places.query import Places
from services.places.routes import PlacesRoutes
from services.registry.web import RegistryRoutes
from services.registry.worker import RegistryWorker
from services.supply.outbox import SupplyWorker
from services.supply.routes import SupplyRoutes
from tiles.service import tile_routes

LOGGER = logging.getLogger("geoplat.node")


def tile_service_of(routes: Sequence[BaseRoute]) -> Any:
    """The `TileService` behind the tile routes (None when the node has no tiles)."""
    for route in routes:
        service = getattr(getattr(route, "endpoint", None), "service", None)
        if service is not None and hasattr(service, "reload"):
            return service
    return None


@dataclass
class NodeServices:
    runtime: NodeRuntime
    pygeoapi: ModuleType  # pygeoapi.starlette_app, configured for this node
    db: Database  # the node's pool for auth and pages
    registry_db: Database  # the registry routes' own pool (harvests may hold connections)
    http: httpx.AsyncClient  # the app's one HTTP client (closed by the lifespan)
    views: FilteredViews  # per-caller listings; every publish reload clears it
    auth: NodeAuthServices
    tile_routes: Sequence[BaseRoute]
    tile_service: Any
    reloader: Reloader
    registry_worker: RegistryWorker
    supply_worker: SupplyWorker  # sends this node's change-sets to its parent (issue 18)
    health: Health
    places: Places  # the place-name query layer over the node's gazetteer (issue 13)
    router: Router  # routes over the node's routing topology (issue 15)
    halls: Halls  # service items and their offices (issue 15)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def build(cls, runtime: NodeRuntime, pygeoapi: ModuleType) -> NodeServices:
        node_dir = runtime.node_dir
        db = Database(runtime.dsn)
        views = FilteredViews()
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        auth = build_auth(runtime, db, node_dir, http)
        # each route asks the check its requirement gives it; GetFeatureInfo reads the node's db
        tiles = tile_routes(node_dir, db=db)
        service = tile_service_of(tiles)
        tile_reloader = TileReloader(service, node_dir, runtime.dsn) if service is not None \
            else None
        router = Router(db, tuple(runtime.server.extent.as_list()))  # type: ignore[arg-type]
        halls = Halls(db, router, Hours(runtime.halls.holidays, runtime.halls.timezone,
                                               workdays=runtime.halls.workdays),
                      runtime.halls.poi_layer)
        return cls(
            runtime=runtime, pygeoapi=pygeoapi, db=db,
            registry_db=Database(runtime.dsn, maxconn=4),
            http=http,
            views=views, auth=auth, tile_routes=tiles, tile_service=service,
            reloader=Reloader(runtime.dsn, runtime.providers, pygeoapi, auth.control, views,
                              tile_reloader),
            registry_worker=RegistryWorker(runtime),
            supply_worker=SupplyWorker(publish_context(runtime), runtime),
            health=Health(runtime.server, runtime.dsn, auth.control, pygeoapi, service),
            places=Places(db, runtime.server.id),
            router=router, halls=halls)

    # --- router factories' dependencies ------------------------------------------------------

    def registry_routes(self) -> list[BaseRoute]:
        return list(RegistryRoutes(self.runtime, self.registry_db, self.auth.control).routes())

    def places_routes(self) -> list[BaseRoute]:
        """Tianditu's web-service URLs and /api/places; a query that concerns a child node's
        area is asked there too, with the app's HTTP client (services.places.federation)."""
        return PlacesRoutes(self.places, self.runtime.server.base_url,
                            node_id=self.runtime.server.id, children=children_of(self.runtime),
                            http=self.http,
                            forwarding=NodeCredential(self.auth.node_client.credentials)
                            ).routes()

    def routing_routes(self) -> list[BaseRoute]:
        """/api/route and Tianditu's /drive over the node's roads (services/maps)."""
        return RoutingRoutes(self.router).routes()

    def item_routes(self) -> list[BaseRoute]:
        """/api/items and /api/halls/nearest; the catalogue upload audited in the node's db."""
        ctx = publish_context(self.runtime)
        return ItemRoutes(self.halls, dsn=self.runtime.dsn, node_id=self.runtime.server.id,
                          access=ControlAccess(self.auth.control, self.auth.node_csrf),
                          work_root=ctx.work_root, poi_layer=self.runtime.halls.poi_layer,
                          db=self.db).routes()

    def annotation_routes(self) -> list[BaseRoute]:
        """/api/annotations: the users' annotations in the node's db (issue 16)."""
        return AnnotationRoutes(Annotations(self.db), self.auth.control,
                                self.runtime.server.base_url).routes()

    def supply_routes(self) -> list[BaseRoute]:
        """/api/supply: change-sets from the children, their review (issue 18)."""
        return SupplyRoutes(publish_context(self.runtime), self.runtime.supply,
                            self.runtime.layers, self.auth.control,
                            self.runtime.auth.main_url).routes()

    def publish_routes(self) -> list[BaseRoute]:
        ctx = publish_context(self.runtime)
        return list(PublishRoutes(ctx, ControlAccess(self.auth.control,
                                                     self.auth.node_csrf)).routes())

    # --- lifespan ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Background work of this worker: published layers, the registry, the key sweeper."""
        await anyio.to_thread.run_sync(self.reloader.start)  # serves what is published now
        self.registry_worker.start()  # works only while it holds the node's registry lock
        if self.runtime.supply.out:
            self.supply_worker.start()  # likewise, with the node's supply lock
        if self.auth.sweeper is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self.auth.sweeper.run()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await anyio.to_thread.run_sync(self.reloader.stop)
        await anyio.to_thread.run_sync(self.registry_worker.stop)
        await anyio.to_thread.run_sync(self.supply_worker.stop)
        await self.http.aclose()
        self.health.close()
        self.auth.close()
        self.registry_db.close()
        self.db.close()

