"""The registry's background work on a node: push the outbox, probe health, full sync.

A node runs several worker processes; each starts this thread, and only the one holding a
PostgreSQL advisory lock (on a session of its own) works. If that process dies its session
ends, the lock is free, and another process takes over within a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg2
import tenacity

from geoplat_settings import AuthSection, NodeRuntime, NodeView
from services.access.clients import SyncClientCredentials
from services.db import Database
from services.registry import federation, health
from services.registry.db import refusal_add, state_get, state_set
from services.registry.external import guarded_client

LOGGER = logging.getLogger("geoplat.registry")
LOCK_KEY = 4245
BATCH = 500
MAX_BACKOFF = 15.0
PUSH_SCOPE = federation.PUSH_SCOPE


class Pusher:
    """Sends this node's outbox to its parent, in order, with retries and backoff.

    A change the parent refuses (its answer names it) is parked in registry.refused and never
    sent again; a batch refused as a whole without naming a change is sent again one change at
    a time, so the one at fault is found and parked. Only refusals of the content park: an
    unreachable parent, 401/403 or a 5xx are retried.
    """

    def __init__(self, db: Database, view: NodeView, auth: AuthSection):
        self.db, self.view = db, view
        parent = view.registry.parent
        assert parent is not None, "only a node with a parent pushes"
        self.parent = parent
        self.auth = auth
        self._credentials: SyncClientCredentials | None = None
        self.failures = 0
        self.single_until = 0  # send one change per batch up to this outbox seq
        self.error: str | None = None

    def token(self, client: httpx.Client) -> str:
        """This node's client-credentials token (Authlib: renewed 30 s before it expires)."""
        if self._credentials is None or self._credentials.http is not client:
            self._credentials = SyncClientCredentials(
                client, self.auth.token_url, self.auth.client_id,
                self.auth.client_secret, timeout=10.0)
        return self._credentials.token(PUSH_SCOPE)

    def _post(self, client: httpx.Client, path: str, body: dict) -> httpx.Response:
        url = self.parent.base_url.rstrip("/") + path
        r = client.post(url, json=body, headers={"Authorization": f"Bearer {self.token(client)}"})
        if r.status_code == 401 and self._credentials is not None:
            # token expired or keys rotated: once more with a new one
            self._credentials.forget(PUSH_SCOPE)
            r = client.post(url, json=body,
                            headers={"Authorization": f"Bearer {self.token(client)}"})
        return r

    def push_once(self, client: httpx.Client) -> int:
        """Send one batch; returns how many changes were acknowledged or parked."""
        pushed = int(state_get(self.db, "pushed_seq", 0))
        rows = self.db.all("SELECT seq, op, record_id, payload FROM registry.outbox WHERE seq > %s "
                           "ORDER BY seq LIMIT %s", (pushed, 1 if self.single_until else BATCH))
        if not rows:
            return 0
        changes = []
        for row in rows:
            if row["op"] == "upsert":
                changes.append({"op": "upsert", "record": row["payload"]})
            else:
                changes.append({"op": row["op"], **row["payload"]})
        batch = rows[-1]["seq"]
        r = self._post(client, "/registry/api/push",
                       {"sender": self.view.server.id, "batch": batch, "changes": changes})
        body = _json(r)
        if r.status_code == 200 or (r.status_code == 409 and body.get("last_batch", 0) >= batch):
            refused = _refusals(body.get("refused"), len(rows)) if r.status_code == 200 else {}
        elif r.status_code in (400, 413, 422):
            refused = _refusals(body.get("refused"), len(rows))
            if len(refused) < len(rows):  # nothing was applied: find the change at fault
                if len(rows) > 1:
                    self.single_until = batch
                    return 0
                refused = {0: str(body.get("detail") or f"HTTP {r.status_code}")}
        else:
            raise RuntimeError(f"push refused: HTTP {r.status_code} {r.text[:200]}")
        self._settle(rows, batch, refused)
        if self.single_until and batch >= self.single_until:
            self.single_until = 0
        return len(rows)

    def _settle(self, rows: list[dict[str, Any]], batch: int, refused: dict[int, str]) -> None:
        """The batch is done: park what was refused, forget what was acknowledged."""
        parent = self.parent.id
        with self.db.transaction() as cur:
            for i, reason in sorted(refused.items()):
                row = rows[i]
                refusal_add(cur, "out", parent, reason, op=row["op"], record_id=row["record_id"],
                            seq=row["seq"], payload=row["payload"])
                LOGGER.warning("registry: %s refused %s of %s (parked, not sent again): %s",
                               parent, row["op"], row["record_id"], reason)
            # a newer copy of a parked record got through: the parked one is history
            done = [row["record_id"] for i, row in enumerate(rows)
                    if i not in refused and row["op"] in ("upsert", "delete")]
            if done:
                cur.execute("DELETE FROM registry.refused WHERE direction = 'out' AND "
                            "record_id = ANY(%s) AND seq < %s", (done, batch))
            state_set(cur, "pushed_seq", batch)
            cur.execute("DELETE FROM registry.outbox WHERE seq <= %s", (batch,))

    def flushed(self) -> bool:
        pushed = int(state_get(self.db, "pushed_seq", 0))
        row = self.db.one("SELECT count(*) AS n FROM registry.outbox WHERE seq > %s", (pushed,))
        return row is not None and row["n"] == 0

    def full_sync(self, client: httpx.Client) -> dict[str, Any]:
        """Reconcile with the parent: digest first, the whole subtree only when they differ."""
        if not self.flushed():
            return {"skipped": "outbox not empty"}
        root = self.view.registry.path
        me = self.view.server.id
        r = self._post(client, "/registry/api/sync",
                       {"sender": me, "digest": federation.subtree_digest(self.db, root)})
        if r.status_code != 200:
            raise RuntimeError(f"sync refused: HTTP {r.status_code}")
        if _json(r).get("in_sync"):
            return {"in_sync": True}
        records = federation.snapshot(self.db, root)
        snap = self._post(client, "/registry/api/sync", {
            "sender": me, "as_of_batch": int(state_get(self.db, "pushed_seq", 0)),
            "records": records})
        if snap.status_code != 200:
            raise RuntimeError(f"sync refused: HTTP {snap.status_code}")
        return _json(snap)

    def failed(self, error: str) -> None:
        self.failures += 1
        if self.error is None:  # shown in /registry/api/health until a push succeeds
            try:
                state_set(self.db, "push_error", {"since": datetime.now(UTC).isoformat(),
                                                  "error": error[:300]})
            except psycopg2.Error:
                return  # the database is down too: try to record it next time
        self.error = error

    def succeeded(self) -> None:
        self.failures = 0
        if self.error is not None:
            try:
                self.db.execute("DELETE FROM registry.state WHERE name = 'push_error'")
                self.error = None
            except psycopg2.Error:
                pass


