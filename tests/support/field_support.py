"""Callers of field-level access tests (issue 15) and a WMS GetFeatureInfo request helper.

`callers`: request headers for an anonymous caller, a signed-in user without a grant, a user
with the grant for Hangzhou's `parcels` (an approved row in Hangzhou's `auth.grants`) and
Hangzhou's publisher (and, with `key=True`, a developer key sent alone)."""

from __future__ import annotations

from typing import Any

import requests
from sso_client import bearer, login_pkce

from services.access import apikeys
from services.sso import accounts

HALF = 0.001  # degrees: the request's BBOX is 2 * HALF wide around the point, 101 px
SIZE = 101  # pixel 50 is the middle one: its centre is the point itself


def callers(main_db: Any, hz_db: Any, main_url: str, prefix: str, password: str, *,
            key: bool = False) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, roles in (("user", []), ("granted", []), ("publisher", ["hangzhou:publisher"])):
        user = accounts.create(main_db, f"{prefix}_{name}", password, roles=roles)
        out[name] = bearer(login_pkce(main_url, f"{prefix}_{name}", password))
        if name == "granted":
            hz_db.execute("INSERT INTO auth.grants (user_sub, username, layer_id, status) "
                          "VALUES (%s, %s, 'parcels', 'approved')", (user.id, user.username))
    if key:
        dev = accounts.create(main_db, f"{prefix}_dev", password, roles=["developer"])
        value, _ = apikeys.create_key(main_db, "test", dev.id, prefix, "server",
                                      ["127.0.0.0/8"], actor="test")
        out["key"] = {"X-Api-Key": value}
    return out


def gfi(base: str, lon: float, lat: float, *, version: str = "1.3.0",
        fmt: str = "application/json", layer: str = "parcels",
        headers: dict[str, str] | None = None, half: float = HALF,
        **extra: str) -> requests.Response:
    """GetFeatureInfo at (lon, lat), the middle pixel of a SIZE x SIZE EPSG:4490 map."""
    if version == "1.3.0":  # EPSG:4490 is latitude first in WMS 1.3.0
        bbox = (lat - half, lon - half, lat + half, lon + half)
        where = {"CRS": "EPSG:4490", "I": str(SIZE // 2), "J": str(SIZE // 2)}
    else:
        bbox = (lon - half, lat - half, lon + half, lat + half)
        where = {"SRS": "EPSG:4490", "X": str(SIZE // 2), "Y": str(SIZE // 2)}
    params = {"SERVICE": "WMS", "VERSION": version, "REQUEST": "GetFeatureInfo", "LAYERS": layer,
              "QUERY_LAYERS": layer, "STYLES": "", "BBOX": ",".join(f"{v:.7f}" for v in bbox),
              "WIDTH": str(SIZE), "HEIGHT": str(SIZE), "FORMAT": "image/png",
              "INFO_FORMAT": fmt, **where, **extra}
    r = requests.get(base + "/wms", params=params, headers=headers or {}, timeout=60)
    r.encoding = "utf-8"
    return r
