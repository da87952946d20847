"""The SQL pieces shared by the query layer and the conversion of its rows to the model types.

Every statement takes its values as psycopg2 parameters (`%(name)s`); the only text built
here is from constants of this module (column lists, the kind names of model.LEVEL_CN).
"""

from __future__ import annotations

from typing import Any

from services.places.model import AdminChain, Division, Kind, Place
from services.places.parse import Division as Entry

PLACE_COLS = ("p.id, p.kind, p.name, p.name_norm, p.aliases, p.address, p.road, p.number,"
              " p.road_norm, p.number_int, p.category, p.phone, p.layer, p.province, p.province_code, p.city,"
              " p.city_code, p.county, p.county_code, p.township, p.township_code,"
              " ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat")
VISIBLE = "(p.layer IS NULL OR p.layer = ANY(%(visible)s))"
DIVISION_COLS = ("code, name, kind, parent_code, short_name, ST_X(centre) AS lon,"
                 " ST_Y(centre) AS lat, ST_XMin(bbox) AS x0, ST_YMin(bbox) AS y0,"
                 " ST_XMax(bbox) AS x1, ST_YMax(bbox) AS y1, boundary_note")
# the column of geoplat_places that holds a division's code, by the division's kind
CODE_COLUMN = {"province": "p.province_code", "city": "p.city_code",
               "county": "p.county_code", "township": "p.township_code"}


def chain(row: dict[str, Any]) -> AdminChain:
    return AdminChain(province=row.get("province"), province_code=row.get("province_code"),
                      city=row.get("city"), city_code=row.get("city_code"),
                      county=row.get("county"), county_code=row.get("county_code"),
                      township=row.get("township"), township_code=row.get("township_code"))


def chain_of(entries: list[Entry]) -> AdminChain:
    values: dict[str, str] = {}
    for e in entries:
        values[e.kind], values[e.kind + "_code"] = e.name, e.code
    return AdminChain(**values)


def place(row: dict[str, Any], node: str, *, score: float | None = None,
          distance_m: float | None = None, **changes: Any) -> Place:
    kind: Kind = row["kind"]
    values: dict[str, Any] = {
        "id": f"{node}:{row['id']}", "kind": kind, "name": row["name"],
        "lon": float(row["lon"]), "lat": float(row["lat"]), "admin": chain(row),
        "address": row.get("address"), "road": row.get("road"), "number": row.get("number"),
        "category": row.get("category"), "phone": row.get("phone"), "layer": row.get("layer"),
        "node": node, "score": None if score is None else round(max(0.0, min(100.0, score)), 1),
        "distance_m": distance_m}
    values.update(changes)
    return Place(**values)


def division_place(entry: Entry, entries: list[Entry], node: str, score: float) -> Place:
    return Place(id=f"{node}:division:{entry.code}", kind=entry.kind,  # type: ignore[arg-type]
                 name=entry.name, lon=entry.lon, lat=entry.lat, admin=chain_of(entries),
                 node=node, score=round(score, 1))


def division(row: dict[str, Any], **changes: Any) -> Division:
    bbox = None
    if row.get("x0") is not None:
        bbox = (float(row["x0"]), float(row["y0"]), float(row["x1"]), float(row["y1"]))
    values: dict[str, Any] = {
        "code": row["code"], "name": row["name"], "kind": row["kind"],
        "parent_code": row["parent_code"], "lon": float(row["lon"]), "lat": float(row["lat"]),
        "bbox": bbox, "boundary_wkt": row.get("boundary_wkt"),
        "boundary_note": row.get("boundary_note")}
    values.update(changes)
    return Division(**values)


def like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` as a prefix (its % _ \\ escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
