"""Field-level access (issue 15): Hangzhou's `parcels` are public, their holder fields restricted.

On every surface of the features service (items, item by id, GeoJSON/HTML/CSV, queryables,
schema, OpenAPI, MVT tiles, free-text `q`) a caller without the node's grant for `parcels`
receives no `right_holder`, `right_type` or `right_nature`, and may not filter, sort or select
by them (refused, never ignored); a user with the grant, and the node's publisher, receive them.
Assertions are on raw responses; MVT tiles are decoded with mapbox-vector-tile.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import mapbox_vector_tile
import pytest
import requests
from field_support import callers, gfi
from sso_client import bearer, login_pkce

from geoplat_settings import LayerSettings
from nodes import federation as federation_mod
from services.db import Database
from services.sso import accounts

HIDDEN = ("right_holder", "right_type", "right_nature")
PUBLIC = ("parcel_no", "land_use", "gbt21010_code", "gbt21010_name", "area_m2")
PASSWORD = "fields-password-1"
ITEMS = "/ogc/collections/parcels/items"


@pytest.fixture(scope="module")
def hz_db(federation) -> Database:
    return Database(federation_mod.node_dsn(federation, federation.node("hangzhou")), maxconn=1)


@pytest.fixture(scope="module")
def who(urls, main_db, hz_db) -> dict[str, dict[str, str]]:
    """Anonymous, a developer key, a user without a grant, a user with the grant for parcels,
    Hangzhou's publisher."""
    return callers(main_db, hz_db, urls["national"], "fields", PASSWORD, key=True)


@pytest.fixture(scope="module")
def sample(hz_db) -> dict[str, Any]:
    """A parcel and its holder, read from the node's table (what a leak would show)."""
    row = hz_db.one("SELECT fid, parcel_no, right_holder, ST_X(ST_PointOnSurface(geom)) AS lon,"
                    " ST_Y(ST_PointOnSurface(geom)) AS lat FROM public.parcels"
                    " WHERE right_holder LIKE '%%公司' ORDER BY fid LIMIT 1")
    assert row is not None
    return dict(row)


def _get(urls, path: str, headers: dict[str, str], **params: Any) -> requests.Response:
    r = requests.get(urls["hangzhou"] + path, params=params, headers=headers, timeout=60)
    r.encoding = "utf-8"
    return r


def _no_hidden_text(text: str, holder: str) -> None:
    for name in HIDDEN:
        assert name not in text
    assert holder not in text


LIMITED = ("anonymous", "key", "user")
FULL = ("granted", "publisher")


@pytest.mark.parametrize("caller", LIMITED + FULL)
def test_items_and_item_carry_the_fields_the_caller_may_see(urls, who, sample, caller) -> None:
    items = _get(urls, ITEMS, who[caller], f="json", limit=100)
    assert items.status_code == 200, items.text[:300]
    assert items.headers["Cache-Control"] == "private, no-store"
    feats = items.json()["features"]
    assert len(feats) == 100
    for f in feats:
        assert set(PUBLIC) <= set(f["properties"])
        assert (set(HIDDEN) <= set(f["properties"])) == (caller in FULL)
    one = _get(urls, f"{ITEMS}/{sample['fid']}", who[caller], f="json")
    assert one.status_code == 200
    props = one.json()["properties"]
    assert props["parcel_no"] == sample["parcel_no"]
    if caller in FULL:
        assert props["right_holder"] == sample["right_holder"]
    else:
        _no_hidden_text(one.text, sample["right_holder"])


@pytest.mark.parametrize("caller", LIMITED)
def test_html_csv_queryables_schema_openapi_hide_them(urls, who, sample, caller) -> None:
    h = who[caller]
    page = _get(urls, f"{ITEMS}/{sample['fid']}", h, f="html")
    assert page.status_code == 200 and sample["parcel_no"] in page.text
    _no_hidden_text(page.text, sample["right_holder"])
    table = _get(urls, ITEMS, h, f="csv", limit=50, bbox=_bbox(sample, 0.01))
    assert table.status_code == 200
    header = next(csv.reader(io.StringIO(table.text)))
    assert "parcel_no" in header and not set(HIDDEN) & set(header)
    _no_hidden_text(table.text, sample["right_holder"])
    for path in ("/ogc/collections/parcels/queryables", "/ogc/collections/parcels/schema"):
        r = _get(urls, path, h, f="json")
        assert r.status_code == 200 and "parcel_no" in r.json()["properties"]
        _no_hidden_text(r.text, sample["right_holder"])
    api = _get(urls, "/ogc/openapi", h, f="json")
    assert api.status_code == 200 and "parcels" in api.text
    assert not any(name in api.text for name in HIDDEN)


