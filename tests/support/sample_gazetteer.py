"""A small loader of the gazetteer tables from the sample GeoPackages, for the query-layer
tests (tests/places) in a private database.

Replaced by services.places.gazetteer.build when it lands: that is the real build (from the
node's published layers, refreshed on publish); this one only fills the tables of
services.places.schema with what the query layer reads, from data-samples/*.gpkg, so that the
query layer can be tested before and independently of it.

Divisions: the provinces of national.gpkg, Zhejiang's cities (from the county codes), the
counties of zhejiang.gpkg with Hangzhou's current districts in place of its 1999 units (the
sample's `district` values), and Zhejiang's townships (points). Places: those divisions, the
roads, door plates and POIs of hangzhou.gpkg (layers roads, addresses, poi) and the national
place names (layer places).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyogrio
import shapely
from psycopg2.extras import execute_values

from services.places import indexes, schema
from services.places.text import door_number_int, normalise, pinyin_initials, short_name

SAMPLES = Path(__file__).resolve().parents[2] / "data-samples"
PROVINCE = ("330000", "浙江省")
CITIES = {"330100": "杭州市", "330200": "宁波市", "330300": "温州市", "330400": "嘉兴市",
          "330500": "湖州市", "330600": "绍兴市", "330700": "金华市", "330800": "衢州市",
          "330900": "舟山市", "331000": "台州市", "331100": "丽水市"}
HANGZHOU = {"330102": "上城区", "330105": "拱墅区", "330106": "西湖区", "330108": "滨江区",
            "330109": "萧山区", "330110": "余杭区", "330111": "富阳区", "330112": "临安区",
            "330113": "临平区", "330114": "钱塘区", "330122": "桐庐县", "330127": "淳安县",
            "330182": "建德市"}
COLUMNS = ("kind", "name", "name_norm", "aliases", "pinyin", "address", "address_norm", "road",
           "road_norm", "number", "number_int", "category", "phone", "province",
           "province_code", "city", "city_code", "county", "county_code", "township",
           "township_code", "layer", "source_id", "geom", "shape")


def _read(name: str, layer: str) -> Any:
    return pyogrio.read_dataframe(SAMPLES / f"{name}.gpkg", layer=layer, fid_as_index=True)


def divisions() -> list[dict[str, Any]]:
    """(code, name, kind, parent, centre, boundary) rows of the sample divisions."""
    out: list[dict[str, Any]] = []
    for fid, r in _read("national", "provinces").iterrows():
        out.append({"code": str(r["adcode"]), "name": r["name"], "kind": "province",
                    "parent": None, "geom": r.geometry})
    counties = _read("zhejiang", "counties")
    for code, name in CITIES.items():
        part = counties[counties.code.str[:4] == code[:4]]
        if not len(part):   # 台州, 丽水: still 地区 (3325, 3326) in the 1999 units
            continue
        geom = shapely.union_all(part.geometry.values)
        out.append({"code": code, "name": name, "kind": "city", "parent": PROVINCE[0],
                    "geom": geom})
    hz = counties[counties.code.str[:4] == "3301"]
    hz_point = shapely.union_all(hz.geometry.values).representative_point()
    for code, name in HANGZHOU.items():
        out.append({"code": code, "name": name, "kind": "county", "parent": "330100",
                    "geom": None, "centre": hz_point})
    for _, r in counties[counties.code.str[:4] != "3301"].iterrows():
        out.append({"code": r["code"], "name": r["name"], "kind": "county",
                    "parent": r["code"][:4] + "00", "geom": r.geometry})
    for _, r in _read("zhejiang", "townships").iterrows():
        out.append({"code": r["code"], "name": r["name"], "kind": "township",
                    "parent": r["county_code"], "geom": None, "centre": r.geometry})
    for d in out:
        g = d["geom"]
        d["centre"] = d.get("centre") or (g.representative_point() if g is not None else None)
    return out


def _chain(by_code: dict[str, dict[str, Any]], code: str | None) -> dict[str, Any]:
    chain: dict[str, Any] = {}
    while code and code in by_code:
        d = by_code[code]
        chain[d["kind"]], chain[d["kind"] + "_code"] = d["name"], code
        code = d["parent"]
    return chain


def _row(**values: Any) -> tuple:
    values.setdefault("name_norm", normalise(values["name"]))
    values.setdefault("pinyin", pinyin_initials(values["name"]))
    values.setdefault("aliases", [])
    return tuple(values.get(c) for c in COLUMNS)


def place_rows() -> tuple[list[dict[str, Any]], list[tuple]]:
    divs = divisions()
    by_code = {d["code"]: d for d in divs}
    county_by_name = {d["name"]: d["code"] for d in divs if d["kind"] == "county"
                      and d["parent"] == "330100"}
    rows = []
    for d in divs:
        short = short_name(d["name"])
        rows.append(_row(kind=d["kind"], name=d["name"],
                         aliases=[normalise(short)] if short != d["name"] else [],
                         layer=None, source_id=d["code"], geom=d["centre"].wkt, shape=None,
                         **_chain(by_code, d["code"])))
    addresses = _read("hangzhou", "addresses")
    road_county: dict[str, str] = {}
    for fid, r in addresses.iterrows():
        county = county_by_name[r["district"]]
        road_county.setdefault(r["road"], county)
        rows.append(_row(kind="address", name=r["road"] + r["number"], address=r["address"],
                         address_norm=normalise(r["address"]), road=r["road"],
                         road_norm=normalise(r["road"]), number=r["number"],
                         number_int=door_number_int(r["number"]), layer="addresses",
                         source_id=str(fid), geom=r.geometry.wkt, shape=None,
                         **_chain(by_code, county)))
    for fid, r in _read("hangzhou", "roads").iterrows():
        line = shapely.line_merge(r.geometry)
        rows.append(_row(kind="road", name=r["name"], road=r["name"],
                         road_norm=normalise(r["name"]), layer="roads", source_id=str(fid),
                         geom=shapely.line_interpolate_point(line, 0.5, normalized=True).wkt
                         if line.geom_type == "LineString" else r.geometry.representative_point().wkt,
                         shape=r.geometry.wkt,
                         **_chain(by_code, road_county.get(r["name"], "330100"))))
    for fid, r in _read("hangzhou", "poi").iterrows():
        rows.append(_row(kind="poi", name=r["name"], address=r["address"],
                         address_norm=normalise(r["address"]), category=r["category"],
                         phone=r["phone"], layer="poi", source_id=str(fid),
                         geom=r.geometry.wkt, shape=None,
                         **_chain(by_code, county_by_name.get(r["district"]))))
    for fid, r in _read("national", "places").iterrows():
        rows.append(_row(kind="place", name=r["name"], layer="places", source_id=str(fid),
                         geom=r.geometry.wkt, shape=None))
    return divs, rows


def load(cur: Any, extra_rows: list[tuple] | None = None) -> None:
    """Create and fill both tables (replacing what they held), then services.places.indexes."""
    cur.execute("DROP TABLE IF EXISTS geoplat_places, geoplat_divisions")
    cur.execute(schema.DDL)
    divs, rows = place_rows()
    execute_values(cur, "INSERT INTO geoplat_divisions (code, name, name_norm, short_name, kind,"
                   " parent_code, centre, bbox, boundary, boundary_note, source) VALUES %s",
                   [(d["code"], d["name"], normalise(d["name"]), short_name(d["name"]),
                     d["kind"], d["parent"], d["centre"].wkt,
                     shapely.box(*d["geom"].bounds).wkt if d["geom"] is not None else None,
                     shapely.MultiPolygon(shapely.get_parts(d["geom"])).wkt
                     if d["geom"] is not None else None,
                     "1999 county units" if d["geom"] is not None else None, "sample")
                    for d in divs],
                   template="(%s, %s, %s, %s, %s, %s, ST_GeomFromText(%s, 4490),"
                            " ST_GeomFromText(%s, 4490), ST_GeomFromText(%s, 4490), %s, %s)")
    template = "(" + ", ".join(["%s"] * (len(COLUMNS) - 2)) + \
        ", ST_GeomFromText(%s, 4490), ST_GeomFromText(%s, 4490))"
    sql = f"INSERT INTO geoplat_places ({', '.join(COLUMNS)}) VALUES %s"
    execute_values(cur, sql, rows + (extra_rows or []), template=template, page_size=2000)
    indexes.create(cur)


def row(**values: Any) -> tuple:
    """A geoplat_places row for `load(extra_rows=...)` (generated rows of the scale tests)."""
    return _row(**values)
