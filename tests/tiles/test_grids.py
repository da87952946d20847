"""The e-map grids as morecantile TileMatrixSets (tiles/grids.py): Tianditu's numbers for `c`,
OGC's WebMercatorQuad for `w`, and the TileMatrixSet JSON of `c`."""

from __future__ import annotations

import morecantile
import pytest

from tiles.grids import GRIDS, MAX_LEVEL, OGC_TMS, scale_denominator, tile_at, tms_json


def test_c_is_tiandtu_numbering() -> None:
    c = GRIDS["c"]
    assert (c.res(0), c.matrix_size(0)) == (1.40625, (1, 1))
    assert (c.res(1), c.matrix_size(1)) == (0.703125, (2, 1))
    assert c.matrix_size(18) == (2**18, 2**17)
    assert c.mapproxy()["res"] == [1.40625 / 2**z for z in range(MAX_LEVEL + 1)]
    # West Lake, Hangzhou at Tianditu level 18 (vec_c TILECOL/TILEROW)
    assert tile_at("c", 120.2130, 30.2460, 18) == (218608, 43511)
    assert tile_at("c", -180, 90, 5) == (0, 0)
    assert tile_at("c", 179.999999, -89.999999, 5) == (2**5 - 1, 2**4 - 1)


def test_w_is_web_mercator_quad() -> None:
    w, quad = GRIDS["w"], morecantile.tms.get("WebMercatorQuad")
    for z in range(MAX_LEVEL + 1):
        assert w.res(z) == quad.matrix(z).cellSize
        assert w.matrix_size(z) == (2**z, 2**z)
    assert tile_at("w", 120.1551, 30.2741, 9) == (426, 210)
    assert scale_denominator(0) == pytest.approx(559082264.0287178)
    assert GRIDS["c"].res_m(7) == pytest.approx(GRIDS["w"].res_m(7))


def test_c_tile_matrix_set_json() -> None:
    doc = tms_json("c")
    assert doc["id"] == "c" and doc["crs"] == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert doc["orderedAxes"] == ["Lat", "Lon"]
    levels = doc["tileMatrices"]
    assert [m["id"] for m in levels] == [str(z) for z in range(MAX_LEVEL + 1)]
    assert levels[1] | {} == levels[1] and levels[1]["pointOfOrigin"] == [90.0, -180.0]
    assert (levels[1]["matrixWidth"], levels[1]["matrixHeight"], levels[1]["cellSize"]) == (2, 1, 0.703125)
    assert morecantile.TileMatrixSet.model_validate(doc).matrix(5).matrixHeight == 16


def test_vector_tile_schemes_reach_level_24() -> None:
    crs84 = OGC_TMS["WorldCRS84Quad"]
    assert (crs84.matrix(0).matrixWidth, crs84.matrix(0).matrixHeight) == (2, 1)
    assert crs84.matrix(24).cellSize == 180 / 2**24 / 256
    assert OGC_TMS["WebMercatorQuad"].maxzoom == 24
