"""`geoplat layers publish|versions|rollback|retire|list`, registered by nodes/cli.py.

The commands work on a node built at least once (`geoplat up`): its runtime file
(`var/nodes/<id>/node.json`) names the database and access levels; the limits are the config's. Running nodes pick the change up by themselves.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from geoplat_settings import RUNTIME_FILE, NodeRuntime
from layers.errors import PublishError

if TYPE_CHECKING:
    # lazy: each command loads only what it needs (CLI start-up)
    from layers.publish import NodeContext


Context = Callable[[NodeRuntime, Path], "NodeContext"]


def _publishing() -> ModuleType:
    # imported when a layers command runs, not with the CLI: it loads pandas, shapely, GDAL
    # lazy: each command loads only what it needs (CLI start-up)
    import layers.publish

    return layers.publish


def _field_rules() -> ModuleType:
    import layers.field_rules

    return layers.field_rules


def add_commands(sub: Any, load: Callable[[argparse.Namespace], Any],
                 node_dir: Callable[[Any, Any], Path], context: Context) -> None:
    """Add the `layers` command group to the `geoplat` subparsers; `context` makes the
    publishing context of a built node (with the hooks the app injects: nodes/publishing.py)."""
    lay = sub.add_parser("layers", help="publish layers: publish, list, versions, rollback, retire")
    lsub = lay.add_subparsers(dest="layers_command", required=True)

    p = lsub.add_parser("publish", help="validate, load and serve a file as a layer")
    # not "file": nodes/cli.py reads a `file` argument as the config file
    p.add_argument("source", metavar="FILE",
                   help="zipped Shapefile, GeoPackage, GeoJSON, CSV (lon/lat) or GeoTIFF")
    p.add_argument("--node", required=True)
    p.add_argument("--name", required=True, help="layer id (lowercase identifier)")
    p.add_argument("--title")
    p.add_argument("--access", choices=["public", "registered", "restricted"], default="public")
    p.add_argument("--crs", help="source CRS when the file declares none, e.g. EPSG:4549")
    p.add_argument("--keywords", help="comma separated")
    p.add_argument("--layer", help="GeoPackage layer to publish")
    p.add_argument("--all-layers", action="store_true", help="publish every GeoPackage layer")
    p.add_argument("--emap", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the layer on the node's e-map (vec) and offer it as a WMS layer; "
                        "public layers only (default: off, or as the previous version)")
    p.add_argument("--places", help="how it feeds place search: JSON of a mapping, e.g. "
                   "'{\"kind\": \"poi\", \"name\": \"mc\"}', or none / default (a point "
                   "layer with a name column gives POIs)")
    p.add_argument("--field-access", help="attributes stricter than the layer, e.g. "
                   "'right_holder=restricted,right_type=restricted' (hidden on every surface "
                   "from callers below; none: no rule; default: as the previous version)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda a: cmd_publish(a, _ctx(a, load, node_dir, context)))

    ls = lsub.add_parser("list", help="published layers of a node")
    ls.add_argument("--node", required=True)
    ls.set_defaults(func=lambda a: _print(_run(lambda: _publishing()
                                                .list_layers(_ctx(a, load, node_dir, context)))))

    v = lsub.add_parser("versions", help="kept versions of a layer")
    v.add_argument("name")
    v.add_argument("--node", required=True)
    v.set_defaults(func=lambda a: _print(_run(lambda: _publishing()
                                               .versions(_ctx(a, load, node_dir, context), a.name))))

    r = lsub.add_parser("rollback", help="serve an earlier version again")
    r.add_argument("name")
    r.add_argument("--node", required=True)
    r.add_argument("--version", type=int, help="default: the version before the current one")
    r.set_defaults(func=lambda a: _print(_run(lambda: _publishing().rollback(
        _ctx(a, load, node_dir, context), a.name, a.version, actor=_actor()))))

    t = lsub.add_parser("retire", help="stop serving a layer (versions kept unless --purge)")
    t.add_argument("name")
    t.add_argument("--node", required=True)
    t.add_argument("--purge", action="store_true", help="also drop every kept version")
    t.set_defaults(func=lambda a: _print(_run(lambda: _publishing().retire(
        _ctx(a, load, node_dir, context), a.name, actor=_actor(), purge=a.purge))))


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _ctx(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any],
         node_dir: Callable[[Any, Any], Path], context: Context) -> NodeContext:
    settings = load(args)
    try:
        node = settings.node(args.node)
    except KeyError:
        raise SystemExit(f"geoplat: unknown node {args.node!r}") from None
    ndir = node_dir(settings, node)
    if not (ndir / RUNTIME_FILE).exists():
        raise SystemExit(f"geoplat: node {node.id} was never built; run `geoplat up` once first")
    runtime = NodeRuntime.load(ndir).model_copy(update={"publish": node.publish})  # as now
    return context(runtime, ndir)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PublishError as exc:
        print(f"geoplat: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"geoplat: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        import psycopg2

        if isinstance(exc, psycopg2.OperationalError):
            print("geoplat: the node database is not reachable (is the federation up?)",
                  file=sys.stderr)
            raise SystemExit(1) from None
        raise


def _print(value: Any) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_publish(args: argparse.Namespace, ctx: Any) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    publish = _publishing().publish
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"{ctx.id}.{args.name}: checking", total=None)

        def progress(stage: str, done: int | None, total: int | None) -> None:
            bar.update(task, description=f"{ctx.id}.{args.name}: {stage}", total=total,
                       completed=done or 0)

        keywords = [k.strip() for k in (args.keywords or "").split(",") if k.strip()]
        results = _run(lambda: publish(ctx, Path(args.source), args.name, title=args.title,
                                       access=args.access, crs=args.crs, keywords=keywords,
                                       layer=args.layer, all_layers=args.all_layers,
                                       actor=_actor(), progress=progress, emap=args.emap,
                                       places=_publishing().parse_places(args.places),
                                       field_access=_field_rules().parse_field_access(
                                           args.field_access)))
    if args.json:
        return _print([r.as_dict() for r in results])
    for r in results:
        rep = r.report
        print(f"{ctx.id}.{r.name}: version {r.version}, {r.feature_count} features, "
              f"bbox {', '.join(f'{b:.6f}' for b in r.bbox)}")
        if rep.get("repaired"):
            print(f"  repaired {rep['repaired']} invalid geometries (e.g. ids "
                  f"{', '.join(rep['repaired_examples'])})")
        if rep.get("dropped_empty"):
            print(f"  dropped {rep['dropped_empty']} empty geometries (e.g. ids "
                  f"{', '.join(rep['dropped_examples'])})")
        for k, url in r.urls.items():
            print(f"  {k}: {url}")
    return 0
