"""Tianditu response shapes from the model types (what was followed: services/places/tianditu.py).

Pure functions: a model value in, the JSON-ready dict Tianditu's clients parse out.
"""

from __future__ import annotations

from typing import Any

import shapely.errors
from pyproj import Geod
from shapely import wkt
from shapely.geometry import MultiPolygon, Polygon
from starlette.responses import JSONResponse, Response

from services.places.model import (
    LEVEL_CN,
    AdminChain,
    AreaCount,
    Division,
    Geocoded,
    Place,
    Reversed,
    SearchResult,
    tianditu_code,
)
from services.places.tianditu import CNDESC, TYPE_OF, SearchRequest

SEARCH_VERSION = "geoplat-1.0V"
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid
# v2 administrative `level` counts upward from the bottom (administrative2.html)
LEVEL_UP = {"country": 5, "province": 4, "city": 3, "county": 2, "township": 1}
# resultType 3 `area.level` is the map level (1-18) to show the area at (movk-mapbox)
AREA_ZOOM = {"province": 7, "city": 10, "county": 12, "township": 14}
DIRECTIONS = ("北", "东北", "东", "东南", "南", "西南", "西", "西北")


def coord(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".")


def distance_text(metres: float) -> str:
    """Tianditu's nearby-search `distance`: "799m", "1.2km"."""
    if metres < 1000:
        return f"{round(metres)}m"
    return f"{metres / 1000:.1f}km"


def direction(from_lon: float, from_lat: float, to_lon: float, to_lat: float) -> str:
    """The 8-way direction word of `to` seen from `from` ("东南")."""
    if (from_lon, from_lat) == (to_lon, to_lat):
        return ""
    az, _, _ = GEOD.inv(from_lon, from_lat, to_lon, to_lat)
    return DIRECTIONS[round((az % 360) / 45) % 8]


def status(infocode: int = 1000, cndesc: str | None = None) -> dict[str, Any]:
    return {"infocode": infocode, "cndesc": cndesc or CNDESC.get(infocode, "参数错误")}


# --- errors ---------------------------------------------------------------------------------

def search_error(infocode: int, message: str) -> dict[str, Any]:
    """`/v2/search`, `/search`: Tianditu's `status{infocode,cndesc}` (HTTP 200)."""
    return {"status": status(infocode, f"{CNDESC.get(infocode, '参数错误')}: {message}")}


def geocoder_error(infocode: int, message: str) -> dict[str, Any]:
    return {"msg": message, "status": "404", "infocode": infocode,
            "searchVersion": SEARCH_VERSION}


def admin_v2_error(infocode: int, message: str) -> dict[str, Any]:
    return {"status": 400, "message": message, "infocode": infocode, "data": None}


def admin_v1_error(infocode: int, message: str) -> dict[str, Any]:
    return {"returncode": "101", "msg": message, "infocode": infocode, "data": []}


# --- geocoder -------------------------------------------------------------------------------

def with_partial(body: dict[str, Any], partial: tuple[str, ...]) -> dict[str, Any]:
    """Our one addition to Tianditu's shapes: `partial`, the nodes of the federation that did
    not answer in time, only when there are any (Tianditu's clients ignore unknown fields)."""
    if partial:
        body["partial"] = list(partial)
    return body


def geocode(g: Geocoded, keyword: str) -> dict[str, Any]:
    if g.best is None:
        return with_partial({"msg": "无结果", "status": "101", "searchVersion": SEARCH_VERSION},
                            g.partial)
    b = g.best
    return with_partial({
        "msg": "ok", "status": "0", "searchVersion": SEARCH_VERSION,
        "location": {"score": round(b.score if b.score is not None else 100),
                     "level": LEVEL_CN.get(g.level or b.kind, LEVEL_CN["place"]),
                     "lon": coord(b.lon), "lat": coord(b.lat), "keyWord": keyword}}, g.partial)


def _near(p: Place | None, lon: float, lat: float, key: str) -> dict[str, Any]:
    if p is None:
        return {key: "", f"{key}_distance": "", f"{key}_distince": "", f"{key}_position": ""}
    d = p.distance_m
    if d is None:
        d = GEOD.inv(lon, lat, p.lon, p.lat)[2]
    metres = round(d)
    return {key: p.name if key != "address" else (p.road or "") + (p.number or p.name),
            f"{key}_distance": metres, f"{key}_distince": metres,
            f"{key}_position": direction(p.lon, p.lat, lon, lat)}


