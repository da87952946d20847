"""Tianditu web-service forms: request parsing and response shapes (pure functions over the
model types; services.places.routes calls them around the query layer).

What was followed (../shared/reference/TIANDITU-API.md and the sources it cites, read in
MpLebron/Tianditu_Develop_Agent `skills/tianditu-lbs/references/*.md` and DemoMacro/tianditu
`packages/api/src/web.ts`):
- `/geocoder?ds={"keyWord":..}`: `{"msg","location":{score,level,lon,lat,keyWord},
  "searchVersion","status"}`, `lon`/`lat`/`status` strings; "101" no result, "404" error
  (geocodinginterface.html; MpLebron scene5).
- `/geocoder?postStr={'lon':..,'lat':..,'ver':1}&type=geocode`: single-quoted pseudo-JSON
  accepted; `result{formatted_address, location{lon,lat} (numbers), addressComponent}` with the
  live service's `nation/province/province_code/.../town_code` (156 + code) and both the
  documented `*_distince` and the live `*_distance` (integer metres), `*_position` as 8-way
  direction words (MpLebron scene6; geocoding.html's table).
- `/v2/search` (search2.html; MpLebron scene1-4): queryType 1, 2, 7 (`mapBound`), 3
  (`pointLonlat`+`queryRadius`), 10 (`polygon`), 12 (`specify`), 13 (`dataTypes`; several
  give the object keyed by category with no top-level status; an unknown one turns the request
  into HTTP 400, movk-mapbox), 14 (statistics); `resultType` 1 pois / 2 statistics / 3 area;
  `count` a string as in the empty-result sample (liuxsdev/qgis-plugin-tianditu), `lonlat`
  "x,y", `distance` "799m"/"1.2km", statistics `priorityCitys[].adminCode` a number and
  `allAdmins[].adminCode` a string as in MpLebron scene4; `status{infocode,cndesc}`.
- legacy `/search` (search.html; DemoMacro's wrapper and the public client code calling
  `api.tianditu.gov.cn/search?postStr=` send every value as a string, `"level":"15"`,
  `"count":"20"`, extra fields such as `queryTerminal`, spaces after the commas of `mapBound`,
  even a surplus `}`): the same fields with `specifyAdminCode`; its `lonlat` is "x y", as its
  callers split it (`item.lonlat.split(" ")` in a component calling that URL; also the
  T.LocalSearch callers' `obj[i].lonlat.split(" ")`).
- `/v2/administrative?keyword=&childLevel=&extensions=` (administrative2.html; MpLebron scene7):
  `{"status":200,"message":"成功","data":{"suggestion":[{name,gb}],"district":[{gb,pgb,name,
  center{lng,lat},level,boundary?,children}]}}`, `level` counting upward (country 5 ... county
  2, township 1); one-character keyword: suggestions only.
- legacy `/administrative?postStr={"searchWord","searchType","needSubInfo","needAll",
  "needPolygon","needPre"}`: `{returncode:"100",msg,dataversion,data:[{name,cityCode,lnt,lat,
  level,adminType,english,nameabbrevation,englishabbrevation,bound,points[{region}],parents,
  child}]}` (`lnt` sic; `region` "x y,x y,..." as T.AdministrativeDivision callers split it).

Not verified in any stored source, chosen and documented here: the error bodies of
`/geocoder` (status "404" with `infocode`), `/v2/administrative` (`status` 400) and the
legacy `/administrative` (`returncode` "101"); the codes of a missing `tk` or a quota refusal
(an unknown key and a wrong origin use Tianditu's gateway bodies, codes 1 and 7: see
services/places/tianditu_shapes.py `key_refusal`). Limits, Tianditu's own: keyword 100 characters, `start` 0-300,
`count` 1-300 with start+count <= 500, `queryRadius` <= 10 km, polygons <= 20 points; and
`postStr`/`ds` at most 8,192 characters, coordinates within -180..180/-90..90.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from services.places.errors import (
    BAD_ENUM,
    BAD_LONLAT,
    BAD_PARAMETER,
    MISSING,
    OUT_OF_RANGE,
    OVERFLOW,
    PlacesInputError,
)

NOT_JSON = 2002
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # as the query layer refuses
MAX_RAW = 8192
MAX_KEYWORD = 100  # Tianditu's keyWord limit, and the query layer's (text.MAX_TEXT)
MAX_START, MAX_COUNT, MAX_TOTAL = 300, 300, 500
MAX_RADIUS_M = 10_000.0
MAX_POLYGON_POINTS = 20  # Tianditu's
QUERY_TYPES_V2 = (1, 2, 3, 7, 10, 12, 13, 14)
QUERY_TYPES_V1 = (1, 2, 3, 7, 10)
PLACE_NAME_KINDS = ("place", "province", "city", "county", "township")
MUNICIPALITIES = ("11", "12", "31", "50")  # province-level cities: no statistics (search2)
CNDESC = {1000: "服务正常", 2001: "参数错误", 2002: "参数不是合法的JSON", 2003: "参数缺失",
          2004: "参数值不在枚举范围内", 2005: "经纬度格式错误", 2006: "超出范围",
          2007: "start/count超限", 3000: "服务器错误", 3001: "没有数据"}

# Tianditu dataTypes (names, or 6-digit codes of Type.csv and their 4-digit class prefixes) ->
# our POI categories (data-samples/generate_hangzhou.py); the first code is the one we send
# back as `typeCode` (with its Type.csv name as `typeName`)
CATEGORY_TABLE: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("service_hall", ("政务服务", "政务服务中心", "行政服务中心", "便民服务中心", "政府机关",
                      "政府及管理机构"), ("190100", "1901"), "政府及管理机构"),
    ("hospital", ("医院", "综合医院", "专科医院", "社区医疗", "医疗"), ("170101", "1701"),
     "综合医院"),
    ("school", ("学校", "小学", "中学", "幼儿园"), ("160102", "1601"), "小学"),
    ("park", ("公园", "街心公园"), ("180304", "180305"), "公园"),
    ("police", ("派出所", "公安局", "公安"), ("190202", "1902"), "派出所"),
    ("bank", ("银行", "金融服务", "ATM", "自助银行"), ("150100", "1501"), "金融服务"),
    ("supermarket", ("超市", "便利店"), ("130105", "130104"), "超市"),
    ("restaurant", ("餐馆", "中餐馆", "快餐", "餐饮", "休闲餐饮"),
     ("110100", "1101", "1102", "1103"), "餐馆"),
    ("hotel", ("宾馆", "酒店", "星级宾馆"), ("120101", "1201"), "星级宾馆"),
    ("metro_station", ("地铁站", "地铁站出入口", "地铁站主点"), ("230106", "230105"), "地铁站主点"),
    ("library", ("图书馆",), ("160203",), "图书馆"),
    ("post_office", ("邮局",), ("210210",), "邮局"),
    ("pharmacy", ("药店",), ("130501",), "药店"),
    ("community_center", ("社区", "社区服务"), ("260115",), "社区"),
)
TYPE_OF = {cat: (codes[0], name) for cat, _, codes, name in CATEGORY_TABLE}


def fail(code: int, message: str, param: str | None = None) -> PlacesInputError:
    return PlacesInputError(code, message, param=param)


# --- decoding -------------------------------------------------------------------------------

_SINGLE = re.compile(r"'((?:[^'\\]|\\.)*)'")


_DECODER = json.JSONDecoder()


def _loads(raw: str) -> Any:
    """One JSON value; a surplus of closing braces after it is tolerated, as Tianditu does
    (public client code sends `postStr={...}}` and gets answers)."""
    try:
        value, end = _DECODER.raw_decode(raw)
    except ValueError:
        return None
    return value if raw[end:].strip().strip("}") == "" else None


def decode(raw: str | None, name: str) -> dict[str, Any]:
    """`postStr`/`ds` as clients send it: JSON, or Tianditu's single-quoted pseudo-JSON."""
    if raw is None or not raw.strip():
        raise fail(MISSING, f"{name} is missing.", name)
    if len(raw) > MAX_RAW:
        raise fail(BAD_PARAMETER, f"{name} is longer than {MAX_RAW} characters.", name)
    if "\x00" in raw:
        raise fail(BAD_PARAMETER, f"{name} contains a NUL character.", name)
    value = _loads(raw.strip())
    if value is None:
        value = _loads(_SINGLE.sub(lambda m: json.dumps(m.group(1)), raw.strip()))
    if value is None:
        raise fail(NOT_JSON, f"{name} is not valid JSON.", name)
    if not isinstance(value, dict):
        raise fail(NOT_JSON, f"{name} must be a JSON object.", name)
    return value


