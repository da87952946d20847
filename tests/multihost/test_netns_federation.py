"""The federation across separate hosts: each node in its own network namespace (netns.py).

Proves the harness the registry's multi-host scenario (issue 5) builds on: nodes reach each
other only at their namespace addresses, the e-map cascade and single sign-on work between
them, and a cut link behaves like a host that went away and came back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import netns
import numpy as np
import psycopg2
import pytest
import requests
from netns import NODE_IDS, NetnsFederation, federation_fixture
from sso_client import bearer, login_pkce
from tile_helpers import image, tdt_url_at
from var_dirs import var_dir_for
from waiting import wait_for

from services.access import apikeys
from services.db import Database
from services.sso import accounts

pytestmark = pytest.mark.slow

HALL = (120.2130, 30.2460)  # 杭州市民中心政务服务大厅 in the synthetic Hangzhou data
SERVICE_HALL = (200, 16, 46)
PASSWORD = "netns-correct-horse-1"

netfed = federation_fixture()

# Run inside a namespace: connect with a DSN, print "connected" or the first line of the refusal.
_PG_PROBE = """import sys, psycopg2
try:
    psycopg2.connect(sys.argv[1], connect_timeout=5).close()
    print("connected")
except psycopg2.OperationalError as exc:
    print("refused: " + (str(exc).strip().splitlines() or [""])[0])
