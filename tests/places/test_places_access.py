"""Access on the place-name routes: every route carries its rule (services/access/rules.py
PLACES), a key's `search` quota is counted on both API styles, and a refusal answers in each
style's own form (Tianditu's JSON with the tile routes' HTTP status; problem+json on ours)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from tile_helpers import tdt_url_at

from services.access import rules
from services.access.require import guard_group
from services.places.routes import API_PATHS, TIANDITU_PATHS, PlacesRoutes
from services.places.tianditu_shapes import key_refusal


def test_every_place_route_has_its_rule() -> None:
    routes = guard_group(rules.PLACES, PlacesRoutes(None, "http://node").routes())  # type: ignore[arg-type]
    kinds = {str(getattr(r, "path", "")): r.requirement for r in routes}  # type: ignore[attr-defined]
    assert set(kinds) == set(TIANDITU_PATHS) | set(API_PATHS) == set(rules.PLACES)
    for path in TIANDITU_PATHS:
        assert kinds[path].kind == "search" and kinds[path].refusal is key_refusal
    for path in API_PATHS:
        want = "public" if path.endswith("/openapi") else "search"
        assert kinds[path].kind == want and kinds[path].refusal is None
    assert rules.GROUPS["places"] is rules.PLACES


@pytest.fixture(scope="module")
def small_quota(main_db: Any) -> str:
    from services.access import apikeys
    from services.sso import accounts

    user = accounts.create(main_db, "places_quota_dev", "places-quota-password-1",
                           roles=["developer"])
    key, _ = apikeys.create_key(main_db, "test", user.id, "places quota", "server",
                                ["127.0.0.0/8"], quotas={"search": 4}, actor="test")
    return key


def test_search_quota_counts_both_styles(urls: dict[str, str], small_quota: str) -> None:
    hz = urls["hangzhou"]
    # requests refused as bad input still count, as Tianditu counts them
    for _ in range(2):
        r = httpx.get(hz + "/v2/search", params={"type": "query", "tk": small_quota}, timeout=60)
        assert r.status_code == 200 and r.json()["status"]["infocode"] == 2003
        r = httpx.get(hz + "/api/places/search", params={"tk": small_quota}, timeout=60)
        assert r.status_code == 400
    over = httpx.get(hz + "/geocoder", params={"ds": json.dumps({"keyWord": "宏二路"}),
                                               "tk": small_quota}, timeout=60)
    assert over.status_code == 429
    body = over.json()
    assert body["code"] == 429 and "quota" in body["detail"] and body["msg"] and body["resolve"]
    over = httpx.get(hz + "/api/places/geocode", params={"address": "宏二路", "tk": small_quota},
                     timeout=60)
    assert over.status_code == 429
    assert over.headers["content-type"].startswith("application/problem+json")
    # the quota is the key's `search` one: its tiles quota at the same node is untouched
    tile = httpx.get(tdt_url_at(hz, "vec", "c", 18, 120.213, 30.246) + f"&tk={small_quota}",
                     timeout=120)
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
