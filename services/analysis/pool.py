"""The node's analysis pool: its Redis (when managed) and N RQ workers, kept running.

`python -m services.analysis.pool NODE_DIR` (started in the node's process group by
services/analysis/launch.py, so `geoplat down` stops it with the node). It
- starts redis-server on a Unix socket in the node's directory unless `analysis.redis_url` is
  set (then the Redis is the operator's, shared with worker hosts);
- starts `analysis.workers` workers (services/analysis/worker.py) and starts a dead one again
  after `analysis.restart_delay` seconds; meanwhile the status file shows it `down`;
- fails the running jobs of a worker that died ("the queue worker ... stopped"), and any job
  RQ itself gave up (work horse killed, timeout), so that no job stays `running` for ever;
- sweeps expired results and bounds their storage every minute (retention.py);
- writes the workers' state to `analysis/workers.json` (read by `geoplat status`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from pygeoapi.util import get_current_datetime

from geoplat_settings import NodeRuntime
from services.analysis import retention
from services.analysis.queue import redis_socket, redis_url, status_file
from services.analysis.store import Jobs

HOST = socket.gethostname()
SWEEP_SECONDS = 60.0  # results past their time to live, the storage bound (retention.py)
PROJECT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen | None = None
    state: str = "starting"
    since: float = field(default_factory=time.time)
    restarts: int = 0
    last_exit: str | None = None
    restart_at: float = 0.0

    def row(self) -> dict[str, Any]:
        return {"index": self.index, "pid": self.proc.pid if self.proc else None,
                "state": self.state, "since": self.since, "restarts": self.restarts,
                "last_exit": self.last_exit}


def exit_text(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


LOST_AFTER = 60.0  # seconds an accepted job may be missing from the queue (being enqueued)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def age_seconds(stamp: str | None) -> float:
    """Seconds since a pygeoapi time stamp (2026-12-02T05:30:00.123456Z)."""
    from datetime import datetime

    if not stamp:
        return float("inf")
    try:
        t = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - t).total_seconds()


def redis_ready(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Pool:
    def __init__(self, node_dir: Path):
        self.node_dir = node_dir
        self.runtime = NodeRuntime.load(node_dir)
        self.settings = self.runtime.analysis
        self.jobs = Jobs(self.runtime.dsn)
        self.redis: subprocess.Popen | None = None
        self.slots = [Slot(i) for i in range(self.settings.workers)]
        self.stopping = False
        self.env = {**os.environ, "GEOPLAT_NODE_DIR": str(node_dir), "PYTHONUNBUFFERED": "1"}

    # --- redis --------------------------------------------------------------------------

    def start_redis(self) -> None:
        if self.settings.redis_url:
            return
        sock = redis_socket(self.node_dir)
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.redis = subprocess.Popen(
            [exe, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(sock.parent),
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not redis_ready(sock):
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    # --- workers ------------------------------------------------------------------------

    def start(self, slot: Slot) -> None:
        name = f"{self.runtime.server.id}.{HOST}.{slot.index}.{slot.restarts}.{os.getpid()}"
        slot.proc = subprocess.Popen(
            [sys.executable, "-m", "services.analysis.worker", str(self.node_dir), name],
            env=self.env, cwd=str(PROJECT), stdin=subprocess.DEVNULL)
        slot.state, slot.since = "up", time.time()

    def check(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.state == "up" and slot.proc is not None and slot.proc.poll() is not None:
                slot.last_exit = exit_text(slot.proc.returncode)
                slot.state, slot.since = "down", time.time()
                slot.restart_at = now + self.settings.restart_delay
                self.fail_jobs_of(slot.proc.pid, slot.last_exit)
                self.write_status()
            elif slot.state in ("down", "starting") and now >= slot.restart_at:
                if slot.state == "down":
                    slot.restarts += 1
                self.start(slot)
                self.write_status()
        if self.redis is not None and self.redis.poll() is not None and not self.stopping:
            self.start_redis()

    def fail_jobs_of(self, pid: int, why: str) -> None:
        for job in self.jobs.live():
            if job["status"] == "running" and job["worker_pid"] == pid and \
                    job["worker_host"] == HOST:
                self._fail(job["identifier"], f"The queue worker running this job stopped "
                                              f"({why}); run the process again.")

    def _fail(self, job_id: str, message: str) -> None:
        self.jobs.update_live(job_id, status="failed", message=message, location=None,
                              finished=get_current_datetime(), updated=get_current_datetime())

    def reap(self) -> None:
        """Jobs RQ gave up on (horse killed, timeout, lost) or whose worker is gone."""
        from redis import Redis
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        conn = Redis.from_url(redis_url(self.runtime))
        try:
            for job in self.jobs.live():
                if job["worker"] == "web":  # a synchronous run: failed if its web worker died
                    if job["worker_host"] == HOST and not pid_alive(job["worker_pid"]):
                        self._fail(job["identifier"], "The web worker running this job "
                                                      "stopped; run the process again.")
                    continue
                try:
                    st = Job.fetch(job["identifier"], connection=conn).get_status()
                except NoSuchJobError:
                    st = None
                if st is None and job["status"] == "accepted" and \
                        age_seconds(job["updated"]) < LOST_AFTER:
                    continue  # being enqueued right now
                if st is None:
                    self._fail(job["identifier"], "The job was lost by the queue; run the "
                                                  "process again.")
                elif st.value in ("failed", "stopped", "canceled"):
                    self._fail(job["identifier"], f"The queue ended the job ({st.value}); run "
                                                  "the process again.")
        finally:
            conn.close()

    def write_status(self) -> None:
        path = status_file(self.node_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pool_pid": os.getpid(), "host": HOST,
                                   "redis": "managed" if self.redis else "external",
                                   "updated": time.time(),
                                   "workers": [s.row() for s in self.slots]}))
        tmp.replace(path)

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.start_redis()
        self.write_status()
        last_reap = last_sweep = 0.0
        try:
            while not self.stopping:
                self.check()
                if time.monotonic() - last_reap > 2.0:
                    last_reap = time.monotonic()
                    try:
                        self.reap()
                    except Exception as exc:  # noqa: BLE001 (database or Redis away: next time)
                        print(f"analysis pool: reaping failed: {exc}", file=sys.stderr)
                if time.monotonic() - last_sweep > SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    try:
                        retention.sweep(self.runtime)
                    except Exception as exc:  # noqa: BLE001 (database away: next time)
                        print(f"analysis pool: sweeping results failed: {exc}", file=sys.stderr)
                time.sleep(0.2)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        procs = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(5)
            except subprocess.TimeoutExpired:
                self.redis.kill()
        status_file(self.node_dir).unlink(missing_ok=True)
        self.jobs.close()


def read_status(node_dir: Path) -> dict[str, Any] | None:
    """The pool's status file, None when no pool runs (its pid is gone)."""
    try:
        data = json.loads(status_file(node_dir).read_text())
        os.kill(int(data["pool_pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return data


if __name__ == "__main__":
    raise SystemExit(Pool(Path(sys.argv[1]).resolve()).run())