"""


def has_service_hall(img: np.ndarray) -> bool:
    return bool((np.abs(img[..., :3] - np.array(SERVICE_HALL)).max(axis=-1) <= 12).any())


@pytest.fixture(scope="module")
def national_db(netfed: NetnsFederation) -> Database:
    """The main node's database (accounts, keys), over the cluster's unix socket."""
    return Database(netfed.dsn("national"), maxconn=1)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_namespaces_and_links_of_dead_runs_are_removed() -> None:
    tag = f"gp-{_dead_pid()}-9"
    mine = f"gp-{os.getpid()}-9h0"  # a live run's link is left alone
    try:
        with netns._host_lock():  # another run's start would clean up our fakes first
            netns.ip("netns", "add", f"{tag}-x")
            netns.ip("link", "add", f"{tag}h0", "type", "veth", "peer", "name", f"{tag}n0")
            netns.ip("link", "add", mine, "type", "veth", "peer", "name",
                     f"gp-{os.getpid()}-9n0")
            removed = netns.remove_stale()
        assert {f"{tag}-x", f"{tag}h0"} <= set(removed)
        assert f"{tag}-x" not in netns._namespaces()
        links = netns._links()
        assert f"{tag}h0" not in links and f"{tag}n0" not in links and mine in links
    finally:
        netns.ip("link", "del", mine, check=False)
        netns.ip("link", "del", f"{tag}h0", check=False)
        netns.ip("netns", "del", f"{tag}-x", check=False)


def test_a_failed_start_leaves_nothing_behind(tmp_path) -> None:
    fed = NetnsFederation(tmp_path, node_overrides={"*": {"no_such_key": 1}})
    with pytest.raises(Exception, match="no_such_key"):
        fed.start()
    assert len(fed.clusters) == 3 and not any(c.is_running() for c in fed.clusters.values())
    assert not [n for n in netns._namespaces() if n.startswith(fed.tag + "-")]
    assert not [n for n in netns._links() if n.startswith(fed.tag)]


def test_nodes_are_healthy_at_their_namespace_addresses(netfed: NetnsFederation) -> None:
    for nid in NODE_IDS:
        assert requests.get(netfed.urls[nid] + "/health", timeout=10).json()["status"] == "ok"
        addrs = netfed.run_in(nid, ["ip", "-4", "-o", "addr", "show"]).stdout
        words = addrs.split()
        found = sorted(words[i + 1].split("/")[0] for i, w in enumerate(words) if w == "inet")
        assert found == sorted(["127.0.0.1", netfed.address(nid)]), addrs
        # no route out of the test network: a namespace is a host on this one link only
        assert netfed.run_in(nid, ["ip", "route", "get", "192.0.2.1"]).returncode != 0
    for src in NODE_IDS:  # every node reaches every node at its own address
        for dst in NODE_IDS:
            assert netfed.http_status_in(src, netfed.urls[dst] + "/health") == 200, (src, dst)


def test_nothing_answers_on_localhost_inside_a_namespace(netfed: NetnsFederation) -> None:
    national = netfed.urls["national"]
    assert netfed.http_status_in("hangzhou", f"http://127.0.0.1:{netfed.port}/health", 2) == 0
    assert netfed.http_status_in("national", f"http://127.0.0.1:{netfed.port}/health", 2) == 0
    assert netfed.http_status_in("hangzhou", national + "/health") == 200
    # what nodes were built with points at the other nodes' addresses, never at loopback
    for nid in NODE_IDS:
        meta = json.loads((netfed.node_dir(nid) / "node.json").read_text())
        auth = meta["auth"]
        assert meta["server"]["base_url"] == netfed.urls[nid]
        for key in ("main_url", "issuer", "jwks_url", "token_url"):
            assert auth[key].startswith(national), (nid, key, auth[key])
    text = (netfed.node_dir("national") / "tiles" / "mapproxy.yaml").read_text()
    assert netfed.urls["zhejiang"] + "/" in text and "127.0.0.1" not in text


def test_emap_cascade_crosses_namespaces(netfed: NetnsFederation) -> None:
    """Level 18 over Hangzhou at the main node: national -> zhejiang -> hangzhou, with node
    keys checked at each child against the main node, all over the bridge."""
    main = image(requests.get(tdt_url_at(netfed.urls["national"], "vec", "c", 18, *HALL), timeout=120))
    base = image(requests.get(tdt_url_at(netfed.urls["hangzhou"], "vec", "c", 18, *HALL), timeout=120))
    assert np.abs(main - base).max() <= 2  # the main node shows the Hangzhou node's tile
    assert has_service_hall(main), "service hall marker missing"


def test_sso_across_namespaces(netfed: NetnsFederation, national_db: Database) -> None:
    db = national_db
    national, hz = netfed.urls["national"], netfed.urls["hangzhou"]
    accounts.create(db, "netns_carol", PASSWORD, roles=["hangzhou:publisher"])
    token = login_pkce(national, "netns_carol", PASSWORD)
    # hangzhou validates the main node's token with the JWKS it fetched across the bridge
    me = requests.get(hz + "/auth/me", headers=bearer(token), timeout=30)
    assert me.status_code == 200, me.text
    assert "netns_carol" in me.text
    # the browser dance: hangzhou's sign-in redirects to the main node and redeems the code
    # there itself (hangzhou -> national, its client credentials)
    browser = requests.Session()
    login_pkce(national, "netns_carol", PASSWORD, browser=browser)
    r = browser.get(hz + "/auth/login", timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.url.startswith(hz + "/ogc")
    page = browser.get(hz + "/ogc/collections?f=html", timeout=30).text
    assert "control_points" in page  # the publisher of Hangzhou sees its restricted layer
    assert "control_points" not in requests.get(hz + "/ogc/collections?f=html", timeout=30).text


def test_key_binding_sees_the_real_client_address(netfed: NetnsFederation,
                                                  national_db: Database) -> None:
    """Hangzhou checks keys at the main node across the bridge, against the caller's real
    address: a key bound to loopback is refused from the test network, one bound to it works."""
    db = national_db
    user = accounts.create(db, "netns_dev", PASSWORD, roles=["developer"])
    loopback, _ = apikeys.create_key(db, "test", user.id, "loopback only", "server",
                                     ["127.0.0.0/8"], actor="test")
    ours, _ = apikeys.create_key(db, "test", user.id, "test network", "server",
                                 [f"{netfed.gateway}/32"], actor="test")
    url = netfed.urls["hangzhou"] + "/ogc/collections?f=json&tk="
    refused = requests.get(url + loopback, timeout=30)
    assert refused.status_code == 403, refused.text[:300]
    assert refused.json()["title"] == "Key not allowed here"  # looked up, then refused
    assert requests.get(url + ours, timeout=30).status_code == 200


def test_a_stopped_node_refuses_at_once_and_starts_again(netfed: NetnsFederation) -> None:
    hz = netfed.urls["hangzhou"]
    netfed.stop_node("hangzhou")
    try:
        t0 = time.monotonic()
        assert netfed.http_status_in("zhejiang", hz + "/health", 20) == 0
        assert time.monotonic() - t0 < 10  # the host is there: "connection refused", no wait
    finally:
        netfed.start_node("hangzhou")
    assert netfed.http_status_in("zhejiang", hz + "/health") == 200


def test_cut_and_restore_the_zhejiang_link(netfed: NetnsFederation) -> None:
    urls = netfed.urls
    lon, lat = HALL[0] + 0.01, HALL[1] + 0.01
    cached_url = tdt_url_at(urls["national"], "vec", "c", 17, lon, lat)
    first = requests.get(cached_url, timeout=120)
    assert first.status_code == 200
    again = requests.get(cached_url, timeout=30)
    assert again.headers.get("X-Tile-Cache") == "hit" and again.content == first.content
    fine_url = tdt_url_at(urls["national"], "vec", "c", 19, *HALL)  # never fetched before

    netfed.cut("zhejiang", fail_fast=True)
    try:
        assert netfed.http_status_in("national", urls["zhejiang"] + "/health", 2) == 0
        assert netfed.http_status_in("hangzhou", urls["zhejiang"] + "/health", 2) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(urls["zhejiang"] + "/health", timeout=2)
        # the main node still serves what it has cached
        cached = requests.get(cached_url, timeout=30)
        assert cached.status_code == 200 and cached.content == first.content
        # hangzhou is alive, but the main node cannot reach it through zhejiang
        assert netfed.http_status_in("national", urls["hangzhou"] + "/health") == 200
        cut_tile = image(requests.get(fine_url, timeout=60))
        assert not has_service_hall(cut_tile)
    finally:
        netfed.restore("zhejiang")

    wait_for(lambda: netfed.http_status_in("national", urls["zhejiang"] + "/health", 2) == 200,
               30, "zhejiang answers the main node again")
    # from the host too (its route to zhejiang's namespace comes back with the link)
    wait_for(lambda: all(requests.get(urls[nid] + "/health", timeout=10).json()["status"] == "ok"
                         for nid in NODE_IDS), 30, "every node healthy from the host again")
    # the cut-time answer was not cached: the cascade reaches hangzhou again (at once, as a
    # rule; allow the children's key caches, KEY_TTL 30 s, to catch up on a busy machine)
    seen: list[str] = []

    def cascade_back() -> bool:
        r = requests.get(fine_url, timeout=120)
        if has_service_hall(image(r)):
            return True
        zj = requests.get(fine_url.replace(urls["national"], urls["zhejiang"]), timeout=120)
        hall = zj.status_code == 200 and has_service_hall(image(zj))
        seen.append(f"zhejiang answered {zj.status_code} {zj.headers.get('Content-Type')} "
                    f"{'with' if hall else 'without'} the hall "
                    f"{zj.text[:200] if zj.status_code != 200 else ''}")
        return False

    try:
        # 120 s: a clean-clone run on the busy 2-core machine once took longer than 60 s
        wait_for(cascade_back, 120, "the main node shows hangzhou's tile again")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (zhejiang's last answers: {seen[-3:]})") from None
    finally:
        if seen:
            print(f"cascade after restore needed {len(seen) + 1} tries: {seen[:3]}")


# --- one PostgreSQL cluster per host, and no node holding another's credentials (issue 12) ---

def _database_secrets(netfed: NetnsFederation, host: str) -> set[str]:
    """The secrets of a host's cluster: its superuser's password and its node role's."""
    cluster = netfed.clusters[host]
    role = psycopg2.extensions.parse_dsn(netfed.dsn(host))
    return {cluster.password_file.read_text().strip(), role["password"], netfed.dsn(host)}


