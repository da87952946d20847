"""WMS for configured vector layers and GetFeatureInfo with field-level access (issue 15).

Hangzhou's `parcels` and `presale_projects` are WMS layers of their own (`wms: true`); a
GetFeatureInfo on them is answered by the node (tiles/featureinfo.py) with the attributes the
caller may see: anonymous callers never receive `right_holder`, `right_type`, `right_nature`
(raw bodies, every INFO_FORMAT); a user with the node's grant for `parcels` and the node's
publisher do. Real nodes, real PostGIS, OWSLib as the client that is not ours.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pyogrio
import pytest
import requests
import shapely
from field_support import HALF, SIZE, callers, gfi
from lxml import etree
from owslib.wms import WebMapService
from PIL import Image
from pyproj import Transformer

from geoplat_settings import LayerSettings
from layers.publish import publish, retire
from nodes import federation as federation_mod
from services.db import Database
from tiles.featureinfo import INFO_FORMATS, MAX_FEATURE_COUNT

HIDDEN = ("right_holder", "right_type", "right_nature")
PASSWORD = "featureinfo-password-1"
QGIS_PYTHON = "/usr/bin/python3"  # Debian's, where python3-qgis lives (not the venv)
QGIS_IDENTIFY = Path(__file__).resolve().parents[1] / "clients" / "qgis_identify.py"


@pytest.fixture(scope="module")
def hz_db(federation) -> Database:
    return Database(federation_mod.node_dsn(federation, federation.node("hangzhou")), maxconn=1)


@pytest.fixture(scope="module")
def who(urls, main_db, hz_db) -> dict[str, dict[str, str]]:
    return callers(main_db, hz_db, urls["national"], "featureinfo", PASSWORD)


@pytest.fixture(scope="module")
def parcel(hz_db) -> dict[str, Any]:
    """A parcel with a holder, and a point inside it (what a leak would show)."""
    row = hz_db.one("SELECT fid, parcel_no, right_holder, right_type, ST_X(p) AS lon, "
                    "ST_Y(p) AS lat FROM (SELECT *, ST_PointOnSurface(geom) AS p "
                    "FROM public.parcels WHERE right_holder IS NOT NULL AND right_holder <> '') t "
                    "ORDER BY fid LIMIT 1")
    assert row is not None
    return dict(row)


def _features(r: requests.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text[:400]
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "private, no-store"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    return doc["features"]


def _ogc_error(r: requests.Response) -> str:
    assert r.status_code in (400, 404), (r.status_code, r.text[:300])
    root = etree.fromstring(r.content)
    assert etree.QName(root).localname == "ServiceExceptionReport"
    return next(el for el in root.iter() if etree.QName(el).localname == "ServiceException"
                ).get("code")


@pytest.mark.parametrize("fmt", INFO_FORMATS)
@pytest.mark.parametrize("caller", ["anonymous", "user"])
def test_callers_without_grant_never_receive_holder_fields(urls, who, parcel, fmt, caller
                                                           ) -> None:
    r = gfi(urls["hangzhou"], parcel["lon"], parcel["lat"], fmt=fmt, headers=who[caller])
    assert r.status_code == 200, r.text[:400]
    assert parcel["parcel_no"] in r.text
    for name in HIDDEN:
        assert name not in r.text
    assert parcel["right_holder"] not in r.text
    if fmt in ("application/vnd.ogc.gml", "text/xml"):
        root = etree.fromstring(r.content)
        assert etree.QName(root).localname == "msGMLOutput"
        feats = root.findall("parcels_layer/parcels_feature")
        assert len(feats) == 1 and feats[0].findtext("parcel_no") == parcel["parcel_no"]
        assert feats[0].get("fid") == str(parcel["fid"])
        assert feats[0].find("msGeometry")[0].tag.endswith("MultiPolygon")


@pytest.mark.parametrize("caller", ["granted", "publisher"])
def test_granted_user_and_publisher_receive_them(urls, who, parcel, caller) -> None:
    for fmt in INFO_FORMATS:
        r = gfi(urls["hangzhou"], parcel["lon"], parcel["lat"], fmt=fmt, headers=who[caller])
        assert r.status_code == 200 and parcel["right_holder"] in r.text, (fmt, r.text[:300])
    props = _features(gfi(urls["hangzhou"], parcel["lon"], parcel["lat"],
                          headers=who[caller]))[0]["properties"]
    assert props["parcel_no"] == parcel["parcel_no"]
    assert props["right_holder"] == parcel["right_holder"]
    assert props["right_type"] == parcel["right_type"]


def test_versions_and_crs_answer_the_same_feature(urls, parcel) -> None:
    base, lon, lat = urls["hangzhou"], parcel["lon"], parcel["lat"]
    one = _features(gfi(base, lon, lat, version="1.1.1"))
    three = _features(gfi(base, lon, lat, version="1.3.0"))
    assert [f["id"] for f in one] == [f["id"] for f in three] == [parcel["fid"]]
    assert one[0]["properties"] == three[0]["properties"]
    x, y = Transformer.from_crs(4490, 3857, always_xy=True).transform(lon, lat)
    d = 100.0  # metres
    r = requests.get(base + "/wms", params={
        "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetFeatureInfo", "LAYERS": "parcels",
        "QUERY_LAYERS": "parcels", "CRS": "EPSG:3857", "BBOX": f"{x - d},{y - d},{x + d},{y + d}",
        "WIDTH": str(SIZE), "HEIGHT": str(SIZE), "I": "50", "J": "50",
        "INFO_FORMAT": "application/json"}, timeout=60)
    assert [f["id"] for f in _features(r)] == [parcel["fid"]]
    box = {"EPSG:4326": f"{lat - HALF},{lon - HALF},{lat + HALF},{lon + HALF}",  # lat first
           "CRS:84": f"{lon - HALF},{lat - HALF},{lon + HALF},{lat + HALF}"}
    for crs, bbox in box.items():
        for path in ("/wms", "/service"):
            r = requests.get(base + path, params={
                "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetFeatureInfo",
                "LAYERS": "parcels", "QUERY_LAYERS": "parcels", "CRS": crs, "BBOX": bbox,
                "WIDTH": str(SIZE), "HEIGHT": str(SIZE), "I": "50", "J": "50",
                "INFO_FORMAT": "application/json", "EXCEPTIONS": "XML"}, timeout=60)
            assert [f["id"] for f in _features(r)] == [parcel["fid"]], (crs, path)
    # the geometry is the parcel's, in CRS84 order (lon, lat)
    shape = shapely.geometry.shape(three[0]["geometry"])
    assert shape.contains(shapely.Point(lon, lat))


def test_point_outside_any_parcel_gives_an_empty_answer(urls) -> None:
    base = urls["hangzhou"]
    assert _features(gfi(base, 120.05, 30.10)) == []
    plain = gfi(base, 120.05, 30.10, fmt="text/plain")
    assert plain.status_code == 200 and "Layer 'parcels'" in plain.text
    assert "Feature" not in plain.text.replace("GetFeatureInfo", "")
    page = gfi(base, 120.05, 30.10, fmt="text/html")
    assert page.status_code == 200 and "<td>" not in page.text


def test_feature_count_default_one_capped_at_fifty(urls, parcel) -> None:
    base, lon, lat = urls["hangzhou"], parcel["lon"], parcel["lat"]
    # a map of one degree: the tolerance box (4 px, 0.04 degree) covers many parcels
    assert len(_features(gfi(base, lon, lat, half=0.5))) == 1
    five = _features(gfi(base, lon, lat, half=0.5, FEATURE_COUNT="5"))
    assert len(five) == 5 and five[0]["id"] == parcel["fid"]  # nearest (containing) first
    many = _features(gfi(base, lon, lat, half=0.5, FEATURE_COUNT="100000"))
    assert len(many) == MAX_FEATURE_COUNT


def test_presale_projects_are_queryable_too(urls, hz_db) -> None:
    row = hz_db.one("SELECT fid, project_name, ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT *,"
                    " ST_PointOnSurface(geom) AS p FROM public.presale_projects) t ORDER BY fid"
                    " LIMIT 1")
    feats = _features(gfi(urls["hangzhou"], row["lon"], row["lat"], layer="presale_projects"))
    assert feats[0]["properties"]["project_name"] == row["project_name"]


BAD = [
    ("not-queryable", {"QUERY_LAYERS": "vec", "LAYERS": "vec"}, "LayerNotQueryable"),
    ("unknown-layer", {"QUERY_LAYERS": "parcels';DROP TABLE parcels;--"}, "LayerNotDefined"),
    ("restricted-layer", {"QUERY_LAYERS": "control_points"}, "LayerNotDefined"),
    ("no-query-layers", {"QUERY_LAYERS": ""}, "LayerNotDefined"),
    ("bad-format", {"INFO_FORMAT": "text/<script>"}, "InvalidFormat"),
    ("i-outside", {"I": "101"}, "InvalidPoint"),
    ("i-negative", {"I": "-1"}, "InvalidPoint"),
    ("j-text", {"J": "1 OR 1=1"}, "InvalidPoint"),
    ("count-zero", {"FEATURE_COUNT": "0"}, "InvalidParameterValue"),
    ("bad-crs", {"CRS": "EPSG:2000"}, "InvalidCRS"),
    ("bad-bbox", {"BBOX": "1,2,nan,4"}, "InvalidParameterValue"),
    ("huge-width", {"WIDTH": "99999"}, "InvalidParameterValue"),
]


@pytest.mark.parametrize("name,change,code", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_exception_xml_and_change_nothing(urls, hz_db, parcel, name, change,
                                                           code) -> None:
    before = hz_db.one("SELECT count(*) AS n FROM public.parcels")["n"]
    r = gfi(urls["hangzhou"], parcel["lon"], parcel["lat"], EXCEPTIONS="XML", **change)
    assert _ogc_error(r) == code
    assert "DROP" not in r.text and "<script>" not in r.text  # nothing of the request echoed
    assert hz_db.one("SELECT count(*) AS n FROM public.parcels")["n"] == before
    if name == "bad-format":  # 1.1.1 answers in its own exception form too
        old = gfi(urls["hangzhou"], parcel["lon"], parcel["lat"], version="1.1.1", **change)
        assert _ogc_error(old) == "InvalidFormat" and b"1.1.1" in old.content


def test_hostile_attribute_values_come_out_escaped(ctx, urls, tmp_path) -> None:
    base, name = urls["hangzhou"], "fi_hostile"
    box = (120.70, 30.50, 120.71, 30.51)
    hostile = '<script>alert("x")</script>&"\'><img src=x onerror=alert(1)>'
    src = tmp_path / "hostile.geojson"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"note": [hostile], "n": [1]},
                                             geometry=[shapely.box(*box)], crs="EPSG:4490"), src)
    publish(ctx, src, name, title="<b>地块</b> & co", emap=True)
    try:
        lon, lat = 120.705, 30.505
        page = gfi(base, lon, lat, layer=name, fmt="text/html")
        assert page.status_code == 200, page.text[:300]
        assert "<script>" not in page.text and "<img" not in page.text and "<b>" not in page.text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
        assert "&lt;b&gt;地块&lt;/b&gt; &amp; co" in page.text
        feats = _features(gfi(base, lon, lat, layer=name))
        assert feats[0]["properties"]["note"] == hostile  # JSON carries the value as it is
        for fmt in ("application/vnd.ogc.gml", "text/xml"):
            root = etree.fromstring(gfi(base, lon, lat, layer=name, fmt=fmt).content)
            assert root.find(f"{name}_layer/{name}_feature").findtext("note") == hostile
        wms = WebMapService(f"{base}/wms", version="1.1.1", timeout=60)
        assert wms.contents[name].queryable == 1  # published e-map layers are queryable
        # MapProxy copies titles into its XML unescaped: the config holds them escaped
        assert wms.contents[name].title == "<b>地块</b> & co"
    finally:
        retire(ctx, name)
    gone = gfi(base, 120.705, 30.505, layer=name)
    assert _ogc_error(gone) == "LayerNotDefined"


def test_owslib_reads_capabilities_and_getfeatureinfo(urls, parcel) -> None:
    base, lon, lat = urls["hangzhou"], parcel["lon"], parcel["lat"]
    for version in ("1.1.1", "1.3.0"):
        wms = WebMapService(f"{base}/wms", version=version, timeout=60)
        assert wms.contents["parcels"].queryable == 1
        assert wms.contents["presale_projects"].queryable == 1
        assert wms.contents["vec"].queryable == 0
        assert set(INFO_FORMATS) <= set(wms.getOperationByName("GetFeatureInfo").formatOptions)
    wms = WebMapService(f"{base}/wms", version="1.1.1", timeout=60)
    r = wms.getfeatureinfo(layers=["parcels"], srs="EPSG:4490",
                           bbox=(lon - HALF, lat - HALF, lon + HALF, lat + HALF),
                           size=(SIZE, SIZE), format="image/png", query_layers=["parcels"],
                           info_format="application/json", xy=(SIZE // 2, SIZE // 2),
                           feature_count=1)
    doc = json.loads(r.read())
    assert [f["properties"]["parcel_no"] for f in doc["features"]] == [parcel["parcel_no"]]
    assert not set(HIDDEN) & set(doc["features"][0]["properties"])


def _getmap(base: str, layer: str, lon: float, lat: float, d: float = 0.004) -> np.ndarray:
    r = requests.get(base + "/wms", params={
        "SERVICE": "WMS", "VERSION": "1.1.1", "REQUEST": "GetMap", "LAYERS": layer,
        "STYLES": "", "SRS": "EPSG:4490", "BBOX": f"{lon - d},{lat - d},{lon + d},{lat + d}",
        "WIDTH": "256", "HEIGHT": "256", "FORMAT": "image/png", "TRANSPARENT": "TRUE"},
        timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))


def test_getmap_draws_parcels_as_outlines_and_projects_filled(urls, hz_db, parcel) -> None:
    """Each layer's style of its own (config/styles/emap.yml `wms`)."""
    px = _getmap(urls["hangzhou"], "parcels", parcel["lon"], parcel["lat"])
    drawn = px[..., 3] > 0
    assert 0.02 < drawn.mean() < 0.5, drawn.mean()  # outlines, not fills
    assert px[128, 128, 3] == 0  # inside the parcel: the base map shows through
    row = hz_db.one("SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT ST_PointOnSurface(geom)"
                    " AS p FROM public.presale_projects ORDER BY fid LIMIT 1) t")
    px = _getmap(urls["hangzhou"], "presale_projects", row["lon"], row["lat"])
    assert px[128, 128, 3] == 255 and abs(int(px[128, 128, 0]) - 0xF2) < 8  # filled
    assert (px[..., 3] == 0).any()  # and clear around it


