"""Results expire, and a node's result files are bounded (issue 17).

A job's files are `results/<process>-<job>.json` (its JSON result, services/analysis/worker.py)
and the directory `results/<job>/` (files a process writes, e.g. `extract`'s downloads). The
pool (services/analysis/pool.py) sweeps every minute, and `geoplat analysis sweep` on demand:
- a job that ended (successful, failed, dismissed) more than `analysis.result_ttl_hours` ago
  goes, row and files (its `/ogc/jobs/{id}` answers 404 from then on);
- while the result files take more than `analysis.max_results_mb`, the oldest ended jobs go;
- files of no job (a job deleted meanwhile, a crash between writing and recording) go once
  they are older than the time-to-live.
Queued and running jobs are never touched.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from geoplat_settings import NodeRuntime
from services.analysis.queue import results_dir
from services.analysis.store import Jobs


@dataclass
class Swept:
    expired: list[str] = field(default_factory=list)  # jobs past their time to live
    evicted: list[str] = field(default_factory=list)  # jobs removed to bound the storage
    orphans: int = 0  # files or directories of no job
    bytes_left: int = 0


JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def job_of(path: Path) -> str:
    """The job a result file (`<process>-<job id>.json`) or directory (`<job id>`) is of."""
    found = JOB_ID.search(path.name if path.is_dir() else path.stem)
    return found.group(0) if found else path.name


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def files_by_job(root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    if root.is_dir():
        for p in root.iterdir():
            if p.suffix == ".tmp":
                continue  # being written
            out.setdefault(job_of(p), []).append(p)
    return out


def sweep(runtime: NodeRuntime, *, ttl_hours: float | None = None,
          max_bytes: float | None = None) -> Swept:
    a = runtime.analysis
    ttl = a.result_ttl_hours if ttl_hours is None else ttl_hours
    bound = a.max_results_mb * 1e6 if max_bytes is None else max_bytes
    root = results_dir(runtime.node_dir)
    jobs = Jobs(runtime.dsn)
    out = Swept()
    try:
        files = files_by_job(root)

        def drop(job_ids: list[str]) -> None:
            jobs.delete(job_ids)
            for j in job_ids:
                for p in files.pop(j, []):
                    _remove(p)

        out.expired = jobs.finished_before(ttl)
        drop(out.expired)
        known = jobs.known()
        cutoff = time.time() - ttl * 3600
        for j in [j for j in files if j not in known]:
            old = [p for p in files[j] if p.stat().st_mtime < cutoff]
            for p in old:
                _remove(p)
                out.orphans += 1
            files[j] = [p for p in files[j] if p not in old]
        sizes = {j: sum(_size(p) for p in ps) for j, ps in files.items()}
        total = sum(sizes.values())
        for j in jobs.ended_oldest_first():
            if total <= bound:
                break
            if j in sizes:
                total -= sizes.pop(j)
                out.evicted.append(j)
        drop(out.evicted)
        out.bytes_left = total
    finally:
        jobs.close()
    return out
