"""The `geoplat` command: up, down, status, load, config validate/schema."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from nodes import settings as settings_mod
from nodes.settings import ConfigError


def _load(args: argparse.Namespace) -> settings_mod.FederationSettings:
    if getattr(args, "_settings", None) is None:  # read once
        args._settings = settings_mod.load(args.config)
    return args._settings


# Commands that write into var/nodes/<id> (caches, published layers): as root they run as the
# node's user, so what they create stays usable by the running node.
_AS_RUN_USER = {"layers", "tiles"}


def _as_run_user(args: argparse.Namespace) -> int | None:
    """As root, run a var-writing command as the run user in a forked child; its exit code.

    The settings are read first, as root (the config may be readable by root only); the child
    drops privileges for good and runs the command. A child, not a drop of this process:
    `main()` may be called in-process (tests, scripts) and must leave its caller as it was.
    None: run here (not root, or not such a command).
    """
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import privileges

    if args.command not in _AS_RUN_USER:
        return None
    user = privileges.run_user()  # raises (run `make install`) as root without the user
    if user is None:
        return None
    _load(args)
    source = Path(getattr(args, "source", None) or "")
    staged = None
    if getattr(args, "layers_command", None) == "publish" and source.is_file():
        staged = privileges.stage_for(user, source)  # root may read what the user cannot
        args.source = str(staged)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            os.setpgid(0, 0)  # a Ctrl-C reaches it once, forwarded by the parent
            privileges.drop_self(user)
            code = _run(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    forward = signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except KeyboardInterrupt:  # the child rolls back its work, then ends
                os.kill(pid, signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, forward)
        if staged is not None:
            shutil.rmtree(staged.parent, ignore_errors=True)


def cmd_up(args: argparse.Namespace) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import supervisor

    s = _load(args)
    procs, started_cluster = supervisor.up(s, only=args.node or None)
    if args.detach:
        print("all nodes healthy; stop them with: geoplat down")
        return 0
    return supervisor.foreground(s, procs, stop_cluster=started_cluster)


def cmd_down(args: argparse.Namespace) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import supervisor

    supervisor.down(_load(args), stop_cluster=not args.keep_db)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import federation, supervisor

    s = _load(args)
    running = supervisor.running_nodes(s)
    rows = []
    worst = 0
    for node in s.nodes:
        h = supervisor.health(node) if node.id in running else None
        status = h.get("status", "down") if h else ("down" if node.id in running else "stopped")
        checks = ", ".join(f"{k}={v.get('status')}" for k, v in (h or {}).get("checks", {}).items())
        queue = supervisor.analysis_workers(s, node) if node.id in running else None
        rows.append({"node": node.id, "tier": node.tier, "url": node.base_url, "status": status,
                     "checks": (h or {}).get("checks", {}), "analysis_workers": queue})
        if not args.json:
            print(f"{node.id:10} {node.tier:4} {status:8} {node.base_url:28} {checks}")
            for w in queue or []:  # the node's RQ workers (services/analysis/pool.py)
                line = f"{'':10} {'':4} {w['state']:8} analysis worker {w['index']}"
                line += f" pid {w['pid']}" if w["state"] == "up" else f" ({w['last_exit']})"
                print(line + (f", restarted {w['restarts']}x" if w["restarts"] else ""))
        worst = max(worst, 0 if status == "ok" else 1)
        if any(w["state"] != "up" for w in queue or []):
            worst = 1
    if federation.needs_cluster(s):
        cluster = federation.managed_cluster(s)
        pg = "running" if cluster.is_running() else "stopped"
        if not args.json:
            print(f"{'postgis':10} {'':4} {pg:8} {cluster.host}:{cluster.port}")
    main = next(n for n in s.nodes if n.tier == "main")
    tree = _health_tree(main) if main.id in running and not args.json else None  # issue 5
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif tree:
        # lazy: each command loads only what it needs (CLI start-up)
        from services.registry.cli import print_tree

        print("federation health (registry of the main node):")
        print_tree(tree)
    if not args.json:  # issue 11: changes a parent refused are parked; say so
        # lazy: each command loads only what it needs (CLI start-up)
        from services.registry.cli import push_lines

        for node in s.nodes:
            if node.id in running:
                for line in push_lines(node.id, node.parent, federation.node_dsn(s, node)):
                    print(line)
    return worst


def _health_tree(node: settings_mod.NodeSettings) -> dict | None:
    import httpx

    try:
        return httpx.get(f"{node.base_url}/registry/api/health", timeout=3.0).json()["tree"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def cmd_load(args: argparse.Namespace) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import federation

    s = _load(args)
    if federation.needs_cluster(s):
        federation.managed_cluster(s).start()
    for node in s.nodes:
        if args.node and node.id not in args.node:
            continue
        for r in federation.load_node_layers(s, node, force=args.force):
            state = "unchanged" if r.skipped else "loaded"
            print(f"{node.id}.{r.id}: {r.feature_count} features {state}")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    """Syntax, schema, cross-references, layer files, then a trial build of pygeoapi configs."""
    try:
        s = _load(args)
        problems: list[tuple[str, str, str]] = []
        for node in s.nodes:
            try:
                settings_mod.load_layers(s, node)
            except ConfigError as exc:
                problems += exc.problems
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        for f, key, msg in exc.problems:
            print(f"{f}: {key}: {msg}", file=sys.stderr)
        return 1
    print(f"{args.config or settings_mod.DEFAULT_CONFIG}: ok ({len(s.nodes)} nodes)")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes.schema import write_schemas

    for path in write_schemas(Path(args.out) if args.out else None):
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geoplat", description=__doc__)
    p.add_argument("--config", help="federation config (default config/federation.yml or $GEOPLAT_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="load data and serve the federation")
    up.add_argument("--detach", action="store_true", help="return once every node is healthy")
    up.add_argument("--node", action="append", help="only this node (repeatable)")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the nodes and the managed PostGIS")
    down.add_argument("--keep-db", action="store_true", help="leave the managed PostGIS running")
    down.set_defaults(func=cmd_down)

    st = sub.add_parser("status", help="show each node and component")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    ld = sub.add_parser("load", help="load (or confirm) the sample layers of nodes")
    ld.add_argument("--node", action="append")
    ld.add_argument("--force", action="store_true", help="reload even when unchanged")
    ld.set_defaults(func=cmd_load)

    cfg = sub.add_parser("config", help="configuration tools")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    v = csub.add_parser("validate", help="check a federation config")
    v.add_argument("file", nargs="?", help="config file (default: --config or config/federation.yml)")
    v.set_defaults(func=cmd_config_validate)
    sc = csub.add_parser("schema", help="write JSON Schemas of the config files")
    sc.add_argument("--out", help="directory (default config/schema)")
    sc.set_defaults(func=cmd_config_schema)

    # lazy: each command loads only what it needs (CLI start-up)
    from nodes.build import node_view

    # lazy: each command loads only what it needs (CLI start-up)
    from nodes.pygeoapi_config import node_dir
    from tiles.cli import add_commands as add_tiles_commands  # tiles seed|clean (issue 3)

    add_tiles_commands(sub, _load, node_dir)
    from layers.cli import add_commands as add_layers_commands  # layers publish|... (issue 6)

    add_layers_commands(sub, _load, node_dir, _publish_context)

    from services.analysis.cli import add_commands as add_analysis_commands  # issue 17

    add_analysis_commands(sub, _load, node_dir)
    from services.supply.cli import add_commands as add_supply_commands  # issue 18

    add_supply_commands(sub, _load, node_dir, _publish_context)
    from services.cli import add_commands  # users, grants, audit, sso (issue 4)

    add_commands(sub, _node_dsn)
    from services.registry.cli import add_commands as add_registry_commands  # issue 5

    add_registry_commands(sub, _load, _node_dsn, node_view)
    return p


def _publish_context(runtime: Any, ndir: Path) -> Any:
    # imported when a layers command runs, not with the CLI: it loads pandas, shapely, GDAL
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes.publishing import publish_context

    return publish_context(runtime, ndir)


def _node_dsn(args: argparse.Namespace, node_id: str | None) -> tuple[str, str]:
    """(id, database URL) of a node, default the main node: for the services commands."""
    # lazy: each command loads only what it needs (CLI start-up)
    from nodes import federation

    s = _load(args)
    try:
        node = s.node(node_id) if node_id else next(n for n in s.nodes if n.tier == "main")
    except KeyError:
        raise RuntimeError(f"unknown node {node_id!r}") from None
    return node.id, federation.node_dsn(s, node)


def _run(args: argparse.Namespace, command: Any = None) -> int:
    """`command(args)` (default: the parsed subcommand) with errors as messages and exit codes."""
    try:
        return (command or args.func)(args)
    except ConfigError as exc:
        for f, key, msg in exc.problems:
            print(f"{f}: {key}: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"geoplat: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    code = _as_run_user(args)
    return args.func(args) if code is None else code


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "file", None):
        args.config = args.file
    return _run(args, _dispatch)


if __name__ == "__main__":
    sys.exit(main())
