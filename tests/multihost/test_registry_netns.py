"""The registry across separate hosts (issue 5, multi-host proof): one network namespace per node.

Hangzhou registers an external service that lives on Hangzhou's own network; it reaches the
main node through Zhejiang. Then Zhejiang's link is cut: the main node marks Zhejiang down
within two health intervals and keeps serving its cached e-map; a second registration at
Hangzhou waits in Hangzhou's outbox and arrives at the main node once the link is restored,
nothing lost and nothing duplicated.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests
from netns import NetnsFederation, federation_fixture
from sso_client import bearer, login_pkce
from tile_helpers import tdt_url_at
from waiting import wait_for

from services.db import Database
from services.sso import accounts

pytestmark = pytest.mark.slow

INTERVAL = 2.0
PASSWORD = "registry-netns-password-1"
SERVICE_PORT = 8088
CAPS = """<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms"
  xmlns:xlink="http://www.w3.org/1999/xlink">
<Service><Name>WMS</Name><Title>{title}</Title><Abstract>城管部门 department WMS</Abstract>
<OnlineResource xlink:href="http://example.invalid/"/></Service>
<Capability><Request><GetCapabilities><Format>text/xml</Format><DCPType><HTTP><Get>
<OnlineResource xlink:href="http://example.invalid/"/></Get></HTTP></DCPType></GetCapabilities>
<GetMap><Format>image/png</Format><DCPType><HTTP><Get>
<OnlineResource xlink:href="http://example.invalid/"/></Get></HTTP></DCPType></GetMap></Request>
<Exception><Format>XML</Format></Exception>
<Layer><Title>root</Title><CRS>EPSG:4490</CRS><Layer queryable="0"><Name>l</Name><Title>l</Title>
<EX_GeographicBoundingBox><westBoundLongitude>120.0</westBoundLongitude>
<eastBoundLongitude>120.3</eastBoundLongitude><southBoundLatitude>30.1</southBoundLatitude>
<northBoundLatitude>30.4</northBoundLatitude></EX_GeographicBoundingBox></Layer></Layer>
</Capability></WMS_Capabilities>"""

netfed = federation_fixture(node_overrides={"*": {"registry": {
    "health_interval": INTERVAL, "push_interval": 0.5, "full_sync_interval": 10.0,
    "fetch_timeout": 3.0, "allow_networks": ["10.231.0.0/16"]}}})


def db_of(netfed: NetnsFederation, nid: str) -> Database:
    return Database(netfed.dsn(nid), maxconn=1)


def approved_at(db: Database, rid: str) -> int:
    return db.one("SELECT count(*) AS n FROM registry.services WHERE id = %s AND "
                  "status = 'approved'", (rid,))["n"]


def test_registrations_and_health_cross_hosts(netfed: NetnsFederation, tmp_path: Path) -> None:
    urls = netfed.urls
    national, hangzhou = db_of(netfed, "national"), db_of(netfed, "hangzhou")
    accounts.create(national, "netns_hz_admin", PASSWORD, roles=["hangzhou:admin"])
    admin = bearer(login_pkce(urls["national"], "netns_hz_admin", PASSWORD))
    # a department's WMS on Hangzhou's network (a real server inside Hangzhou's namespace)
    site = tmp_path / "site"
    site.mkdir()
    (site / "one.xml").write_text(CAPS.format(title="城管一号 WMS"), encoding="utf-8")
    (site / "two.xml").write_text(CAPS.format(title="城管二号 WMS"), encoding="utf-8")
    netfed.spawn_in("hangzhou", ["python3", "-m", "http.server", str(SERVICE_PORT), "--bind",
                                 netfed.address("hangzhou"), "--directory", str(site)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = f"http://{netfed.address('hangzhou')}:{SERVICE_PORT}"
    wait_for(lambda: netfed.http_status_in("hangzhou", service + "/one.xml") == 200, 20,
               "the department WMS is up")

    def register_and_approve(name: str) -> str:
        r = requests.post(urls["hangzhou"] + "/registry/api/services",
                          json={"url": f"{service}/{name}.xml"}, headers=admin, timeout=60)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        r = requests.post(f"{urls['hangzhou']}/registry/api/services/{rid}/approve",
                          headers=admin, timeout=60)
        assert r.status_code == 200, r.text
        return rid

    first = register_and_approve("one")
    wait_for(lambda: approved_at(national, first) == 1, 60, "first registration at main")
    got = requests.get(urls["national"] + "/ogc/collections/catalogue/items/" + first,
                       params={"f": "json"}, timeout=30).json()
    assert got["properties"]["origin_path"] == "national/zhejiang/hangzhou"

    tile = tdt_url_at(urls["national"], "vec", "c", 8, 120.2, 30.25)
    assert requests.get(tile, timeout=120).status_code == 200  # cached at the main node

    netfed.cut("zhejiang")
    try:
        cut = time.monotonic()
        wait_for(lambda: national.one(
            "SELECT health FROM registry.services WHERE id = 'zhejiang:node'")["health"] == "down",
            2 * INTERVAL + 2, "zhejiang marked down at the main node", interval=0.1)
        assert time.monotonic() - cut <= 2 * INTERVAL + 2
        r = requests.get(tile, timeout=30)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/")
        second = register_and_approve("two")
        # Hangzhou's worker tried to push it to its cut-off parent and failed
        wait_for(lambda: hangzhou.one(
            "SELECT 1 AS failing FROM registry.state WHERE name = 'push_error'"), 2 * INTERVAL + 10,
            "Hangzhou's push to its cut-off parent failed")
        assert approved_at(national, second) == 0
        assert hangzhou.one("SELECT count(*) AS n FROM registry.outbox WHERE record_id = %s",
                            (second,))["n"] >= 1
    finally:
        netfed.restore("zhejiang")
    wait_for(lambda: approved_at(national, second) == 1, 90, "second registration at main")
    wait_for(lambda: national.one("SELECT health FROM registry.services WHERE "
                                    "id = 'zhejiang:node'")["health"] == "up", 30,
               "zhejiang up again")
    for rid in (first, second):
        assert national.one("SELECT count(*) AS n FROM registry.services WHERE id = %s",
                            (rid,))["n"] == 1

    def same_subtree() -> bool:
        sql = ("SELECT id, version FROM registry.services WHERE origin_node = 'hangzhou' AND "
               "status IN ('approved', 'retired') AND version > 0 ORDER BY id")
        return national.all(sql) == hangzhou.all(sql)

    wait_for(same_subtree, 30, "the main node holds exactly Hangzhou's records")
