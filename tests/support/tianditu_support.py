"""Helpers of the Tianditu layer's browser tests (tests/sdk/test_tianditu_*.py): a page of
the node with the requests it made and the errors it reported, the render gate through T.Map,
pixel checks, the sample data the answers are compared with."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyogrio
from PIL import Image
from pyproj import Geod

ROOT = Path(__file__).resolve().parents[2]
GEOD = Geod(ellps="GRS80")
IDLE = "#mapDiv[data-idle='true']"

# pixels of the map's canvases: how many are opaque and how many colours they hold
CANVAS_STATS = """() => {
  const out = {opaque: 0, total: 0, colours: 0};
  const seen = new Set();
  for (const c of document.querySelectorAll('#mapDiv canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4 * 7) {
      out.total++;
      if (d[i + 3] > 0) { out.opaque++; seen.add((d[i] >> 3) + ',' + (d[i+1] >> 3) + ',' + (d[i+2] >> 3)); }
    }
  }
  out.colours = seen.size;
  return out;
}"""

SAMPLE = """() => {
  const c = document.querySelector('#mapDiv canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let i = 0; i < d.length; i += 4 * 997) out.push(d[i], d[i + 1], d[i + 2]);
  return out;
}"""


def service_halls() -> Any:
    poi = pyogrio.read_dataframe(ROOT / "data-samples" / "hangzhou.gpkg", layer="poi")
    return poi[poi["category"] == "service_hall"]


def door_plates() -> Any:
    return pyogrio.read_dataframe(ROOT / "data-samples" / "hangzhou.gpkg", layer="addresses")


class Page:
    """A page of the node with what it asked for and what it complained about."""

    def __init__(self, chromium: Any, url: str):
        self.page = chromium.new_page(viewport={"width": 1024, "height": 800})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        # the browser's own /favicon.ico is not the page's doing
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status} {r.url}")
                     if r.status >= 400 and urlsplit(r.url).path != "/favicon.ico" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" and not m.text.startswith("Failed to load resource")
                     else None)
        self.page.goto(url)
        self.page.wait_for_selector(IDLE, timeout=60000)

    def click_and_render(self, selector: str) -> None:
        """Clicks and waits for the map's next rendercomplete (polling with wait_for_function
        would need `eval`, which the node's CSP forbids)."""
        done = self.page.evaluate("""(sel) => new Promise((resolve) => {
          map.getLibMap().once('rendercomplete', () => resolve(true));
          setTimeout(() => resolve(false), 60000);  // a bound, not a wait: fails the test
          document.querySelector(sel).click();
        })""", selector)
        assert done
        self.page.wait_for_selector(IDLE, timeout=60000)

    def close(self) -> None:
        self.page.close()


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def shown(page: Any) -> dict[str, int]:
    """CANVAS_STATS from a screenshot of the map (tiles of another origin taint the canvas)."""
    img = np.asarray(Image.open(io.BytesIO(page.locator("#mapDiv").screenshot())).convert("RGB"))
    px = img.reshape(-1, 3)[::7]
    return {"total": len(px), "opaque": len(px),
            "colours": len({tuple(v) for v in (px >> 3).tolist()})}


def not_blank(stats: dict[str, int]) -> None:
    assert stats["total"] > 10000, stats
    assert stats["opaque"] / stats["total"] > 0.95, stats
    assert stats["colours"] > 20, stats