def _refusals(value: Any, n: int) -> dict[int, str]:
    """{index: reason} from a parent's `refused` list (indexes outside the batch ignored)."""
    out: dict[int, str] = {}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and isinstance(item.get("index"), int) and \
                0 <= item["index"] < n:
            out[item["index"]] = str(item.get("reason") or "refused")
    return out


def _json(r: httpx.Response) -> dict:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class RegistryWorker(threading.Thread):
    """One per process; works only while holding the node's advisory lock."""

    def __init__(self, runtime: NodeRuntime):
        super().__init__(name="geoplat-registry", daemon=True)
        self.runtime = runtime
        self.cfg = runtime.registry.settings
        self.db = Database(runtime.dsn, maxconn=3)
        self.stop_event = threading.Event()
        self._lock_conn: Any = None
        # the worker's one HTTP client (pushes, probes; each request sets its own timeout where
        # it differs from this default), closed when the worker stops
        self.http = guarded_client(httpx.Timeout(10.0, connect=3.0))

    def _acquire(self) -> bool:
        try:
            if self._lock_conn is None or self._lock_conn.closed:
                self._lock_conn = psycopg2.connect(self.runtime.dsn, connect_timeout=3,
                                                   application_name="geoplat-registry-worker")
                self._lock_conn.autocommit = True
            with self._lock_conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                return bool(cur.fetchone()[0])
        except psycopg2.Error:
            self._lock_conn = None
            return False

    def _holding(self) -> bool:
        try:
            with self._lock_conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except (psycopg2.Error, AttributeError):
            self._lock_conn = None
            return False

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                if self._acquire():
                    try:
                        self._work()
                    except Exception:
                        LOGGER.exception("registry worker failed; retrying")
                self.stop_event.wait(2.0)
        finally:
            self.http.close()

    def _work(self) -> None:
        """Probe and push in two threads: a parent that hangs must not delay the probes."""
        done = threading.Event()
        prober = threading.Thread(target=self._probe_loop, args=(done,), daemon=True,
                                  name="geoplat-registry-probes")
        prober.start()
        try:
            self._push_loop()
        finally:
            done.set()
            prober.join(timeout=30)

    def _probe_loop(self, done: threading.Event) -> None:
        while not (done.is_set() or self.stop_event.is_set()):
            started = time.monotonic()
            try:
                health.probe_area(self.db, self.runtime, self.http)
            except Exception:
                LOGGER.exception("health probes failed")
            wait = self.cfg.health_interval - (time.monotonic() - started)
            done.wait(max(0.05, wait))

    def _push_loop(self) -> None:
        rt = self.runtime
        pusher = Pusher(self.db, rt, rt.auth) if rt.registry.parent is not None else None
        next_sync = time.monotonic() + min(self.cfg.full_sync_interval, 5.0)
        while not self.stop_event.is_set() and self._holding():
            if pusher is not None:
                next_sync = self._push(pusher, self.http, next_sync)
            self.stop_event.wait(self.cfg.push_interval)

    def _push(self, pusher: Pusher, client: httpx.Client, next_sync: float) -> float:
        """Push the outbox (and a full sync when due) until it succeeds; returns when the next
        full sync is due.

        A failure (parent down, refused as a whole, 401/403, 5xx; the changes a parent refuses
        are parked by `push_once`, not retried) is tried again after 1, 2, 4, 8, then every
        15 s; shutdown or the loss of the advisory lock ends the waiting at once.
        """
        due = {"sync": next_sync}

        def attempt() -> None:
            if self.stop_event.is_set():  # woken from the backoff by shutdown
                return
            now = time.monotonic()
            while pusher.push_once(client) == BATCH:
                pass
            if now >= due["sync"]:
                pusher.full_sync(client)
                due["sync"] = now + self.cfg.full_sync_interval
            pusher.succeeded()

        def failed(outcome: Any) -> None:
            exc = outcome.exception() if outcome is not None else None
            LOGGER.warning("registry push to %s failed: %s", pusher.parent.id, exc)
            pusher.failed(str(exc))

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Exception),
            wait=tenacity.wait_exponential(multiplier=1, max=MAX_BACKOFF),
            stop=tenacity.stop_when_event_set(self.stop_event) | tenacity.stop_any(
                lambda _state: not self._holding()),  # type: ignore[arg-type]  # a callable stop
            sleep=self._backoff,  # on an Event, so shutdown interrupts the backoff
            before_sleep=lambda state: failed(state.outcome), reraise=False)
        try:
            retrying(attempt)
        except tenacity.RetryError as stopped:  # shutdown or lock lost while failing
            failed(stopped.last_attempt)
        return due["sync"]

    def _backoff(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop working, release the lock and close the pool (the app's lifespan calls it)."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None and not conn.closed:
            conn.close()
        self.db.close()
