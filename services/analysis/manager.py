"""`QueueManager`: pygeoapi's process manager of a node, job state in its PostgreSQL.

It is pygeoapi's PostgreSQLManager (the `analysis.jobs` table, services/analysis/store.py) with:
- input checked before a job exists (bad input: OGC exception 400, nothing written);
- asynchronous execution enqueued on the node's RQ queue (services/analysis/worker.py runs it);
  synchronous execution in the web worker's thread pool, as pygeoapi does;
- quotas: a caller (not a node admin) starts at most `analysis.jobs_per_day` executions a day
  and has at most `analysis.live_jobs` queued or running (429 beyond);
- jobs of their creator: every job row holds the caller (`owner`, `rights`); listing shows the
  caller's own jobs (a node admin's: all), another caller's job is not found;
- `DELETE /ogc/jobs/{id}` dismisses: a queued job is cancelled, a running one stopped
  (`send_stop_job_command`: its worker kills the work horse), results removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor, JobNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.process.manager.postgresql import PostgreSQLManager
from pygeoapi.provider.sql import get_engine, get_table_model
from pygeoapi.util import JobStatus, RequestedResponse, get_current_datetime
from sqlalchemy import update
from sqlalchemy.orm import Session

from geoplat_settings import NodeRuntime
from services.analysis import processes
from services.analysis.caller import CALLER, Caller
from services.analysis.compute import QuotaExceeded
from services.analysis.queue import JOB_FUNCTION, queue_name, redis_url, results_dir
from services.analysis.store import SCHEMA, Jobs, connection_def

LOGGER = logging.getLogger("geoplat.analysis")
RAW_JSON = "application/json; charset=utf-8"  # not pygeoapi's "application/json": see below


class QueueManager(PostgreSQLManager):
    def __init__(self, manager_def: dict):
        # PostgreSQLManager's own set-up, with the table in schema `analysis` (its
        # `search_path` option reaches psycopg2 as a connection argument, which fails)
        BaseManager.__init__(self, manager_def)
        self.is_async, self.supports_subscribing = True, False
        self.id_field = "identifier"
        self.connection = manager_def["connection"]  # the DSN (pygeoapi's schema: a string)
        self.db_search_path = (SCHEMA,)
        # the engine and the table's model are made at first use, not here: pygeoapi makes a
        # manager to write the OpenAPI document when the node is built, where the database
        # may not be reachable (a node on another host, in another network namespace)
        self._lazy_engine: Any = None
        self._lazy_table: Any = None
        # output_dir is <node dir>/analysis/results (services/analysis/queue.py results_dir)
        self.node_dir = Path(manager_def["output_dir"]).parent.parent
        self._runtime: NodeRuntime | None = None
        self._queue: Any = None

    @property
    def _engine(self) -> Any:  # what PostgreSQLManager's methods use
        if self._lazy_engine is None:
            conn = connection_def(self.connection)
            conn.pop("search_path")
            self._lazy_engine = get_engine("postgresql+psycopg2", **conn)
        return self._lazy_engine

    @property
    def table_model(self) -> Any:
        if self._lazy_table is None:
            self._lazy_table = get_table_model("jobs", self.id_field, self.db_search_path,
                                               self._engine)
        return self._lazy_table

    # --- the node ---------------------------------------------------------------------------

    @property
    def runtime(self) -> NodeRuntime:
        if self._runtime is None:
            self._runtime = NodeRuntime.load(self.node_dir)
        return self._runtime

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from redis import Redis
            from rq import Queue

            self._queue = Queue(queue_name(self.runtime),
                                connection=Redis.from_url(redis_url(self.runtime)))
        return self._queue

    @staticmethod
    def _caller() -> Caller | None:
        return CALLER.get()

    def _mine(self, job: dict) -> bool:
        c = self._caller()
        return c is not None and (c.admin or job.get("owner") == c.sub)

    # --- jobs of their caller ---------------------------------------------------------------

    def get_jobs(self, status: JobStatus | None = None, limit: int | None = None,
                 offset: int | None = None) -> dict:
        c = self._caller()
        if c is None:
            return {"jobs": [], "numberMatched": 0}
        with Session(self._engine) as session:
            q = session.query(self.table_model)
            if not c.admin:
                q = q.filter(self.table_model.owner == c.sub)
            if status is not None:
                q = q.filter(self.table_model.status == status.value)
            matched = q.count()
            # newest first: by creation (a job dismissed before it started has no `started`,
            # and NULLs sort first in descending order: 20 of those hid every later job)
            q = q.order_by(self.table_model.created.desc().nulls_last(),
                           self.table_model.identifier)
            if offset:
                q = q.offset(offset)
            if limit:
                q = q.limit(limit)
            return {"jobs": [self._public(r.__dict__) for r in q.all()],
                    "numberMatched": matched}

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if k not in ("rights", "_sa_instance_state")}

    def get_job(self, job_id: str) -> dict:
        job = super().get_job(job_id)
        if not self._mine(job):
            raise JobNotFoundError()
        return self._public(job)

    def add_job(self, job_metadata: dict) -> str:
        c = self._caller()
        if c is None:  # the OGC rules let no anonymous caller here; never a job of no one
            raise JobNotFoundError()
        return super().add_job({**job_metadata, "owner": c.sub,
                                "rights": c.as_json()})

    def delete_job(self, job_id: str) -> bool:
        job = self.get_job(job_id)  # JobNotFoundError for another caller's
        if job["status"] in ("accepted", "running"):
            self._stop(job_id)
        with Session(self._engine) as session:
            session.execute(update(self.table_model)
                            .where(self.table_model.identifier == job_id)
                            .values(status=JobStatus.dismissed.value, location=None,
                                    message="Job dismissed", updated=get_current_datetime(),
                                    finished=job.get("finished") or get_current_datetime()))
            session.commit()
        if job.get("location"):
            Path(job["location"]).unlink(missing_ok=True)
        shutil.rmtree(results_dir(self.node_dir) / job_id, ignore_errors=True)  # its files
        return True

    def _stop(self, job_id: str) -> None:
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.job import Job
        from rq.job import JobStatus as RQStatus

        try:
            rq_job = Job.fetch(job_id, connection=self.queue.connection)
        except NoSuchJobError:
            return
        try:
            if rq_job.get_status() == RQStatus.STARTED:
                send_stop_job_command(self.queue.connection, job_id)
            else:
                rq_job.cancel()
        except InvalidJobOperation:
            pass

    # --- execution --------------------------------------------------------------------------

    def execute_process(self, process_id: str, data_dict: dict, *args: Any, **kwargs: Any
                        ) -> Any:
        c = self._caller()
        if c is None:
            raise JobNotFoundError()
        # bad input is refused before a job exists: nothing is written
        processes.validate(process_id, data_dict, processes.Context.of(self.runtime, c))
        if not c.admin:
            a = self.runtime.analysis
            jobs = Jobs(self.runtime.dsn)
            try:
                over = jobs.take_execution(c.sub, a.jobs_per_day, a.live_jobs)
            finally:
                jobs.close()
            if over:
                raise QuotaExceeded(over)
        return super().execute_process(process_id, data_dict, *args, **kwargs)

    def _execute_handler_async(self, p: BaseProcessor, job_id: str, data_dict: dict,
                               requested_outputs: dict | None = None,
                               subscriber: Any = None,
                               requested_response: Any = RequestedResponse.raw.value
                               ) -> tuple[str, None, JobStatus]:
        c = self._caller()
        assert c is not None  # execute_process checked
        self.queue.enqueue(JOB_FUNCTION, args=(str(self.node_dir), job_id, p.metadata["id"],
                                               data_dict, requested_response),
                           job_id=job_id, job_timeout=self.runtime.analysis.job_timeout,
                           result_ttl=600, failure_ttl=3600)
        self.update_job(job_id, {"message": "Job queued", "progress": 0,
                                 "updated": get_current_datetime()})
        return "application/json", None, JobStatus.accepted

    def _execute_handler_sync(self, p: BaseProcessor, job_id: str, data_dict: dict,
                              requested_outputs: dict | None = None,
                              subscriber: Any = None,
                              requested_response: Any = RequestedResponse.raw.value
                              ) -> tuple[str, Any, JobStatus]:
        from services.analysis.worker import execute

        c = self._caller()
        assert c is not None
        status, outputs = execute(self.runtime, job_id, p.metadata["id"], data_dict, c,
                                  requested_response, worker="web", worker_pid=os.getpid())
        if isinstance(outputs, str):  # the result's JSON text (worker.execute)
            if requested_response == RequestedResponse.raw.value:
                # sent as it is: pygeoapi encodes "application/json" outputs again, and the
                # overlay's thousands of features twice cost more than computing them
                return RAW_JSON, outputs.encode("utf-8"), status
            outputs = json.loads(outputs)  # a document: pygeoapi wraps it
        return "application/json", outputs, status

    def __repr__(self) -> str:
        return f"<QueueManager> {self.name}"
