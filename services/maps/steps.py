"""Words for a route's steps: Chinese turn-by-turn text (as Tianditu's `strguide`) and the
GeoJSON form of /api/route."""

from __future__ import annotations

from typing import Any

from services.maps.routing import Route, Snap, Step

TURN_ZH = {"depart": "出发", "straight": "直行", "slight_left": "稍向左转", "left": "左转",
           "sharp_left": "向左急转", "slight_right": "稍向右转", "right": "右转",
           "sharp_right": "向右急转", "uturn": "掉头", "arrive": "到达终点"}
DIGITS = 7


def metres_zh(m: float) -> str:
    return f"{m / 1000:.1f}公里" if m >= 1000 else f"{round(m):d}米"


def instruction(step: Step) -> str:
    if step.turn == "arrive":
        return "到达终点"
    if step.turn == "depart":
        return f"从{step.name}出发，行驶{metres_zh(step.distance_m)}"
    return f"{TURN_ZH[step.turn]}进入{step.name}，行驶{metres_zh(step.distance_m)}"


def point(c: tuple[float, float]) -> list[float]:
    return [round(c[0], DIGITS), round(c[1], DIGITS)]


def _snap(s: Snap) -> dict[str, Any]:
    return {"requested": [s.lon, s.lat], "location": point(s.snapped),
            "distance": round(s.distance_m, 1)}


def geojson(route: Route, mode: str) -> dict[str, Any]:
    """The FeatureCollection of /api/route: the route line, the two ends as asked (with how
    far each snapped), and the totals and steps as members of the collection."""
    steps = [{"index": i, "road": s.name, "turn": s.turn, "instruction": instruction(s),
              "distance": round(s.distance_m, 1), "duration": round(s.duration_s, 1),
              "location": point(s.location)} for i, s in enumerate(route.steps)]
    a, b = route.snaps[0], route.snaps[-1]
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "route",
             "geometry": {"type": "LineString", "coordinates": [point(c) for c in route.coords]},
             "properties": {"role": "route", "mode": mode, "distance": round(route.distance_m, 1),
                            "duration": round(route.duration_s, 1)}},
            {"type": "Feature", "id": "from", "geometry": {"type": "Point",
                                                           "coordinates": [a.lon, a.lat]},
             "properties": {"role": "from", "snapped": point(a.snapped),
                            "snap_distance": round(a.distance_m, 1)}},
            {"type": "Feature", "id": "to", "geometry": {"type": "Point",
                                                         "coordinates": [b.lon, b.lat]},
             "properties": {"role": "to", "snapped": point(b.snapped),
                            "snap_distance": round(b.distance_m, 1)}},
        ],
        "mode": mode,
        "distance": round(route.distance_m, 1),
        "duration": round(route.duration_s, 1),
        "snap": {"from": _snap(a), "to": _snap(b)},
        "steps": steps,
    }
