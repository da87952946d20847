"""Registry security and reliability (issue 11: items 6, 8 and the registry part of 10).

- 6: a layer with a degenerate bbox (one point, points on one latitude) reaches the main node; a
  push batch with one bad record applies the others and refuses that one alone; the child parks
  a refused change instead of retrying it for ever, shows it in `/registry/api/health` and
  `geoplat status`, and later changes still flow.
- 8: a regression table of SSRF address forms, each refused through the API and the CLI, with
  a loopback server whose hit counter must stay 0, directly and behind a redirect; one allowed
  case through `registry.allow_networks`.
- 10: malformed registry URLs give 400 problem+json and a one-line CLI error (exit code 2).

One registry federation of its own (`s_*` node ids) that allows only 127.0.0.2/32, so the
services on 127.0.0.1 play "an internal address" and those on 127.0.0.2 "an allowed one".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from registry_support import Fed, ServiceServer, running_federation
from waiting import wait_for

from geoplat_settings import (
    AuthSection,
    Extent,
    NodeRef,
    NodeView,
    RegistrySection,
    ScaleRange,
    ServerSection,
)
from services.access import audit
from services.registry.db import outbox_add

HZ, ZJ, MAIN = "s_hangzhou", "s_zhejiang", "s_national"
ALLOWED_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def fed(tmp_path_factory, pg_cluster, make_federation) -> Iterator[Fed]:
    base: Path = tmp_path_factory.mktemp("security-registry")
    with running_federation(make_federation, base, pg_cluster, prefix="s",
                            registry={"allow_networks": [f"{ALLOWED_HOST}/32"]}) as f:
        yield f


@pytest.fixture(scope="module")
def internal() -> Iterator[ServiceServer]:
    """A service on an address the registry must never contact: its hits must stay 0."""
    srv = ServiceServer("127.0.0.1")
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def allowed() -> Iterator[ServiceServer]:
    """A service inside `registry.allow_networks`; also the first hop of redirects."""
    srv = ServiceServer(ALLOWED_HOST)
    yield srv
    srv.close()


def register(fed: Fed, url: str, who: str = "reg_admin") -> httpx.Response:
    # json.dumps escapes what UTF-8 cannot carry (a lone surrogate), as a hostile client may
    return httpx.post(fed.urls[HZ] + "/registry/api/services", content=json.dumps({"url": url}),
                      headers={**fed.headers[who], "Content-Type": "application/json"},
                      timeout=60)


def count_external(fed: Fed) -> int:
    return fed.dbs[HZ].one(
        "SELECT count(*) AS n FROM registry.services WHERE source = 'external'")["n"]


def cli(fed: Fed, *args: str) -> int:
    from nodes.cli import main

    return main(["--config", str(fed.settings.config_dir) + "/federation.yml", *args])


def assert_problem(r: httpx.Response, statuses: tuple[int, ...] = (400, 422)) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body.get("detail"), body
    assert "Traceback" not in r.text and "/etc/" not in r.text
    return body


# --- item 8: SSRF address forms ---------------------------------------------------------------

# Forms that point at the internal server on 127.0.0.1 (its port is filled in).
LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/wms",
    "http://localhost:{port}/wms",
    "http://localhost.:{port}/wms",
    "http://2130706433:{port}/wms",
    "http://0x7f.1:{port}/wms",
    "http://0x7f000001:{port}/wms",
    "http://017700000001:{port}/wms",
    "http://0177.0.0.1:{port}/wms",
    "http://127.1:{port}/wms",
    "http://0:{port}/wms",
    "http://0.0.0.0:{port}/wms",
    "http://[::ffff:127.0.0.1]:{port}/wms",
    "http://[::ffff:7f00:1]:{port}/wms",
    "http://[::127.0.0.1]:{port}/wms",
    "http://[::1]:{port}/wms",
    "http://[64:ff9b::7f00:1]:{port}/wms",
    "http://[2002:7f00:1::]:{port}/wms",
    "http://good.example@127.0.0.1:{port}/wms",
    "http://good.example:x@127.0.0.1:{port}/wms",
    "HTTP://127.0.0.1:{port}/wms",
]
# Forms of other non-public addresses (nothing listens there; refused before any connect).
OTHER_FORMS = [
    "http://100.100.100.200/latest/meta-data/",  # cloud metadata in the shared range
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://224.0.0.1/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[2002:0a00:0001::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, client 10.0.0.1 (XOR-ed)
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://[::]/",
]


def forms(internal: ServiceServer) -> list[str]:
    return [f.format(port=internal.port) for f in LOOPBACK_FORMS] + OTHER_FORMS


@pytest.mark.parametrize("form", LOOPBACK_FORMS + OTHER_FORMS)
@pytest.mark.parametrize("how", ["direct", "redirect"])
def test_ssrf_forms_are_refused(fed: Fed, internal: ServiceServer, allowed: ServiceServer,
                                form: str, how: str) -> None:
    target = form.format(port=internal.port)
    url = target if how == "direct" else (
        allowed.url + "/redirect?" + urlencode({"to": target}))
    before, hops = count_external(fed), allowed.hits
    r = register(fed, url)
    assert_problem(r, (400,))
    assert internal.hits == 0
    assert count_external(fed) == before
    if how == "redirect":
        assert allowed.hits == hops + 1  # the first hop was read, the second refused


def test_ssrf_forms_are_refused_by_the_cli(fed: Fed, internal: ServiceServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = count_external(fed)
    for url in forms(internal):
        assert cli(fed, "registry", "register", url, "--node", HZ) in (1, 2), url
        err = capsys.readouterr().err.strip()
        assert err.startswith("geoplat: ") and "\n" not in err and "Traceback" not in err, err
    assert internal.hits == 0
    assert count_external(fed) == before


def test_allowed_networks_still_register(fed: Fed, internal: ServiceServer,
                                         allowed: ServiceServer) -> None:
    """The guard does not refuse everything: 127.0.0.2 is in `registry.allow_networks`."""
    wms = allowed.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities"
    r = register(fed, wms)
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "WMS"
    r = register(fed, allowed.url + "/redirect?" + urlencode({"to": wms}))
    assert r.status_code == 201, r.text
    assert internal.hits == 0


# --- item 10 (registry part): malformed URLs ----------------------------------------------------

MALFORMED = [
    "http://[::1/", "http://[::1]x/", "http://[zz]/", "http://", "http:///wms", "http://:80/",
    "http://h:99999/", "http://h:0/", "http://h:/", "http://h:8o/", "http://exa mple.com/",
    "http://example.com/a b", " http://example.com/", "http://a\x00b/", "http://a/\x00",
    "http://a\r\nb/", "http://a\tb/", "file:///etc/passwd", "gopher://127.0.0.1:70/_x",
    "ftp://example.com/", "javascript:alert(1)", "//example.com/", "example.com", "",
    "http://" + "a" * 2000 + ".com/", "http://[fe80::1%25eth0]/", "http://\udc80/",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_answer_400(fed: Fed, url: str) -> None:
    before = count_external(fed)
    body = assert_problem(register(fed, url), (400,))
    assert body["status"] == 400
    assert count_external(fed) == before


@pytest.mark.parametrize("target", [
    "http://[::1/", "http://h:99999/", "http://0177.0.0.1/", "file:///etc/passwd",
    "gopher://127.0.0.1:70/_x", "http://good.example@127.0.0.1/"])
def test_redirects_to_malformed_urls_answer_400(fed: Fed, allowed: ServiceServer,
                                               internal: ServiceServer, target: str) -> None:
    assert_problem(register(fed, allowed.url + "/redirect?" + urlencode({"to": target})), (400,))
    assert internal.hits == 0


def test_malformed_urls_one_line_cli_error(fed: Fed, capsys: pytest.CaptureFixture[str]) -> None:
    for url in [u for u in MALFORMED if u and "\x00" not in u and "\udc80" not in u]:
        assert cli(fed, "registry", "register", url, "--node", HZ) == 2, url
        err = capsys.readouterr().err.strip()
        assert err.startswith("geoplat: ") and "\n" not in err and "Traceback" not in err, err


def test_malformed_url_attempts_are_audited(fed: Fed) -> None:
    """Refused before the registry sees it (services/web/guards.py InputGuard), and audited."""
    r = register(fed, "http://nul\x00host.example/")
    assert r.status_code == 400, r.text
    events = audit.query(fed.dbs[HZ], event="request.bad_input")
    assert any(not e["ok"] and (e["detail"] or {}).get("path") == "/registry/api/services"
               for e in events), events[:3]


# --- item 6: degenerate boxes and one bad record never wedge federation ---------------------------


def catalogue_ids(url: str) -> set[str]:
    out, offset = set(), 0
    while True:
        r = httpx.get(f"{url}/ogc/collections/catalogue/items",
                      params={"f": "json", "limit": 100, "offset": offset}, timeout=30)
        assert r.status_code == 200, r.text
        page = r.json()
        out |= {f["id"] for f in page["features"]}
        offset += 100
        if offset >= page["numberMatched"]:
            return out


def geojson(path: Path, coords: list[tuple[float, float]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": f"p{i}"},
         "geometry": {"type": "Point", "coordinates": list(c)}} for i, c in enumerate(coords)]}),
        encoding="utf-8")
    return path


def test_degenerate_bbox_layers_reach_the_main_node(fed: Fed, tmp_path: Path) -> None:
    one = geojson(tmp_path / "one_point.geojson", [(120.15, 30.25)])
    line = geojson(tmp_path / "one_latitude.geojson", [(120.10, 30.25), (120.20, 30.25)])
    assert cli(fed, "layers", "publish", str(one), "--node", HZ, "--name", "sec_one_point") == 0
    assert cli(fed, "layers", "publish", str(line), "--node", HZ, "--name", "sec_one_lat") == 0
    wanted = {f"{HZ}:features:sec_one_point", f"{HZ}:features:sec_one_lat"}
    wait_for(lambda: wanted <= catalogue_ids(fed.main), 60,
             "a degenerate-bbox layer never reached the main node")
    row = fed.dbs[MAIN].one("SELECT ST_XMin(geom) AS x0, ST_XMax(geom) AS x1, ST_YMin(geom) AS y0, "
                            "ST_YMax(geom) AS y1 FROM registry.services WHERE id = %s",
                            (f"{HZ}:features:sec_one_point",))
    assert row is not None and row["x0"] <= 120.15 <= row["x1"] and row["y0"] <= 30.25 <= row["y1"]
    # and it is found by a bbox search of the main node's catalogue
    r = httpx.get(f"{fed.main}/ogc/collections/catalogue/items", timeout=30,
                  params={"f": "json", "bbox": "120.1,30.2,120.2,30.3", "limit": 500})
    assert f"{HZ}:features:sec_one_point" in {f["id"] for f in r.json()["features"]}


def a_record(rid: str, **over) -> dict:
    return {"id": rid, "origin_node": HZ, "origin_path": f"{MAIN}/{ZJ}/{HZ}", "type": "WMS",
            "url": "http://example.invalid/wms", "title": rid, "description": "", "keywords": [],
            "bbox": [120, 30, 121, 31], "scale": None, "access": "public", "layer_id": None,
            "status": "approved", "version": 1, **over}


def unused_batch(fed: Fed) -> int:
    """A batch number the child will never use itself (its outbox sequence moves past it).

    Taken once the child's outbox is empty, so no batch of its own below it is still unsent.
    """
    db = fed.dbs[HZ]
    wait_for(lambda: db.one("SELECT count(*) AS n FROM registry.outbox")["n"] == 0, 60)
    return db.one("SELECT nextval('registry.outbox_seq_seq') AS n")["n"]


def test_one_bad_record_is_refused_alone(fed: Fed) -> None:
    bad_bbox = a_record(f"{HZ}:sec:bad-bbox", bbox=[121, 30, 120, 31])
    no_url = a_record(f"{HZ}:sec:no-url")
    del no_url["url"]
    body = {"sender": HZ, "changes": [
        {"op": "upsert", "record": a_record(f"{HZ}:sec:good-1")},
        {"op": "upsert", "record": bad_bbox},
        {"op": "upsert", "record": a_record(f"{HZ}:sec:point", bbox=[120.1, 30.2, 120.1, 30.2])},
        {"op": "upsert", "record": no_url},
        {"op": "drop-table"},
        {"op": "upsert", "record": a_record(f"{HZ}:sec:good-2")}]}
    headers = fed.node_token(HZ)

    def send() -> httpx.Response | None:
        body["batch"] = unused_batch(fed)
        r = httpx.post(fed.urls[ZJ] + "/registry/api/push", json=body, headers=headers,
                       timeout=30)
        return None if r.status_code == 409 else r  # the child itself pushed a newer batch

    r = wait_for(send, 60)
    assert r is not None and r.status_code == 200, r and r.text
    batch = body["batch"]
    got = r.json()
    assert got["last_batch"] == batch and got["applied"] == 3
    refused = {x["index"]: x for x in got["refused"]}
    assert set(refused) == {1, 3, 4}
    assert refused[1]["id"] == f"{HZ}:sec:bad-bbox" and "bbox" in refused[1]["reason"]
    assert "url" in refused[3]["reason"] and "op" in refused[4]["reason"]
    have = {row["id"] for row in fed.dbs[ZJ].all(
        "SELECT id FROM registry.services WHERE id LIKE %s", (f"{HZ}:sec:%",))}
    assert have == {f"{HZ}:sec:good-1", f"{HZ}:sec:point", f"{HZ}:sec:good-2"}
    # the parent keeps what it refused from whom, for its operators
    assert fed.dbs[ZJ].one("SELECT count(*) AS n FROM registry.refused WHERE direction = 'in' "
                           "AND record_id = %s", (f"{HZ}:sec:bad-bbox",))["n"] == 1


def test_a_refused_change_is_parked_and_later_changes_flow(
        fed: Fed, allowed: ServiceServer, capsys: pytest.CaptureFixture[str]) -> None:
    hz = fed.dbs[HZ]
    rid = f"{HZ}:sec:oversized"
    with hz.transaction() as cur:  # a change the parent refuses (its title is far too long)
        outbox_add(cur, "upsert", rid, a_record(rid, title="x" * 5000))
    # a later, good change: an external service registered and approved at Hangzhou
    r = register(fed, allowed.url + "/wms?SERVICE=WMS&REQUEST=GetCapabilities")
    assert r.status_code == 201, r.text
    ext = r.json()["id"]
    r = httpx.post(f"{fed.urls[HZ]}/registry/api/services/{ext}/approve",
                   headers=fed.headers["reg_admin"], timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: ext in catalogue_ids(fed.main), 60, "later changes do not flow")

    parked = hz.all("SELECT record_id, reason FROM registry.refused WHERE direction = 'out'")
    assert [p["record_id"] for p in parked] == [rid]
    assert "title" in parked[0]["reason"]
    assert hz.one("SELECT count(*) AS n FROM registry.outbox WHERE record_id = %s",
                  (rid,))["n"] == 0  # not retried
    assert fed.dbs[ZJ].one("SELECT 1 AS x FROM registry.services WHERE id = %s", (rid,)) is None

    # visible in the node's /registry/api/health: counts for all, details for its admins
    public = httpx.get(fed.urls[HZ] + "/registry/api/health", timeout=30).json()
    assert public["push"]["parked"] == 1 and "recent" not in public["push"]
    admin = httpx.get(fed.urls[HZ] + "/registry/api/health", headers=fed.headers["reg_admin"],
                      timeout=30).json()
    assert admin["push"]["recent"][0]["record_id"] == rid
    assert "title" in admin["push"]["recent"][0]["reason"]
    # ... and in geoplat status
    cli(fed, "status")
    out = capsys.readouterr().out
    line = next((x for x in out.splitlines() if "parked" in x and HZ in x), "")
    assert "1 change" in line and ZJ in line, out
    assert rid in out and "title" in out


class _OldParent(BaseHTTPRequestHandler):
    """A parent that refuses a whole batch without naming the change (as before issue 11)."""

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/token":
            self._answer(200, {"access_token": "t", "expires_in": 3600})
            return
        body = json.loads(raw)
        ids = [ch["record"]["id"] for ch in body["changes"]]
        server: Any = self.server
        if any(i.endswith(":bad") for i in ids):
            self._answer(400, {"title": "Malformed push", "detail": "bbox must be 4 numbers"})
            return
        server.applied.extend(ids)
        self._answer(200, {"applied": len(ids), "last_batch": body["batch"]})


EXTENT = Extent(minx=118, miny=27, maxx=123, maxy=31)


def test_a_parent_refusing_whole_batches_gets_them_one_change_at_a_time(pg_cluster) -> None:
    from nodes.postgres import ensure_database, ensure_postgis
    from services.db import Database
    from services.registry.db import ensure_schema
    from services.registry.worker import Pusher

    ensure_database(pg_cluster.dsn(), "sec_pusher")
    dsn = pg_cluster.dsn("sec_pusher")
    ensure_postgis(dsn)
    ensure_schema(dsn)
    db = Database(dsn, maxconn=2)
    with db.transaction() as cur:
        for rid in ("c:a", "c:bad", "c:b"):
            outbox_add(cur, "upsert", rid, a_record(rid))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OldParent)
    httpd.applied = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    view = NodeView(server=ServerSection(id="c", title="c", tier="sub", parent="p",
                                         base_url="http://127.0.0.1:1", extent=EXTENT,
                                         scale=ScaleRange(finest=10000, coarsest=50000),
                                         workers=1),
                    registry=RegistrySection(path="p/c", parent=NodeRef(id="p", base_url=base)))
    auth = AuthSection(node_id="c", is_main=False, main_url=base, issuer=base + "/sso",
                       jwks_url=base + "/jwks", token_url=base + "/token", audience="geoplat",
                       client_id="node-c", client_secret="s")
    pusher = Pusher(db, view, auth)
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(10):  # bounded: 1 refused batch, then 3 single changes
                pusher.push_once(client)
                if pusher.flushed():
                    break
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert httpd.applied == ["c:a", "c:b"]  # type: ignore[attr-defined]
    parked = db.all("SELECT record_id, reason, payload FROM registry.refused "
                    "WHERE direction = 'out'")
    assert [(p["record_id"], p["reason"]) for p in parked] == [("c:bad", "bbox must be 4 numbers")]
    assert parked[0]["payload"]["id"] == "c:bad"  # kept, for the operator to look at
    assert pusher.flushed() and pusher.single_until == 0
