"""Identify a point on a WMS layer with QGIS headless (Debian's /usr/bin/python3, not the venv).

Used by tests/tiles/test_featureinfo.py: `python3 qgis_identify.py SPEC.json`, where SPEC is
{"url", "layer", "lon", "lat", "half", "format": "feature"|"text"|"html"}; QGIS's WMS provider
reads the capabilities, picks an INFO_FORMAT for the identify format and parses the answer.
Prints one JSON line: {"valid", "error", "features": [{attribute: value}], "text"}.
Needs QT_QPA_PLATFORM=offscreen (set by the caller).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qgis.core import QgsApplication, QgsPointXY, QgsRaster, QgsRasterLayer, QgsRectangle

FORMATS = {"feature": QgsRaster.IdentifyFormatFeature, "text": QgsRaster.IdentifyFormatText,
           "html": QgsRaster.IdentifyFormatHtml}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    app = QgsApplication([], False)
    app.initQgis()
    uri = (f"crs=EPSG:4490&format=image/png&layers={spec['layer']}&styles=&"
           f"url={spec['url']}")
    layer = QgsRasterLayer(uri, spec["layer"], "wms")
    out: dict = {"valid": layer.isValid(), "error": "", "features": [], "text": ""}
    if not layer.isValid():
        out["error"] = layer.error().summary()
    else:
        lon, lat, half = spec["lon"], spec["lat"], spec["half"]
        extent = QgsRectangle(lon - half, lat - half, lon + half, lat + half)
        result = layer.dataProvider().identify(QgsPointXY(lon, lat), FORMATS[spec["format"]],
                                               extent, 101, 101)
        out["error"] = result.error().summary() if not result.isValid() else ""
        for value in result.results().values():
            if spec["format"] != "feature":
                out["text"] += str(value)
                continue
            for store in value if isinstance(value, list) else [value]:
                for feature in store.features():
                    names = [f.name() for f in feature.fields()]
                    out["features"].append({
                        n: (str(v) if v is not None else None)
                        for n, v in zip(names, feature.attributes())})
                    out["features"][-1]["__geometry"] = feature.geometry().asWkt()[:40]
    print(json.dumps(out, ensure_ascii=False), flush=True)
    app.exitQgis()


if __name__ == "__main__":
    main()
