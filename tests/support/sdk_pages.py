"""Helpers of the SDK's browser tests (tests/sdk/): the render gate, snapshots, pixels."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

IDLE = "#map[data-idle='true']"


def open_map(b: Any, url: str, size: tuple[int, int] = (640, 480)) -> Any:
    """A page at `url` once its map has rendered (the SDK's render gate)."""
    page = b.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=90_000)
    return page


def rerender(page: Any, action: str) -> None:
    """Runs `action` (JS, may await) and waits for the map's next rendercomplete."""
    page.evaluate("async () => { const done = new Promise((r) => window.map.once("
                  f"'rendercomplete', r)); {action}; await done; }}")
    page.wait_for_selector(IDLE, timeout=90_000)


def snapshot(page: Any, inner: float = 1.0) -> Image.Image:
    """What the map element shows, as RGB; with `inner` < 1 only that central share of it (away
    from the controls and the attribution, which name the node)."""
    img = Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")
    if inner < 1:
        w, h = img.size
        dx, dy = round(w * (1 - inner) / 2), round(h * (1 - inner) / 2)
        img = img.crop((dx, dy, w - dx, h - dy))
    return img


def pixel_of(page: Any, lon_lat: tuple[float, float]) -> tuple[int, int]:
    """The pixel of the map element at a lon/lat."""
    x, y = page.evaluate("([lon, lat]) => map.getLibMap().getPixelFromCoordinate("
                         "Geoplat.ol.fromLonLat([lon, lat], map.projection))", list(lon_lat))
    return round(x), round(y)


def colours(img: Image.Image) -> int:
    return len(img.getcolors(maxcolors=1 << 20) or [])


def differing(a: Image.Image, b: Image.Image, tolerance: int = 24) -> float:
    """Share of pixels whose colours differ by more than `tolerance` in some channel."""
    assert a.size == b.size
    delta = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max(axis=2)
    return float((delta > tolerance).mean())
