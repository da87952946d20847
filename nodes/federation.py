"""Preparing a federation's databases: the managed cluster, one database per node, sample data."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from layers.load import LayerSpec, LoadResult, load_layer
from nodes.postgres import Cluster, PostgresError, ensure_postgis
from nodes.settings import FederationSettings, LayerSettings, NodeSettings, load_layers
from services.maps import items, topology
from services.places import gazetteer
from services.places.gazetteer import BuildResult


def managed_cluster(settings: FederationSettings, *, fast: bool = False) -> Cluster:
    pg = settings.postgres
    return Cluster(data_dir=settings.resolve(pg.data_dir), port=pg.port, host=pg.host, fast=fast)


def needs_cluster(settings: FederationSettings) -> bool:
    return any(n.database_url is None for n in settings.nodes)


def node_database(node: NodeSettings) -> str:
    """Name of the node's database in the managed cluster, and of the role owning it."""
    return f"geoplat_{node.id}"


def node_dsn(settings: FederationSettings, node: NodeSettings) -> str:
    """The node's database: its own `database_url`, or `geoplat_<id>` in the managed cluster,
    as the node's own role (never the superuser)."""
    if node.database_url:
        return node.database_url
    name = node_database(node)
    try:
        return managed_cluster(settings).role_dsn(name, name)
    except PostgresError as exc:
        raise RuntimeError(f"node {node.id}: {exc}") from None


def ensure_node_database(settings: FederationSettings, node: NodeSettings) -> str:
    """Create what the node's database needs (role, database, extensions); its URL."""
    if node.database_url:
        ensure_postgis(node.database_url)  # a no-op when an admin created them (README)
        return node.database_url
    name = node_database(node)
    return managed_cluster(settings).ensure_node_role(name, name)


def layer_spec(settings: FederationSettings, layer: LayerSettings) -> LayerSpec:
    path = Path(layer.file)
    if not path.is_absolute():
        path = settings.resolve(settings.data_dir) / path
    return LayerSpec(id=layer.id, title=layer.title, path=path, geometry_type=layer.geometry_type,
                     source_layer=layer.source_layer, id_column=layer.id_column)


def load_node_layers(settings: FederationSettings, node: NodeSettings, *, force: bool = False,
                     show_progress: bool = True) -> list[LoadResult]:
    """Load (or confirm unchanged) every layer of a node, with a progress bar per layer."""
    dsn = ensure_node_database(settings, node)
    results = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not show_progress or not sys.stderr.isatty(),
                  transient=False) as progress:
        for layer in load_layers(settings, node):
            task = progress.add_task(f"{node.id}.{layer.id}", total=None)

            def advance(n: int, t: TaskID = task) -> None:
                progress.advance(t, n)

            def set_total(total: int, t: TaskID = task) -> None:
                progress.update(t, total=total)

            res = load_layer(dsn, layer_spec(settings, layer), force=force, progress=advance,
                             on_total=set_total)
            progress.update(task, total=res.feature_count, completed=res.feature_count,
                            description=f"{node.id}.{layer.id}" + (" (unchanged)" if res.skipped else ""))
            results.append(res)
        build_gazetteer(settings, node, dsn, progress=progress, force=force)
        build_topology(settings, node, dsn, progress=progress, force=force)
        load_items(settings, node, dsn)
    return results


def load_items(settings: FederationSettings, node: NodeSettings, dsn: str) -> dict[str, object]:
    """The node's sample service items and offices (services/maps/items.py), after the
    gazetteer (the offices are its POIs); a catalogue a publisher uploaded is kept."""
    h = node.halls
    data = settings.resolve(settings.data_dir)

    def path(name: str | None) -> Path | None:
        return None if name is None else (Path(name) if Path(name).is_absolute() else data / name)

    return items.load_sample(dsn, path(h.items_file), path(h.offices_file), h.poi_layer)


def build_topology(settings: FederationSettings, node: NodeSettings, dsn: str, *,
                   progress: Progress | None = None, force: bool = False
                   ) -> topology.BuildResult:
    """The node's routing network from its road layers just loaded (services/maps)."""
    task = progress.add_task(f"{node.id}.routing", total=None) if progress else None
    res = topology.build(dsn, node.id, load_layers(settings, node), force=force)
    if progress is not None and task is not None:
        progress.update(task, total=1, completed=1, description=f"{node.id}.routing" + (
            " (unchanged)" if res.unchanged else f" {res.edges} edges"))
    return res


def build_gazetteer(settings: FederationSettings, node: NodeSettings, dsn: str, *,
                    progress: Progress | None = None, force: bool = False) -> BuildResult:
    """The node's place names and addresses from its layers just loaded (services/places)."""
    task = progress.add_task(f"{node.id}.gazetteer", total=None) if progress else None

    def step(name: str, done: int, total: int | None) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=f"{node.id}.gazetteer: {name}", completed=done,
                            total=total)

    res = gazetteer.build(dsn, node.id, load_layers(settings, node),
                          area_code=getattr(node, "area_code", None), progress=step, force=force)
    if progress is not None and task is not None:
        n = sum(res.counts.values())
        progress.update(task, total=n or 1, completed=n or 1,
                        description=f"{node.id}.gazetteer" + (" (unchanged)" if res.unchanged
                                                              else f" {res.counts}"))
    return res
