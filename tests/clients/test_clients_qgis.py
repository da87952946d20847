"""Issue 11, item 5: GIS clients given only a URL with `tk=` draw the map (QGIS, GDAL, pyogrio).

QGIS 3.22 is Debian's `python3-qgis` (the Makefile installs it), driven headless by
./qgis_render.py under /usr/bin/python3; GDAL's WMTS driver is Debian's `gdal_translate`;
pyogrio is the venv's (its bundled GDAL ignores GDAL_HTTP_HEADERS, so the key goes in the URL).
Runs on the `keyed` federation (conftest.py: keys required, the default).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from pyproj import Transformer

HERE = Path(__file__).resolve().parent
QGIS_PYTHON = "/usr/bin/python3"  # Debian's, where python3-qgis lives (not the venv)
HANGZHOU = [120.10, 30.20, 120.30, 30.35]  # lon/lat, over the city's synthetic streets


def _system_env() -> dict[str, str]:
    """Debian's own environment for its QGIS and GDAL: none of the venv's PROJ/GDAL settings
    (the venv's wheels point PROJ_DATA and friends at their own, newer proj.db) and no
    GDAL_HTTP_HEADERS, so the key travels only in the URL."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}


def _mercator(box: list[float]) -> list[float]:
    t = Transformer.from_crs("EPSG:4490", "EPSG:3857", always_xy=True)
    x0, y0 = t.transform(box[0], box[1])
    x1, y1 = t.transform(box[2], box[3])
    return [x0, y0, x1, y1]


def _wms_uri(url: str, layer: str, grid: str, fmt: str) -> str:
    """QGIS's WMTS data source URI (provider `wms`); the URL is percent-encoded as QGIS does."""
    crs = "EPSG:4490" if grid == "c" else "EPSG:3857"
    return (f"contextualWMSLegend=0&crs={crs}&dpiMode=7&format={fmt}&layers={layer}"
            f"&styles=default&tileMatrixSet={grid}&url={quote(url, safe='')}")


def _distinct(png: str) -> int:
    pixels = np.asarray(Image.open(png).convert("RGBA")).reshape(-1, 4)
    return len(np.unique(pixels, axis=0))


@pytest.fixture(scope="module")
def qgis_result(keyed, tmp_path_factory) -> dict:
    hz, key = keyed["hz"], keyed["key"]
    out = tmp_path_factory.mktemp("qgis")
    layers = [
        {"name": "oapif_poi", "provider": "OAPIF", "crs": "EPSG:4490", "extent": HANGZHOU,
         "uri": f"url='{hz}/ogc?tk={key}' typename='poi'"},
        {"name": "oapif_roads", "provider": "OAPIF", "crs": "EPSG:4490", "extent": HANGZHOU,
         "uri": f"url='{hz}/ogc?tk={key}' typename='roads'"},
        {"name": "wmts_c", "provider": "wms", "crs": "EPSG:4490", "extent": HANGZHOU,
         "uri": _wms_uri(f"{hz}/wmts/1.0.0/WMTSCapabilities.xml?tk={key}", "vec", "c",
                         "image/png")},
        {"name": "wmts_w", "provider": "wms", "crs": "EPSG:3857", "extent": _mercator(HANGZHOU),
         "uri": _wms_uri(f"{hz}/wmts/1.0.0/WMTSCapabilities.xml?tk={key}", "vec", "w",
                         "image/png")},
        # as Tianditu's tutorials give it: the route URL with tk, format `tiles`
        {"name": "tianditu_vec_c", "provider": "wms", "crs": "EPSG:4490", "extent": HANGZHOU,
         "uri": _wms_uri(f"{hz}/vec_c/wmts?tk={key}", "vec", "c", "tiles")},
        {"name": "tianditu_img_w", "provider": "wms", "crs": "EPSG:3857",
         "extent": _mercator(HANGZHOU),
         "uri": _wms_uri(f"{hz}/img_w/wmts?tk={key}", "img", "w", "tiles")},
    ]
    spec = out / "spec.json"
    spec.write_text(json.dumps({"out_dir": str(out), "size": 256, "layers": layers}),
                    encoding="utf-8")
    env = {**_system_env(), "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(out)}
    proc = subprocess.run([QGIS_PYTHON, str(HERE / "qgis_render.py"), str(spec)], check=False, env=env,
                          capture_output=True, text=True, timeout=600, cwd=out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["oapif_poi", "oapif_roads", "wmts_c", "wmts_w",
                                  "tianditu_vec_c", "tianditu_img_w"])
def test_qgis_renders_hangzhou_with_the_key_only_in_the_url(qgis_result, name: str) -> None:
    """Before: the WMTS layers drew blank (their tiles got 401), the Tianditu URL was refused
    (`SERVICE must be WMTS` on QGIS's first request, SERVICE=WMS&REQUEST=GetCapabilities)."""
    entry = qgis_result[name]
    assert entry["valid"], entry["error"]
    assert entry["colours"] > 5 and _distinct(entry["png"]) > 5, entry


@pytest.mark.parametrize("grid", ["c", "w"])
def test_gdal_wmts_driver_with_the_key_only_in_the_url(keyed, tmp_path, grid: str) -> None:
    hz, key = keyed["hz"], keyed["key"]
    box = HANGZHOU if grid == "c" else _mercator(HANGZHOU)
    out = tmp_path / f"gdal_{grid}.png"
    env = _system_env()
    proc = subprocess.run(
        ["/usr/bin/gdal_translate", "-q", "-of", "PNG", "-outsize", "256", "256",
         "-projwin", str(box[0]), str(box[3]), str(box[2]), str(box[1]),
         f"WMTS:{hz}/wmts/1.0.0/WMTSCapabilities.xml?tk={key},layer=vec,tilematrixset={grid}",
         str(out)], check=False, env=env, capture_output=True, text=True, timeout=300,
        cwd=tmp_path)  # GDAL's WMTS tile cache (./gdalwmscache) stays in the test's own dir
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert _distinct(str(out)) > 5


def test_pyogrio_reads_features_with_the_key_in_the_url(keyed) -> None:
    """The README's advice for pyogrio (its GDAL ignores GDAL_HTTP_HEADERS): tk in the URL."""
    import pyogrio

    frame = pyogrio.read_dataframe(f"OAPIF:{keyed['hz']}/ogc?tk={keyed['key']}", layer="poi",
                                   max_features=20)
    assert len(frame) == 20 and frame.geometry.notna().all()