def reverse(r: Reversed) -> dict[str, Any]:
    a = r.admin
    comp: dict[str, Any] = {
        "nation": "中国",
        "province": a.province or "", "province_code": tianditu_code(a.province_code) or "",
        "city": a.city or "", "city_code": tianditu_code(a.city_code) or "",
        "county": a.county or "", "county_code": tianditu_code(a.county_code) or "",
        "town": a.township or "", "town_code": tianditu_code(a.township_code) or "",
    }
    comp.update(_near(r.address, r.lon, r.lat, "address"))
    comp.update(_near(r.road, r.lon, r.lat, "road"))
    comp.update(_near(r.poi, r.lon, r.lat, "poi"))
    return with_partial({"msg": "ok", "status": "0",
                         "result": {"formatted_address": r.formatted_address,
                                    "location": {"lon": r.lon, "lat": r.lat},
                                    "addressComponent": comp}}, r.partial)


# --- search ---------------------------------------------------------------------------------

def _admin_fields(a: AdminChain) -> dict[str, Any]:
    return {"province": a.province or "", "provinceCode": tianditu_code(a.province_code) or "",
            "city": a.city or "", "cityCode": tianditu_code(a.city_code) or "",
            "county": a.county or "", "countyCode": tianditu_code(a.county_code) or ""}


def poi(p: Place, req: SearchRequest) -> dict[str, Any]:
    sep = " " if req.legacy else ","
    out: dict[str, Any] = {
        "name": p.name, "phone": p.phone or "", "address": p.address or "",
        "lonlat": f"{coord(p.lon)}{sep}{coord(p.lat)}", "poiType": "101",
        "eaddress": "", "ename": "", "hotPointID": p.id, "source": "geoplat"}
    if req.show == 2 or not req.legacy:
        out.update(_admin_fields(p.admin))
        code, name = TYPE_OF.get(p.category or "", ("", ""))
        out.update({"typeCode": code, "typeName": name})
    if req.near is not None and p.distance_m is not None:
        out["distance"] = distance_text(p.distance_m)
    return out


def _count_item(c: AreaCount, *, string_code: bool) -> dict[str, Any]:
    code = tianditu_code(c.code) or ""
    return {"name": c.name, "count": c.count, "lonlat": f"{coord(c.lon)},{coord(c.lat)}",
            "ename": "", "adminCode": code if string_code else int(code or 0)}


def statistics(res: SearchResult) -> dict[str, Any]:
    top = sorted(res.statistics, key=lambda c: -c.count)
    every = [{**_count_item(c, string_code=True), "isleaf": c.leaf} for c in res.statistics]
    return {"count": sum(c.count for c in res.statistics) or res.total,
            "adminCount": len(res.statistics),
            "priorityCitys": [_count_item(c, string_code=False) for c in top[:10]],
            "allAdmins": every}


def area(d: Division) -> dict[str, Any]:
    b = d.bbox
    return {"name": d.name, "bound": ",".join(coord(v) for v in b) if b else "",
            "lonlat": f"{coord(d.lon)},{coord(d.lat)}",
            "adminCode": int(tianditu_code(d.code) or 0), "level": AREA_ZOOM.get(d.kind, 12)}


def search(res: SearchResult, req: SearchRequest) -> dict[str, Any]:
    """One search answer: resultType 2 statistics, 3 area, else 1 pois."""
    out: dict[str, Any] = {"keyWord": req.keyword or ""}
    if req.statistics and res.statistics:
        out.update({"resultType": 2, "count": str(res.total), "statistics": statistics(res)})
    elif res.area is not None and not res.places:
        out.update({"resultType": 3, "count": "1", "area": area(res.area)})
    else:
        out.update({"resultType": 1, "count": str(res.total),
                    "pois": [poi(p, req) for p in res.places], "lineData": []})
    out["status"] = status()  # each group of a grouped answer carries its own too
    return with_partial(out, res.partial)


def grouped(results: dict[str, SearchResult], req: SearchRequest) -> dict[str, Any]:
    """queryType 13 with several dataTypes: `{"法院": {resultType,count,pois,status}, ...}`."""
    return {label: search(res, req) for label, res in results.items()}


# --- administrative -------------------------------------------------------------------------

def _district(d: Division, geometry: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"gb": tianditu_code(d.code), "pgb": tianditu_code(d.parent_code) or "",
                           "name": d.name, "center": {"lng": d.lon, "lat": d.lat},
                           "level": LEVEL_UP.get(d.kind, 0)}
    if geometry and d.boundary_wkt:
        out["boundary"] = d.boundary_wkt
    out["children"] = [_district(c, geometry) for c in d.children]
    return out