@pytest.mark.parametrize("change", [{"access": "restricted"}, {"access": "registered"},
                                    {"sensitive": True}])
def test_only_public_layers_that_are_not_sensitive_can_be_wms_layers(change) -> None:
    layer = {"id": "secret", "title": "t", "file": "x.gpkg", "geometry_type": "Point",
             "wms": True}
    LayerSettings.model_validate(layer)
    with pytest.raises(ValueError, match="wms"):
        LayerSettings.model_validate({**layer, **change})


def _qgis_identify(tmp_path, base: str, parcel: dict[str, Any], fmt: str) -> dict[str, Any]:
    spec = tmp_path / f"identify-{fmt}.json"
    spec.write_text(json.dumps({"url": f"{base}/wms", "layer": "parcels", "lon": parcel["lon"],
                                "lat": parcel["lat"], "half": HALF, "format": fmt}),
                    encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    done = subprocess.run([QGIS_PYTHON, str(QGIS_IDENTIFY), str(spec)], check=False,
                          capture_output=True, text=True, timeout=180,
                          env={**env, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_qgis_identify_shows_the_parcel_without_holder_fields(urls, parcel, tmp_path) -> None:
    """QGIS 3.22's identify tool on the WMS layer: the features (with their outline) and the
    text answer, never the holder fields."""
    feature = _qgis_identify(tmp_path, urls["hangzhou"], parcel, "feature")
    assert feature["valid"] and not feature["error"], feature
    assert [f["parcel_no"] for f in feature["features"]] == [parcel["parcel_no"]]
    assert not set(HIDDEN) & set(feature["features"][0])
    assert feature["features"][0]["__geometry"].startswith("MultiPolygon")
    text = _qgis_identify(tmp_path, urls["hangzhou"], parcel, "text")
    assert parcel["parcel_no"] in text["text"] and parcel["right_holder"] not in text["text"]


def test_without_a_fields_check_every_attribute_with_a_level_is_left_out(federation, hz_db,
                                                                          parcel) -> None:
    """Tile routes whose access check has no `hidden_fields` (an app without access control)
    fail closed: the node's own config and database, in process."""
    from starlette.applications import Starlette

    from nodes import supervisor
    from tiles.service import tile_routes

    async def allow(scope, layers, kind):
        return None

    ndir = supervisor.node_dir(federation, federation.node("hangzhou"))
    app = Starlette(routes=tile_routes(ndir, key_check=allow, db=hz_db))
    lon, lat = parcel["lon"], parcel["lat"]
    params = {
        "SERVICE": "WMS", "VERSION": "1.1.1", "REQUEST": "GetFeatureInfo", "LAYERS": "parcels",
        "QUERY_LAYERS": "parcels", "SRS": "EPSG:4490", "WIDTH": str(SIZE), "HEIGHT": str(SIZE),
        "BBOX": f"{lon - HALF},{lat - HALF},{lon + HALF},{lat + HALF}", "X": "50", "Y": "50",
        "INFO_FORMAT": "application/json"}

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            return await c.get("/wms", params=params)

    r = asyncio.run(run())
    assert r.status_code == 200, r.text[:300]
    props = r.json()["features"][0]["properties"]
    assert props["parcel_no"] == parcel["parcel_no"] and not set(HIDDEN) & set(props)
    assert parcel["right_holder"] not in r.text