def text(d: dict[str, Any], key: str, *, required: bool = False,
         max_len: int = MAX_KEYWORD) -> str | None:
    v = d.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise fail(MISSING, f"{key} is missing.", key)
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise fail(BAD_PARAMETER, f"{key} must be a string.", key)
    s = str(v).strip()
    if CONTROL.search(s):
        raise fail(BAD_PARAMETER, f"{key} contains control characters.", key)
    if len(s) > max_len:
        raise fail(BAD_PARAMETER, f"{key} is longer than {max_len} characters.", key)
    return s


def integer(d: dict[str, Any], key: str, default: int | None, lo: int, hi: int,
            code: int = BAD_PARAMETER) -> int | None:
    v = d.get(key)
    if v is None or v == "":
        return default
    try:
        if isinstance(v, bool):
            raise TypeError
        f = float(v)
        if not f.is_integer():
            raise ValueError
        n = int(f)
    except (TypeError, ValueError, OverflowError):
        raise fail(BAD_PARAMETER, f"{key} must be an integer.", key) from None
    if not lo <= n <= hi:
        raise fail(code, f"{key} must be between {lo} and {hi}.", key)
    return n


def flag(v: Any, key: str, default: bool = False) -> bool:
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1"):
        return True
    if s in ("false", "0"):
        return False
    raise fail(BAD_ENUM, f"{key} is true or false.", key)