def admin_v2(divisions: list[Division], *, geometry: bool) -> dict[str, Any]:
    """The first match as `district`, the others as `suggestion`."""
    return {"status": 200, "message": "成功", "data": {
        "suggestion": [{"name": d.name, "gb": tianditu_code(d.code)} for d in divisions[1:]],
        "district": [_district(d, geometry) for d in divisions[:1]]}}


def division_code(p: Place) -> str | None:
    """The code of a division entry of the gazetteer (its own level of its admin chain)."""
    return {"province": p.admin.province_code, "city": p.admin.city_code,
            "county": p.admin.county_code, "township": p.admin.township_code}.get(p.kind)


def admin_v2_suggestions(places: list[Place]) -> dict[str, Any]:
    """A one-character keyword: suggestions only (administrative2.html), from type-ahead."""
    seen, out = set(), []
    for p in places:
        code = division_code(p)
        if code and code not in seen:
            seen.add(code)
            out.append({"name": p.name, "gb": tianditu_code(code)})
    return {"status": 200, "message": "成功", "data": {"suggestion": out, "district": []}}


def regions(boundary_wkt: str | None) -> list[dict[str, str]]:
    """`points[{region: "x y,x y,..."}]`: one ring (the exterior) per polygon."""
    if not boundary_wkt:
        return []
    try:
        geom = wkt.loads(boundary_wkt)
    except shapely.errors.ShapelyError:  # a boundary we cannot read is left out
        return []
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else \
        [geom] if isinstance(geom, Polygon) else []
    return [{"region": ",".join(f"{coord(x)} {coord(y)}" for x, y, *_ in p.exterior.coords)}
            for p in polys]


def _v1_item(d: Division, geometry: bool, parents: bool) -> dict[str, Any]:
    b = d.bbox
    item: dict[str, Any] = {
        "name": d.name, "cityCode": tianditu_code(d.code), "lnt": d.lon, "lat": d.lat,
        "level": LEVEL_UP.get(d.kind, 0), "adminType": d.kind, "english": "",
        "nameabbrevation": d.name, "englishabbrevation": "",
        "bound": ",".join(coord(v) for v in b) if b else "",
        "points": regions(d.boundary_wkt) if geometry else []}
    if parents:
        item["parents"] = {p.kind: {"name": p.name, "cityCode": tianditu_code(p.code)}
                           for p in d.parents}
    item["child"] = [_v1_item(c, geometry, False) for c in d.children]
    return item


def admin_v1(divisions: list[Division], *, geometry: bool, parents: bool) -> dict[str, Any]:
    return {"returncode": "100", "msg": "ok", "dataversion": SEARCH_VERSION,
            "data": [_v1_item(d, geometry, parents) for d in divisions]}


# --- refusals of the key check -------------------------------------------------------------

# Tianditu's refusal bodies as its gateway sends them with HTTP 403, quoted in a public client
# that checks keys (liuxspro/qgis-plugin-tianditu, tianditu_tools/widgets/Setting/dialog.py):
# {'msg': '非法Key', 'resolve': '请到API控制台重新申请Key', 'code': 1},
# {'msg': '域名不匹配', 'resolve': '请到API控制台查看域名配置并修改', 'code': 7},
# {'msg': '权限类型错误', 'resolve': 'Key权限类型为:服务端，请使用服务端访问！', 'code': 12}.
INVALID_KEY = ("非法Key", "请到API控制台重新申请Key", 1)
WRONG_ORIGIN = ("域名不匹配", "请到API控制台查看域名配置并修改（浏览器端Key绑定域名，服务端Key绑定IP）", 7)
# not seen in a stored source, ours: a missing tk / bad token, a quota or rate refusal
NO_KEY = ("缺少Key", "请在请求中加入tk参数（开发者密钥）或登录令牌", 401)
OVER_QUOTA = ("调用超限", "今日调用量已用完或请求过于频繁，请稍后再试", 429)
BY_TITLE = {"Invalid key": INVALID_KEY, "Key not allowed here": WRONG_ORIGIN}


def key_refusal(decision: Any) -> Response:
    """A request the key check refused, in Tianditu's form `{"msg", "resolve", "code"}` (its
    codes 1 and 7 where Tianditu has one, above), with the HTTP status of our access rules
    (401 no credentials, 403 a bad/revoked key or a wrong origin, 429) and our English
    explanation as `detail`."""
    st = int(getattr(decision, "status", 403))
    title = getattr(decision, "title", "")
    msg, resolve, code = BY_TITLE.get(title) or (
        OVER_QUOTA if st == 429 else NO_KEY if st == 401 else INVALID_KEY)
    body = {"msg": msg, "resolve": resolve, "code": code,
            "detail": getattr(decision, "detail", "") or title}
    return JSONResponse(body, status_code=st, headers={"Cache-Control": "no-store"})
