"""Running the nodes of a federation: one process group per node.

`geoplat up` builds every node (nodes/build.py) and starts one
uvicorn process group per node; state lives in `var/run/` so `geoplat down`/`status` find it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from nodes import federation, privileges
from nodes.build import build_node
from nodes.pygeoapi_config import node_dir
from nodes.settings import FederationSettings, NodeSettings
from services.provision import demo_banner, issue_local_tokens
from tiles.frontdoor import FrontDoor

# Prefixes a node's command line, e.g. to run it in another network namespace (tests/netns.py).
Wrap = Callable[[NodeSettings, list[str]], list[str]]


@dataclass
class NodeProcess:
    node: NodeSettings
    proc: subprocess.Popen

    @property
    def pgid(self) -> int:
        return self.proc.pid  # started with start_new_session: leader of its group


def run_dir(settings: FederationSettings) -> Path:
    d = settings.resolve(settings.var_dir) / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def start_node(settings: FederationSettings, node: NodeSettings, ndir: Path, *,
               wrap: Wrap | None = None) -> NodeProcess:
    """Start the node's process group; `wrap` may prefix the command (e.g. `ip netns exec`)."""
    log_path = settings.resolve(settings.var_dir) / "run" / f"{node.id}.log"
    env = {**os.environ, "GEOPLAT_NODE_DIR": str(ndir), "PYTHONUNBUFFERED": "1"}
    env.pop("GEOPLAT_INITIAL_TOKEN", None)  # build time only (services/provision.py)
    front = FrontDoor(ndir, node.host, node.port)
    door = front if front.available() and front.conf.exists() else None
    bind = door.app_args() if door else ["--host", node.host, "--port", str(node.port)]
    user = privileges.run_user()
    if door:  # a node killed (kill -9, OOM) leaves its socket: uvicorn would not bind it again
        door.socket.unlink(missing_ok=True)
    if user is not None:  # as root: the whole group (nginx master too) runs as the node's user
        if door:
            privileges.own_tree(door.socket.parent, user)
        env.update(HOME=str(ndir), USER=user.pw_name, LOGNAME=user.pw_name)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "nodes.asgi:create_app",
           *bind, "--workers", str(node.workers),
           "--no-access-log", "--no-server-header", "--timeout-graceful-shutdown", "5",
           "--log-level", "warning"]
    # the analysis pool (its Redis, the RQ workers) first, in the same process group
    cmd = [sys.executable, "-m", "services.analysis.launch", str(ndir), "--", *cmd]
    if door:  # nginx then uvicorn, both in the node's new session and process group
        cmd = door.wrap(cmd)
    if user is not None:  # setpriv execs: the group leader's pid stays the one we record
        cmd = privileges.drop_command(user, low_port=node.port < 1024) + cmd
    if wrap is not None:  # must exec the command, so its pid stays the group leader
        cmd = wrap(node, cmd)
    with open(log_path, "ab") as log:  # the child has its own copy of the descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(Path(__file__).resolve().parent.parent))
    (run_dir(settings) / f"{node.id}.pid").write_text(str(proc.pid))
    return NodeProcess(node, proc)


def health(node: NodeSettings, timeout: float = 2.0) -> dict | None:
    try:
        r = httpx.get(f"http://{node.host}:{node.port}/health", timeout=timeout)
        return r.json()
    except (httpx.HTTPError, ValueError):
        return None


