"""Opening user files with GDAL: only the driver the format implies, no network, no SQL of theirs.

GDAL picks a driver from a file's bytes, not its name: a `.geojson` holding an OGR VRT document
is opened by the VRT driver, which reads any path or URL it names (`CSV:/etc/...`,
`/vsicurl/http://...`). So every upload is

1. checked for the signature of its format before GDAL sees it (`sniff`);
2. opened with that driver only: pyogrio through GDAL's `GeoJSON:` prefix where the driver has
   one, rasterio with `driver=` (GDALOpenEx's allowed drivers);
3. checked for the driver GDAL reports having used (`expect_driver`);
4. read inside a fence of GDAL options (`vector_fence`, `raster_env`): no `/vsicurl/` or other
   network file system, no OGR SQL functions from a GeoPackage's views or triggers, no SQLite
   extensions or external access from SQL, no directory listing for sibling files.

`GDAL_SKIP` is not part of the fence: GDAL reads it only when it registers its drivers (once
per process), so setting it later skips nothing (measured with pyogrio's GDAL 3.12: a VRT still
opened with `GDAL_SKIP=OGR_VRT` set). The node's own VRTs (rasterio's `WarpedVRT` when a GeoTIFF
is reprojected) are built in memory by us and are unaffected.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from layers.errors import PublishError

VECTOR_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG",
                  ".shp": "ESRI Shapefile"}
RASTER_DRIVERS = {".tif": "GTiff", ".tiff": "GTiff"}

# Options that make GDAL reach no URL and run no SQL of the file's: curl-based file systems
# see no file at all (no name ends with the one allowed extension), GeoPackage views/triggers
# may not call OGR's SQL functions (ogr_geocode, ...), SQLite loads no extension and SQL opens
# no other dataset.
_COMMON = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".geoplat-no-network",
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "/geoplat-no-network",
    "GDAL_HTTP_MAX_RETRY": "0",
    "ALLOW_OGR_SQL_FUNCTIONS_FROM_TRIGGER_AND_VIEW": "NO",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "OGR_SQLITE_LOAD_EXTENSIONS": "",
}
# Vectors: a shapefile's .dbf/.shx/.prj/.cpg are found by name (no listing needed).
VECTOR_CONFIG = {**_COMMON, "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}
# Rasters: no sidecar at all (.ovr, .aux.xml, .msk from an archive could be a VRT or lie).
RASTER_CONFIG = {**_COMMON, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
# GeoPackage open options: never written to (no -wal/-shm, triggers cannot fire), no locks.
GPKG_OPEN_OPTIONS = {"IMMUTABLE": "YES", "NOLOCK": "YES"}

_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF, both byte orders
_GPKG_IDS = (b"GPKG", b"GP10", b"GP11")  # SQLite application_id of GeoPackage 1.0-1.4
_WHITESPACE = b" \t\r\n"


def vector_driver(path: Path) -> str:
    """The one GDAL vector driver an upload's suffix allows."""
    return VECTOR_DRIVERS[path.suffix.lower()]


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def sniff(path: Path, driver: str, what: str) -> None:
    """Refuse a file whose first bytes are not those of `driver`'s format (before GDAL opens it)."""
    head = _head(path, 1 << 16)
    if driver == "GeoJSON":
        text = head.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE)
        if not text.startswith(b"{"):
            raise PublishError(f"{what}: the content is not GeoJSON (a GeoJSON file starts with "
                               f"'{{', this one with {text[:20]!r}); refused")
    elif driver == "GPKG":
        if not head.startswith(b"SQLite format 3\x00"):
            raise PublishError(f"{what}: not a GeoPackage (no SQLite header); refused")
        if head[68:72] not in _GPKG_IDS:
            raise PublishError(f"{what}: an SQLite database, but not a GeoPackage (its "
                               "application_id is not GPKG); refused")
    elif driver == "ESRI Shapefile":
        if not head.startswith(b"\x00\x00\x27\x0a"):
            raise PublishError(f"{what}: the .shp is not a Shapefile (no shapefile header); "
                               "refused")
    elif driver == "GTiff":
        if head[:4] not in _TIFF:
            raise PublishError(f"{what}: the content is not a GeoTIFF (no TIFF header); refused")
    else:  # pragma: no cover - a programming error: every driver above has its signature
        raise AssertionError(driver)


def gdal_path(path: Path, driver: str) -> str:
    """The name to hand GDAL: with the driver's prefix where it has one (it then tries no other)."""
    return f"GeoJSON:{path}" if driver == "GeoJSON" else str(path)


def open_options(driver: str) -> dict[str, str]:
    return dict(GPKG_OPEN_OPTIONS) if driver == "GPKG" else {}


def expect_driver(reported: Any, driver: str, what: str) -> None:
    """Refuse a file GDAL read with another driver than the one its format implies."""
    if str(reported or "") != driver:
        raise PublishError(f"{what}: GDAL read the file as {reported or 'unknown'}, not {driver}; "
                           "refused")


def refuse_gpkg_view(path: Path, layer: str, what: str) -> None:
    """A GeoPackage layer must be a plain table: a view runs the file's own SQL when it is read,
    a virtual table a module of its choosing (opened read-only by SQLite itself, not GDAL)."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        raise PublishError(f"{what}: not a readable GeoPackage") from None
    try:
        row = conn.execute("SELECT type, sql FROM sqlite_master WHERE lower(name) = lower(?)",
                           (layer,)).fetchone()
    except sqlite3.Error:
        raise PublishError(f"{what}: not a readable GeoPackage") from None
    finally:
        conn.close()
    if row is None:
        return  # GDAL reports the missing table
    kind = row[0] if row[0] != "table" else (
        "virtual table" if str(row[1] or "").lstrip().upper().startswith("CREATE VIRTUAL") else "")
    if kind:
        raise PublishError(f"{what}: layer {layer!r} is an SQL {kind}, not a table; a "
                           "GeoPackage view is not published (it would run the file's SQL)")


_lock = threading.Lock()
_depth = 0
_saved: dict[str, Any] = {}


@contextmanager
def vector_fence() -> Iterator[None]:
    """pyogrio reads inside: VECTOR_CONFIG set, the previous values restored after the last one.

    pyogrio's GDAL options are process-wide: concurrent reads share one fence (counted), so a
    read that ends does not lift it under another still running.
    """
    import pyogrio

    global _depth
    with _lock:
        if _depth == 0:
            _saved.clear()
            _saved.update({k: pyogrio.get_gdal_config_option(k) for k in VECTOR_CONFIG})
            pyogrio.set_gdal_config_options(VECTOR_CONFIG)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                pyogrio.set_gdal_config_options(dict(_saved))


def raster_env() -> Any:
    """A rasterio environment for reading an upload (restored when it exits)."""
    import rasterio

    return rasterio.Env(**RASTER_CONFIG)
