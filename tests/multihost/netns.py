"""A federation whose nodes live in separate network namespaces: the multi-host proof (issue 5).

Each node runs in its own `ip netns` with one veth link to a bridge in the root namespace, on
an address of a private /24 chosen per run (10.231.<k>.0/24; the bridge is 10.231.<k>.1, the
nodes .10, .20, .30). A node's namespace has `lo`, its link and nothing else: no default
route, so every URL between nodes is http://10.231.<k>.x:port and nothing works by accident
through 127.0.0.1 (all nodes even listen on the same port, as separate hosts would).

The nodes are built in the root namespace (`nodes.supervisor.up`) and their process groups
(nginx + uvicorn) are started inside their namespaces (`up(..., wrap=...)` prefixes
`ip netns exec <ns>`). Each node's database lives in the given PostGIS cluster (the session's
`pg_cluster`), reached over the cluster's unix socket: pathname sockets do not belong to a
network namespace, so a node keeps its "local" database when its link is cut, as a real host
would, while all traffic between nodes goes over the bridge.

Names carry the run's pid (`gp-<pid>-<n>...`): at start, namespaces and links left by runs
whose process is gone (a crash, SIGKILL) are removed with whatever still runs in them.

    fed = NetnsFederation(base_dir, pg_cluster, node_overrides={"*": {...}})
    with fed:
        fed.urls["national"]; fed.cut("zhejiang"); fed.run_in("hangzhou", ["ip", "addr"])

In a test module: `netfed = netns.federation_fixture()` gives a module-scoped fixture.
Needs root, `ip` (iproute2) and nginx like the rest of the suite.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import quote

import psycopg2
import pytest
import yaml
from psycopg2 import sql
from var_dirs import var_dir_for
from waiting import wait_gone

from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster, ensure_database

ROOT = Path(__file__).resolve().parents[2]
NODE_IDS = ("national", "zhejiang", "hangzhou")
SUBNET = "10.231"  # 10.231.<k>.0/24, k picked per run among the /24s not in use here
LOCK_FILE = Path("/tmp/geoplat-netns.lock")
_NAME = re.compile(r"^gp-(\d+)-(\d)")
_counter = {"n": 0}
_counter_lock = threading.Lock()

# A tiny HTTP probe run inside a namespace: prints the status code, or 0 when nothing answers.
_PROBE = """import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
"""


class NetnsError(RuntimeError):
    """The namespaces or links could not be set up."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


