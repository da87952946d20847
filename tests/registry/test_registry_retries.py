"""The registry push retries with exponential backoff (tenacity: 1, 2, 4, ... up to 15 s), and
shutdown ends the wait at once (a real parent on loopback that answers 503, a real database)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from waiting import wait_for

from geoplat_settings import (
    AuthSection,
    DatabaseSection,
    Extent,
    NodeRef,
    NodeRuntime,
    RegistrySection,
    ScaleRange,
    ServerSection,
)
from nodes.postgres import ensure_database, ensure_postgis
from nodes.pygeoapi_config import PROVIDERS
from services.registry.db import ensure_schema, outbox_add, state_get
from services.registry.worker import Pusher, RegistryWorker


class _DownParent(BaseHTTPRequestHandler):
    """Issues tokens; answers every push with 503 and notes when it came."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Any = self.server
        if self.path == "/token":
            status, body = 200, {"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
        else:
            server.pushes.append(time.monotonic())
            status, body = 503, {"title": "Service Unavailable"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_push_backs_off_exponentially_and_shutdown_interrupts_it(pg_cluster, tmp_path) -> None:
    ensure_database(pg_cluster.dsn(), "retry_pusher")
    dsn = pg_cluster.dsn("retry_pusher")
    ensure_postgis(dsn)
    ensure_schema(dsn)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _DownParent)
    httpd.pushes = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    runtime = NodeRuntime(
        directory=str(tmp_path), database=DatabaseSection(dsn=dsn), providers=PROVIDERS,
        server=ServerSection(id="c", title="c", tier="base", parent="p", base_url=base + "/c",
                             extent=Extent(minx=0, miny=0, maxx=1, maxy=1),
                             scale=ScaleRange(finest=500, coarsest=2000), workers=1),
        registry=RegistrySection(path="p/c", parent=NodeRef(id="p", base_url=base)),
        auth=AuthSection(node_id="c", is_main=False, main_url=base, issuer=base + "/sso",
                         jwks_url=base + "/sso/jwks", token_url=base + "/token", audience="t",
                         client_id="node-c", client_secret="s"))
    worker = RegistryWorker(runtime)
    try:
        with worker.db.transaction() as cur:
            outbox_add(cur, "upsert", "c:a", {"id": "c:a"})
        assert worker._acquire()  # the advisory lock: retries stop when it is lost
        pusher = Pusher(worker.db, runtime, runtime.auth)
        pushing = threading.Thread(target=worker._push,
                                   args=(pusher, worker.http, time.monotonic() + 3600))
        pushing.start()
        pushes: list[float] = httpd.pushes  # type: ignore[attr-defined]
        assert wait_for(lambda: len(pushes) >= 3, timeout=30), pushes
        gaps = [b - a for a, b in itertools.pairwise(pushes)]
        assert 0.9 <= gaps[0] < 1.8 and 1.9 <= gaps[1] < 3.5, gaps  # 1 s, then 2 s
        # now waiting 4 s before the 4th try: shutdown ends the wait, no further push
        wait_for(lambda: pusher.failures >= 3, timeout=5)
        asked = time.monotonic()
        worker.stop_event.set()
        pushing.join(timeout=10)
        assert not pushing.is_alive() and time.monotonic() - asked < 1.0
        assert len(pushes) == 3
        assert pusher.failures == 3
        assert state_get(worker.db, "push_error")["error"].startswith("push refused: HTTP 503")
        assert worker.db.one("SELECT count(*) AS n FROM registry.outbox")["n"] == 1  # kept
    finally:
        worker.stop_event.set()
        worker.http.close()
        if worker._lock_conn is not None:
            worker._lock_conn.close()
        httpd.shutdown()
        httpd.server_close()
