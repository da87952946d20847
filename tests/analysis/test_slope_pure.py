"""`slope`'s pure parts on synthetic DEMs written here (issue 17): the ellipsoid's cell sizes
and areas, Horn's slope of planes, a flat DEM all ≤2°, partial cells and cells without data,
and the windowed read; the process run through the registry with the node's DEM in its
context (no database: a geometry input needs none)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import Polygon, box, mapping

from layers.cog import rasterio_ready
from services.analysis import processes, slope
from services.analysis.caller import Caller
from services.analysis.compute import GEOD, InputError, Limits

ROOT = Path(__file__).resolve().parents[2]
ZHEJIANG = ROOT / "data-samples" / "rasters" / "dem_zhejiang.tif"
CHINA = ROOT / "data-samples" / "rasters" / "dem_china.tif"
CELL = 0.001  # degrees: about 96 m × 111 m at 30°N
ORIGIN = (120.0, 30.2)  # west, north
SIZE = 200  # cells a side: 120.0-120.2°E, 30.0-30.2°N


def write_dem(path: Path, z: np.ndarray, nodata: float = -9999.0) -> Path:
    with rasterio.Env():
        rasterio_ready()  # Mapnik (imported by node code in the same session) hides proj.db
        with rasterio.open(path, "w", driver="COG", width=z.shape[1], height=z.shape[0],
                           count=1, dtype="float32", crs="EPSG:4490", nodata=nodata,
                           transform=Affine(CELL, 0, ORIGIN[0], 0, -CELL, ORIGIN[1]),
                           blocksize=64) as dst:
            dst.write(z.astype("float32"), 1)
    return path


def lat_of_rows() -> np.ndarray:
    return ORIGIN[1] - (np.arange(SIZE) + 0.5) * CELL


def lon_of_cols() -> np.ndarray:
    return ORIGIN[0] + (np.arange(SIZE) + 0.5) * CELL


@pytest.fixture(scope="module")
def dems(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dems")
    lat = lat_of_rows()[:, None] * np.ones((1, SIZE))
    lon = lon_of_cols()[None, :] * np.ones((SIZE, 1))
    _, my = slope.metres_per_degree(np.array([30.1]))
    mx = slope.metres_per_degree(lat)[0]
    holes = np.full((SIZE, SIZE), 50.0)
    holes[80:120, 80:120] = -9999.0
    return {
        "flat": write_dem(d / "flat.tif", np.full((SIZE, SIZE), 100.0)),
        # rising northwards by tan(10°): 10° everywhere (north-south metres vary by 1e-5)
        "north10": write_dem(d / "north10.tif", (lat - 30.0) * my[0] * math.tan(math.radians(10))),
        # rising eastwards by tan(20°) at each row's own latitude: 20° everywhere
        "east20": write_dem(d / "east20.tif",
                            (lon - 120.0) * mx * math.tan(math.radians(20)) + 1000),
        "holes": write_dem(d / "holes.tif", holes),
    }


def ctx_of(dem: Path | str) -> processes.Context:
    return processes.Context("", Limits(), Caller("tester"), dem=str(dem))


def run(dem: Path | str, geom) -> dict:
    return processes.run("slope", {"geometry": mapping(geom)}, ctx_of(dem))


def shares(result: dict) -> list[float]:
    return [c["share"] for c in result["classes"]]


def geodesic(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


AREA = Polygon([(120.031, 30.043), (120.152, 30.061), (120.171, 30.157), (120.088, 30.176),
                (120.024, 30.121), (120.031, 30.043)])


def test_cell_sizes_and_areas_on_the_ellipsoid() -> None:
    # metres per degree at a latitude: the geodesic length of a short step, over the step
    lats = np.array([0.0, 30.0, 53.0])
    mx, my = slope.metres_per_degree(lats)
    h = 1e-4
    for i, lat in enumerate(lats):
        ew = GEOD.line_length([120 - h / 2, 120 + h / 2], [lat, lat]) / h
        ns = GEOD.line_length([120, 120], [lat - h / 2, lat + h / 2]) / h
        assert abs(mx[i] - ew) / ew < 1e-8 and abs(my[i] - ns) / ns < 1e-8, (lat, mx[i], ew)
    # a cell between two parallels: the geodesic area of the same box (edges 0.001° long)
    for lat in (0.0, 30.0, 53.0):
        got = slope.quadrangle_area(np.array([lat]), np.array([lat + CELL]), CELL)[0]
        want = geodesic(box(120, lat, 120 + CELL, lat + CELL))
        assert abs(got - want) / want < 1e-6, (lat, got, want)


def test_a_flat_dem_is_all_at_most_2_degrees(dems) -> None:
    r = run(dems["flat"], AREA)
    total = geodesic(AREA)
    assert abs(r["input_area_m2"] - total) / total < 1e-9
    assert shares(r)[0] == pytest.approx(1.0, abs=5e-3) and sum(shares(r)[1:]) == 0
    assert r["classes"][0]["range"] == "≤2°" and r["nodata"]["area_m2"] == 0
    assert abs(r["classes"][0]["area_m2"] - total) / total < 5e-3
    assert r["elevation"] == {"mean": 100.0, "min": 100.0, "max": 100.0, "unit": "m"}
    assert r["slope_deg"] == {"mean": 0.0, "max": 0.0}
    assert r["dem"]["name"] == "flat" and "/" not in r["dem"]["name"]  # no path of the node


@pytest.mark.parametrize("name,degrees,cls", [("north10", 10.0, 2), ("east20", 20.0, 3)])
def test_planes_have_their_slope(dems, name: str, degrees: float, cls: int) -> None:
    r = run(dems[name], AREA)
    assert r["slope_deg"]["mean"] == pytest.approx(degrees, abs=0.02), r["slope_deg"]
    assert r["slope_deg"]["max"] == pytest.approx(degrees, abs=0.05)
    assert shares(r)[cls] == pytest.approx(1.0, abs=5e-3)
    assert sum(s for i, s in enumerate(shares(r)) if i != cls) == 0


def test_classes_and_cells_without_data_sum_to_the_input_area(dems) -> None:
    # half outside the DEM (east of 120.2°E), and over the hole of nodata cells
    area = box(120.07, 30.07, 120.3, 30.13)
    r = run(dems["holes"], area)
    total = geodesic(area)
    outside = geodesic(box(120.2, 30.07, 120.3, 30.13))
    hole = geodesic(box(120.08, 30.08, 120.12, 30.12))
    summed = sum(c["area_m2"] for c in r["classes"]) + r["nodata"]["area_m2"]
    assert abs(summed - total) / total < 1e-4
    assert abs(r["nodata"]["area_m2"] - outside - hole) / (outside + hole) < 1e-3
    assert abs(r["with_data"]["area_m2"] - (total - outside - hole)) / total < 1e-3
    # the hole's edges take the centre's elevation: flat, no cliff to the nodata value
    assert r["elevation"]["min"] == r["elevation"]["max"] == 50.0
    assert shares(r)[0] == pytest.approx(r["with_data"]["share"], abs=1e-6)


def test_partial_cells_count_by_their_covered_fraction(dems) -> None:
    # a sliver far thinner than a cell, across cell boundaries
    area = Polygon([(120.0105, 30.0101), (120.1905, 30.0101), (120.1905, 30.01013),
                    (120.0105, 30.0101)])
    r = run(dems["flat"], area)
    total = geodesic(area)
    assert abs(r["classes"][0]["area_m2"] - total) / total < 1e-3


@pytest.mark.parametrize("dem", [ZHEJIANG, CHINA])
def test_on_the_sample_dems_the_classes_sum_to_the_input_area(dem: Path) -> None:
    area = Polygon([(120.05, 30.15), (120.17, 30.16), (120.16, 30.28), (120.07, 30.26)])
    r = run(dem, area)
    total = geodesic(area)
    summed = sum(c["area_m2"] for c in r["classes"]) + r["nodata"]["area_m2"]
    assert abs(summed - total) / total < 5e-3, (summed, total)
    assert r["nodata"]["area_m2"] == 0 and r["elevation"]["min"] <= r["elevation"]["mean"]
    assert r["elevation"]["max"] < 1000 and r["dem"]["cells"] >= 1


def test_the_dem_is_read_in_one_small_window() -> None:
    with rasterio.open(ZHEJIANG) as src:
        res = src.res[0]
        full = src.width * src.height
    area = box(120.1, 30.2, 120.2, 30.3)
    win = slope.read_window(str(ZHEJIANG), area.bounds)
    h, w = win.z.shape
    assert h <= 0.1 / res + 4 and w <= 0.1 / res + 4 and h * w < full / 100
    assert not np.isnan(win.z).any()
    assert win.left <= 120.1 < win.left + win.dlon and win.top - win.dlat < 30.3 <= win.top


def test_a_node_without_a_dem_refuses_slope(tmp_path) -> None:
    for dem in ("", tmp_path / "missing.tif"):
        with pytest.raises(InputError) as exc:
            run(dem, AREA)
        assert "DEM" in exc.value.message and str(tmp_path) not in exc.value.message
    with pytest.raises(InputError) as exc:
        processes.validate("slope", {"geometry": mapping(AREA)}, ctx_of(""))
    assert "no DEM" in exc.value.message


def test_a_huge_window_is_refused(dems) -> None:
    with pytest.raises(InputError) as exc:
        slope.read_window(str(dems["flat"]), AREA.bounds, max_cells=1000)
    assert "cells" in exc.value.message and "smaller" in exc.value.message


def test_every_process_is_registered_whichever_module_came_first() -> None:
    # this module imported services.analysis.slope (registering `slope`) before anything
    # asked for the registry: the others are there all the same
    assert {"buffer", "overlay", "slope", "statistics-by-division"} <= set(processes.registry())
