"""Reading what users upload: zipped Shapefile, GeoPackage, GeoJSON, CSV, GeoTIFF.

Everything here is about turning one file into checked data (attributes + geometries in
EPSG:4490, or a Cloud-Optimised GeoTIFF in EPSG:4490) with a report of what was repaired or
dropped, or raising `PublishError` with a message that names the problem. Archives are unpacked
by us, never by GDAL, after checking every entry (paths, symlinks, sizes, ratio). GDAL opens
each file only with the driver its format implies, inside a fence of options (layers/fence.py).

This module reads one vector dataset (`read_vector`); the other steps live beside it and are
named here for the publishing code: archives (layers/archives.py), checks of the data read
(layers/vector_checks.py), large files batch by batch (layers/batched.py) and GeoTIFFs
(layers/cog.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from layers import fence
from layers.archives import (
    RASTER_SUFFIXES,
    VECTOR_SUFFIXES,
    find_in_archive,
    remove_tree,
    safe_unzip,
    unpack,
)
from layers.batched import NeedsMulti, read_batched
from layers.cog import RasterData, rasterio_ready, write_cog
from layers.errors import PublishError
from layers.vector_checks import VectorData, clean, parse_crs, read_error, safe_names

__all__ = [
    "BATCH_ROWS", "RASTER_SUFFIXES", "VECTOR_SUFFIXES", "NeedsMulti", "PublishError",
    "RasterData", "VectorData", "detect_dbf_encoding", "find_in_archive", "gpkg_layers",
    "rasterio_ready", "read_vector", "remove_tree", "safe_names", "safe_unzip", "unpack",
    "write_cog",
]

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
BATCH_ROWS = 25_000  # files with more features are read and loaded in batches of this size
_DECLARED = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def detect_dbf_encoding(dbf: Path) -> str:
    """The text encoding of a .dbf without .cpg: UTF-8, else GB18030 (GBK), else Latin-1."""
    data = dbf.read_bytes()
    if len(data) > 32:
        header_len = int.from_bytes(data[8:10], "little")
        data = data[header_len:]
    for enc in ("utf-8", "gb18030"):
        try:
            data.decode(enc)
            return enc.upper()
        except UnicodeDecodeError:
            continue
    return "ISO-8859-1"


def _text_encoding(path: Path) -> str:
    data = path.read_bytes()[: 4 << 20]
    for enc in ("utf-8-sig", "gb18030"):
        try:
            data.decode(enc)
            return enc
        except UnicodeDecodeError:
            continue
    return "latin-1"



def _ogr(path: Path, what: str, crs_override: str | None, layer: str | None = None,
         encoding: str | None = None, multi: bool = False, shapefile: bool = False) -> VectorData:
    """One layer read with GDAL; `multi`: a large layer of single parts is stored as Multi*.

    A shapefile's Polygon and LineString types also hold multi-part shapes: stored as Multi*.
    """
    driver = fence.vector_driver(path)
    fence.sniff(path, driver, what)
    if driver == "GPKG" and layer is not None:
        fence.refuse_gpkg_view(path, layer, what)
    name, opts = fence.gdal_path(path, driver), fence.open_options(driver)
    try:
        with fence.vector_fence():
            info = pyogrio.read_info(name, layer=layer, encoding=encoding, **opts)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several DataSourceError kinds
        raise read_error(exc, path, what) from None
    fence.expect_driver(info.get("driver"), driver, what)
    if crs_override:
        crs = parse_crs(crs_override, what)
    elif info.get("crs"):
        crs = parse_crs(info["crs"], what)
    else:
        raise PublishError(f"{what}: the file declares no CRS (missing .prj?); pass --crs EPSG:xxxx")
    declared = str(info.get("geometry_type") or "").replace(" Z", "").replace(" M", "")
    count = int(info.get("features") or -1)
    if declared in _DECLARED and count > BATCH_ROWS:
        if not declared.startswith("Multi") and (
                multi or (shapefile and declared in ("LineString", "Polygon"))):
            declared = "Multi" + declared
        return read_batched(path, what, crs, layer, encoding, count, declared, BATCH_ROWS)
    try:
        with fence.vector_fence():
            df = pyogrio.read_dataframe(name, layer=layer, encoding=encoding, fid_as_index=True,
                                        **opts)
    except Exception as exc:  # noqa: BLE001
        raise read_error(exc, path, what) from None
    if df.geometry is None or len(df) == 0:
        raise PublishError(f"{what}: the file holds zero features")
    geoms = np.asarray(df.geometry.values, dtype=object)
    attrs = pd.DataFrame(df.drop(columns=df.geometry.name))
    return clean(attrs, geoms, crs, what, pd.Series(df.index.values))


def _shapefile(shp: Path, what: str, crs: str | None, multi: bool = False) -> VectorData:
    cpg = [p for p in shp.parent.glob(shp.stem + ".*") if p.suffix.lower() == ".cpg"]
    dbf = [p for p in shp.parent.glob(shp.stem + ".*") if p.suffix.lower() == ".dbf"]
    encoding = None
    if not cpg and dbf:
        encoding = detect_dbf_encoding(dbf[0])
    return _ogr(shp, what, crs, encoding=encoding, multi=multi, shapefile=True)


def _csv(path: Path, what: str, crs: str | None) -> VectorData:
    try:
        df = pd.read_csv(path, encoding=_text_encoding(path), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise PublishError(f"{what}: not a readable CSV file (or empty)") from None
    lowered = {str(c).strip().lower(): c for c in df.columns}
    lon = next((lowered[n] for n in LON_NAMES if n in lowered), None)
    lat = next((lowered[n] for n in LAT_NAMES if n in lowered), None)
    if lon is None or lat is None:
        raise PublishError(f"{what}: no longitude/latitude columns found (expected one of "
                           f"{', '.join(LON_NAMES)} and {', '.join(LAT_NAMES)})")
    if not crs:
        raise PublishError(f"{what}: a CSV file declares no CRS; pass --crs (e.g. EPSG:4490)")
    if len(df) == 0:
        raise PublishError(f"{what}: the file holds zero features")
    x = pd.to_numeric(df[lon], errors="coerce").to_numpy()
    y = pd.to_numeric(df[lat], errors="coerce").to_numpy()
    ok = np.isfinite(x) & np.isfinite(y)
    geoms = np.full(len(df), None, dtype=object)
    geoms[ok] = shapely.points(x[ok], y[ok])
    attrs = df.drop(columns=[lon, lat])
    for c in attrs.columns:  # numbers stay numbers
        num = pd.to_numeric(attrs[c], errors="coerce")
        if num.notna().sum() == (attrs[c] != "").sum() and (attrs[c] != "").any():
            attrs[c] = num
        else:
            attrs[c] = attrs[c].replace("", None)
    return clean(attrs, geoms, parse_crs(crs, what), what)


def gpkg_layers(path: Path) -> list[str]:
    fence.sniff(path, "GPKG", path.name)
    try:
        with fence.vector_fence():
            return [str(r[0]) for r in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001
        raise PublishError(f"{path.name}: not a readable GeoPackage") from None



def read_vector(path: Path, what: str, crs: str | None, layer: str | None = None,
                multi: bool = False) -> VectorData:
    """One vector dataset (already unpacked) into checked data.

    A large file is stored in the geometry type it declares; `multi` (after `NeedsMulti`)
    stores a declared single-part type as its Multi type.
    """
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise PublishError(f"{what}: the file is empty")
    if suffix == ".shp":
        return _shapefile(path, what, crs, multi)
    if suffix == ".csv":
        return _csv(path, what, crs)
    if suffix == ".gpkg":
        names = gpkg_layers(path)
        if layer is None:
            if len(names) != 1:
                raise PublishError(f"{what}: the GeoPackage holds layers {', '.join(names)}; "
                                   "choose one (--layer) or publish all (--all-layers)")
            layer = names[0]
        elif layer not in names:
            raise PublishError(f"{what}: no layer {layer!r} in the GeoPackage "
                               f"(it holds {', '.join(names)})")
        return _ogr(path, f"{what}:{layer}", crs, layer=layer, multi=multi)
    if suffix in (".geojson", ".json"):
        return _ogr(path, what, crs, multi=multi)
    raise PublishError(f"{what}: unsupported file type {suffix or '(none)'}; accepted: zipped "
                       "Shapefile, GeoPackage, GeoJSON, CSV, GeoTIFF", 415)

