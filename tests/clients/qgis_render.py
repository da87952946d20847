"""Render layers with QGIS headless (run by Debian's /usr/bin/python3, not the venv).

Used by tests/clients/test_clients_qgis.py: `python3 qgis_render.py SPEC.json`, where SPEC is
{"out_dir": ..., "size": 512, "layers": [{"name", "provider", "uri", "crs", "extent"}]};
prints one JSON line: {name: {"valid", "error", "png", "colours"}}. QGIS 3.22 (Debian's
python3-qgis) needs QT_QPA_PLATFORM=offscreen, set by the caller.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QEventLoop, QSize
from qgis.PyQt.QtGui import QColor


def render(layer, crs: str, extent: list[float], size: int, out: Path) -> int:
    """Render `layer` alone; returns the number of distinct RGBA values in the image."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    settings.setExtent(QgsRectangle(*extent))
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(settings)
    loop = QEventLoop()
    job.finished.connect(loop.quit)
    job.start()
    loop.exec_()
    image = job.renderedImage()
    image.save(str(out), "PNG")
    colours = set()
    step = max(1, size // 128)
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            colours.add(image.pixel(x, y))
    return len(colours)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out_dir = Path(spec["out_dir"])
    app = QgsApplication([], False)
    app.initQgis()
    result = {}
    for item in spec["layers"]:
        if item["provider"] == "OAPIF":
            layer = QgsVectorLayer(item["uri"], item["name"], "OAPIF")
        else:
            layer = QgsRasterLayer(item["uri"], item["name"], item["provider"])
        entry = {"valid": layer.isValid(), "error": layer.error().summary() if not
                 layer.isValid() else ""}
        if layer.isValid():
            png = out_dir / f"{item['name']}.png"
            entry["colours"] = render(layer, item["crs"], item["extent"], spec.get("size", 512), png)
            entry["png"] = str(png)
        result[item["name"]] = entry
    print(json.dumps(result), flush=True)
    app.exitQgis()


if __name__ == "__main__":
    main()
