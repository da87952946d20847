"""`geoplat supply send|list|show|accept|reject|status --node N` (issue 18): the operator's
side of data supply, on the node's host (its database, as `geoplat layers publish`)."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_commands(sub: Any, load: Callable[[argparse.Namespace], Any],
                 node_dir: Callable[[Any, Any], Path],
                 context: Callable[[Any, Path], Any]) -> None:
    s = sub.add_parser("supply", help="data supply between tiers: change-sets up to the parent")
    ssub = s.add_subparsers(dest="supply_command", required=True)

    def command(name: str, help_text: str, func: Callable[..., int]) -> argparse.ArgumentParser:
        p = ssub.add_parser(name, help=help_text)
        p.add_argument("--node", required=True)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=lambda args: func(args, *_node(args, load, node_dir, context)))
        return p

    p = command("send", "build the change-sets due now and send them to the parent", cmd_send)
    p.add_argument("--layer", help="only this supplying layer")
    p = command("list", "the change-sets this node received from its children", cmd_list)
    p.add_argument("--state", choices=["pending", "conflict", "accepted", "rejected"])
    p = command("show", "one change-set this node received (its problems too)", cmd_show)
    p.add_argument("id")
    p = command("accept", "apply a pending change-set: a new version of the layer", cmd_accept)
    p.add_argument("id")
    p = command("reject", "refuse a pending change-set, with a reason", cmd_reject)
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    command("status", "per supply link: versions sent and accepted, change-sets waiting",
            cmd_status)


def _node(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any],
          node_dir: Callable[[Any, Any], Path], context: Callable[[Any, Path], Any]
          ) -> tuple[Any, Any]:
    from geoplat_settings import NodeRuntime

    settings = load(args)
    try:
        node = settings.node(args.node)
    except KeyError:
        raise RuntimeError(f"unknown node {args.node!r}") from None
    ndir = node_dir(settings, node)
    if not (ndir / "node.json").exists():
        raise RuntimeError(f"node {args.node} was never built here (geoplat up)")
    runtime = NodeRuntime.load(ndir)
    return runtime, context(runtime, ndir)


def _print(args: argparse.Namespace, value: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    else:
        print("\n".join(lines))


def _counts(c: Any) -> str:
    c = c or {}
    return f"+{c.get('insert', 0)} ~{c.get('update', 0)} -{c.get('delete', 0)}"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_send(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import outbox

    if not runtime.supply.out:
        raise RuntimeError(f"node {runtime.server.id} supplies no layer to a parent "
                           "(supply: in config/federation.yml)")
    made = outbox.build_due(ctx, runtime, only=args.layer)
    sender = outbox.Sender(ctx, runtime)
    sent = sender.flush()
    sent.update(sender.poll())
    rows = [r for r in outbox.outbox_listing(ctx) if r["id"] in sent or r["id"] in made]
    _print(args, {"built": made, "sent": sent, "changesets": rows},
           [f"{r['id']}  {r['layer']} v{r['new_version']} -> {r['parent']}.{r['parent_layer']}"
            f"  {_counts(r['counts'])}  {r['state']}"
            + (f"  ({r['last_error']})" if r["last_error"] else "") for r in rows]
           or ["nothing to send: every supplying layer's version was sent"])
    return 0 if all(r["state"] != "refused" for r in rows) else 1


def cmd_list(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import inbox

    rows = inbox.listing(ctx, args.state)
    _print(args, rows, [f"{r['id']}  {r['child']}.{r['layer']} v{r['new_version']} -> "
                        f"{r['parent_layer']}  {_counts(r['counts'])}  {r['state']}"
                        for r in rows] or ["no change-sets"])
    return 0


def cmd_show(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import inbox

    row = inbox.show(ctx, args.id)
    head = (f"{row['id']}: {row['child']}.{row['layer']} v{row['base_version']} -> "
            f"v{row['new_version']} into {row['parent_layer']}: {row['state']}")
    lines = [head, f"  {_counts(row['manifest'].get('counts'))}, received {row['received_at']}"]
    lines += [f"  {p.get('rule')}: {p.get('message')}" for p in row["problems"]]
    if row.get("reason"):
        lines.append(f"  reason: {row['reason']}")
    _print(args, row, lines)
    return 0


def _link(runtime: Any, ctx: Any, row: dict[str, Any]) -> Any:
    from services.supply import inbox
    from services.supply.keys import KeyDirectory

    found = runtime.supply.incoming_link(row["child"], row["layer"])
    if found is None:
        raise RuntimeError(f"node {runtime.server.id} no longer takes {row['layer']} from "
                           f"{row['child']}")
    return inbox.LinkCache(ctx, runtime.layers, KeyDirectory(runtime.auth.main_url)).get(found)


def cmd_accept(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import inbox

    row = inbox.show(ctx, args.id)
    try:
        out = inbox.accept(ctx, _link(runtime, ctx, row), args.id, actor=_actor())
    except inbox.SupplyRefused as exc:
        print(exc.message)
        for p in exc.problems:
            print(f"  {p.rule}: {p.message}")
        return 1
    done = f"{out['id']}: accepted, {out['parent_layer']} is now version {out['applied_version']}"
    _print(args, out, [done])
    return 0


def cmd_reject(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import inbox

    out = inbox.reject(ctx, args.id, actor=_actor(), reason=args.reason)
    _print(args, out, [f"{out['id']}: rejected ({out['reason']})"])
    return 0


def cmd_status(args: argparse.Namespace, runtime: Any, ctx: Any) -> int:
    from services.supply import status

    st = status.node_status(ctx, runtime.supply)
    lines = []
    for s in st["sends"]:
        last = s["last"] or {}
        lines.append(f"sends {s['layer']} -> {s['parent']}.{s['parent_layer']}: accepted "
                     f"v{s['accepted_version']}, built v{s['built_version']}, "
                     + ", ".join(f"{k} {v}" for k, v in sorted(s["changesets"].items()))
                     + (f"; last error: {last['last_error']}" if last.get("last_error") else ""))
    for r in st["receives"]:
        lines.append(f"takes {r['child']}.{r['layer']} -> {r['parent_layer']}: accepted "
                     f"v{r['accepted_version']}, "
                     + ", ".join(f"{k} {v}" for k, v in sorted(r["changesets"].items()))
                     + (" (auto-accept)" if r["auto_accept"] else ""))
    _print(args, st, lines or [f"node {st['node']} has no supply links"])
    return 0