@contextmanager
def _host_lock() -> Iterator[None]:
    """Serialise cleanup and subnet choice between concurrent runs on this machine."""
    with open(LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def _links() -> list[str]:
    out = ip("-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def _stale(name: str) -> bool:
    m = _NAME.match(name)
    return m is not None and not _pid_alive(int(m.group(1)))


def _kill_namespace_processes(ns: str, grace: float = 3.0) -> None:
    """Processes a dead run left in its namespace (its nodes): TERM, then KILL."""
    def pids() -> list[int]:
        return [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        with contextlib.suppress(AssertionError):  # still there: the next signal
            wait_gone(pids, grace, f"processes in {ns}", interval=0.1)


def remove_stale() -> list[str]:
    """Delete namespaces and links of earlier runs whose process is gone; returns their names."""
    removed = []
    for ns in _namespaces():
        if _stale(ns):
            _kill_namespace_processes(ns)
            ip("netns", "del", ns, check=False)
            removed.append(ns)
    for link in _links():
        if _stale(link):
            ip("link", "del", link, check=False)
            removed.append(link)
    return removed


def _free_subnet(start: int) -> int:
    """A k such that nothing in the root namespace uses 10.231.k.0/24."""
    used = ip("-4", "-o", "addr", "show").stdout + ip("-4", "route", "show", "table", "all").stdout
    for i in range(250):
        k = 1 + (start + i) % 250
        if f"{SUBNET}.{k}." not in used:
            return k
    raise NetnsError(f"no free /24 in {SUBNET}.0.0/16")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def socket_dsn(cluster: Cluster, dbname: str) -> str:
    """A DSN reaching `cluster` over its unix socket (works from every network namespace)."""
    password = quote(cluster.password_file.read_text().strip(), safe="")
    return (f"postgresql://postgres:{password}@/{dbname}?host={quote(str(cluster.socket_dir))}"
            f"&port={cluster.port}")


def drop_database(cluster: Cluster, dbname: str) -> None:
    """Best effort: the run's node databases go with it."""
    try:
        conn = psycopg2.connect(cluster.dsn(), connect_timeout=3)
    except psycopg2.Error:
        return
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(dbname)))
    except psycopg2.Error:
        pass
    finally:
        conn.close()


class NetnsFederation:
    """The demo federation (national, zhejiang, hangzhou), one network namespace per node."""

    def __init__(self, base: Path, cluster: Cluster, *, port: int = 8000,
                 require_keys: bool = False,
                 node_overrides: dict[str, dict[str, Any]] | None = None,
                 echo: Callable[..., None] = lambda *a: None):
        with _counter_lock:
            n = _counter["n"]
            _counter["n"] += 1
        if n > 9:
            raise NetnsError("at most 10 netns federations per process")
        self.tag = f"gp-{os.getpid()}-{n}"  # <= 10 chars: link names stay within 15
        self.base, self.cluster, self.port = Path(base), cluster, port
        self.require_keys = require_keys
        self.node_overrides = node_overrides or {}
        self.echo = echo
        self.k: int | None = None
        self.settings: settings_mod.FederationSettings | None = None
        self.procs: list[supervisor.NodeProcess] = []
        self._made_links: list[str] = []
        self._made_namespaces: list[str] = []
        self._closed = False

    # --- names and addresses ---------------------------------------------------------------
    def namespace(self, node_id: str) -> str:
        return f"{self.tag}-{node_id}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}b"

    def host_link(self, node_id: str) -> str:
        """The root-namespace end of the node's veth pair (on the bridge)."""
        return f"{self.tag}h{NODE_IDS.index(node_id)}"

    def node_link(self, node_id: str) -> str:
        return f"{self.tag}n{NODE_IDS.index(node_id)}"

    @property
    def gateway(self) -> str:
        return f"{SUBNET}.{self.k}.1"

    @property
    def network(self) -> str:
        return f"{SUBNET}.{self.k}.0/24"

    def address(self, node_id: str) -> str:
        return f"{SUBNET}.{self.k}.{10 * (NODE_IDS.index(node_id) + 1)}"

    @property
    def urls(self) -> dict[str, str]:
        return {nid: f"http://{self.address(nid)}:{self.port}" for nid in NODE_IDS}

    def dbname(self, node_id: str) -> str:
        return f"{self.tag.replace('-', '_')}_{node_id}"

    # --- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        atexit.register(self.close)
        try:
            with _host_lock():
                gone = remove_stale()
                if gone:
                    self.echo(f"netns: removed stale {', '.join(gone)}")
                self.k = _free_subnet(os.getpid())
                self._make_network()
            self.echo(f"netns: {self.network} on bridge {self.bridge}")
            for nid in NODE_IDS:
                ensure_database(self.cluster.dsn(), self.dbname(nid))
            self.settings = settings_mod.load(self.write_config())
            self.procs, _ = supervisor.up(self.settings, echo=self.echo, wrap=self.wrap)
        except BaseException:
            self.close()
            raise

    def _make_network(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._made_links.append(self.bridge)
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for nid in NODE_IDS:
            ns, host, node = self.namespace(nid), self.host_link(nid), self.node_link(nid)
            ip("netns", "add", ns)
            self._made_namespaces.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", host, "type", "veth", "peer", "name", node)
            self._made_links.append(host)
            ip("link", "set", node, "netns", ns)
            ip("link", "set", host, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.address(nid)}/24", "dev", node)
            ip("-n", ns, "link", "set", node, "up")

    def write_config(self) -> Path:
        """config/federation.yml with this run's var/, addresses, port and databases.

        Extra per-node settings (e.g. `registry: {allow_networks: [...]}`) come from
        `node_overrides`: {node_id: {...}} or {"*": {...}} for every node, deep-merged last.
        """
        raw = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))
        raw["var_dir"] = str(var_dir_for(self.base))  # enterable by the nodes' user
        raw["data_dir"] = str(ROOT / "data-samples")
        raw["postgres"] = {"data_dir": str(self.cluster.data_dir), "port": self.cluster.port}
        for i, node in enumerate(raw["nodes"]):
            nid = node["id"]
            node["host"] = self.address(nid)
            node["port"] = self.port
            node["database_url"] = socket_dsn(self.cluster, self.dbname(nid))
            node["auth"] = {**(node.get("auth") or {}), "public_requires_key": self.require_keys}
            # --- extra per-node settings merged in here (registry.allow_networks, ...) ---
            for key in ("*", nid):
                node = _deep_merge(node, self.node_overrides.get(key) or {})
            raw["nodes"][i] = node
        cfg_dir = self.base / "config"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        if not (cfg_dir / "layers").exists():  # a copy: publishing may write layer files
            shutil.copytree(ROOT / "config" / "layers", cfg_dir / "layers")
        path = cfg_dir / "federation.yml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def wrap(self, node: settings_mod.NodeSettings, cmd: list[str]) -> list[str]:
        """`ip netns exec` execs the command: the pid (the group leader) stays the same."""
        return ["ip", "netns", "exec", self.namespace(node.id), *cmd]

    def close(self) -> None:
        """Stop every node's process group, then delete links and namespaces. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for p in self.procs:  # all at once: each takes a few seconds to shut down gracefully
            try:
                os.killpg(p.pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            supervisor.stop_group(p.pgid)
            if self.settings is not None:
                (supervisor.run_dir(self.settings) / f"{p.node.id}.pid").unlink(missing_ok=True)
        for ns in self._made_namespaces:  # anything the groups left behind
            _kill_namespace_processes(ns)
        for link in reversed(self._made_links):
            ip("link", "del", link, check=False)
        for ns in self._made_namespaces:
            ip("netns", "del", ns, check=False)
        for nid in NODE_IDS if self.k is not None else ():
            drop_database(self.cluster, self.dbname(nid))

    # --- what tests do ---------------------------------------------------------------------
    def cut(self, node_id: str, *, fail_fast: bool = False) -> None:
        """Take the node's link down: it is alive but nothing reaches it, nor it anything.

        Peers that still know the node's MAC address then wait for their own timeouts (a
        host that has just died). With `fail_fast` they forget it, so new connections fail
        with "no route to host" after ARP's ~3 s (a host dead for a while).
        """
        ip("link", "set", self.host_link(node_id), "down")
        if fail_fast:
            addr = self.address(node_id)
            ip("neigh", "flush", "to", addr, check=False)
            for other in NODE_IDS:
                if other != node_id:
                    ip("-n", self.namespace(other), "neigh", "flush", "to", addr, check=False)

    def restore(self, node_id: str) -> None:
        ip("link", "set", self.host_link(node_id), "up")

    def stop_node(self, node_id: str) -> None:
        """Stop the node's process group (the host stays up: its address, no server)."""
        for p in [p for p in self.procs if p.node.id == node_id]:
            supervisor.stop_group(p.pgid)
            self.procs.remove(p)
        assert self.settings is not None
        (supervisor.run_dir(self.settings) / f"{node_id}.pid").unlink(missing_ok=True)

    def start_node(self, node_id: str, timeout: float = 90.0) -> None:
        """Start a stopped node again in its namespace (as built) and wait until it is healthy."""
        assert self.settings is not None
        node = self.settings.node(node_id)
        proc = supervisor.start_node(self.settings, node, supervisor.node_dir(self.settings, node),
                                     wrap=self.wrap)
        self.procs.append(proc)
        supervisor.wait_healthy([proc], timeout=timeout)

    def run_in(self, node_id: str, argv: list[str], *, timeout: float = 60.0,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's namespace."""
        return subprocess.run(["ip", "netns", "exec", self.namespace(node_id), *argv],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def spawn_in(self, node_id: str, argv: list[str], **popen: Any) -> subprocess.Popen:
        """Start a background process (e.g. an external service) inside the node's namespace;
        `close` ends it with everything else running there."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(node_id), *argv],
                                start_new_session=True, **popen)

    def http_status_in(self, node_id: str, url: str, timeout: float = 3.0) -> int:
        """GET `url` from inside the node's namespace: the status, or 0 if nothing answered."""
        res = self.run_in(node_id, [sys.executable, "-c", _PROBE, url, str(timeout)],
                          timeout=timeout + 30)
        return int(res.stdout.strip() or 0)


def federation_fixture(*, scope: Literal["session", "package", "module"] = "module",
                       **options: Any) -> Callable[..., Any]:
    """A pytest fixture starting a `NetnsFederation` on the session's PostGIS (`pg_cluster`).

    In a test module: `netfed = federation_fixture(node_overrides={"*": {...}})`.
    """
    @pytest.fixture(scope=scope)
    def _netns_federation(tmp_path_factory: pytest.TempPathFactory,
                          pg_cluster: Cluster) -> Iterator[NetnsFederation]:
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        with NetnsFederation(tmp_path_factory.mktemp("netns"), pg_cluster, **options) as fed:
            yield fed

    return _netns_federation
