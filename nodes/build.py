"""Building a node: `FederationSettings` -> the node's files and its `NodeRuntime`.

`geoplat up` calls `build_node` once per node: it loads the node's layers, generates its
pygeoapi config, templates, tile and nginx configs, provisions its auth (`provision`), and
writes the runtime file (`node.json`, mode 600) that `nodes.asgi:create_app` reads. The node's
layer file is read once, here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geoplat_settings import (
    AuthSection,
    CompositionRef,
    DatabaseSection,
    FederationSettings,
    LayerSettings,
    NodeRef,
    NodeRuntime,
    NodeSettings,
    NodeView,
    RegistrySection,
    ServerSection,
    SupplyIn,
    SupplyOut,
    SupplySection,
)
from geoplat_settings.federation import ACCESS_ORDER
from layers.serving import full_config
from nodes import federation, privileges
from nodes.pygeoapi_config import PROVIDERS, build_config, node_dir, write_config
from nodes.settings import ConfigError, load_layers
from nodes.templates import prepare_templates
from services.access.emap import write_nginx_key_conf
from services.provision import demo_file, provision_node
from services.registry.local import origin_path, sync_local_services
from services.supply import keys as supply_keys
from services.web.sdk_routes import write_demo_key
from tiles.build import build_tiles, node_dem


def main_node(settings: FederationSettings) -> NodeSettings:
    return next(n for n in settings.nodes if n.tier == "main")


def provision(settings: FederationSettings, node: NodeSettings, layers: list[LayerSettings],
              dsn: str, *, cascade: bool) -> tuple[AuthSection, str | None]:
    """The node's auth section and, with `cascade`, the key its tile engine sends to its
    children: the main node locally (it owns that database), every other node over HTTP with
    its initial access token (services/provision.py; never the main node's database)."""
    auth, key = provision_node(settings, node, layers, dsn, cascade=cascade)
    return AuthSection.model_validate(auth), key


def server_section(node: NodeSettings) -> ServerSection:
    return ServerSection(id=node.id, title=node.title, tier=node.tier, parent=node.parent,
                         base_url=node.base_url, extent=node.extent, scale=node.scale,
                         workers=node.workers)


def subtree_codes(settings: FederationSettings, node: NodeSettings) -> list[str]:
    """Area codes of a node and its descendants (a parent routes place queries by them)."""
    return [n.area_code for n in settings.subtree(node.id) if n.area_code]


def registry_section(settings: FederationSettings, node: NodeSettings) -> RegistrySection:
    parent = settings.node(node.parent) if node.parent else None
    return RegistrySection(
        path=origin_path(settings, node),
        parent=NodeRef(id=parent.id, base_url=parent.base_url) if parent else None,
        children=[NodeRef(id=c.id, base_url=c.base_url, path=origin_path(settings, c),
                          extent=(c.extent.minx, c.extent.miny, c.extent.maxx, c.extent.maxy),
                          area_code=c.area_code, subtree_codes=subtree_codes(settings, c))
                  for c in settings.children(node.id)],
        settings=node.registry)


def node_view(settings: FederationSettings, node: NodeSettings) -> NodeView:
    """The node as its registry sees it, from the settings alone (the registry CLI's)."""
    return NodeView(server=server_section(node), registry=registry_section(settings, node))


def compositions(settings: FederationSettings, node: NodeSettings) -> list[dict[str, Any]]:
    """Composite services (services/registry): layers of several nodes stacked into one."""
    return [{"id": c.id, "title": c.title, "format": c.format,
             "parts": [{"base_url": settings.node(part.node).base_url,
                        "layer": part.layer, "via": part.via} for part in c.parts]}
            for c in node.registry.compositions]


def build_node(settings: FederationSettings, node: NodeSettings, *,
               show_progress: bool = True) -> Path:
    """Load the node's layers, generate its configs and write its runtime; its directory."""
    federation.load_node_layers(settings, node, show_progress=show_progress)
    layers = load_layers(settings, node)
    dsn = federation.node_dsn(settings, node)
    out = node_dir(settings, node)
    templates = prepare_templates(settings, node)
    write_config(build_config(settings, node, layers, dsn, templates), out)
    children = settings.children(node.id)
    comps = compositions(settings, node)
    auth, child_key = provision(settings, node, layers, dsn, cascade=bool(children or comps))
    # e-map: Mapnik XML, MapProxy and nginx config
    build_tiles(node, children, layers, dsn, out, settings.resolve(settings.data_dir),
                child_key=child_key, compositions=comps)
    write_nginx_key_conf(out, node.auth.public_requires_key)
    runtime = NodeRuntime(
        directory=str(out), server=server_section(node), database=DatabaseSection(dsn=dsn),
        layers=layers, tiles=node.tile_cache, auth=auth,
        registry=registry_section(settings, node), publish=node.publish, halls=node.halls,
        cadastre=node.cadastre, providers=PROVIDERS,
        analysis=node.analysis.model_copy(update={"dem": node_dem(
            node.id, settings.resolve(settings.data_dir), node.analysis.dem)}),
        compositions=[CompositionRef(id=c["id"], title=c["title"]) for c in comps],
        supply=supply_section(settings, node, layers, out, auth))
    runtime.write()  # mode 600: holds the database password and the client secret
    sync_local_services(runtime, *full_config(out, dsn, runtime))
    write_demo_key(out, demo_file(settings))  # the SDK docs' live examples (issue 14)
    hand_to_run_user(out)
    return out


def hand_to_run_user(ndir: Path) -> None:
    """The node's directory is its user's alone: 0700, everything in it owned by the user that
    runs the node (it writes caches, logs and published configs there; secrets are 0600)."""
    os.chmod(ndir, 0o700)
    # made now (owned by the node's user), so what root's own tools put there later (an
    # in-process publish) stays removable by the node
    for d in ("publish-tmp", "rasters"):
        (ndir / d).mkdir(exist_ok=True)
    user = privileges.run_user()
    if user is not None:
        privileges.own_tree(ndir, user)


def supply_section(settings: FederationSettings, node: NodeSettings,
                   layers: list[LayerSettings], out: Path, auth: AuthSection) -> SupplySection:
    """What the node sends to its parent and takes from its children (issue 18), and its
    signing key, registered at the main node when it supplies anything. A link whose parent
    layer would be less protected than this node's configured layer is refused here."""
    levels = {layer.id: layer.access for layer in layers}
    for link in node.supply:
        own = levels.get(link.layer)
        if own is not None and ACCESS_ORDER[link.access] < ACCESS_ORDER[own]:
            why = (f"the parent's layer would be {link.access}, less protected than this "
                   f"node's {own} layer {link.layer!r}")
            raise ConfigError([(str(settings.config_dir), f"{node.id}.supply.{link.layer}", why)])
    outgoing = []
    if node.supply:
        assert node.parent is not None  # check_references
        parent = settings.node(node.parent)
        outgoing = [SupplyOut(link=link, parent=parent.id, parent_url=parent.base_url)
                    for link in node.supply]
    # reference layers this node pushes down to descendants holding copies of them
    outgoing += [SupplyOut(link=ref.as_supply(), parent=other.id, parent_url=other.base_url)
                 for other in settings.nodes for ref in other.reference if ref.source == node.id]
    if outgoing:
        supply_keys.register(auth, supply_keys.node_key(out / supply_keys.KEY_FILE))

    def extent(n: NodeSettings) -> tuple[float, float, float, float]:
        return (n.extent.minx, n.extent.miny, n.extent.maxx, n.extent.maxy)

    incoming = [SupplyIn(link=link, child=child.id, area_code=child.area_code,
                         extent=extent(child))
                for child in settings.children(node.id) for link in child.supply]
    incoming += [SupplyIn(link=ref.as_supply(), child=ref.source,
                          extent=extent(settings.node(ref.source)))
                 for ref in node.reference]
    return SupplySection(out=outgoing, incoming=incoming,
                         key_file=str(out / supply_keys.KEY_FILE) if outgoing else "")