def _what_a_node_holds(netfed: NetnsFederation, nid: str) -> list[tuple[str, bytes]]:
    """Every file of the node's host (its var/ and config/), and the environment and command
    line of every process running in its namespace."""
    s = netfed.settings_of(nid)
    found = []
    for root in (var_dir_for(netfed.host_dir(nid)), Path(s.config_dir)):
        for path in root.rglob("*"):
            if {"cache", "cache_data"} & set(path.parts) or path.is_symlink() or \
                    not path.is_file() or path.stat().st_size > 5_000_000:
                continue
            found.append((str(path), path.read_bytes()))
    pids = subprocess.run(["ip", "netns", "pids", netfed.namespace(nid)], capture_output=True,
                          text=True, check=True).stdout.split()
    assert pids, f"nothing runs in {nid}'s namespace"
    for pid in pids:
        for part in ("environ", "cmdline"):
            try:
                found.append((f"/proc/{pid}/{part}", Path(f"/proc/{pid}/{part}").read_bytes()))
            except OSError:  # ended meanwhile
                pass
    return found


def test_each_host_has_its_own_cluster(netfed: NetnsFederation) -> None:
    assert len({(str(c.data_dir), c.port) for c in netfed.clusters.values()}) == len(NODE_IDS)
    for nid in NODE_IDS:
        meta = json.loads((netfed.node_dir(nid) / "node.json").read_text())
        dsn = psycopg2.extensions.parse_dsn(meta["database"]["dsn"])
        cluster = netfed.clusters[nid]
        assert (dsn["host"], int(dsn["port"])) == (str(cluster.socket_dir), cluster.port), nid
        assert dsn["user"] == netfed.dbname(nid)  # its own role, not the superuser
        assert meta["auth"]["main_dsn"] == (meta["database"]["dsn"] if nid == "national" else None)
        for host, other in netfed.clusters.items():  # its database is on its host only
            conn = psycopg2.connect(other.dsn(), connect_timeout=5)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT datname FROM pg_database")
                    names = {r[0] for r in cur.fetchall()}
            finally:
                conn.close()
            assert (netfed.dbname(nid) in names) == (host == nid), (nid, host)
    # accounts and clients live at the main node only; each sub-node has its own auth tables
    for nid in NODE_IDS:
        conn = psycopg2.connect(netfed.dsn(nid), connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('auth.clients') IS NOT NULL, "
                            "to_regclass('auth.audit') IS NOT NULL")
                assert cur.fetchone() == (nid == "national", True), nid
        finally:
            conn.close()


