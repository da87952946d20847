"""MapProxy 7 + Mapnik 4 compatibility overrides (tiles/compat.py) keep applying.

If a MapProxy/Mapnik upgrade renames the patched methods or fixes them upstream, these tests
fail and tell us to revisit the overrides and the version pins.
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import mapnik
import numpy as np
import pytest
from PIL import Image

from tiles import compat

MAPFILE = """<?xml version="1.0" encoding="utf-8"?>
<Map srs="epsg:4490" background-color="#cfe0f0">
<Style name="s"><Rule><PolygonSymbolizer fill="#ff0000"/></Rule></Style>
<Layer name="box" srs="epsg:4490"><StyleName>s</StyleName>
<Datasource><Parameter name="type">geojson</Parameter>
<Parameter name="inline">{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
"geometry":{"type":"Polygon","coordinates":[[[119,29],[121,29],[121,31],[119,31],[119,29]]]}}]}
</Parameter></Datasource></Layer></Map>
"""


def test_pinned_versions_are_the_ones_patched() -> None:
    from importlib.metadata import version

    assert version("MapProxy") == compat.EXPECTED_MAPPROXY
    assert version("mapnik") == compat.EXPECTED_MAPNIK


def test_upstream_still_needs_the_overrides() -> None:
    """The original MapProxy code still has the three Mapnik 3 assumptions."""
    from mapproxy.source import mapnik as src

    original = inspect.getsource(src)
    assert "'+init=%s'" in original
    assert "img.tostring(" in original
    assert "m.map_obj_pid = process_id" in original
    with pytest.raises(AttributeError):  # Mapnik 4 maps refuse new attributes
        mapnik.Map(1, 1).map_obj_pid = 1
    assert not hasattr(mapnik.Image(1, 1), "tostring")


def test_overrides_apply_and_render(tmp_path: Path) -> None:
    from mapproxy.image.opts import ImageOptions
    from mapproxy.query import MapQuery
    from mapproxy.source.mapnik import MapnikSource
    from mapproxy.srs import SRS

    compat.install()
    for name, fn in compat.OVERRIDES.items():
        assert getattr(MapnikSource, name) is fn, f"override {name} not applied"
    mapfile = tmp_path / "box.xml"
    mapfile.write_text(MAPFILE, encoding="utf-8")
    source = MapnikSource(str(mapfile), image_opts=ImageOptions(format="image/png"),
                          multithreaded=True)
    for srs, bbox in (("EPSG:4490", (118, 28, 122, 32)),
                      ("EPSG:3857", (13135699, 3253461, 13580977, 3763310))):
        for fmt in ("image/png", "image/jpeg"):
            result = source.get_map(MapQuery(bbox, (64, 64), SRS(srs), fmt))
            img = np.asarray(Image.open(io.BytesIO(result.as_buffer().read())).convert("RGB"))
            assert img.shape == (64, 64, 3)
            r, g, b = (int(v) for v in img[32, 32])
            assert r > 200 and g < 60 and b < 60, (srs, fmt, img[32, 32])  # the red box
            r, g, b = (int(v) for v in img[1, 1])
            assert b > 200 and r < 230, (srs, fmt, img[1, 1])  # background outside it


def test_cjk_fonts_are_registered() -> None:
    faces = compat.register_fonts()
    assert any("WenQuanYi" in f or "CJK" in f for f in faces), faces
