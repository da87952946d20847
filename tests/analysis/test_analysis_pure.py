"""The analysis engine's pure parts: Gauss-Krüger zones, buffers anywhere in China, input
checks, and the pygeoapi behaviour services/analysis/caller.py works around."""

from __future__ import annotations

import inspect

import pytest
import shapely
from pyproj import CRS
from shapely.geometry import LineString, Point

from services.analysis import compute
from services.analysis.compute import GEOD, InputError, Limits


@pytest.mark.parametrize("lon,epsg", [(73.6, 4534), (75.0, 4534), (76.49, 4534), (76.51, 4535),
                                      (120.2, 4549), (121.49, 4549), (121.51, 4550),
                                      (134.9, 4554), (135.5, 4554)])
def test_gk_zone(lon: float, epsg: int) -> None:
    assert compute.gk_zone(lon) == epsg
    name = CRS.from_epsg(epsg).name  # e.g. "CGCS2000 / 3-degree Gauss-Kruger CM 120E"
    assert name.startswith("CGCS2000 / 3-degree Gauss-Kruger CM ")
    cm = int(name.rsplit("CM ", 1)[1].rstrip("E"))
    assert abs(cm - min(max(lon, 75), 135)) <= 1.5 + 1e-9


@pytest.mark.parametrize("lon,lat", [(120.2130, 30.2460), (121.499, 31.2), (87.6, 43.8),
                                     (126.6, 45.75), (109.5, 18.25), (91.1, 29.65)])
def test_buffer_of_a_point_is_the_distance_on_the_ellipsoid(lon: float, lat: float) -> None:
    for d in (10.0, 1000.0, 25_000.0):
        out, _ = compute.buffer(Point(lon, lat), d)
        dist = [GEOD.inv(lon, lat, x, y)[2] for x, y in shapely.get_coordinates(out)]
        # the scale factor varies across a large buffer: ≤ 6e-5 of it at a zone's edge
        assert max(abs(v - d) for v in dist) <= max(0.01, d * 6e-5), (lon, lat, d)


def test_buffer_of_a_line_covers_it() -> None:
    line = LineString([(120.20, 30.24), (120.23, 30.25)])
    out, epsg = compute.buffer(line, 100)
    assert epsg == 4549 and out.contains(line)


LIM = Limits(max_area_km2=10, max_vertices=1000)


@pytest.mark.parametrize("value,why", [
    (None, "GeoJSON geometry is required"),
    ({"type": "Point", "coordinates": [200, 0]}, "longitude"),
    ({"type": "Point", "coordinates": ["a", 0]}, "not a GeoJSON"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
     "Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[120, 30], [121, 30], [121, 31], [120, 30]]]}, "limit"),
    ({"type": "LineString", "coordinates": [[120, 30], [120.1, 30]] * 600}, "vertices"),
])
def test_bad_geometries_are_refused_with_the_reason(value, why: str) -> None:
    with pytest.raises(InputError) as exc:
        compute.parse_geometry(value, LIM, polygonal=True)
    assert why in exc.value.message and exc.value.http_status_code == 400


def test_test_delay_needs_the_test_hooks() -> None:
    with pytest.raises(InputError):
        compute.test_delay({"test_delay": 1}, LIM)
    assert compute.test_delay({"test_delay": 1}, Limits(test_hooks=True)) == 1


def test_pygeoapi_delete_job_still_answers_without_headers() -> None:
    """services/analysis/caller.py `with_content_type` adds them; drop it when this fails."""
    from pygeoapi.api import processes

    assert "return {}, http_status" in inspect.getsource(processes.delete_job)
