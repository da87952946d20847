"""`geoplat users ...`, `geoplat grants ...`, `geoplat audit ...`, `geoplat sso ...`.

Registered into the `geoplat` parser by nodes/cli.py; `resolve(args, node_id)` gives
(node id, database URL) of a node, or of the main node when node_id is None.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from services.access import audit  # accounts, grants, signing: imported where used (start-up)
from services.db import Database, ensure_schema
from services.errors import AuthError
from services.sso import registration

Resolver = Callable[[argparse.Namespace, str | None], tuple[str, str]]


def _actor() -> str:
    return "cli:" + (os.environ.get("SUDO_USER") or getpass.getuser())


def _db(args: argparse.Namespace, resolve: Resolver, node: str | None = None,
        main: bool = False) -> tuple[str, Database]:
    node_id, dsn = resolve(args, node)
    ensure_schema(dsn, main=main)
    return node_id, Database(dsn, maxconn=1)


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for r in rows:
        print("  ".join(str(r.get(c, "")) if r.get(c) is not None else "-" for c in columns))


def add_commands(sub: Any, resolve: Resolver) -> None:
    users = sub.add_parser("users", help="accounts at the main node")
    us = users.add_subparsers(dest="users_command", required=True)
    p = us.add_parser("list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: cmd_users_list(a, resolve))
    p = us.add_parser("add", help="create an account (password from --password-stdin or prompt)")
    p.add_argument("username")
    p.add_argument("--email", default="")
    p.add_argument("--role", action="append", default=[],
                   help="developer, or NODE:publisher / NODE:admin (repeatable)")
    p.add_argument("--platform-admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=lambda a: cmd_users_add(a, resolve))
    for name, helptext in (("unlock", "clear a login lockout"), ("disable", "disable an account")):
        p = us.add_parser(name, help=helptext)
        p.add_argument("username")
        p.set_defaults(func=lambda a, n=name: cmd_users_flag(a, resolve, n))
    p = us.add_parser("role", help="give a role")
    p.add_argument("username")
    p.add_argument("role")
    p.set_defaults(func=lambda a: cmd_users_role(a, resolve))

    gr = sub.add_parser("grants", help="access grants for restricted layers, at a node")
    gs = gr.add_subparsers(dest="grants_command", required=True)
    p = gs.add_parser("list")
    p.add_argument("--node", required=True)
    p.add_argument("--status", choices=["pending", "approved", "rejected", "revoked"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: cmd_grants_list(a, resolve))
    for action in ("approve", "reject", "revoke"):
        p = gs.add_parser(action)
        p.add_argument("grant_id", type=int)
        p.add_argument("--node", required=True)
        if action == "approve":
            p.add_argument("--days", type=float, default=365)
            p.add_argument("--expires-at")
        p.set_defaults(func=lambda a, act=action: cmd_grants_decide(a, resolve, act))

    au = sub.add_parser("audit", help="the append-only audit trail of a node")
    au.add_argument("--node", help="default: the main node")
    au.add_argument("--event", help="e.g. login.fail, registration, grant.approve, key.create")
    au.add_argument("--actor")
    au.add_argument("--since", help="ISO timestamp")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--usage", action="store_true", help="per-key usage counts instead")
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=lambda a: cmd_audit(a, resolve))

    sso = sub.add_parser("sso", help="the sign-on centre at the main node")
    ss = sso.add_subparsers(dest="sso_command", required=True)
    p = ss.add_parser("rotate-key", help="new token signing key; old keys stay in the JWKS")
    p.add_argument("--retire-days", type=float,
                   help="also retire (unpublish) keys older than this many days")
    p.set_defaults(func=lambda a: cmd_rotate(a, resolve))
    p = ss.add_parser("initial-token",
                      help="an initial access token a node provisions itself with (issue 12)")
    p.add_argument("--node", required=True, help="the node it is for (and only for)")
    p.add_argument("--hours", type=float, default=registration.DEFAULT_TOKEN_HOURS,
                   help="how long it is valid (default %(default)g)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: cmd_initial_token(a, resolve))
    p = ss.add_parser("initial-tokens", help="list initial access tokens (never their values)")
    p.add_argument("--node")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: cmd_initial_tokens(a, resolve))
    p = ss.add_parser("revoke-initial-token", help="revoke an initial access token by its id")
    p.add_argument("token_id")
    p.set_defaults(func=lambda a: cmd_revoke_initial_token(a, resolve))


def _guard(func: Callable[[], int]) -> int:
    try:
        return func()
    except AuthError as exc:
        detail = exc.extra.get("fields") or exc.detail
        print(f"geoplat: {exc.title}: {detail}", file=sys.stderr)
        return 1


def cmd_users_list(args: argparse.Namespace, resolve: Resolver) -> int:
    _, db = _db(args, resolve, main=True)
    rows = db.all("SELECT u.id, u.username, u.email, u.registered_via, u.platform_admin, "
                  "u.disabled, u.locked_until, coalesce(string_agg(CASE WHEN r.node_id = '*' "
                  "THEN r.role ELSE r.node_id || ':' || r.role END, ','), '') AS roles "
                  "FROM auth.users u LEFT JOIN auth.user_roles r ON r.user_id = u.id "
                  "GROUP BY u.id ORDER BY u.id")
    _print(rows, args.json, ["id", "username", "email", "registered_via", "roles", "locked_until"])
    return 0


def cmd_users_add(args: argparse.Namespace, resolve: Resolver) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.sso import accounts

    node_id, db = _db(args, resolve, main=True)
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass("password: "))

    def run() -> int:
        user = accounts.create(db, args.username, password, args.email, roles=args.role,
                               platform_admin=args.platform_admin, via="cli")
        audit.record(db, node_id, "admin.user_add", actor=_actor(), subject=user.username,
                     roles=list(user.role_claims))
        print(f"{user.username} (id {user.id}) roles: {', '.join(user.role_claims) or 'user'}")
        return 0

    return _guard(run)


def cmd_users_role(args: argparse.Namespace, resolve: Resolver) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.sso import accounts

    node_id, db = _db(args, resolve, main=True)

    def run() -> int:
        user = accounts.by_name(db, args.username)
        if user is None:
            raise AuthError(404, "Not Found", f"no user {args.username!r}")
        accounts.add_role(db, user.id, args.role)
        audit.record(db, node_id, "admin.role", actor=_actor(), subject=user.username,
                     role=args.role)
        return 0

    return _guard(run)


def cmd_users_flag(args: argparse.Namespace, resolve: Resolver, action: str) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.sso import accounts

    node_id, db = _db(args, resolve, main=True)
    if action == "unlock":
        ok = accounts.unlock(db, args.username)
    else:
        # lazy: each command loads only what it needs (CLI start-up)
        from services.access.revocations import revoke_subject

        user = accounts.by_name(db, args.username)
        ok = db.execute("UPDATE auth.users SET disabled = true WHERE username = %s",
                        (args.username.lower(),)) == 1
        if ok and user is not None:  # its access tokens stop working at every node
            revoke_subject(db, user.id, 24 * 3600)
    if ok:
        audit.record(db, node_id, f"admin.{action}", actor=_actor(), subject=args.username)
    else:
        print(f"geoplat: no user {args.username!r}", file=sys.stderr)
    return 0 if ok else 1


def cmd_grants_list(args: argparse.Namespace, resolve: Resolver) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.access import grants

    _, db = _db(args, resolve, args.node)
    rows = [grants.jsonable(r) for r in grants.listing(db, status=args.status)]
    _print(rows, args.json, ["id", "username", "layer_id", "status", "requested_at", "expires_at",
                             "reason"])
    return 0


def cmd_grants_decide(args: argparse.Namespace, resolve: Resolver, action: str) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.access import grants

    node_id, db = _db(args, resolve, args.node)
    return _guard(lambda: (print(json.dumps(grants.jsonable(grants.decide(
        db, node_id, args.grant_id, action, _actor(), days=getattr(args, "days", None),
        expires_at=getattr(args, "expires_at", None))), default=str)), 0)[1])


def cmd_audit(args: argparse.Namespace, resolve: Resolver) -> int:
    _, db = _db(args, resolve, args.node)
    if args.usage:
        rows = db.all("SELECT key_id, day, kind, count FROM auth.key_usage "
                      "ORDER BY day DESC, key_id, kind LIMIT %s", (args.limit,))
        _print(rows, args.json, ["day", "key_id", "kind", "count"])
        return 0
    rows = audit.query(db, event=args.event, actor=args.actor, since=args.since, limit=args.limit)
    _print(rows, args.json, ["at", "node_id", "event", "actor", "subject", "ok", "ip", "detail"])
    return 0


def cmd_rotate(args: argparse.Namespace, resolve: Resolver) -> int:
    # lazy: each command loads only what it needs (CLI start-up)
    from services.sso import signing

    node_id, db = _db(args, resolve, main=True)
    kid = signing.rotate(db, retire_older_than_days=args.retire_days)
    audit.record(db, node_id, "admin.rotate_key", actor=_actor(), subject=kid)
    print(f"new signing key {kid}: in the JWKS now, signing tokens within about "
          f"{signing.Signer.REFRESH_SECONDS + signing.PUBLISH_MARGIN_SECONDS:.0f} s; "
          "nodes pick it up on the first token that names it")
    return 0


def cmd_initial_token(args: argparse.Namespace, resolve: Resolver) -> int:
    node_id, db = _db(args, resolve, main=True)

    def run() -> int:
        value, record = registration.issue_token(db, node_id, args.node, hours=args.hours,
                                                 actor=_actor())
        if args.json:
            print(json.dumps({**record, "token": value}, default=str))
        else:
            print(value)
            print(f"token {record['token_id']} for node {args.node}, valid until "
                  f"{record['expires_at']:%Y-%m-%d %H:%M %Z}; on that node put it in "
                  f"<var>/provision/{args.node}.token (mode 600) or $GEOPLAT_INITIAL_TOKEN",
                  file=sys.stderr)
        return 0

    return _guard(run)


def cmd_initial_tokens(args: argparse.Namespace, resolve: Resolver) -> int:
    _, db = _db(args, resolve, main=True)
    _print(registration.token_listing(db, args.node), args.json,
           ["token_id", "node_id", "usable", "expires_at", "revoked_at", "last_used_at",
            "created_by"])
    return 0


def cmd_revoke_initial_token(args: argparse.Namespace, resolve: Resolver) -> int:
    node_id, db = _db(args, resolve, main=True)
    if registration.revoke_token(db, node_id, args.token_id, actor=_actor()):
        print(f"revoked {args.token_id}")
        return 0
    print(f"geoplat: no usable initial token {args.token_id!r}", file=sys.stderr)
    return 1
