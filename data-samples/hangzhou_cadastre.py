#!/usr/bin/env python3
"""Write the SYNTHETIC cadastral attributes and layers of Hangzhou (hangzhou.gpkg).

Everything written here is invented (seed 330100015) and flagged `synthetic`:

- `parcels` gets the land-use class of GB/T 21010-2017 (second-level code and name, from the
  GB 50137 major class it has) and its holder fields: `right_holder` (权利人: invented company,
  authority or owners' association names), `right_type` (权利类型) and `right_nature` (权利性质:
  出让/划拨). The holder fields are restricted on the Hangzhou node (config/layers/hangzhou.yml
  `field_access`); geometry, parcel number, land use and area are public. No other column and no
  geometry of the layer changes.
- `presale_projects` (商品房预售项目): 60 pre-sale housing projects, each on one residential
  parcel away from the old centre (its outline): project name, developer, pre-sale permit number
  (杭售许字), units for sale and in total, status, the parcel number.
- `control_points` (测量控制点): 160 survey control points with grade, mark and CGCS2000
  Gauss-Krüger coordinates (zone 40, EPSG:4549): restricted surveying content.

    python data-samples/hangzhou_cadastre.py      (run by generate_hangzhou.py too; seconds)
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
from pyproj import Transformer
from shapely.geometry import Point

HERE = Path(__file__).resolve().parent
HANGZHOU = HERE / "hangzhou.gpkg"
CRS = "EPSG:4490"
SEED = 330100015
CENTRE = (120.17, 30.26)  # the old town, as generate_hangzhou.py's centre

GBT21010 = {  # GB 50137 major class -> GB/T 21010-2017 second-level classes (weights)
    "R": [("0701", "城镇住宅用地", 1.0)],
    "B": [("0501", "零售商业用地", .35), ("0505", "商务金融用地", .35), ("0504", "旅馆用地", .10),
          ("0503", "餐饮用地", .10), ("0507", "其他商服用地", .10)],
    "A": [("0801", "机关团体用地", .25), ("0803", "教育用地", .30), ("0805", "医疗卫生用地", .15),
          ("0807", "文化设施用地", .15), ("0808", "体育用地", .15)],
    "G": [("0810", "公园与绿地", 1.0)],
    "M": [("0601", "工业用地", 1.0)],
    "W": [("0604", "仓储用地", 1.0)],
}
SYLLABLES = list("江南钱塘西溪滨湖运河锦绣云栖紫金翠苑文澜望湖金沙明月星桥景芳嘉禾融信万科绿城")
SUFFIX = {"R": ["置业有限公司", "房地产开发有限公司"], "B": ["商贸有限公司", "实业有限公司", "酒店管理有限公司"],
          "M": ["机械制造有限公司", "电子科技有限公司"], "W": ["物流有限公司", "仓储服务有限公司"]}
PUBLIC_BODY = {"0801": "街道办事处", "0803": "学校", "0805": "医院", "0807": "文化馆", "0808": "体育中心",
               "0810": "园林绿化管理所"}
PROJECT_SUFFIX = ["府", "苑", "里", "云庐", "公馆", "雅园", "花园", "澜庭"]
STATUS = [("在售", .6), ("即将开盘", .2), ("售罄", .2)]


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def _name(rng: np.random.Generator, n: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES, n, replace=False))


def _pick(rng: np.random.Generator, options: list) -> tuple:
    w = np.array([o[-1] for o in options], dtype=float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def parcels_with_rights(parcels: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    out = parcels.copy()
    codes, names, holders, natures = [], [], [], []
    for lu, district in zip(out["land_use_code"], out["district"]):
        code, name, _w = _pick(rng, GBT21010[lu])
        codes.append(code)
        names.append(name)
        if lu in ("A", "G"):
            holders.append(f"杭州市{district}{_name(rng)}{PUBLIC_BODY[code]}")
            natures.append("划拨")
        elif lu == "R" and rng.random() < .5:
            holders.append(f"{_name(rng)}小区全体业主")  # 业主共有 (建筑区划内的共有部分)
            natures.append("出让")
        else:
            holders.append(f"杭州{_name(rng)}{rng.choice(SUFFIX[lu])}")
            natures.append("出让")
    out["gbt21010_code"], out["gbt21010_name"] = codes, names
    out["right_holder"], out["right_type"], out["right_nature"] = holders, "国有建设用地使用权", natures
    cols = [c for c in parcels.columns if c not in ("synthetic", "geometry")]
    cols += ["gbt21010_code", "gbt21010_name", "right_holder", "right_type", "right_nature",
             "synthetic", "geometry"]
    return out[cols]


def presale_projects(parcels: gpd.GeoDataFrame, rng: np.random.Generator, n: int = 60
                     ) -> gpd.GeoDataFrame:
    res = parcels[(parcels["land_use_code"] == "R")].copy()
    c = res.geometry.representative_point()
    res["_d"] = np.hypot((c.x - CENTRE[0]) * 96000, (c.y - CENTRE[1]) * 110600)
    far = res[res["_d"] > 2500]
    pick = far.iloc[np.sort(rng.choice(len(far), n, replace=False))]
    rows = []
    for i, (_, p) in enumerate(pick.iterrows()):
        total = int(rng.integers(8, 40)) * 12
        status = _pick(rng, STATUS)[0]
        for_sale = 0 if status == "售罄" else total if status == "即将开盘" else \
            int(total * rng.uniform(.1, .8))
        rows.append({"project_name": f"{_name(rng)}{rng.choice(PROJECT_SUFFIX)}",
                     "developer": f"杭州{_name(rng)}置业有限公司",
                     "permit_no": f"杭售许字(2026)第{i * 7 + 101:06d}号",
                     "units_for_sale": for_sale, "units_total": total, "status": status,
                     "parcel_no": p["parcel_no"], "district": p["district"], "synthetic": True,
                     "geometry": p.geometry})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def control_points(districts: gpd.GeoDataFrame, rng: np.random.Generator, n: int = 160
                   ) -> gpd.GeoDataFrame:
    to_gk = Transformer.from_crs(CRS, "EPSG:4549", always_xy=True)  # CGCS2000 3-degree zone 40
    rows = []
    while len(rows) < n:
        lon, lat = CENTRE[0] + rng.normal(0, .12), CENTRE[1] + rng.normal(0, .08)
        hit = districts[districts.contains(Point(lon, lat))]
        if hit.empty:
            continue
        x, y = to_gk.transform(lon, lat)
        grade = rng.choice(["C级GNSS点", "D级GNSS点", "三等水准点", "四等水准点", "一级导线点"],
                           p=[.1, .2, .2, .2, .3])
        rows.append({"point_no": f"HZ{len(rows) + 1:04d}", "grade": str(grade),
                     "mark": str(rng.choice(["混凝土标石", "墙脚标志", "钢钉"])),
                     "elevation_m": round(float(rng.uniform(3, 40)), 3),
                     "gk_x": round(y, 3), "gk_y": round(x, 3),  # surveying X north, Y east
                     "district": hit.iloc[0]["name"], "synthetic": True,
                     "geometry": Point(round(lon, 7), round(lat, 7))})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def main() -> None:
    rng = np.random.default_rng(SEED)
    parcels = pyogrio.read_dataframe(HANGZHOU, layer="parcels")
    parcels = parcels[[c for c in parcels.columns if c not in
                       ("gbt21010_code", "gbt21010_name", "right_holder", "right_type",
                        "right_nature")]]
    rights = parcels_with_rights(parcels, rng)
    projects = presale_projects(rights, rng)
    districts = pyogrio.read_dataframe(HANGZHOU, layer="districts")
    points = control_points(districts, rng)
    for name, gdf in (("parcels", rights), ("presale_projects", projects),
                      ("control_points", points)):
        pyogrio.write_dataframe(gdf, HANGZHOU, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"})
        log(name, len(gdf))


if __name__ == "__main__":
    main()