def test_granted_user_sees_them_in_queryables_and_csv(urls, who, sample) -> None:
    r = _get(urls, "/ogc/collections/parcels/queryables", who["granted"], f="json")
    assert set(HIDDEN) <= set(r.json()["properties"])
    table = _get(urls, ITEMS, who["granted"], f="csv", limit=50, bbox=_bbox(sample, 0.002))
    assert set(HIDDEN) <= set(next(csv.reader(io.StringIO(table.text))))
    assert sample["right_holder"] in table.text


def _bbox(sample: dict[str, Any], d: float) -> str:
    return f"{sample['lon'] - d},{sample['lat'] - d},{sample['lon'] + d},{sample['lat'] + d}"


def _tile(sample: dict[str, Any], z: int = 16) -> str:
    n = 2 ** z
    x = int((sample["lon"] + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(sample["lat"]))) / math.pi) / 2 * n)
    return f"/ogc/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}"


@pytest.mark.parametrize("caller", LIMITED + FULL)
def test_mvt_attributes(urls, who, sample, caller) -> None:
    r = _get(urls, _tile(sample), who[caller], f="mvt")
    assert r.status_code == 200, r.text[:300]
    layers = mapbox_vector_tile.decode(r.content)
    feats = [f for layer in layers.values() for f in layer["features"]]
    assert feats, "the tile holds the sample parcel"
    numbers = {f["properties"].get("parcel_no") for f in feats}
    assert sample["parcel_no"] in numbers
    for f in feats:
        assert (set(HIDDEN) <= set(f["properties"])) == (caller in FULL), f["properties"]
    if caller not in FULL:
        assert sample["right_holder"].encode() not in r.content


REFUSED = [
    ("cql2-text", {"filter": "right_holder LIKE '%公司'"}),
    ("cql2-text nested", {"filter": "area_m2 > 0 AND (land_use = 'x' OR right_type = 'y')"}),
    ("sortby", {"sortby": "-right_holder"}),
    ("properties", {"properties": "parcel_no,right_nature"}),
    ("property filter", {"right_holder": "x"}),
]


@pytest.mark.parametrize("caller", LIMITED)
@pytest.mark.parametrize("name,params", REFUSED, ids=[r[0] for r in REFUSED])
def test_filtering_sorting_selecting_by_hidden_fields_is_refused(urls, who, caller, name,
                                                                 params) -> None:
    r = _get(urls, ITEMS, who[caller], f="json", **params)
    assert r.status_code in (400, 403), (r.status_code, r.text[:300])
    assert "features" not in r.text
    assert any(h in r.text for h in HIDDEN), r.text[:300]
    assert "restricted" in r.text.lower() or "grant" in r.text.lower()


def test_cql2_json_post_on_a_hidden_field_is_refused(urls, who) -> None:
    body = {"op": "like", "args": [{"property": "right_holder"}, "%公司"]}
    r = requests.post(urls["hangzhou"] + ITEMS + "?f=json", json=body, timeout=60,
                      headers={"Content-Type": "application/query-cql-json"})
    assert r.status_code == 400, r.text[:300]
    assert "right_holder" in r.text and "features" not in r.text
    ok = requests.post(urls["hangzhou"] + ITEMS + "?f=json&limit=5", json=body, timeout=60,
                       headers={"Content-Type": "application/query-cql-json", **who["granted"]})
    assert ok.status_code == 200 and ok.json()["features"]
    assert all(f["properties"]["right_holder"].endswith("公司") for f in ok.json()["features"])


def test_free_text_search_does_not_search_hidden_fields(urls, who, sample) -> None:
    """`q` over text columns: a holder's name must not find its parcel for a caller who may
    not see holders (an oracle otherwise), and does for the granted user."""
    anon = _get(urls, ITEMS, {}, f="json", q=sample["right_holder"])
    assert anon.status_code == 200 and anon.json()["features"] == []
    granted = _get(urls, ITEMS, who["granted"], f="json", q=sample["right_holder"])
    assert sample["parcel_no"] in {f["properties"]["parcel_no"]
                                   for f in granted.json()["features"]}


def test_granted_user_may_filter_and_sort_by_them(urls, who) -> None:
    r = _get(urls, ITEMS, who["granted"], f="json", limit=5, sortby="-right_holder",
             filter="right_nature = '划拨'")
    assert r.status_code == 200, r.text[:300]
    holders = [f["properties"]["right_holder"] for f in r.json()["features"]]
    assert holders and holders == sorted(holders, reverse=True)


