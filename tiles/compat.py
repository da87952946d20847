"""Compatibility overrides: MapProxy 7.0.0's `mapnik` source with the Mapnik 4 wheel.

MapProxy 7.0.0 (upstream mapproxy/mapproxy#538, PR #886) assumes Mapnik 3:
1. it sets `Map.srs = '+init=epsg:XXXX'`; Mapnik 4 wants `'epsg:XXXX'`;
2. it calls `Image.tostring(mime)`; Mapnik 4 has `to_string('png'|'jpeg')`;
3. it sets `map_obj_pid` on `mapnik.Map`, which Mapnik 4 objects refuse.
`install()` replaces the three methods; tests/test_emap_compat.py fails when they stop applying
(e.g. a MapProxy upgrade renames them), so the pins in pyproject.toml can be revisited then.
"""

from __future__ import annotations

import threading
import time

EXPECTED_MAPPROXY = "7.0.0"
EXPECTED_MAPNIK = "4.3.2"
FONT_DIRS = ("/usr/share/fonts/truetype/wqy", "/usr/share/fonts/opentype/noto",
             "/usr/share/fonts/truetype/dejavu")

_installed = False
_lock = threading.Lock()
# pid of the process that built each Map, since Mapnik 4 Maps take no new attributes
_map_pids: dict[int, object] = {}


def register_fonts() -> list[str]:
    """Register the CJK and DejaVu font dirs with Mapnik; returns the face names known."""
    import os

    import mapnik

    for d in FONT_DIRS:
        if os.path.isdir(d):
            mapnik.register_fonts(d)
    return list(mapnik.FontEngine.face_names())


def _format_name(fmt: object) -> str:
    mime = str(fmt).lower()
    if "jpeg" in mime or "jpg" in mime:
        return "jpeg"
    if "png8" in mime or "mode=8bit" in mime:
        return "png8"
    return "png"


def _create_map_obj(self, mapfile, process_id):
    import mapnik

    m = mapnik.Map(0, 0)
    mapnik.load_map(m, str(mapfile))
    _map_pids[id(m)] = process_id
    return m


def _get_map_obj(self, mapfile):
    import multiprocess
    from mapproxy.source import mapnik as src

    if not self.multithreaded:
        return self._create_map_obj(mapfile, None)
    process_id = multiprocess.current_process()._identity
    key = (process_id, mapfile)
    if key in src._map_objs_queues:
        try:
            m = src._map_objs_queues[key].get_nowait()
            if _map_pids.get(id(m)) == process_id:
                return m
        except src.Empty:
            pass
    return self._create_map_obj(mapfile, process_id)


def _render_mapfile(self, mapfile, query):
    import mapnik
    from mapproxy.client.log import log_request
    from mapproxy.image import ImageResult
    from mapproxy.image.opts import ImageOptions

    start_time = time.time()
    m = self.map_obj(mapfile)
    m.resize(query.size[0], query.size[1])
    m.srs = str(query.srs.srs_code.lower())
    m.zoom_to_box(mapnik.Box2d(*query.bbox))
    data = None
    try:
        if self.layers:
            i = 0
            for layer in m.layers[:]:
                if layer.name != "Unknown" and layer.name not in self.layers:
                    del m.layers[i]
                else:
                    i += 1
        img = mapnik.Image(query.size[0], query.size[1])
        if self.scale_factor:
            mapnik.render(m, img, self.scale_factor)
        else:
            mapnik.render(m, img)
        data = img.to_string(_format_name(query.format))
    finally:
        log_request(f"{mapfile}:{query.bbox}:{query.srs.srs_code}:{query.size}",
                    status="200" if data else "500", size=len(data) if data else None,
                    method="API", duration=time.time() - start_time)
    from io import BytesIO

    return ImageResult(BytesIO(data), size=query.size,
                       image_opts=ImageOptions(format=query.format))


OVERRIDES = {"_create_map_obj": _create_map_obj, "_get_map_obj": _get_map_obj,
             "_render_mapfile": _render_mapfile}


def install() -> None:
    """Patch `mapproxy.source.mapnik.MapnikSource` (idempotent) and register fonts."""
    global _installed
    with _lock:
        if _installed:
            return
        from mapproxy.source.mapnik import MapnikSource

        for name, fn in OVERRIDES.items():
            if not hasattr(MapnikSource, name):
                raise RuntimeError(f"MapnikSource.{name} is gone: revisit tiles/compat.py")
            setattr(MapnikSource, name, fn)
        register_fonts()
        _installed = True