def test_no_node_holds_another_nodes_database_credentials(netfed: NetnsFederation) -> None:
    secrets = {nid: _database_secrets(netfed, nid) for nid in NODE_IDS}
    for nid in NODE_IDS:
        foreign = {s for other, found in secrets.items() if other != nid for s in found}
        # not even its own cluster's superuser: a node runs as its own database role
        forbidden = foreign | {netfed.clusters[nid].password_file.read_text().strip()}
        held = _what_a_node_holds(netfed, nid)
        assert any(netfed.dsn(nid).encode() in text for _, text in held)  # the check can see
        leaks = [(where, secret[:6]) for where, text in held for secret in forbidden
                 if len(secret) >= 12 and secret.encode() in text]
        assert not leaks, (nid, leaks)


def test_a_sub_node_cannot_open_the_main_database(netfed: NetnsFederation) -> None:
    main = netfed.clusters["national"]
    for nid in ("zhejiang", "hangzhou"):
        own = psycopg2.extensions.parse_dsn(netfed.dsn(nid))
        probe = [sys.executable, "-c", _PG_PROBE]
        assert netfed.run_in(nid, [*probe, netfed.dsn(nid)]).stdout.strip() == "connected"
        # its credentials at the main node's cluster: over the socket (the shared file system
        # of this test), and at 127.0.0.1 (its namespace's own loopback: nothing there)
        for target in (f"host={main.socket_dir} port={main.port}",
                       f"host=127.0.0.1 port={main.port}"):
            dsn = (f"{target} dbname={netfed.dbname('national')} user={own['user']} "
                   f"password={own['password']}")
            out = netfed.run_in(nid, [*probe, dsn]).stdout.strip()
            assert out.startswith("refused"), (nid, target, out)
            if target.startswith("host=/"):
                assert "password authentication failed" in out, out


def test_the_sub_nodes_registered_over_http(netfed: NetnsFederation, national_db: Database) -> None:
    """Their clients and cascade keys exist at the main node because they asked for them there,
    with the initial access tokens their operators were given."""
    rows = national_db.all("SELECT actor, subject, ip FROM auth.audit WHERE ok AND event = "
                           "'provision.register' ORDER BY id")
    assert {r["actor"] for r in rows} >= {"zhejiang", "hangzhou"}
    assert all(r["ip"] == netfed.gateway for r in rows)  # from the build host, over the bridge
    keys = national_db.all("SELECT actor FROM auth.audit WHERE ok AND event = "
                           "'provision.node_key'")
    assert {"node-zhejiang"} <= {k["actor"] for k in keys}  # zhejiang has a child
    for nid in ("zhejiang", "hangzhou"):
        client = json.loads((netfed.node_dir(nid) / "oidc-client.json").read_text())
        assert client["client_id"] == f"node-{nid}"
        assert client["issuer"] == netfed.urls["national"] + "/sso"