def wait_healthy(procs: list[NodeProcess], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {p.node.id: p for p in procs}
    while pending:
        for nid, p in list(pending.items()):
            if p.proc.poll() is not None:
                raise RuntimeError(f"node {nid} exited (code {p.proc.returncode}); "
                                   f"see var/run/{nid}.log")
            h = health(p.node, timeout=1.0)
            if h and h.get("status") == "ok":
                del pending[nid]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nodes not healthy after {timeout:.0f} s: {', '.join(pending)}")
        time.sleep(0.3)


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL what is left after `grace` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        try:  # reap our own children in the group (uvicorn, nginx) if they are ours
            while os.waitpid(-pgid, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def analysis_workers(settings: FederationSettings, node: NodeSettings) -> list[dict] | None:
    """The node's RQ workers as its analysis pool last wrote them (index, pid, state up/down,
    restarts, last_exit); None when no pool runs on this host (services/analysis/pool.py)."""
    from services.analysis.pool import read_status

    data = read_status(node_dir(settings, node))
    return None if data is None else list(data["workers"])


def running_nodes(settings: FederationSettings) -> dict[str, int]:
    """Node id -> pgid of process groups recorded in var/run and still alive."""
    out = {}
    for pidfile in run_dir(settings).glob("*.pid"):
        try:
            pgid = int(pidfile.read_text())
            os.killpg(pgid, 0)
            out[pidfile.stem] = pgid
        except (ValueError, ProcessLookupError, PermissionError):
            pidfile.unlink(missing_ok=True)
    return out


def check_run_user(settings: FederationSettings) -> None:
    """As root: the unprivileged user exists and can read the code and data and enter var/."""
    user = privileges.run_user()
    if user is None:
        return
    var = settings.resolve(settings.var_dir)
    (var / "nodes").mkdir(parents=True, exist_ok=True)
    for d in (var, var / "nodes"):  # entered (not listed) by the node's user
        os.chmod(d, os.stat(d).st_mode | 0o111)
    project = Path(__file__).resolve().parent.parent
    privileges.check_access(user, project, [settings.resolve(settings.data_dir), var / "nodes"])


def up(settings: FederationSettings, *, only: list[str] | None = None,
       echo=print, wrap: Wrap | None = None) -> tuple[list[NodeProcess], bool]:
    """Prepare and start the federation (or the named nodes).

    Returns the node processes and whether this call started the managed PostGIS.
    """
    # the main node first: the others provision themselves at it over HTTP (issue 12)
    nodes = sorted((n for n in settings.nodes if not only or n.id in only),
                   key=lambda n: n.tier != "main")
    check_run_user(settings)
    already = running_nodes(settings)
    if any(n.id in already for n in nodes):
        raise RuntimeError("nodes already running: " + ", ".join(sorted(set(already) & {n.id for n in nodes}))
                           + " (geoplat down first)")
    if federation.needs_cluster(settings):
        cluster = federation.managed_cluster(settings)
        echo(f"PostGIS: managed cluster {cluster.data_dir} on {cluster.host}:{cluster.port}")
        started_cluster = not cluster.is_running()
        cluster.start()
    else:
        started_cluster = False
    procs = []
    try:
        for node in nodes:
            echo(f"[{node.id}] loading layers and generating config")
            ndir = build_node(settings, node)
            procs.append(start_node(settings, node, ndir, wrap=wrap))
            if node.tier == "main":  # one host: initial access tokens for the nodes built next
                issue_local_tokens(settings, federation.node_dsn(settings, node), nodes)
        wait_healthy(procs)
    except BaseException:
        for p in procs:
            stop_group(p.pgid)
            (run_dir(settings) / f"{p.node.id}.pid").unlink(missing_ok=True)
        if started_cluster:
            federation.managed_cluster(settings).stop()
        raise
    for node in nodes:
        echo(f"[{node.id}] {node.tier:4} {node.base_url}/  OGC API: {node.base_url}/ogc  "
             f"health: {node.base_url}/health")
    for line in demo_banner(settings):
        echo(line)
    return procs, started_cluster


def down(settings: FederationSettings, echo=print, *, stop_cluster: bool = True) -> None:
    for nid, pgid in running_nodes(settings).items():
        echo(f"stopping {nid}")
        stop_group(pgid)
        (run_dir(settings) / f"{nid}.pid").unlink(missing_ok=True)
    if stop_cluster and federation.needs_cluster(settings):
        cluster = federation.managed_cluster(settings)
        if cluster.is_running():
            echo("stopping managed PostGIS")
            cluster.stop()


def foreground(settings: FederationSettings, procs: list[NodeProcess], echo=print, *,
               stop_cluster: bool = True) -> int:
    """Wait until Ctrl-C/SIGTERM or a node dies, then stop everything started."""
    stop = {"flag": False}

    def handler(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    echo("serving; press Ctrl-C to stop")
    code = 0
    while not stop["flag"]:
        for p in procs:
            if p.proc.poll() is not None:
                echo(f"node {p.node.id} exited with code {p.proc.returncode}; stopping")
                stop["flag"], code = True, 1
        time.sleep(0.3)
    echo("stopping")
    for p in procs:
        stop_group(p.pgid)
        (run_dir(settings) / f"{p.node.id}.pid").unlink(missing_ok=True)
    down(settings, echo, stop_cluster=stop_cluster)
    return code


__all__ = ["NodeProcess", "build_node", "down", "node_dir", "start_node", "stop_group", "up"]
