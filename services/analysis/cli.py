"""`geoplat analysis run|jobs|sweep`: the node operator's analysis commands (nodes/cli.py).

`run` executes a process at a node as its operator (every layer and attribute of the node,
like a node admin; the job's owner is `cli:<user>`): through the node's queue with a progress
bar (the node must be up: its pool runs the workers), or in this process with `--sync`.
Ctrl-C dismisses the job (its worker stops the work) and exits 130. The same job rows, result
files and retention as jobs run over HTTP (`/ogc/jobs`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_commands(sub: Any, load: Callable[[argparse.Namespace], Any],
                 node_dir: Callable[[Any, Any], Path]) -> None:
    a = sub.add_parser("analysis", help="spatial analysis: run a process, list jobs, sweep results")
    asub = a.add_subparsers(dest="analysis_command", required=True)
    r = asub.add_parser("run", help="run a process at a node, with a progress bar")
    r.add_argument("process", help="process id (GET /ogc/processes lists them)")
    r.add_argument("--node", required=True)
    r.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="an input (repeatable); VALUE is JSON or text, @FILE reads a file")
    r.add_argument("--inputs", metavar="FILE", help="a JSON object of inputs ('-': stdin)")
    r.add_argument("--sync", action="store_true", help="run here, not on the node's queue")
    r.add_argument("--output", "-o", metavar="FILE", help="write the result here (default: stdout)")
    r.set_defaults(func=lambda args: cmd_run(args, load(args), node_dir))
    j = asub.add_parser("jobs", help="the jobs of a node, newest first")
    j.add_argument("--node", required=True)
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=lambda args: cmd_jobs(args, load(args), node_dir))
    s = asub.add_parser("sweep", help="remove expired results now (the node does every minute)")
    s.add_argument("--node", required=True)
    s.set_defaults(func=lambda args: cmd_sweep(args, load(args), node_dir))


def _runtime(settings: Any, node_id: str, node_dir: Callable[[Any, Any], Path]) -> Any:
    from geoplat_settings import NodeRuntime

    try:
        node = settings.node(node_id)
    except KeyError:
        raise RuntimeError(f"unknown node {node_id!r}") from None
    ndir = node_dir(settings, node)
    if not (ndir / "node.json").exists():
        raise RuntimeError(f"node {node_id} was never started here (geoplat up)")
    return NodeRuntime.load(ndir)


def parse_value(text: str) -> Any:
    """An input's value: `@FILE` (its JSON, else its text), JSON, else the text itself."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError:
        return text