def number(v: Any, key: str) -> float:
    try:
        if isinstance(v, bool):
            raise TypeError
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        raise fail(BAD_LONLAT, f"{key} is not a number.", key) from None
    if not math.isfinite(f):
        raise fail(BAD_LONLAT, f"{key} is not a number.", key)
    return f


def lonlat(lon: Any, lat: Any, key: str) -> tuple[float, float]:
    x, y = number(lon, key), number(lat, key)
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise fail(OUT_OF_RANGE, f"{key} is outside -180..180, -90..90.", key)
    return x, y


def numbers(s: str, key: str) -> list[float]:
    """Numbers of "x,y,...": commas, spaces or semicolons between them."""
    return [number(p, key) for p in re.split(r"[,\s;]+", s.strip()) if p]


def point(s: str | None, key: str) -> tuple[float, float]:
    if s is None:
        raise fail(MISSING, f"{key} is missing.", key)
    xs = numbers(s, key)
    if len(xs) != 2:
        raise fail(BAD_LONLAT, f"{key} is \"lon,lat\".", key)
    return lonlat(xs[0], xs[1], key)


def bound(s: str | None, key: str) -> tuple[float, float, float, float] | None:
    if s is None:
        return None
    xs = numbers(s, key)
    if len(xs) != 4:
        raise fail(BAD_LONLAT, f"{key} is \"minx,miny,maxx,maxy\".", key)
    (x0, y0), (x1, y1) = lonlat(xs[0], xs[1], key), lonlat(xs[2], xs[3], key)
    if x0 > x1 or y0 > y1:
        raise fail(BAD_LONLAT, f"{key}: min must not exceed max.", key)
    return x0, y0, x1, y1


