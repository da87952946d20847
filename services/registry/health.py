"""Health probes of a node's area: itself, its approved external services, its direct children.

A probe is one cheap request (the node's `/health`, a service's capabilities or landing page).
Status: `up`; `degraded` (slow, or a node reporting degraded); `down` (error, timeout, 5xx).
A change of status goes to the outbox so it flows upward; latency alone does not.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from geoplat_settings import NodeView, RegistrySettings
from services.db import Database
from services.registry.db import outbox_add, state_get
from services.registry.external import HarvestError, safe_get


def _classify(ok: bool, latency_ms: float, reported: str | None, cfg: RegistrySettings) -> str:
    if not ok:
        return "down"
    if reported == "degraded" or latency_ms > cfg.degraded_ms:
        return "degraded"
    return "up"


def probe_node(base_url: str, timeout: float, cfg: RegistrySettings,
               http: httpx.Client) -> tuple[str, float | None]:
    """A node's /health (trusted: it comes from the federation config)."""
    t0 = time.perf_counter()
    try:
        r = http.get(base_url.rstrip("/") + "/health", timeout=timeout, follow_redirects=False)
        ms = (time.perf_counter() - t0) * 1000
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        reported = body.get("status") if isinstance(body, dict) else None
        ok = r.status_code < 500 and reported != "down"
        return _classify(ok, ms, reported, cfg), round(ms, 1)
    except (httpx.HTTPError, ValueError):
        return "down", None


def probe_service(url: str, cfg: RegistrySettings, timeout: float,
                  http: httpx.Client) -> tuple[str, float | None]:
    """An external service, through the same SSRF rules as its registration."""
    probe_cfg = cfg.model_copy(update={"fetch_timeout": timeout, "max_document_bytes": max(
        cfg.max_document_bytes, 10_000)})
    try:
        got = safe_get(url, probe_cfg, http=http)
    except HarvestError:
        return "down", None
    return _classify(got.status < 400, got.elapsed_ms, None, cfg), round(got.elapsed_ms, 1)


def ensure_child_placeholders(db: Database, view: NodeView) -> None:
    """A version-0 node record per direct child, so a child never heard from can be marked down."""
    for child in view.registry.children:
        db.execute(
            "INSERT INTO registry.services (id, origin_node, origin_path, service_type, url, title, "
            "status, version, source) VALUES (%s, %s, %s, 'node', %s, %s, 'approved', 0, 'child') "
            "ON CONFLICT (id) DO NOTHING",
            (f"{child.id}:node", child.id, child.path, child.base_url, child.id))


def record_health(db: Database, ids: list[str], status: str, latency: float | None,
                  cfg: RegistrySettings, upward: bool) -> int:
    """Store one observation for `ids`; outbox entries for those whose status changed."""
    if not ids:
        return 0
    now = datetime.now(UTC).isoformat()
    entry = json.dumps([{"at": now, "status": status, "latency_ms": latency}])
    changed = 0
    with db.transaction() as cur:
        cur.execute(
            "UPDATE registry.services s SET health = %s, latency_ms = %s, health_at = %s, "
            "health_history = (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM ("
            "  SELECT e, n FROM jsonb_array_elements(s.health_history || %s::jsonb) "
            "  WITH ORDINALITY AS x(e, n) ORDER BY n DESC LIMIT %s) AS last) "
            "FROM (SELECT id, health AS before FROM registry.services WHERE id = ANY(%s) "
            "FOR UPDATE) AS old WHERE s.id = old.id RETURNING s.id, old.before, s.health_history",
            (status, latency, now, entry, cfg.history, ids))
        for row in cur.fetchall():
            if row["before"] != status:
                changed += 1
                if upward:
                    outbox_add(cur, "health", row["id"], {
                        "id": row["id"], "health": status, "latency_ms": latency,
                        "health_history": row["health_history"], "health_at": now})
    return changed


