"""Tianditu's driving-route service, `GET /drive?postStr={...}&type=search&tk=` (drive.html):
the request's parsing and the XML answer.

The answer follows the documented form and what public clients read from it (TIANDITU-API.md
1.7; the iOS client's `Response_RouteSearch` reads `result/distance`, `mapinfo/center`,
`mapinfo/scale`, `routelatlon` and `routes/item/strguide`; web clients split `routelatlon` and
`simple/item/streetLatLon` on `;` and drop the empty last element: both end in `;` here as in
Tianditu's): `<result orig mid dest>`, `<parameters>`, `<routes count time>` with an item per
turn, `<simple>` with merged items (`streetNames`, `lastStreetName`, `linkStreetName`,
`streetLatLon`, `streetDistance` in metres, `segmentNumber`), `<distance>` in km, `<duration>`
in seconds, `<routelatlon>`, `<mapinfo><center/><scale/></mapinfo>`.

Bad input: Tianditu documents no error form for this service, so we answer (HTTP 200, as its
place search does) the same `<result>` with no route and a `<status>` carrying the place-search
`infocode` table's code and message (2001 bad parameter, 2002 not JSON, 2003 missing,
2004 bad enum, 2005 bad lon/lat, 2006 out of range, 3001 no route): a client that reads the
route finds `routes count="0"`, one that reads the status finds why.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from services.maps.errors import BAD_ENUM, BAD_JSON, BAD_LONLAT, MISSING, OUT_OF_RANGE, bad
from services.maps.routing import Profile, Route, Step
from services.maps.steps import instruction

MAX_POST = 4096
MAX_MID = 10
STYLES: dict[str, Profile] = {"0": "fastest", "1": "shortest", "2": "no_highways", "3": "walk"}
_ECHO = frozenset("0123456789.,;-+eE ")
INFO_TEXT = {2001: "参数错误", 2002: "参数不是有效的JSON", 2003: "参数缺失", 2004: "参数值错误",
             2005: "经纬度错误", 2006: "超出范围", 3000: "服务器错误", 3001: "没有找到路线"}


@dataclass(frozen=True)
class DriveRequest:
    orig: tuple[float, float]
    dest: tuple[float, float]
    mid: list[tuple[float, float]]
    style: str
    raw: dict[str, str]

    @property
    def points(self) -> list[tuple[float, float]]:
        return [self.orig, *self.mid, self.dest]

    @property
    def profile(self) -> Profile:
        return STYLES[self.style]


def _lonlat(text: str, param: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2 or any(len(p.strip()) > 30 for p in parts):
        raise bad(BAD_LONLAT, f"{param} is lon,lat.", param)
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise bad(BAD_LONLAT, f"{param} is lon,lat.", param) from None
    if not (math.isfinite(lon) and math.isfinite(lat)) or not (
            -180 <= lon <= 180 and -90 <= lat <= 90):
        raise bad(BAD_LONLAT, f"{param}: longitude -180..180, latitude -90..90.", param)
    return lon, lat


def _decode(post_str: str) -> Any:
    try:
        return json.loads(post_str)
    except ValueError:
        return json.loads(post_str.replace("'", '"'))


def raw_of(post_str: str | None) -> dict[str, str]:
    """The request's orig/mid/dest/style as sent, when postStr decodes (for an error's echo)."""
    try:
        body = _decode(post_str or "") if post_str and len(post_str) <= MAX_POST else None
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: str(v) for k, v in body.items() if k in ("orig", "dest", "mid", "style")}


def parse(post_str: str | None, type_: str | None) -> DriveRequest:
    """`postStr` (JSON; Tianditu's own examples also use single quotes) and `type=search`."""
    if type_ is not None and type_ != "search":
        raise bad(BAD_ENUM, "type is search.", "type")
    if not post_str:
        raise bad(MISSING, "postStr is missing.", "postStr")
    if len(post_str) > MAX_POST:
        raise bad(OUT_OF_RANGE, "postStr is too long.", "postStr")
    try:
        body = _decode(post_str)
    except ValueError:
        raise bad(BAD_JSON, "postStr is not JSON.", "postStr") from None
    if not isinstance(body, dict):
        raise bad(BAD_JSON, "postStr is a JSON object.", "postStr")
    raw = raw_of(post_str)
    for key in ("orig", "dest"):
        if not raw.get(key):
            raise bad(MISSING, f"{key} is missing.", key)
    orig, dest = _lonlat(raw["orig"], "orig"), _lonlat(raw["dest"], "dest")
    mids = [m for m in (raw.get("mid") or "").split(";") if m.strip()]
    if len(mids) > MAX_MID:
        raise bad(OUT_OF_RANGE, f"mid has at most {MAX_MID} points.", "mid")
    style = raw.get("style", "0").strip() or "0"
    if style not in STYLES:
        raise bad(BAD_ENUM, "style is 0, 1, 2 or 3.", "style")
    return DriveRequest(orig, dest, [_lonlat(m, "mid") for m in mids], style, raw)


def _ll(c: tuple[float, float]) -> str:
    return f"{c[0]:.6f},{c[1]:.6f}"


def _line(cs: list[tuple[float, float]]) -> str:
    return "".join(_ll(c) + ";" for c in cs)


def _km(m: float) -> str:
    return f"{m / 1000:.3f}".rstrip("0").rstrip(".") or "0"


def _sub(parent: ET.Element, tag: str, text: str = "", **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def echo(value: Any) -> str:
    """A request value as it may be echoed: the characters of coordinates only, bounded (the
    XML never carries the caller's other text, nor characters XML cannot hold)."""
    return "".join(c for c in str(value)[:400] if c in _ECHO)


def _root(raw: dict[str, Any]) -> ET.Element:
    root = ET.Element("result", {k: echo(raw.get(k, "")) for k in ("orig", "mid", "dest")})
    params = _sub(root, "parameters")
    for key in ("orig", "dest", "mid", "style"):
        _sub(params, key, echo(raw.get(key, "0" if key == "style" else "")))
    return root


def _scale(cs: list[tuple[float, float]]) -> tuple[tuple[float, float], int]:
    """Centre and zoom level (Tianditu's, 1..18) that fit the route in about 800 pixels."""
    xs, ys = [c[0] for c in cs], [c[1] for c in cs]
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    span = max(max(xs) - min(xs), (max(ys) - min(ys)) * 2, 1e-6)
    zoom = math.floor(math.log2(360 * 800 / (256 * span)))
    return centre, max(1, min(18, zoom))


def _simple_groups(steps: list[Step]) -> list[list[int]]:
    """Steps merged while the road goes on straight (Tianditu's simplified items)."""
    groups: list[list[int]] = []
    for i, s in enumerate(steps):
        if s.turn == "arrive":
            continue
        if groups and s.turn in ("straight", "slight_left", "slight_right"):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def xml_answer(req: DriveRequest, route: Route, seconds: float) -> bytes:
    root = _root(req.raw)
    steps = route.steps
    routes = _sub(root, "routes", count=str(len(steps)), time=f"{seconds:.3f}")
    for i, s in enumerate(steps):
        item = _sub(routes, "item", id=str(i))
        _sub(item, "strguide", instruction(s))
        _sub(item, "signage")
        _sub(item, "streetName", s.name)
        _sub(item, "nextStreetName", s.next_name)
        _sub(item, "tollStatus", "0")
        _sub(item, "turnlatlon", _ll(s.location))
    simple = _sub(root, "simple")
    groups = _simple_groups(steps)
    for g, members in enumerate(groups):
        first, last = steps[members[0]], steps[members[-1]]
        names = list(dict.fromkeys(steps[i].name for i in members))
        coords: list[tuple[float, float]] = []
        for i in members:
            coords += steps[i].coords[1:] if coords else steps[i].coords
        item = _sub(simple, "item", id=str(g))
        _sub(item, "strguide", "，".join(instruction(steps[i]) for i in members))
        _sub(item, "streetNames", ",".join(names))
        _sub(item, "lastStreetName", last.name)
        _sub(item, "linkStreetName", steps[groups[g + 1][0]].name if g + 1 < len(groups) else "")
        _sub(item, "signage")
        _sub(item, "tollStatus", "0")
        _sub(item, "turnlatlon", _ll(first.location))
        _sub(item, "streetLatLon", _line(coords))
        _sub(item, "streetDistance", str(round(sum(steps[i].distance_m for i in members))))
        _sub(item, "segmentNumber", f"{members[0]}-{members[-1]}" if len(members) > 1
             else str(members[0]))
    _sub(root, "distance", _km(route.distance_m))
    _sub(root, "duration", str(round(route.duration_s)))
    _sub(root, "routelatlon", _line(route.coords))
    centre, zoom = _scale(route.coords)
    info = _sub(root, "mapinfo")
    _sub(info, "center", _ll(centre))
    _sub(info, "scale", str(zoom))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def xml_error(raw: dict[str, Any], infocode: int) -> bytes:
    """The answer to a request refused (module docstring): no route, and why."""
    root = _root(raw)
    status = _sub(root, "status")
    _sub(status, "infocode", str(infocode))
    _sub(status, "cndesc", INFO_TEXT.get(infocode, "参数错误"))
    _sub(root, "routes", count="0", time="0")
    _sub(root, "simple")
    _sub(root, "distance", "0")
    _sub(root, "duration", "0")
    _sub(root, "routelatlon")
    info = _sub(root, "mapinfo")
    _sub(info, "center")
    _sub(info, "scale")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
