"""The query layer of a node with children: its own `Places` plus the answers of the children
a query concerns (services.places.federation routes and fans out), merged into the same model
types, with the children that did not answer named in `partial`.

Merging: geocoding takes the best score (at equal score the more specific kind, then the
finer node: a door plate of the information base beats the county of the national
gazetteer); reverse geocoding takes the nearest door plate, road and POI of all answers and the
admin chain and formatted address of the answer that gave the door plate; search merges the
pages (each child is asked for `offset + limit` rows) sorted by distance for nearby searches and
by score otherwise, and adds the totals and statistics; divisions come from the finest node
that knows the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import anyio
import shapely.geometry

from services.places.federation import Answers, Child, Fanout
from services.places.model import (
    AdminChain,
    AreaCount,
    Division,
    Geocoded,
    Place,
    Reversed,
    SearchResult,
)
from services.places.query import Places

SPECIFIC = {"address": 0, "poi": 1, "road": 2, "place": 3, "township": 4, "county": 5,
            "city": 6, "province": 7}
ADMIN_KEYS = ("province", "province_code", "city", "city_code", "county", "county_code",
              "township", "township_code")


@dataclass(frozen=True)
class Ask:
    """How this request asks children: the caller's credentials and the time it has."""
    headers: dict[str, str]
    params: dict[str, str]
    deadline_s: float


def admin_of(props: dict[str, Any] | None) -> AdminChain:
    props = props or {}
    return AdminChain(**{k: props.get(k) for k in ADMIN_KEYS})


def place_from_feature(f: dict[str, Any]) -> Place | None:
    """A Place from a feature of our JSON API (services.places.api.place_feature), CRS84."""
    try:
        props = f.get("properties") or {}
        lon, lat = (float(v) for v in f["geometry"]["coordinates"][:2])
        kind = props["kind"]
        if kind not in SPECIFIC:
            return None
        return Place(id=str(f.get("id")), kind=kind, name=str(props.get("name") or ""),
                     lon=lon, lat=lat, admin=admin_of(props.get("admin")),
                     address=props.get("address"), road=props.get("road"),
                     number=props.get("number"), category=props.get("category"),
                     phone=props.get("phone"), layer=props.get("layer"),
                     node=props.get("node"), score=_float(props.get("score")),
                     distance_m=_float(props.get("distance_m")))
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def division_from_feature(f: dict[str, Any]) -> Division | None:
    try:
        p = f["properties"]
        lon, lat = (float(v) for v in p["centre"][:2])
        bbox = tuple(float(v) for v in p["bbox"]) if p.get("bbox") else None
        geometry = f.get("geometry") or {}
        boundary = None
        if geometry.get("type") in ("Polygon", "MultiPolygon"):
            boundary = shapely.geometry.shape(geometry).wkt
        return Division(code=p["code"], name=p["name"], kind=p["kind"],
                        parent_code=p.get("parent_code"), lon=lon, lat=lat,
                        bbox=bbox if bbox and len(bbox) == 4 else None,  # type: ignore[arg-type]
                        boundary_wkt=boundary, boundary_note=p.get("boundary_note"),
                        parents=tuple(_child_division(c) for c in p.get("parents") or []),
                        children=tuple(_child_division(c) for c in p.get("children") or []))
    except (KeyError, TypeError, ValueError):
        return None


def _child_division(c: dict[str, Any]) -> Division:
    bbox = tuple(float(v) for v in c["bbox"]) if c.get("bbox") else None
    note = c.get("boundary_note")
    return Division(code=str(c["code"]), name=str(c["name"]), kind=c["kind"],
                    parent_code=None, lon=float(c.get("lon") or 0), lat=float(c.get("lat") or 0),
                    bbox=bbox if bbox and len(bbox) == 4 else None,  # type: ignore[arg-type]
                    boundary_note=str(note) if note is not None else None,
                    children=tuple(_child_division(x) for x in c.get("children") or []))


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def api_params(q: str | None, args: dict[str, Any]) -> dict[str, str]:
    """`Places.search` arguments as the query of our /api/places/search (a polygon as its
    bbox: the answers are filtered here; kinds too)."""
    out: dict[str, str] = {}
    if q:
        out["q"] = q
    bbox = args.get("bbox")
    if args.get("polygon"):
        xs, ys = zip(*args["polygon"], strict=True)
        bbox = (min(xs), min(ys), max(xs), max(ys))
    if bbox:
        out["bbox"] = ",".join(repr(float(v)) for v in bbox)
    if args.get("near"):
        out["near"] = ",".join(repr(float(v)) for v in args["near"])
        if args.get("radius_m"):
            out["radius"] = repr(float(args["radius_m"]))
    if args.get("admin"):
        out["admin"] = str(args["admin"])
    if args.get("categories"):
        out["category"] = ",".join(args["categories"])
    if args.get("statistics"):
        out["statistics"] = "true"
    return out