def polygon(s: str | None, key: str = "polygon") -> list[tuple[float, float]]:
    if s is None:
        raise fail(MISSING, f"{key} is missing.", key)
    if len(s) > MAX_RAW:
        raise fail(OUT_OF_RANGE, f"{key} has too many points.", key)
    xs = numbers(s, key)
    if len(xs) % 2:
        raise fail(BAD_LONLAT, f"{key} is \"x1,y1,x2,y2,...\".", key)
    pts = [lonlat(xs[i], xs[i + 1], key) for i in range(0, len(xs), 2)]
    if len(pts) - (len(pts) > 1 and pts[0] == pts[-1]) > MAX_POLYGON_POINTS:
        raise fail(OUT_OF_RANGE, f"{key} has more than {MAX_POLYGON_POINTS} points.", key)
    if len(pts) >= 3 and pts[0] != pts[-1]:
        pts.append(pts[0])  # Tianditu asks for a closed ring; we close it
    if len(pts) < 4:
        raise fail(BAD_PARAMETER, f"{key} needs at least 3 distinct points.", key)
    return pts


def admin_code(s: str) -> str:
    """A Tianditu `specify`: 9-digit "156xxxxxx" (or 12-digit township) -> our code; a name
    is passed on as it is."""
    s = s.strip()
    if s.isdigit() and s.startswith("156") and len(s) in (9, 12):
        return s[3:]
    return s


def categories(raw: str | None) -> list[tuple[str, list[str]]]:
    """`dataTypes` ("法院,公园" or "180304,...") -> [(as given, [our categories])]; an unknown
    one refuses the whole request (Tianditu answers HTTP 400)."""
    if raw is None:
        raise fail(MISSING, "dataTypes is missing.", "dataTypes")
    out = []
    for item in (p.strip() for p in re.split(r"[,，]", raw)):
        if not item:
            continue
        found = [cat for cat, names, codes, _ in CATEGORY_TABLE
                 if item in names or (item.isdigit() and len(item) == 6 and any(
                     item == c or (len(c) == 4 and item.startswith(c)) for c in codes))]
        if not found:
            raise fail(BAD_ENUM, "dataTypes names an unknown category.", "dataTypes")
        out.append((item, found))
    if not out:
        raise fail(MISSING, "dataTypes is missing.", "dataTypes")
    if len(out) > 20:
        raise fail(OUT_OF_RANGE, "dataTypes has more than 20 categories.", "dataTypes")
    return out


# --- requests -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchRequest:
    """A `/v2/search` or legacy `/search` postStr, checked."""

    query_type: int
    keyword: str | None
    start: int
    count: int
    show: int
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float] | None = None
    radius_m: float | None = None
    polygon: list[tuple[float, float]] | None = None
    admin: str | None = None
    data_types: tuple[tuple[str, tuple[str, ...]], ...] = ()
    legacy: bool = False

    @property
    def statistics(self) -> bool:
        if self.query_type == 14:
            return True
        # a province (not a municipality) named in `specify` gives statistics (search2, the
        # geo-compass mirror of its docs), for the searches that take `specify`
        a = self.admin or ""
        return (self.query_type in (1, 7, 12) and a.isdigit() and len(a) == 6
                and a.endswith("0000") and a[:2] not in MUNICIPALITIES)

    @property
    def kinds(self) -> tuple[str, ...] | None:
        return PLACE_NAME_KINDS if self.query_type == 7 else None

    def query_args(self, cats: list[str] | None = None) -> dict[str, Any]:
        """Keyword arguments of `Places.search` (besides `visible`)."""
        return {"bbox": self.bbox, "near": self.near, "radius_m": self.radius_m,
                "admin": self.admin, "polygon": self.polygon, "categories": cats,
                "kinds": self.kinds, "limit": self.count, "offset": self.start,
                "statistics": self.statistics}


