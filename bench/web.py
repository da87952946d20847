"""JS SDK benchmark (issue 14; not a test): bundle sizes and time to the first rendered map.

Run from the repository root:  .venv/bin/python bench/web.py [--config FEDERATION.yml] [--runs 5]
Uses the running federation of the config (default config/federation.yml; `geoplat up --detach`
if it is not running, stopped again afterwards). Measures:
  - gzip -9 size of dist/geoplat.js and dist/tianditu.js (goal: SDK <= 200 KB);
  - navigation -> first rendercomplete (`data-idle="true"` on the map element, recorded in the
    page by a MutationObserver against performance.now(), i.e. from navigation start) of a
    1280x800 map at level 12 over Hangzhou in headless chromium, each run in a fresh browser
    context (empty HTTP cache): `cold` after the main node's tile cache for levels 11-13 there
    is cleaned, `warm` with the tiles cached by the previous run (goal warm <= 1.0 s);
  - the same view through the Tianditu layer (`T.Map` with projection EPSG:4326 from
    `/api?v=4.0&tk=`, when dist/tianditu.js is built; goal <= 1.1x the SDK's warm time).
Both pages are the same bare page (a 1280x800 map, no controls), answered by Playwright at a URL
of the main node's origin (so the demo browser key is used as on the node's own pages); their
scripts, capabilities and tiles come from the node.
  - the portal (issue 16) of the information base (`/` of the `base` tier node) at the same
    view: navigation -> first rendercomplete cold (that node's tile cache cleaned there) and
    warm (goal warm <= 1.5 s), the bytes of its first load other than tiles (goal <= 1 MB),
    and identify: a click on a sample service hall with `poi` shown -> the popup listing it,
    p95 over 20 clicks (goal <= 300 ms), measured from OpenLayers' single click (which waits
    250 ms for a second click) and from the mouse click.
Prints a table and appends it to bench/results/web.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nodes import settings as settings_mod
from nodes import supervisor
from nodes.pygeoapi_config import node_dir
from services.provision import demo_file
from services.web.sdk_routes import DIST
from tiles.seed import clean

VIEW = {"zoom": 12, "lon": 120.155, "lat": 30.25}
BBOX = (119.9, 30.0, 120.4, 30.5)
SIZE = {"width": 1280, "height": 800}
RECORD = """
window.__firstIdle = null;
new MutationObserver((list, obs) => {
  for (const m of list) {
    if (m.target.dataset && m.target.dataset.idle === 'true' && window.__firstIdle === null) {
      window.__firstIdle = performance.now(); obs.disconnect();
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-idle']});
"""
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
STYLE = "<style>html,body{margin:0}#map{width:1280px;height:800px}</style>"
SDK_PAGE = """<!doctype html><html><head><meta charset="utf-8">{style}</head><body>
<div id="map"></div><script src="/sdk/geoplat.js"></script><script>
window.map = new Geoplat.Map('map', {{key: {key}, crs: 'EPSG:4490', controls: false,
  center: [{lon}, {lat}], zoom: {zoom}}});
</script></body></html>"""
TIANDITU_PAGE = """<!doctype html><html><head><meta charset="utf-8">{style}
<script src="/api?v=4.0&tk={key_raw}"></script></head><body><div id="map"></div><script>
window.tmap = new T.Map('map', {{projection: 'EPSG:4326'}});
window.tmap.centerAndZoom(new T.LngLat({lon}, {lat}), {zoom});
</script></body></html>"""


def gz(name: str) -> int | None:
    path = DIST / name
    return len(gzip.compress(path.read_bytes(), 9)) if path.exists() else None


def first_render(browser, url: str, html: str) -> float:
    """Seconds from navigation start to the first rendercomplete of `html` served at `url`, in
    a fresh context (empty HTTP cache)."""
    context = browser.new_context(viewport=SIZE)
    try:
        page = context.new_page()
        page.route(url, lambda route: route.fulfill(status=200, body=html,
                                                    content_type="text/html; charset=utf-8"))
        page.add_init_script(RECORD)
        page.goto(url)
        page.wait_for_function("() => window.__firstIdle !== null", timeout=120_000)
        return page.evaluate("() => window.__firstIdle") / 1000
    finally:
        context.close()


HALL = (120.2130, 30.2460)  # 杭州市民中心政务服务大厅 (sample POI)
TIMED_IDENTIFY = """() => { const at = portal.identify.at.bind(portal.identify); window.__identify = [];
portal.identify.at = async (e) => { const t0 = performance.now(); const r = await at(e);
window.__identify.push(performance.now() - t0); return r; }; }"""


def portal_first_render(browser, url: str) -> tuple[float, int]:
    """Seconds from navigation to the portal's first rendercomplete in a fresh context, and
    the bytes of what it loaded other than tiles (WMTS images, vector tiles)."""
    context = browser.new_context(viewport=SIZE)
    sizes: list[tuple[str, int]] = []
    try:
        page = context.new_page()
        page.on("requestfinished", lambda r: sizes.append((r.url, sum(r.sizes()[k] for k in (
            "responseBodySize", "responseHeadersSize")))))
        page.add_init_script(RECORD)
        page.goto(url)
        page.wait_for_function("() => window.__firstIdle !== null", timeout=120_000)
        page.wait_for_selector("body[data-ready='true']", timeout=120_000)
        seconds = page.evaluate("() => window.__firstIdle") / 1000
        return seconds, sum(n for u, n in sizes if "/wmts" not in u and "f=mvt" not in u)
    finally:
        context.close()


def portal_identify(browser, base: str, clicks: int = 20) -> tuple[list[float], list[float]]:
    """Milliseconds from OpenLayers' single click, and from the mouse click, to the popup."""
    context = browser.new_context(viewport=SIZE)
    try:
        page = context.new_page()
        page.goto(f"{base}/#c={HALL[0]},{HALL[1]}&z=16&l=poi:1")
        page.wait_for_selector("#map[data-idle='true']", timeout=120_000)
        page.wait_for_function("() => { const e = portal.layers.entries.find((x) => x.id === "
                               "'poi'); return e && e.drawn && e.drawn.source.getFeatures()"
                               ".length > 0; }", timeout=120_000)
        page.evaluate(TIMED_IDENTIFY)
        x, y = page.evaluate("([lon, lat]) => map.getLibMap().getPixelFromCoordinate("
                             "Geoplat.ol.fromLonLat([lon, lat], map.projection))", list(HALL))
        outer = []
        for _ in range(clicks):
            page.evaluate("() => document.getElementById('identify')?.remove()")
            t0 = time.perf_counter()
            page.locator("#map").click(position={"x": x, "y": y})
            page.wait_for_selector("#identify section[data-layer='poi']", timeout=60_000)
            outer.append((time.perf_counter() - t0) * 1000)
        return page.evaluate("() => window.__identify"), outer
    finally:
        context.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", help="federation.yml (default: the project's)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not (DIST / "geoplat.js").exists():
        print("the SDK is not built: make sdk", file=sys.stderr)
        return 1
    settings = settings_mod.load(args.config) if args.config else settings_mod.load()
    main_node = next(n for n in settings.nodes if n.tier == "main")
    started = False
    if main_node.id not in supervisor.running_nodes(settings):
        print("starting the federation (geoplat up --detach)")
        env = {**os.environ, **({"GEOPLAT_CONFIG": args.config} if args.config else {})}
        subprocess.run([str(ROOT / ".venv" / "bin" / "geoplat"), "up", "--detach"], check=True,
                       env=env)
        started = True
    base = main_node.base_url
    key = json.loads(demo_file(settings).read_text(encoding="utf-8"))["browser_key"]
    values = {**VIEW, "style": STYLE, "key": json.dumps(key), "key_raw": key}
    sdk = (f"{base}/sdk/bench-sdk.html", SDK_PAGE.format(**values))
    tdt = (f"{base}/sdk/bench-tianditu.html", TIANDITU_PAGE.format(**values)) \
        if (DIST / "tianditu.js").exists() else None
    httpx.get(f"{base}/sdk/geoplat.js").raise_for_status()
    ndir = node_dir(settings, main_node)
    from playwright.sync_api import sync_playwright

    rows: dict[str, list[float]] = {"sdk cold": [], "sdk warm": []}
    if tdt:
        rows["tianditu warm"] = []
    base_node = next(n for n in settings.nodes if n.tier == "base")
    rows["portal cold"], rows["portal warm"] = [], []
    portal_bytes: list[int] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=ARGS)
            first_render(browser, *sdk)  # the browser's own start-up out of the figures
            for _ in range(args.runs):
                clean(ndir, levels=(11, 13), bbox=BBOX)
                rows["sdk cold"].append(first_render(browser, *sdk))
                rows["sdk warm"].append(first_render(browser, *sdk))
                if tdt:
                    rows["tianditu warm"].append(first_render(browser, *tdt))
            portal_url = f"{base_node.base_url}/#c={VIEW['lon']},{VIEW['lat']}&z={VIEW['zoom']}"
            for _ in range(args.runs):
                clean(node_dir(settings, base_node), levels=(11, 13), bbox=BBOX)
                seconds, loaded = portal_first_render(browser, portal_url)
                rows["portal cold"].append(seconds)
                portal_bytes.append(loaded)
                rows["portal warm"].append(portal_first_render(browser, portal_url)[0])
            inner, outer = portal_identify(browser, base_node.base_url)
            browser.close()
    finally:
        if started:
            subprocess.run([str(ROOT / ".venv" / "bin" / "geoplat"), "down"], check=False)
    sdk_gz, tdt_gz = gz("geoplat.js"), gz("tianditu.js")
    lines = [(f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
             f"{args.runs} runs each (median, min-max)"), "",
             "| what | value | goal |", "|---|---|---|",
             f"| geoplat.js gzip -9 | {sdk_gz / 1024:.1f} KB | <= 200 KB |",
             (f"| tianditu.js gzip -9 | "
             f"{f'{tdt_gz / 1024:.1f} KB' if tdt_gz else 'not built'} | |")]
    goals = {"sdk warm": "<= 1.0 s", "portal warm": "<= 1.5 s"}
    for name, values in rows.items():
        lines.append(f"| {name}: navigation -> first rendercomplete, 1280x800, level 12 | "
                     f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f}) | "
                     f"{goals.get(name, '')} |")
    lines += [(f"| portal first load without tiles ({base_node.id}) | "
              f"{statistics.median(portal_bytes) / 1024:.0f} KB | <= 1 MB |"),
              (f"| portal identify, single click -> popup, p95 of {len(inner)} | "
              f"{p95(inner):.0f} ms (median {statistics.median(inner):.0f}) | <= 300 ms |"),
              (f"| portal identify, mouse click -> popup (+ 250 ms single-click wait), p95 | "
              f"{p95(outer):.0f} ms (median {statistics.median(outer):.0f}) | |")]
    if tdt:
        ratio = statistics.median(rows["tianditu warm"]) / statistics.median(rows["sdk warm"])
        lines.append(f"| tianditu warm / sdk warm | {ratio:.2f} | <= 1.1 |")
    else:
        lines.append("| tianditu layer | dist/tianditu.js not built | |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / "web.md"
    if not out.exists():
        out.write_text("# JS SDK: bundle size and first render (bench/web.py)\n\n")
    with out.open("a", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