def test_a_grant_for_the_fields_can_be_requested(urls, main_db) -> None:
    accounts.create(main_db, "fields_asker", PASSWORD)
    token = bearer(login_pkce(urls["national"], "fields_asker", PASSWORD))
    r = requests.post(urls["hangzhou"] + "/auth/grants", json={"layer": "parcels",
                      "reason": "cadastre study"}, headers=token, timeout=30)
    assert r.status_code == 201, r.text[:300]
    r = requests.post(urls["hangzhou"] + "/auth/grants", json={"layer": "poi"},
                      headers=token, timeout=30)
    assert r.status_code == 404  # nothing to grant on a layer without restricted parts


@pytest.mark.parametrize("spec,error", [
    ({"access": "restricted", "field_access": {"x": "registered"}}, "stricter"),
    ({"field_access": {"x": "public"}}, "stricter"),
    ({"label_field": "x", "field_access": {"x": "restricted"}}, "label"),
    ({"places": {"kind": "poi", "name": "n", "phone": "x"}, "field_access": {"x": "restricted"}},
     "gazetteer"),
])
def test_config_refuses_rules_that_cannot_hold(spec, error) -> None:
    base = {"id": "t", "title": "t", "file": "t.gpkg", "geometry_type": "Point"}
    with pytest.raises(ValueError, match=error):
        LayerSettings.model_validate({**base, **spec})


# ---- the publish option ---------------------------------------------------------------------

def _holders_geojson() -> bytes:
    import geopandas as gpd
    import pyogrio
    import shapely

    gdf = gpd.GeoDataFrame({"编号": ["A1", "A2", "A3"], "持有人": ["张某某", "李某某", "王某某"],
                            "面积": [1.5, 2.5, 3.5]},
                           geometry=list(shapely.points([120.101, 120.102, 120.103],
                                                        [30.201, 30.202, 30.203])),
                           crs="EPSG:4490")
    buf = io.BytesIO()
    pyogrio.write_dataframe(gdf, buf, driver="GeoJSON")
    return buf.getvalue()


def _publish(urls, headers, name: str, **fields: str) -> requests.Response:
    fields.setdefault("emap", "true")  # also a WMS layer: GetFeatureInfo
    return requests.post(f"{urls['hangzhou']}/api/layers", headers=headers, timeout=120,
                         data={"name": name, **fields},
                         files={"file": ("h.geojson", _holders_geojson(), "application/geo+json")})


@pytest.fixture(scope="module")
def published_holders(urls, who, federation):
    from publish_helpers import ctx_of

    from layers.publish import retire

    r = _publish(urls, who["publisher"], "fa_holders", field_access="持有人=restricted")
    assert r.status_code == 201, r.text[:500]
    yield "fa_holders"
    retire(ctx_of(federation, "hangzhou"), "fa_holders", purge=True)


def _properties(urls, layer: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = _get(urls, f"/ogc/collections/{layer}/items", headers, f="json")
    assert r.status_code == 200, r.text[:300]
    return [f["properties"] for f in r.json()["features"]]


def test_a_published_layer_with_restricted_attributes(urls, who, published_holders) -> None:
    anon = _properties(urls, published_holders, {})  # served: publishing waits for the workers
    assert len(anon) == 3 and all("张某某" not in json_text(p) for p in anon)
    full = _properties(urls, published_holders, who["publisher"])
    assert {"张某某", "李某某", "王某某"} <= {v for p in full for v in p.values()}
    q = _get(urls, f"/ogc/collections/{published_holders}/queryables", {}, f="json").json()
    assert "持有人" not in json_text(q)
    for headers, sees in (({}, False), (who["user"], False), (who["publisher"], True)):
        info = gfi(urls["hangzhou"], 120.101, 30.201, layer=published_holders, headers=headers,
                   fmt="text/html")
        assert info.status_code == 200 and "A1" in info.text, info.text[:300]
        assert ("张某某" in info.text) == sees and ("持有人" in info.text) == sees
    grant = requests.post(urls["hangzhou"] + "/auth/grants", json={"layer": published_holders},
                          headers=who["user"], timeout=30)
    assert grant.status_code == 201, grant.text[:300]


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("rule,error", [
    ("不存在=restricted", "lacks"),
    ("持有人=public", "stricter"),
    ("持有人=secret", "must be one of"),
    ("持有人", "attribute=level"),
])
def test_bad_rules_are_refused_and_publish_nothing(urls, who, rule, error) -> None:
    r = _publish(urls, who["publisher"], "fa_bad", field_access=rule)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert error in r.json()["detail"]
    assert _get(urls, "/ogc/collections/fa_bad", {}, f="json").status_code == 404