def parse_search(post: dict[str, Any], *, legacy: bool = False) -> SearchRequest:
    types = QUERY_TYPES_V1 if legacy else QUERY_TYPES_V2
    qt = integer(post, "queryType", 1, -(2**31), 2**31, BAD_ENUM) or 0
    if qt not in types:
        raise fail(BAD_ENUM, f"queryType is one of {', '.join(map(str, types))}.", "queryType")
    keyword = text(post, "keyWord", required=qt not in (12, 13))
    start = integer(post, "start", 0, 0, MAX_START, OVERFLOW) or 0
    count = integer(post, "count", 10, 1, MAX_COUNT, OVERFLOW) or 10
    if start + count > MAX_TOTAL:
        raise fail(OVERFLOW, f"start + count is over {MAX_TOTAL}.", "count")
    show = integer(post, "show", 1, 1, 2, BAD_ENUM) or 1
    integer(post, "level", None, 1, 20, BAD_ENUM)  # map level: checked, not used
    spec_key = "specifyAdminCode" if legacy else "specify"
    specify = text(post, spec_key, max_len=50) or (text(post, "specify", max_len=50)
                                                   if legacy else None)
    args: dict[str, Any] = {"admin": admin_code(specify) if specify else None}
    if qt in (1, 2, 7, 13):
        args["bbox"] = bound(text(post, "mapBound", max_len=200), "mapBound")
        if qt == 2 and args["bbox"] is None:
            raise fail(MISSING, "mapBound is missing.", "mapBound")
    if qt == 3:
        args["near"] = point(text(post, "pointLonlat", max_len=100), "pointLonlat")
        r = number(text(post, "queryRadius", required=True, max_len=30), "queryRadius")
        if not 0 < r <= MAX_RADIUS_M:
            raise fail(OUT_OF_RANGE, f"queryRadius is 1-{int(MAX_RADIUS_M)} metres.",
                       "queryRadius")
        args["radius_m"] = r
    if qt == 10:
        args["polygon"] = polygon(text(post, "polygon", max_len=MAX_RAW))
    if qt == 12 and not specify:
        raise fail(MISSING, "specify is missing.", "specify")
    if qt == 13:
        args["data_types"] = tuple((label, tuple(cats)) for label, cats in
                                   categories(text(post, "dataTypes", max_len=1000)))
    return SearchRequest(qt, keyword, start, count, show, legacy=legacy, **args)


def parse_geocode(ds: dict[str, Any]) -> str:
    kw = text(ds, "keyWord", required=True)
    assert kw is not None
    return kw


def parse_reverse(post: dict[str, Any]) -> tuple[float, float]:
    for key in ("lon", "lat"):
        if post.get(key) in (None, ""):
            raise fail(MISSING, f"{key} is missing.", key)
    return lonlat(post["lon"], post["lat"], "lon/lat")


@dataclass(frozen=True)
class AdminRequest:
    keyword: str
    children: int
    geometry: bool
    by_code: bool = False
    parents: bool = False


def parse_admin_v2(keyword: str | None, child_level: str | None,
                   extensions: str | None) -> AdminRequest:
    kw = text({"keyword": keyword}, "keyword", required=True, max_len=50)
    assert kw is not None
    level = integer({"childLevel": child_level}, "childLevel", 0, 0, 3, BAD_ENUM) or 0
    return AdminRequest(admin_code(kw), level, flag(extensions, "extensions"),
                        by_code=kw.isdigit())


def parse_admin_v1(post: dict[str, Any]) -> AdminRequest:
    word = text(post, "searchWord", required=True, max_len=50)
    assert word is not None
    st = str(post.get("searchType", "1")).strip()
    if st not in ("0", "1"):
        raise fail(BAD_ENUM, "searchType is 0 (code) or 1 (name).", "searchType")
    if st == "0" and not word.isdigit():
        raise fail(BAD_PARAMETER, "searchWord must be a code when searchType is 0.",
                   "searchWord")
    sub = flag(post.get("needSubInfo"), "needSubInfo")
    every = flag(post.get("needAll"), "needAll")
    return AdminRequest(admin_code(word), (3 if every else 1) if sub else 0,
                        flag(post.get("needPolygon"), "needPolygon"), by_code=st == "0",
                        parents=flag(post.get("needPre"), "needPre"))