def _places(body: dict[str, Any]) -> list[Place]:
    return [p for f in body.get("features") or [] if (p := place_from_feature(f)) is not None]


class FederatedPlaces:
    """`Places` of this node and its children, async (the routes await it)."""

    def __init__(self, local: Places, children: list[Child], fanout: Fanout | None):
        self.local, self.children, self.fanout = local, children, fanout

    async def _both(self, fn: Callable[[], Any], targets: list[Child], path: str,
                    params: dict[str, Any], ask: Ask) -> tuple[Any, Answers]:
        if self.fanout is None or not targets:
            return await anyio.to_thread.run_sync(fn), Answers({}, ())
        out: dict[str, Any] = {}

        async def local() -> None:
            out["local"] = await anyio.to_thread.run_sync(fn)

        async def remote() -> None:
            out["remote"] = await self.fanout.ask(  # type: ignore[union-attr]
                targets, path, {**params, **ask.params}, ask.headers, ask.deadline_s)

        async with anyio.create_task_group() as tg:
            tg.start_soon(local)
            tg.start_soon(remote)
        return out["local"], out["remote"]

    def _by_code(self, codes: list[str]) -> list[Child]:
        return [c for c in self.children if any(c.covers_code(code) for code in codes)]

    # --- geocoding ----------------------------------------------------------------------

    async def geocode(self, text: str, *, visible: frozenset[str], limit: int, ask: Ask
                      ) -> Geocoded:
        codes = await anyio.to_thread.run_sync(lambda: self.local.admin_codes(text))
        targets = self._by_code(codes) if codes else list(self.children)
        g, answers = await self._both(
            lambda: self.local.geocode(text, visible=visible, limit=limit), targets,
            "/api/places/geocode", {"address": text}, ask)
        found = list(g.candidates)
        for body in answers.bodies.values():
            found += _places(body)
        if not found:
            return Geocoded(best=None, level=None, partial=answers.partial)
        ranked = sorted(found, key=lambda p: (-(p.score or 0), SPECIFIC[p.kind],
                                              p.node == self.local.node))[:limit]
        return Geocoded(best=ranked[0], level=ranked[0].kind, candidates=tuple(ranked),
                        partial=answers.partial)

    async def reverse(self, lon: float, lat: float, *, visible: frozenset[str],
                      max_distance_m: float, ask: Ask) -> Reversed:
        targets = [c for c in self.children if c.covers_point(lon, lat)]
        r, answers = await self._both(
            lambda: self.local.reverse(lon, lat, visible=visible, max_distance_m=max_distance_m),
            targets, "/api/places/reverse",
            {"lon": repr(lon), "lat": repr(lat), "max_distance": str(int(max_distance_m))}, ask)
        best = r
        nearest = {role: getattr(r, role) for role in ("address", "road", "poi")}
        for body in answers.bodies.values():
            by_role: dict[str, Place] = {}
            for f in body.get("features") or []:
                p = place_from_feature(f)
                role = (f.get("properties") or {}).get("role")
                if p is not None and role in nearest:
                    by_role[role] = p
            theirs = admin_of(body.get("admin"))
            if (theirs.township_code and not best.admin.township_code
                    and best.admin.city_code in (None, theirs.city_code)):
                # the child holds the townships (and its districts' outlines): its chain, and
                # its formatted address while no door plate is nearer
                formatted = best.formatted_address if nearest["address"] is not None else str(
                    body.get("formatted_address") or best.formatted_address)
                best = replace(best, admin=theirs, formatted_address=formatted)
            for role, p in by_role.items():
                mine = nearest[role]
                if mine is None or (p.distance_m or 0) < (mine.distance_m or 0):
                    nearest[role] = p
            if "address" in by_role and nearest["address"] is by_role["address"]:
                best = Reversed(lon=lon, lat=lat,
                                formatted_address=str(body.get("formatted_address") or ""),
                                admin=admin_of(body.get("admin")), address=None, road=None,
                                poi=None)
        return replace(best, address=nearest["address"], road=nearest["road"],
                       poi=nearest["poi"], partial=answers.partial)

    # --- search -------------------------------------------------------------------------

    def _search_targets(self, args: dict[str, Any], admin_codes: list[str]) -> list[Child]:
        out = list(self.children)
        if args.get("bbox"):
            out = [c for c in out if c.covers_bbox(args["bbox"])]
        if args.get("near"):
            lon, lat = args["near"]
            pad = (args.get("radius_m") or 1000) / 90_000  # degrees, generous at China's lats
            out = [c for c in out if c.covers_bbox((lon - pad, lat - pad, lon + pad, lat + pad))]
        if args.get("polygon"):
            xs, ys = zip(*args["polygon"], strict=True)
            out = [c for c in out if c.covers_bbox((min(xs), min(ys), max(xs), max(ys)))]
        if args.get("admin"):
            out = [c for c in out if any(c.covers_code(code) for code in admin_codes)]
        return out

    async def search(self, q: str | None, *, visible: frozenset[str], ask: Ask,
                     api_params: dict[str, str], **args: Any) -> SearchResult:
        admin = args.get("admin")
        codes = [admin] if admin and admin.isdigit() else (
            await anyio.to_thread.run_sync(lambda: self.local.admin_codes(admin))
            if admin else [])
        targets = self._search_targets(args, codes)
        offset, limit = int(args.get("offset") or 0), int(args.get("limit") or 10)
        params = {**api_params, "offset": "0", "limit": str(min(100, offset + limit))}
        res, answers = await self._both(
            lambda: self.local.search(q, visible=visible, **args), targets,
            "/api/places/search", params, ask)
        if not answers.bodies:
            return replace(res, partial=answers.partial)
        local_all = res
        if offset:  # this node's first offset + limit rows, to merge with the children's
            local_all = await anyio.to_thread.run_sync(lambda: self.local.search(
                q, visible=visible, **{**args, "offset": 0, "limit": min(300, offset + limit)}))
        merged = list(local_all.places)
        total = local_all.total
        theirs: list[Place] = []
        stats: dict[str, AreaCount] = {s.code: s for s in local_all.statistics}
        for body in answers.bodies.values():
            theirs += _places(body)
            total += int(body.get("numberMatched") or len(body.get("features") or []))
            for s in body.get("statistics") or []:
                try:
                    a = AreaCount(str(s["name"]), str(s["code"]), int(s["count"]),
                                  float(s["lon"]), float(s["lat"]), bool(s.get("leaf")))
                except (KeyError, TypeError, ValueError):
                    continue
                old = stats.get(a.code)
                stats[a.code] = a if old is None else replace(old, count=max(old.count, a.count))
        if args.get("polygon"):
            ring = shapely.geometry.Polygon(args["polygon"])
            theirs = [p for p in theirs if ring.covers(shapely.geometry.Point(p.lon, p.lat))]
        if args.get("kinds"):
            theirs = [p for p in theirs if p.kind in args["kinds"]]
        merged += theirs
        if args.get("near"):
            merged.sort(key=lambda p: p.distance_m if p.distance_m is not None else 1e12)
        else:
            merged.sort(key=lambda p: (-(p.score or 0), SPECIFIC[p.kind]))
        return SearchResult(places=tuple(merged[offset:offset + limit]), total=total,
                            statistics=tuple(sorted(stats.values(), key=lambda s: -s.count)),
                            area=res.area, partial=answers.partial)

    async def suggest(self, q: str, *, visible: frozenset[str], limit: int, ask: Ask
                      ) -> tuple[list[Place], tuple[str, ...]]:
        found, answers = await self._both(
            lambda: self.local.suggest(q, visible=visible, limit=limit), list(self.children),
            "/api/places/suggest", {"q": q, "limit": str(limit)}, ask)
        out, seen = list(found), {p.name for p in found}
        for body in answers.bodies.values():
            for p in _places(body):
                if p.name not in seen:
                    out.append(p)
                    seen.add(p.name)
        return out[:limit], answers.partial

    async def admin(self, keyword: str, *, children: int, geometry: bool, ask: Ask
                    ) -> tuple[list[Division], tuple[str, ...]]:
        found = await anyio.to_thread.run_sync(
            lambda: self.local.admin(keyword, children=children, geometry=geometry))
        codes = [d.code for d in found] or ([keyword] if keyword.isdigit() else [])
        # a child knows its own divisions better (townships, outlines): ask the ones that hold
        # the code, and those only when this node lacks it or the children asked for
        targets = [c for c in self._by_code(codes)
                   if not found or children > 0 or geometry] if codes else []
        if not targets or self.fanout is None:
            return found, ()
        params = {"children": str(children), "geometry": "true" if geometry else "false"}
        answers = await self.fanout.ask(targets, "/api/places/admin/" + quote(keyword, safe=""),
                                        {**params, **ask.params}, ask.headers, ask.deadline_s)
        best = found
        for body in answers.bodies.values():
            theirs = [d for f in body.get("features") or []
                      if (d := division_from_feature(f)) is not None]
            if theirs and (not best or _depth(theirs[0]) >= _depth(best[0])):
                best = theirs
        return best, answers.partial


def _depth(d: Division) -> int:
    return 1 + max((_depth(c) for c in d.children), default=0) + (1 if d.boundary_wkt else 0)