def inputs_of(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.inputs:
        raw = sys.stdin.read() if args.inputs == "-" else Path(args.inputs).read_text("utf-8")
        loaded = json.loads(raw)
        if not isinstance(loaded, dict):
            raise RuntimeError("--inputs: a JSON object is required")
        data.update(loaded.get("inputs", loaded))  # an execute request, or its inputs
    for item in args.input:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise RuntimeError(f"--input {item!r}: NAME=VALUE is required")
        data[name] = parse_value(value)
    return data


def operator(runtime: Any) -> Any:
    """The caller of a command-line run: the node's operator, every layer and attribute."""
    import psycopg2

    from services.analysis.caller import Caller

    conn = psycopg2.connect(runtime.dsn, application_name="geoplat-cli")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM geoplat_layers")
            layers = frozenset(r[0] for r in cur.fetchall())
    finally:
        conn.close()
    rights = {layer: frozenset(rules.values()) for layer, rules in runtime.auth.fields.items()}
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return Caller(f"cli:{user}", True, layers, rights)


def manager(runtime: Any) -> Any:
    from services.analysis.config import manager_config, process_resources
    from services.analysis.manager import QueueManager

    os.environ["GEOPLAT_NODE_DIR"] = str(runtime.node_dir)
    return QueueManager({**manager_config(runtime.dsn, runtime.node_dir),
                         "processes": process_resources()})


def cmd_run(args: argparse.Namespace, settings: Any, node_dir: Callable[[Any, Any], Path]) -> int:
    from pygeoapi.process.base import ProcessorExecuteError
    from pygeoapi.util import JobStatus, RequestedProcessExecutionMode

    from services.analysis.caller import CALLER

    runtime = _runtime(settings, args.node, node_dir)
    data = inputs_of(args)
    m = manager(runtime)
    token = CALLER.set(operator(runtime))
    try:
        mode = None if args.sync else RequestedProcessExecutionMode.respond_async
        # Ctrl-C while an async job is being submitted waits until its id is known (a worker
        # may already run it): then it is dismissed as it is from the progress bar
        interrupted: list[int] = []
        previous = None if args.sync else signal.signal(
            signal.SIGINT, lambda signum, frame: interrupted.append(signum))
        try:
            job_id, _, outputs, status, _ = m.execute_process(args.process, data,
                                                              execution_mode=mode)
        except BaseException as exc:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if isinstance(exc, ProcessorExecuteError):
                print(f"geoplat: {args.process}: {exc.message}", file=sys.stderr)
                return 2
            raise
        if not args.sync:
            status = _follow(m, job_id, previous, interrupted)
            if status == JobStatus.successful:
                outputs, _ = _result(m, job_id)
        job = m.get_job(job_id)
    finally:
        CALLER.reset(token)
    if status != JobStatus.successful:
        print(f"geoplat: job {job_id} {job['status']}: {job.get('message')}", file=sys.stderr)
        return 1
    if isinstance(outputs, bytes):  # a synchronous result as it goes out (manager.py)
        outputs = outputs.decode("utf-8")
    text = outputs if isinstance(outputs, str) else json.dumps(outputs, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"job {job_id}: result written to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def _result(m: Any, job_id: str) -> tuple[Any, str]:
    mimetype, content = m.get_job_result(job_id)
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    return json.loads(content) if isinstance(content, str) else content, mimetype


def _follow(m: Any, job_id: str, previous: Any = None, interrupted: list[int] | None = None
            ) -> Any:
    """A progress bar until the job ends; Ctrl-C dismisses it (and one during the submission,
    `interrupted` while the handler `previous` gets restored here)."""
    from pygeoapi.util import JobStatus
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from services.analysis.store import Jobs

    jobs = Jobs(m.runtime.dsn)
    console = Console(stderr=True)
    try:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task(f"job {job_id[:8]}: queued", total=100)
            while True:
                row = jobs.get(job_id) or {}
                bar.update(task, completed=int(row.get("progress") or 0),
                           description=f"job {job_id[:8]}: {(row.get('message') or '')[:60]}")
                if row.get("status") not in ("accepted", "running"):
                    return JobStatus(row.get("status", "failed"))
                time.sleep(0.2)
    except KeyboardInterrupt:
        m.delete_job(job_id)
        console.print(f"job {job_id} dismissed")
        raise
    finally:
        jobs.close()


def cmd_jobs(args: argparse.Namespace, settings: Any, node_dir: Callable[[Any, Any], Path]) -> int:
    from services.analysis.caller import CALLER, Caller

    runtime = _runtime(settings, args.node, node_dir)
    m = manager(runtime)
    token = CALLER.set(Caller("cli", True))
    try:
        rows = m.get_jobs(limit=args.limit)["jobs"]
    finally:
        CALLER.reset(token)
    keep = ("identifier", "process_id", "status", "progress", "owner", "created", "finished",
            "message")
    rows = [{k: r.get(k) for k in keep} for r in rows]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    else:
        for r in rows:
            print("  ".join(str(r[k]) if r[k] is not None else "-" for k in keep))
    return 0


def cmd_sweep(args: argparse.Namespace, settings: Any, node_dir: Callable[[Any, Any], Path]) -> int:
    from services.analysis.retention import sweep

    runtime = _runtime(settings, args.node, node_dir)
    out = sweep(runtime)
    print(f"expired {len(out.expired)} jobs, evicted {len(out.evicted)} for the storage bound, "
          f"{out.orphans} orphan files; {out.bytes_left / 1e6:.1f} MB of results left")
    return 0
