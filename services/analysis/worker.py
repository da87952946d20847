"""An RQ worker of a node, and the job it runs.

`python -m services.analysis.worker NODE_DIR` works the node's queue (the pool,
services/analysis/pool.py, starts and supervises these; on another host run the same command
with a copy of the node's runtime file whose `analysis.redis_url` names the shared Redis). It
reads the node's runtime file (node.json) for the database and the Redis.

`run_job` is the RQ job: it marks the job running with the worker's name and pid, runs the
process with the rights stored with the job, reports progress through the jobs table, and
writes the result file; a work horse whose worker died exits (the pool fails the job).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pygeoapi.util import JobStatus, RequestedResponse, get_current_datetime

from geoplat_settings import NodeRuntime
from services.analysis import compute, processes
from services.analysis.caller import Caller
from services.analysis.compute import InputError
from services.analysis.queue import queue_name, redis_url, results_dir
from services.analysis.store import Jobs

LOGGER = logging.getLogger("geoplat.analysis.worker")
HOST = socket.gethostname()


class Dismissed(Exception):
    """The job was dismissed while it ran: stop here."""


def execute(runtime: NodeRuntime, job_id: str, process_id: str, data: dict, caller: Caller,
            requested_response: Any = RequestedResponse.raw.value, *, worker: str,
            worker_pid: int) -> tuple[JobStatus, Any]:
    """Run one job to its end: (status, outputs); the jobs table says the same."""
    jobs = Jobs(runtime.dsn)
    try:
        jobs.update_live(job_id, status="running", message="Job started", progress=5,
                         started=get_current_datetime(), updated=get_current_datetime(),
                         worker=worker, worker_pid=worker_pid, worker_host=HOST)
        last = [0.0]

        def progress(pct: int, msg: str) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and pct < 95:
                return
            last[0] = now
            if not jobs.update_live(job_id, progress=int(pct), message=msg[:300],
                                    updated=get_current_datetime()):
                raise Dismissed()

        ctx = processes.Context.of(runtime, caller, progress, job_id)
        try:
            outputs: Any = processes.run(process_id, data, ctx)
        except Dismissed:
            return JobStatus.dismissed, None
        except InputError as exc:
            return _failed(jobs, job_id, exc.message)
        except Exception as exc:  # a failed job says why in words, never a trace
            LOGGER.exception("job %s (%s) failed", job_id, process_id)
            return _failed(jobs, job_id, f"the process failed ({type(exc).__name__})")
        if requested_response == RequestedResponse.document.value:
            outputs = {"outputs": [outputs]}
        out = results_dir(runtime.node_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{process_id}-{job_id}.json"
        tmp = path.with_suffix(".tmp")
        text = compute.RawJSON(compute.dumps(outputs))
        tmp.write_text(text, encoding="utf-8")
        if os.geteuid() == 0:  # root running a job in process (`geoplat analysis run --sync`):
            st = runtime.node_dir.stat()  # the file is the node user's, as the node's own are
            os.chown(tmp, st.st_uid, st.st_gid)
            for d in (out, out.parent):
                if d.stat().st_uid == 0:
                    os.chown(d, st.st_uid, st.st_gid)
        tmp.replace(path)
        done = jobs.update_live(job_id, status="successful", message="Job complete", progress=100,
                                location=str(path), mimetype="application/json",
                                finished=get_current_datetime(), updated=get_current_datetime())
        if not done:  # dismissed meanwhile
            path.unlink(missing_ok=True)
            return JobStatus.dismissed, None
        return JobStatus.successful, text  # the result as JSON text: encoded once
    finally:
        jobs.close()


def _failed(jobs: Jobs, job_id: str, message: str) -> tuple[JobStatus, Any]:
    jobs.update_live(job_id, status="failed", message=message[:500], location=None,
                     finished=get_current_datetime(), updated=get_current_datetime())
    return JobStatus.failed, {"type": "InvalidParameterValue", "code": "InvalidParameterValue",
                              "description": message}


_RUNTIMES: dict[str, NodeRuntime] = {}


def _watch_parent(parent: int) -> None:
    """A work horse whose worker died stops too (the pool fails its job)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.3)


def run_job(node_dir: str, job_id: str, process_id: str, data: dict,
            requested_response: Any = RequestedResponse.raw.value) -> str:
    """The RQ job: the process with the rights stored with the job."""
    from rq import get_current_job

    # the worker's own runtime file (another host's copy), else the web node's directory
    runtime = _RUNTIMES.get("worker") or _RUNTIMES.get(node_dir) or NodeRuntime.load(Path(node_dir))
    _RUNTIMES.setdefault(node_dir, runtime)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    jobs = Jobs(runtime.dsn)
    try:
        row = jobs.get(job_id)
    finally:
        jobs.close()
    if row is None or row["status"] not in ("accepted",):
        return "skipped"  # dismissed before it started
    rq_job = get_current_job()
    name = rq_job.worker_name if rq_job is not None and rq_job.worker_name else "rq"
    status, _ = execute(runtime, job_id, process_id, data, Caller.from_json(row["rights"]),
                        requested_response, worker=name, worker_pid=os.getppid())
    return status.value


def main(argv: list[str] | None = None) -> int:
    from redis import Redis
    from rq import Queue, Worker

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m services.analysis.worker NODE_DIR [NAME]", file=sys.stderr)
        return 2
    node_dir = Path(args[0]).resolve()
    runtime = NodeRuntime.load(node_dir)
    _RUNTIMES["worker"] = runtime
    logging.basicConfig(level=logging.WARNING)
    # the process modules (geopandas, rasterio, ...) imported here, once: each job's work
    # horse is a fork of this process, and importing them in each took 0.5 s a job
    processes.registry()
    conn = Redis.from_url(redis_url(runtime))
    name = args[1] if len(args) > 1 else f"{runtime.server.id}.{HOST}.{os.getpid()}"
    worker = Worker([Queue(queue_name(runtime), connection=conn)], connection=conn, name=name)
    worker.work(logging_level="WARNING", with_scheduler=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
