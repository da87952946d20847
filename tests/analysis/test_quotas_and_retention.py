"""Quotas of executions (429), results that expire and a bounded result store, and the
operator's `geoplat analysis run` (issue 17), on the shared federation's Hangzhou node."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import requests
from publish_helpers import sign_in_users
from test_processes import GEOD, HALL, POINT, execute, job, job_id_of, wait_status
from waiting import wait_for

from geoplat_settings import NodeRuntime
from nodes.pygeoapi_config import node_dir
from services.analysis.queue import results_dir
from services.analysis.retention import sweep

PASSWORD = "Analysis-Quota-Pass-1"


@pytest.fixture(scope="module")
def runtime(federation) -> NodeRuntime:
    return NodeRuntime.load(node_dir(federation, federation.node("hangzhou")))


@pytest.fixture(scope="module")
def people(main_db, urls) -> dict[str, dict[str, str]]:
    return sign_in_users(main_db, urls["national"], "quota",
                         {"carol": [], "dave": [], "admin": ["hangzhou:admin"]}, PASSWORD)


def sql(runtime: NodeRuntime, query: str, args: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(runtime.dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def owner_of(runtime: NodeRuntime, job_id: str) -> str:
    return sql(runtime, "SELECT owner FROM analysis.jobs WHERE identifier = %s", (job_id,))[0][0]


def test_quotas_answer_429_and_admins_are_not_counted(hz, people, runtime) -> None:
    limit = runtime.analysis.live_jobs
    slow = {"geometry": POINT, "distance": 10, "test_delay": 4}
    ids = [job_id_of(execute(hz, "buffer", slow, people["carol"], async_=True))
           for _ in range(limit)]
    try:
        r = execute(hz, "buffer", slow, people["carol"], async_=True)
        assert r.status_code == 429, r.text
        assert r.json()["type"] == "TooManyRequests" and f"{limit} jobs" in r.json()["description"]
        # another user is not held up by carol's jobs; an admin is not counted
        assert execute(hz, "buffer", {"geometry": POINT, "distance": 10},
                       people["dave"]).status_code == 200
    finally:
        for jid in ids:
            requests.delete(f"{hz}/ogc/jobs/{jid}", headers=people["carol"], timeout=10)
    # the daily quota: dave has used all his executions of today
    dave_job = job_id_of(execute(hz, "buffer", {"geometry": POINT, "distance": 10},
                                 people["dave"], async_=True))
    dave = owner_of(runtime, dave_job)
    sql(runtime, "UPDATE analysis.usage SET executions = %s WHERE owner = %s AND day = "
                 "current_date", (runtime.analysis.jobs_per_day, dave))
    for async_ in (False, True):
        r = execute(hz, "buffer", {"geometry": POINT, "distance": 10}, people["dave"],
                    async_=async_)
        assert r.status_code == 429 and "daily quota" in r.json()["description"], r.text
    assert execute(hz, "buffer", {"geometry": POINT, "distance": 10},
                   people["admin"]).status_code == 200
    used = sql(runtime, "SELECT executions FROM analysis.usage WHERE owner = %s", (dave,))
    assert used == [(runtime.analysis.jobs_per_day,)]  # refused executions are not counted


def test_results_expire_and_their_storage_is_bounded(hz, people, runtime) -> None:
    def done_job(distance: float) -> str:
        jid = job_id_of(execute(hz, "buffer", {"geometry": POINT, "distance": distance},
                                people["carol"], async_=True))
        wait_status(hz, jid, people["carol"], ("successful",))
        return jid

    old, kept = done_job(20), done_job(30)
    root = results_dir(runtime.node_dir)
    assert (root / f"buffer-{old}.json").exists()
    (root / old).mkdir(exist_ok=True)  # a process's own files (extract) go with the job
    (root / old / "out.gpkg").write_bytes(b"x" * 1000)
    orphan = root / "buffer-00000000-dead-beef-0000-000000000000.json"
    orphan.write_text("{}")
    stale = 4 * 24 * 3600
    os.utime(orphan, (orphan.stat().st_atime - stale, orphan.stat().st_mtime - stale))
    # `old` ended four days ago: past the time to live (72 h)
    sql(runtime, "UPDATE analysis.jobs SET finished = to_char(now() - interval '4 days', "
                 "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') WHERE identifier = %s", (old,))
    out = sweep(runtime)
    assert old in out.expired and kept not in out.expired and out.orphans >= 1
    assert not (root / f"buffer-{old}.json").exists() and not (root / old).exists()
    assert not orphan.exists()
    assert requests.get(f"{hz}/ogc/jobs/{old}?f=json", headers=people["carol"],
                        timeout=10).status_code == 404
    assert job(hz, kept, people["carol"])["status"] == "successful"

    # the storage bound: the oldest ended jobs go first, until the results fit
    newest = done_job(40)
    size = (root / f"buffer-{newest}.json").stat().st_size
    out = sweep(runtime, max_bytes=size)
    assert kept in out.evicted and newest not in out.evicted and out.bytes_left <= size
    assert requests.get(f"{hz}/ogc/jobs/{kept}?f=json", headers=people["carol"],
                        timeout=10).status_code == 404
    r = requests.get(f"{hz}/ogc/jobs/{newest}/results?f=json", headers=people["carol"], timeout=10)
    assert r.status_code == 200, r.text


def cli(federation, *args: str, **kw) -> subprocess.Popen:
    config = Path(federation.config_dir) / "federation.yml"
    return subprocess.Popen([sys.executable, "-m", "nodes.cli", "--config", str(config),
                             "analysis", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def test_the_operator_runs_a_process_from_the_command_line(federation, runtime, tmp_path
                                                           ) -> None:
    out = tmp_path / "buffer.json"
    p = cli(federation, "run", "buffer", "--node", "hangzhou",
            "--input", "geometry=" + json.dumps(POINT), "--input", "distance=1000",
            "-o", str(out))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    feat = json.loads(out.read_text())["features"][0]
    x, y = feat["geometry"]["coordinates"][0][0]
    assert abs(GEOD.inv(HALL[0], HALL[1], x, y)[2] - 1000) <= 0.5
    jid = re.search(r"job ([0-9a-f-]{36}): result written to", err).group(1)  # type: ignore[union-attr]
    assert owner_of(runtime, jid).startswith("cli:")
    p = cli(federation, "run", "buffer", "--node", "hangzhou", "--sync",
            "--input", "geometry=" + json.dumps(POINT), "--input", "distance=500")
    text, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    x, y = json.loads(text)["features"][0]["geometry"]["coordinates"][0][0]
    assert abs(GEOD.inv(HALL[0], HALL[1], x, y)[2] - 500) <= 0.5
    # bad input: the reason, exit 2, no job
    p = cli(federation, "run", "buffer", "--node", "hangzhou", "--input", "distance=-1",
            "--input", "geometry=" + json.dumps(POINT))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "distance" in err, err

    # Ctrl-C during a long job dismisses it: its worker is free again. As soon as the job
    # exists: a worker may run it before the command has its id (it waits for it then)
    p = cli(federation, "run", "buffer", "--node", "hangzhou", "--input",
            "geometry=" + json.dumps(POINT), "--input", "distance=10", "--input",
            "test_delay=6")

    def live_cli_job() -> str | None:
        rows = sql(runtime, "SELECT identifier FROM analysis.jobs WHERE owner LIKE 'cli:%%' "
                            "AND status IN ('accepted', 'running')")
        return rows[0][0] if rows else None

    jid = wait_for(live_cli_job, 60, "the command's job exists", interval=0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert sql(runtime, "SELECT status FROM analysis.jobs WHERE identifier = %s",
               (jid,)) == [("dismissed",)]
    listing = cli(federation, "jobs", "--node", "hangzhou", "--json")
    rows, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    assert any(r["identifier"] == jid and r["status"] == "dismissed" for r in json.loads(rows))
