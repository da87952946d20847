"""A federation whose nodes live in separate network namespaces: the multi-host proof (issue 5).

Each node runs in its own `ip netns` with one veth link to a bridge in the root namespace, on
an address of a private /24 chosen per run (10.231.<k>.0/24; the bridge is 10.231.<k>.1, the
nodes .10, .20, .30). A node's namespace has `lo`, its link and nothing else: no default
route, so every URL between nodes is http://10.231.<k>.x:port and nothing works by accident
through 127.0.0.1 (all nodes even listen on the same port, as separate hosts would).

Each host is what an operator would set up on a machine of its own (issue 12): its own
PostgreSQL cluster (nodes/postgres.py `Cluster`, fsync off), its own var/ and its own
config/federation.yml, in which only its own node has a `database_url` (its own role in its own
cluster; the other nodes' are empty, as in the shipped config). The hosts are brought up one at
a time, main node first (`nodes.supervisor.up(host_settings, only=[node])`, built in the root
namespace, the process groups (nginx + uvicorn) started inside the node's namespace: `wrap`
prefixes `ip netns exec <ns>`). Then, as its operator would, the harness issues each other node
an initial access token at the main node (`geoplat sso initial-token --node ID` against the
main host's config) and puts it in that host's `var/provision/<id>.token`; the node's build
registers its OIDC client and gets its cascade key over HTTP (services/provision.py).

A node reaches its database over its cluster's unix socket: pathname sockets do not belong to a
network namespace, so a node keeps its "local" database when its link is cut, as a real host
would, while all traffic between nodes goes over the bridge. (The file system is shared, so a
node could find another cluster's socket; what it lacks is any credential for it, which the
netns tests check.)

Names carry the run's pid (`gp-<pid>-<n>...`): at start, namespaces and links left by runs
whose process is gone (a crash, SIGKILL) are removed with whatever still runs in them.

    fed = NetnsFederation(base_dir, node_overrides={"*": {...}})
    with fed:
        fed.urls["national"]; fed.cut("zhejiang"); fed.run_in("hangzhou", ["ip", "addr"])
        fed.settings_of("hangzhou"); fed.dsn("national"); fed.clusters["zhejiang"]

In a test module: `netfed = netns.federation_fixture()` gives a module-scoped fixture.
Needs root, `ip` (iproute2) and nginx like the rest of the suite.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import quote

import pytest
import yaml
from federations import free_port
from var_dirs import var_dir_for
from waiting import wait_gone

from nodes import cli as geoplat_cli
from nodes import settings as settings_mod
from nodes import supervisor
from nodes.postgres import Cluster
from services.provision import token_file

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


def socket_dsn(cluster: Cluster, role: str, dbname: str) -> str:
    """A DSN of `role` reaching `cluster` over its unix socket (works from every namespace)."""
    password = quote(cluster.role_password_file(role).read_text().strip(), safe="")
    return (f"postgresql://{role}:{password}@/{dbname}?host={quote(str(cluster.socket_dir))}"
            f"&port={cluster.port}")


class NetnsFederation:
    """The demo federation (national, zhejiang, hangzhou), one network namespace per node."""

    def __init__(self, base: Path, *, port: int = 8000,
                 require_keys: bool = False,
                 node_overrides: dict[str, dict[str, Any]] | None = None,
                 echo: Callable[..., None] = lambda *a: None):
        with _counter_lock:
            n = _counter["n"]
            _counter["n"] += 1
        if n > 9:
            raise NetnsError("at most 10 netns federations per process")
        self.tag = f"gp-{os.getpid()}-{n}"  # <= 10 chars: link names stay within 15
        self.base, self.port = Path(base), port
        self.require_keys = require_keys
        self.node_overrides = node_overrides or {}
        self.echo = echo
        self.k: int | None = None
        # one PostgreSQL cluster and one federation config (var/, database) per host
        self.clusters: dict[str, Cluster] = {}
        self.host_settings: dict[str, settings_mod.FederationSettings] = {}
        self._pg_root: Path | None = None
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
        """The node's database in its host's cluster, owned by a role of the same name."""
        return f"{self.tag.replace('-', '_')}_{node_id}"

    def settings_of(self, node_id: str) -> settings_mod.FederationSettings:
        """The federation config of the node's host."""
        return self.host_settings[node_id]

    def node_dir(self, node_id: str) -> Path:
        s = self.settings_of(node_id)
        return supervisor.node_dir(s, s.node(node_id))

    def dsn(self, node_id: str) -> str:
        """The node's own database URL (its role in its host's cluster)."""
        s = self.settings_of(node_id)
        url = s.node(node_id).database_url
        assert url is not None
        return url

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
            self._start_clusters()
            for nid in NODE_IDS:
                self.host_settings[nid] = settings_mod.load(self.write_config(nid))
            for nid in NODE_IDS:  # main node first: the others provision themselves there
                if nid != NODE_IDS[0]:
                    self.give_initial_token(nid)
                procs, _ = supervisor.up(self.settings_of(nid), only=[nid], echo=self.echo,
                                         wrap=self.wrap)
                self.procs += procs
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

    def _start_clusters(self) -> None:
        """Each host's own PostgreSQL cluster, with the node's role and database in it."""
        # not under pytest's tmp dir: that is mode 0700 and the servers run as `postgres`
        self._pg_root = Path(tempfile.mkdtemp(prefix=f"geoplat-{self.tag}-pg-"))
        self._pg_root.chmod(0o755)
        for nid in NODE_IDS:
            cluster = Cluster(data_dir=self._pg_root / nid, port=free_port(), fast=True)
            self.clusters[nid] = cluster
            cluster.start()
            cluster.ensure_node_role(self.dbname(nid), self.dbname(nid))

    def host_dir(self, node_id: str) -> Path:
        return self.base / "hosts" / node_id

    def write_config(self, host: str) -> Path:
        """The config/federation.yml of `host`: its var/, its cluster, the addresses and port,
        and only its own node's database URL.

        Extra per-node settings (e.g. `registry: {allow_networks: [...]}`) come from
        `node_overrides`: {node_id: {...}} or {"*": {...}} for every node, deep-merged last.
        """
        raw = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))
        raw["var_dir"] = str(var_dir_for(self.host_dir(host)))  # enterable by the nodes' user
        raw["data_dir"] = str(ROOT / "data-samples")
        cluster = self.clusters[host]
        raw["postgres"] = {"data_dir": str(cluster.data_dir), "port": cluster.port}
        for i, node in enumerate(raw["nodes"]):
            nid = node["id"]
            node["host"] = self.address(nid)
            node["port"] = self.port
            # another host's database is none of this host's business
            node["database_url"] = (socket_dsn(cluster, self.dbname(nid), self.dbname(nid))
                                    if nid == host else "")
            node["auth"] = {**(node.get("auth") or {}), "public_requires_key": self.require_keys}
            # --- extra per-node settings merged in here (registry.allow_networks, ...) ---
            for key in ("*", nid):
                node = _deep_merge(node, self.node_overrides.get(key) or {})
            raw["nodes"][i] = node
        cfg_dir = self.host_dir(host) / "config"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        if not (cfg_dir / "layers").exists():  # a copy: publishing may write layer files
            shutil.copytree(ROOT / "config" / "layers", cfg_dir / "layers")
        path = cfg_dir / "federation.yml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def give_initial_token(self, node_id: str) -> None:
        """As the operators would: `geoplat sso initial-token --node ID` on the main node's
        host, the token copied into the node's host (`var/provision/<id>.token`, 0600)."""
        main_config = self.host_dir(NODE_IDS[0]) / "config" / "federation.yml"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = geoplat_cli.main(["--config", str(main_config), "sso", "initial-token",
                                     "--node", node_id, "--hours", "1"])
        if code != 0:
            raise NetnsError(f"no initial token for {node_id}: {err.getvalue().strip()}")
        s = self.settings_of(node_id)
        path = token_file(s, s.node(node_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out.getvalue().strip() + "\n", encoding="utf-8")
        os.chmod(path, 0o600)

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
            if p.node.id in self.host_settings:
                (supervisor.run_dir(self.settings_of(p.node.id))
                 / f"{p.node.id}.pid").unlink(missing_ok=True)
        for ns in self._made_namespaces:  # anything the groups left behind
            _kill_namespace_processes(ns)
        for link in reversed(self._made_links):
            ip("link", "del", link, check=False)
        for ns in self._made_namespaces:
            ip("netns", "del", ns, check=False)
        for cluster in self.clusters.values():  # the hosts' databases go with the run
            cluster.stop()
        if self._pg_root is not None:
            shutil.rmtree(self._pg_root, ignore_errors=True)

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
        (supervisor.run_dir(self.settings_of(node_id)) / f"{node_id}.pid").unlink(missing_ok=True)

    def start_node(self, node_id: str, timeout: float = 90.0) -> None:
        """Start a stopped node again in its namespace (as built) and wait until it is healthy."""
        s = self.settings_of(node_id)
        proc = supervisor.start_node(s, s.node(node_id), self.node_dir(node_id), wrap=self.wrap)
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
    """A pytest fixture starting a `NetnsFederation` (its hosts bring their own clusters).

    In a test module: `netfed = federation_fixture(node_overrides={"*": {...}})`.
    """
    @pytest.fixture(scope=scope)
    def _netns_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsFederation]:
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        with NetnsFederation(tmp_path_factory.mktemp("netns"), **options) as fed:
            yield fed

    return _netns_federation