def probe_area(db: Database, view: NodeView, http: httpx.Client) -> dict[str, str]:
    """One round of probes; returns {what: status} (for logs and tests).

    `http`: the worker's client from `external.guarded_client()` (every probe sets its own
    timeout), shared by the probes' threads.
    """
    cfg = view.registry.settings
    node = view.server
    upward = view.registry.parent is not None
    timeout = max(0.5, min(cfg.fetch_timeout, cfg.health_interval * 0.8))
    ensure_child_placeholders(db, view)
    externals = db.all("SELECT id, url FROM registry.services WHERE origin_node = %s AND "
                       "source = 'external' AND status = 'approved'", (node.id,))
    local_ids = [r["id"] for r in db.all(
        "SELECT id FROM registry.services WHERE origin_node = %s AND source = 'local' "
        "AND status = 'approved'", (node.id,))]
    jobs: dict[str, Any] = {}
    out: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs["self"] = pool.submit(probe_node, node.base_url, min(timeout, 5.0), cfg, http)
        for child in view.registry.children:
            jobs[f"{child.id}:node"] = pool.submit(probe_node, child.base_url, timeout, cfg, http)
        for ext in externals:
            jobs[ext["id"]] = pool.submit(probe_service, ext["url"], cfg, timeout, http)
        for key, fut in jobs.items():
            status, latency = fut.result()
            out[key] = status
            ids = local_ids if key == "self" else [key]
            record_health(db, ids, status, latency, cfg, upward)
    return out


def last_change(health: str, history: Any) -> str | None:
    """When the status `health` began, as far as the kept history (oldest first) tells: the
    first observation of its latest run (so at most `history` observations back)."""
    since = None
    for entry in reversed(history if isinstance(history, list) else []):
        if not isinstance(entry, dict) or entry.get("status") != health:
            break
        since = entry.get("at")
    return since if isinstance(since, str) else None


def health_tree(db: Database, view: NodeView) -> dict[str, Any]:
    """The federation below this node: node health and service counts by health."""
    root = view.registry.path
    nodes = db.all("SELECT origin_node, origin_path, url, health, latency_ms, health_at, "
                   "health_history "
                   "FROM registry.services WHERE service_type = 'node' AND status = 'approved' "
                   "AND (origin_path = %s OR origin_path LIKE %s) ORDER BY origin_path",
                   (root, root + "/%"))
    counts = db.all("SELECT origin_path, health, count(*) AS n FROM registry.services WHERE "
                    "service_type <> 'node' AND status = 'approved' AND (origin_path = %s OR "
                    "origin_path LIKE %s) GROUP BY origin_path, health", (root, root + "/%"))
    by_path: dict[str, dict[str, Any]] = {}
    for n in nodes:
        by_path[n["origin_path"]] = {
            "id": n["origin_node"], "path": n["origin_path"], "url": n["url"],
            "health": n["health"], "latency_ms": n["latency_ms"],
            "checked": n["health_at"].isoformat() if n["health_at"] else None,
            "changed": last_change(n["health"], n["health_history"]),
            "services": {}, "children": []}
    for c in counts:
        if c["origin_path"] in by_path:
            by_path[c["origin_path"]]["services"][c["health"]] = c["n"]
    top = by_path.get(root) or {"id": view.server.id, "path": root, "health": "unknown",
                                "services": {}, "children": []}
    for path, entry in sorted(by_path.items()):
        if path == root:
            continue
        parent = by_path.get(path.rsplit("/", 1)[0], top)
        parent["children"].append(entry)
    return top


def push_state(db: Database, parent: str | None, *, details: bool) -> dict[str, Any]:
    """Upward federation from this node: changes waiting, parked (refused by the parent), and
    refused from children; with `details` (this node's admins) the latest of them and why."""
    pushed = int(state_get(db, "pushed_seq", 0))
    row = db.one("SELECT (SELECT count(*) FROM registry.outbox WHERE seq > %s) AS pending, "
                 "(SELECT count(*) FROM registry.refused WHERE direction = 'out') AS parked, "
                 "(SELECT count(*) FROM registry.refused WHERE direction = 'in') AS refused_in",
                 (pushed,))
    assert row is not None
    error = state_get(db, "push_error")
    out: dict[str, Any] = {"parent": parent,
                           "pending": row["pending"], "parked": row["parked"],
                           "refused_from_children": row["refused_in"],
                           "failing_since": error.get("since") if error else None}
    if details:
        def latest(direction: str) -> list[dict[str, Any]]:
            return [{**r, "at": r["at"].isoformat()} for r in db.all(
                "SELECT at, peer, seq, op, record_id, reason FROM registry.refused "
                "WHERE direction = %s ORDER BY id DESC LIMIT 20", (direction,))]

        out["recent"] = latest("out")
        out["recent_refused_from_children"] = latest("in")
        out["error"] = error.get("error") if error else None
    return out
