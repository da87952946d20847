"""`geoplat registry ...`: register external services, review them, show the health tree."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from geoplat_settings import NodeView
from services.db import Database
from services.registry.db import SERVICE_TYPES, ensure_schema
from services.registry.external import BadURL
from services.registry.health import push_state
from services.registry.review import decide, listing, register_external
from tiles.errors import ProblemError


def _context(args: argparse.Namespace, load: Callable,
             node_dsn: Callable, node_view: Callable) -> tuple[Database, NodeView]:
    settings = load(args)
    _, dsn = node_dsn(args, args.node)  # RuntimeError for an unknown node
    node = settings.node(args.node)
    ensure_schema(dsn)
    return Database(dsn, maxconn=1), node_view(settings, node)


def _print(rec: dict[str, Any]) -> None:
    print(f"{rec['id']:28} {rec['status']:9} {rec['type']:16} {rec['health']:8} {rec['title']}  "
          f"{rec['url']}")


def add_commands(sub: Any, load: Callable, node_dsn: Callable, node_view: Callable) -> None:
    """`load(args)` gives the federation settings, `node_dsn(args, id)` (id, database URL),
    `node_view(settings, node)` the node's `NodeView` (nodes/build.py)."""
    reg = sub.add_parser("registry", help="service registry: register and review services")
    rsub = reg.add_subparsers(dest="registry_command", required=True)

    def cmd_register(args: argparse.Namespace) -> int:

        db, view = _context(args, load, node_dsn, node_view)
        try:
            rec = register_external(
                db, view, args.url, wanted=args.type, title=args.title,
                description=args.description, access=args.access, actor=args.actor)
        except ProblemError as exc:
            print(f"geoplat: {exc.title}: {exc.detail}", file=sys.stderr)
            return 2 if isinstance(exc, BadURL) else 1  # 2: the input itself is malformed
        _print(rec)
        print(f"pending review: geoplat registry approve {rec['id']} --node {args.node}")
        return 0

    def cmd_decide(args: argparse.Namespace) -> int:

        db, view = _context(args, load, node_dsn, node_view)
        try:
            rec = decide(db, view, args.id, args.registry_command, actor=args.actor)
        except ProblemError as exc:
            print(f"geoplat: {exc.title}: {exc.detail}", file=sys.stderr)
            return 1
        _print(rec)
        return 0

    def cmd_list(args: argparse.Namespace) -> int:

        db, view = _context(args, load, node_dsn, node_view)
        rows = listing(db, view.server.id, args.status)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        for rec in [] if args.json else rows:
            _print(rec)
        return 0

    r = rsub.add_parser("register", help="register an external service (stays pending)")
    r.add_argument("url")
    r.add_argument("--node", required=True, help="the node of the service's area")
    r.add_argument("--type", choices=SERVICE_TYPES[:-1])
    r.add_argument("--title")
    r.add_argument("--description")
    r.add_argument("--access", default="public", choices=["public", "registered", "restricted"])
    r.add_argument("--actor", default="cli", help="name recorded in the audit log")
    r.set_defaults(func=cmd_register)
    for action in ("approve", "reject", "retire"):
        d = rsub.add_parser(action, help=f"{action} an external service, or a published "
                                         "layer's pending record (audited)")
        d.add_argument("id")
        d.add_argument("--node", required=True)
        d.add_argument("--actor", default="cli")
        d.set_defaults(func=cmd_decide)
    ls = rsub.add_parser("list", help="external services registered at a node, and published "
                                      "layers' records awaiting review")
    ls.add_argument("--node", required=True)
    ls.add_argument("--status", choices=["pending", "approved", "rejected", "retired"])
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def print_tree(tree: dict[str, Any], indent: int = 0) -> None:
    """The health tree as `geoplat status` shows it (lines start with '-': not node rows)."""
    services = ", ".join(f"{k}={v}" for k, v in sorted(tree.get("services", {}).items()))
    latency = tree.get("latency_ms")
    ms = f"{round(latency)} ms" if latency is not None else "-"
    print(f"{'  ' * indent}- {tree['id']} health={tree.get('health', '?')} latency={ms} "
          f"services: {services or '-'}")
    for child in tree.get("children", []):
        print_tree(child, indent + 1)


def push_lines(node_id: str, parent: str | None, dsn: str) -> list[str]:
    """`geoplat status` lines on a node's upward federation: parked, refused, failing pushes."""
    import psycopg2


    try:
        state = push_state(Database(dsn, maxconn=1), parent, details=True)
    except psycopg2.Error:  # database down, or a node that never started: nothing to say
        return []
    lines = []
    if state["parked"]:
        n, last = state["parked"], state["recent"][0]
        lines.append(f"- {node_id} push to {parent}: {n} change{'s' * (n > 1)} refused by the "
                     f"parent and parked (not sent again); latest: {last['record_id']}: "
                     f"{last['reason']}")
    if state["refused_from_children"]:
        n, last = state["refused_from_children"], state["recent_refused_from_children"][0]
        lines.append(f"- {node_id} refused {n} change{'s' * (n > 1)} from its children; latest: "
                     f"{last['peer']} {last['record_id']}: {last['reason']}")
    if state["failing_since"]:
        lines.append(f"- {node_id} push to {parent} failing since {state['failing_since']} "
                     f"({state['pending']} waiting): {state['error']}")
    return lines
