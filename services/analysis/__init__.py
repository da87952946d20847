"""Spatial analysis (issue 17): OGC API Processes served by pygeoapi under `/ogc`, as jobs on an
RQ queue over the node's Redis, job state in the node's PostgreSQL (`analysis.jobs`).

- `store.py`: the jobs table (pygeoapi's PostgreSQLManager columns + owner, rights, worker);
- `manager.py`: `QueueManager`, pygeoapi's process manager: async jobs enqueued on RQ, sync
  ones run in the web worker's thread pool, per-caller jobs, cancel;
- `caller.py`: who calls (sub, admin, visible layers, attribute rights), set around pygeoapi's
  API functions and stored with each job, so that the worker reads only what the caller may;
- `processes.py`: the pygeoapi process plugins (`buffer`, `overlay`), `compute.py` their work;
- `worker.py`: an RQ worker of the node; `pool.py`: the node's supervisor of its Redis (when
  managed) and its workers, which fails the jobs of a worker that died; `launch.py`: starts the
  pool in the node's process group before the web server.
"""
