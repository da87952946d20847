"""Places across the federation: a node answers for its part of it by asking the children whose
area the query concerns, each within a deadline, and merging their answers with its own.

Why fan out at query time (and not copy every child's gazetteer upward): the finest data (door
plates, POIs) lives and changes at the information base; its access levels are decided there;
a province or the main node would otherwise hold a stale copy of every city's addresses. The
query is routed by area first (the division code the address names, the point or box asked
about, against each child's `area_code` subtree and extent), so most queries reach one child
or none. A child that is down or slower than the deadline is left out and named in `partial`,
never an error. Children ask their own children the same way, with the deadline they were given
minus a margin (`X-Geoplat-Deadline-Ms`).

The caller's credentials travel with the question: the bearer token (from the header or the
node's session cookie), so each child applies its own access rules to its own layers, and the
developer key this node checked, stated beside this node's own `forward` token
(services/access/forwarding.py): a child applies the key as its owner's without counting it
or checking its origin/IP binding again. Without a node token the key travels as `tk` with
the caller's Origin/Referer, and each child checks and counts it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from geoplat_settings import NodeRuntime
from services.access.forwarding import FORWARDED_KEY_HEADER, NODE_TOKEN_HEADER

DEADLINE_HEADER = "X-Geoplat-Deadline-Ms"
DEFAULT_DEADLINE_S = 2.5
MARGIN_S = 0.3   # what a child keeps for itself: its own children get less than it has
MIN_DEADLINE_S = 0.2


@dataclass(frozen=True)
class Child:
    id: str
    base_url: str
    extent: tuple[float, float, float, float] | None
    codes: tuple[str, ...]       # GB/T 2260 area codes of the child and its descendants

    def covers_code(self, code: str | None) -> bool:
        """The division `code` (6 or 9 digits, `156` prefix allowed) is in the child's area, or
        contains it (a query for 浙江省 concerns Hangzhou too)."""
        if not code:
            return False
        code = code[3:] if len(code) in (9, 12) and code.startswith("156") else code
        for own in self.codes:
            mine, theirs = prefix(own), prefix(code)
            if mine.startswith(theirs) or theirs.startswith(mine):
                return True
        return False

    def covers_point(self, lon: float, lat: float) -> bool:
        if self.extent is None:
            return True
        minx, miny, maxx, maxy = self.extent
        return minx <= lon <= maxx and miny <= lat <= maxy

    def covers_bbox(self, bbox: tuple[float, float, float, float]) -> bool:
        if self.extent is None:
            return True
        minx, miny, maxx, maxy = self.extent
        return not (bbox[2] < minx or bbox[0] > maxx or bbox[3] < miny or bbox[1] > maxy)


def prefix(code: str) -> str:
    """The significant digits of a division code: 330000 -> 33, 330100 -> 3301, 330102 -> 330102
    (a township's 9 digits are all significant)."""
    if len(code) == 6:
        for cut in (2, 4):
            if code[cut:] == "0" * (6 - cut):
                return code[:cut]
    return code


def children_of(runtime: NodeRuntime) -> list[Child]:
    return [Child(c.id, c.base_url.rstrip("/"), c.extent, tuple(c.subtree_codes))
            for c in runtime.registry.children]


def deadline_of(headers: Mapping[str, str], default: float = DEFAULT_DEADLINE_S) -> float:
    """Seconds this node may spend asking its children: its parent's deadline minus a margin,
    never more than `default`."""
    raw = headers.get(DEADLINE_HEADER.lower()) or headers.get(DEADLINE_HEADER)
    try:
        given = int(raw) / 1000 if raw is not None else default
    except ValueError:
        given = default
    return max(0.0, min(default, given) - MARGIN_S)


def credentials(headers: Mapping[str, str], cookie_token: str | None, key: str | None,
                node_token: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, params) that carry the caller's credentials to a child: the caller's bearer
    token, and `key`, the developer key this node's check accepted, stated with this node's
    `node_token`, or without one as `tk` with the caller's Origin/Referer (a browser key's
    binding; the child checks and counts the key again)."""
    out: dict[str, str] = {}
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        out["Authorization"] = auth
    elif cookie_token:
        out["Authorization"] = f"Bearer {cookie_token}"
    if not key:
        return out, {}
    if node_token:
        out[NODE_TOKEN_HEADER], out[FORWARDED_KEY_HEADER] = node_token, key
        return out, {}
    for name in ("origin", "referer"):
        if headers.get(name):
            out[name] = headers[name]
    return out, {"tk": key}


@dataclass(frozen=True)
class Answers:
    bodies: dict[str, dict[str, Any]]   # child id -> its JSON answer
    partial: tuple[str, ...]            # children (or their descendants) that did not answer


class Fanout:
    """Asks children one path of our JSON API concurrently, within a deadline."""

    def __init__(self, children: Iterable[Child], http: httpx.AsyncClient):
        self.children, self.http = list(children), http

    async def ask(self, targets: Iterable[Child], path: str, params: Mapping[str, Any],
                  headers: Mapping[str, str], deadline_s: float) -> Answers:
        targets = list(targets)
        if not targets:
            return Answers({}, ())
        if deadline_s < MIN_DEADLINE_S:
            return Answers({}, tuple(c.id for c in targets))
        started = time.monotonic()
        sent = {**headers, DEADLINE_HEADER: str(int(deadline_s * 1000))}

        async def one(child: Child) -> tuple[Child, dict[str, Any] | None]:
            try:
                r = await self.http.get(child.base_url + path, params=dict(params), headers=sent,
                                        timeout=deadline_s)
            except httpx.HTTPError:
                return child, None
            if r.status_code != 200:
                return child, None
            try:
                body = r.json()
            except ValueError:
                return child, None
            return child, body if isinstance(body, dict) else None

        tasks = [asyncio.ensure_future(one(c)) for c in targets]
        done, pending = await asyncio.wait(tasks, timeout=max(
            0.0, deadline_s - (time.monotonic() - started)))
        for task in pending:
            task.cancel()
        bodies: dict[str, dict[str, Any]] = {}
        partial: list[str] = []
        for child, task in zip(targets, tasks, strict=True):
            if task not in done or task.cancelled() or task.exception() is not None:
                partial.append(child.id)
                continue
            body = task.result()[1]
            if body is None:
                partial.append(child.id)
            else:
                bodies[child.id] = body
                partial += [str(p) for p in body.get("partial") or []]
        return Answers(bodies, tuple(dict.fromkeys(partial)))
