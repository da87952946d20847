"""Reading what users upload: zipped Shapefile, GeoPackage, GeoJSON, CSV, GeoTIFF.

Everything here is about turning one file into checked data (attributes + geometries in
EPSG:4490, or a Cloud-Optimised GeoTIFF in EPSG:4490) with a report of what was repaired or
dropped, or raising `PublishError` with a message that names the problem. Archives are unpacked
by us, never by GDAL, after checking every entry (paths, symlinks, sizes, ratio). GDAL opens
each file only with the driver its format implies, inside a fence of options (layers/fence.py).
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geoplat_settings import PublishSettings
from layers import fence
from layers.errors import PublishError
from layers.load import EWKB_SRID_FLAG, STORAGE_SRID, Ewkb, _normalise_geometries

VECTOR_SUFFIXES = {".zip", ".gpkg", ".geojson", ".json", ".csv", ".shp"}
RASTER_SUFFIXES = {".tif", ".tiff"}
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
_SAFE = re.compile(r"[^a-z0-9_]")


@dataclass
class VectorData:
    """A vector layer ready to load: attributes with safe names, geometries in EPSG:4490."""

    attrs: pd.DataFrame
    geoms: np.ndarray
    geometry_type: str
    titles: dict[str, str]  # safe column name -> original attribute name
    source_crs: str
    report: dict[str, Any] = field(default_factory=dict)
    # large files: the rows come batch by batch while they are loaded (`attrs` is then the
    # first batch, for column names and types; `report` fills in as batches are read)
    batches: Iterator[tuple[pd.DataFrame, np.ndarray]] | None = None
    count_hint: int | None = None

    @property
    def total(self) -> int:
        return self.count_hint if self.count_hint is not None else len(self.geoms)


# --- archives -------------------------------------------------------------------------------

def _bad_entry(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    parts = re.split(r"[/\\]", name)
    return any(p == ".." for p in parts)


def safe_unzip(path: Path, dest: Path, limits: PublishSettings) -> list[Path]:
    """Unpack a zip archive after checking every entry; returns the files written."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise PublishError(f"{path.name}: not a valid zip archive (corrupted or truncated)") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_entries:
            raise PublishError(f"{path.name}: the archive holds {len(infos)} entries "
                               f"(limit {limits.max_zip_entries})")
        total = 0
        for info in infos:
            if _bad_entry(info.filename):
                raise PublishError(f"{path.name}: unsafe entry {info.filename!r} "
                                   "(absolute path or '..' in the archive)")
            if any(len(part.encode("utf-8")) > 255 or not part.isprintable()
                   for part in re.split(r"[/\\]", info.filename)):
                raise PublishError(f"{path.name}: the entry name {info.filename[:60]!r} has a part "
                                   "over 255 bytes or with control characters")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise PublishError(f"{path.name}: the archive contains a symbolic link "
                                   f"({info.filename!r}); links are not accepted")
            total += info.file_size
        packed = max(path.stat().st_size, 1)
        if total > limits.max_unpacked_bytes:
            raise PublishError(f"{path.name}: the archive unpacks to {total} bytes, over the limit "
                               f"of {limits.max_unpacked_bytes} bytes (zip bomb?)", 413)
        if total / packed > limits.max_zip_ratio:
            raise PublishError(f"{path.name}: compression ratio {total / packed:.0f}:1 is over the "
                               f"limit of {limits.max_zip_ratio:.0f}:1 (zip bomb?)", 413)
        out: list[Path] = []
        written = 0
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        try:
            for info in infos:
                target = (dest / info.filename).resolve()
                if root not in target.parents:
                    raise PublishError(f"{path.name}: unsafe entry {info.filename!r}")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # the header sizes may lie: count what really comes out
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > limits.max_unpacked_bytes or written / packed > limits.max_zip_ratio:
                            raise PublishError(f"{path.name}: the archive unpacks beyond the size "
                                               "or ratio limit (zip bomb?)", 413)
                        dst.write(chunk)
                out.append(target)
        except (zipfile.BadZipFile, zlib_error(), EOFError, NotImplementedError):
            raise PublishError(f"{path.name}: not a valid zip archive (corrupted data)") from None
        return out


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


# --- names ----------------------------------------------------------------------------------

def safe_names(names: list[str], reserved: set[str] = frozenset({"fid", "geom"})) -> dict[str, str]:
    """original -> SQL/OGC-safe lowercase unique name (non-ASCII names become attr_<n>)."""
    from layers.load import unique_name

    taken: set[str] = set()
    out: dict[str, str] = {}
    for i, name in enumerate(names, start=1):
        base = _SAFE.sub("_", str(name).strip().lower()).strip("_")
        if not re.search(r"[a-z0-9]", base):
            base = f"attr_{i}"
        out[name] = unique_name(base, taken, reserved, 55)
    return out


# --- CRS ------------------------------------------------------------------------------------

def parse_crs(value: Any, what: str) -> Any:
    """A pyproj CRS for a geographic or projected CRS, else PublishError."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError):
        raise PublishError(f"{what}: unknown CRS {str(value)[:80]!r}") from None
    if not (crs.is_geographic or crs.is_projected):
        raise PublishError(f"{what}: CRS {crs.name!r} is neither geographic nor projected")
    return crs


def _label(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def needs_transform(crs: Any) -> bool:
    """Whether coordinates in `crs` change on the way to EPSG:4490.

    CGCS2000 and WGS 84 agree to the centimetre: no datum shift is defined between them.
    """
    return not (crs.to_epsg() in (STORAGE_SRID, 4326) and crs.is_geographic)


def to_storage(geoms: np.ndarray, crs: Any) -> np.ndarray:
    """Geometries from `crs` to EPSG:4490 (lon/lat)."""
    from pyproj import CRS, Transformer

    if not needs_transform(crs):
        return geoms
    tr = Transformer.from_crs(crs, CRS.from_epsg(STORAGE_SRID), always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


# --- encodings ------------------------------------------------------------------------------

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


# --- vector readers -------------------------------------------------------------------------

def geometry_kind(geoms: np.ndarray, what: str) -> str:
    """The declared type for a set of geometries: single kind, or its Multi when mixed."""
    ids = set(shapely.get_type_id(geoms).tolist())
    kinds = {0: "Point", 4: "Point", 1: "LineString", 2: "LineString", 5: "LineString",
             3: "Polygon", 6: "Polygon"}
    base = {kinds.get(i, "Other") for i in ids}
    if "Other" in base:
        if ids & {7}:  # collections: take the kind of their parts when it is one
            parts = shapely.get_parts(geoms[shapely.get_type_id(geoms) == 7])
            base |= {kinds.get(i, "Other") for i in set(shapely.get_type_id(parts).tolist())}
            base.discard("Other")
        if "Other" in base or not base:
            raise PublishError(f"{what}: unsupported geometry type")
    if len(base) != 1:
        raise PublishError(f"{what}: mixed geometry kinds ({', '.join(sorted(base))}); "
                           "publish one kind per layer")
    kind = base.pop()
    single = {"Point": 0, "LineString": 1, "Polygon": 3}[kind]
    return kind if ids == {single} else "Multi" + kind


def _safe_attrs(attrs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Attributes under SQL/OGC-safe column names, mixed object columns as text; and the renaming."""
    rename = safe_names([str(c) for c in attrs.columns])
    attrs.columns = [rename[str(c)] for c in attrs.columns]
    for c in attrs.columns:  # object columns of mixed content go in as text
        if attrs[c].dtype == object and pd.api.types.infer_dtype(attrs[c], skipna=True) not in (
                "string", "empty"):
            attrs[c] = attrs[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return attrs, rename


def _clean(attrs: pd.DataFrame, geoms: np.ndarray, crs: Any, what: str,
           ids: pd.Series | None = None) -> VectorData:
    """Transform, repair, drop empties, name columns safely; report what was done."""
    if len(geoms) == 0:
        raise PublishError(f"{what}: the file holds zero features")
    labels = (ids if ids is not None else pd.Series(np.arange(1, len(geoms) + 1))).astype(str).tolist()
    geoms = np.asarray(geoms, dtype=object)
    missing = shapely.is_missing(geoms)
    present = ~missing
    empty = missing.copy()
    empty[present] = shapely.is_empty(geoms[present])
    keep = ~empty
    if not keep.any():
        raise PublishError(f"{what}: the file holds zero features with geometry")
    geoms = to_storage(geoms[keep], crs)
    if not np.isfinite(shapely.bounds(geoms)).all():
        raise PublishError(f"{what}: coordinates cannot be transformed to EPSG:4490 "
                           "(wrong CRS for the data?)")
    kept_labels = [lab for lab, k in zip(labels, keep) if k]
    invalid = ~shapely.is_valid(geoms)
    gtype = geometry_kind(geoms, what)
    if invalid.any() and gtype in ("LineString", "Polygon"):
        gtype = "Multi" + gtype  # a repair may split a part in two
    geoms = _normalise_geometries(geoms, gtype, invalid)
    broken = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms[~broken]) if (~broken).any() else (0, 0, 0, 0)
    if (~broken).any() and (minx < -180.0001 or maxx > 180.0001 or miny < -90.0001 or maxy > 90.0001):
        raise PublishError(f"{what}: coordinates fall outside -180..180 / -90..90 after "
                           "transformation: the declared CRS does not match the data")
    attrs = pd.DataFrame(attrs).loc[keep].reset_index(drop=True)
    if broken.any():
        attrs = attrs.loc[~broken].reset_index(drop=True)
        geoms = geoms[~broken]
    if len(geoms) == 0:
        raise PublishError(f"{what}: no feature has a usable geometry")
    attrs, rename = _safe_attrs(attrs)
    report = {
        "repaired": int(invalid.sum()),
        "repaired_examples": [kept_labels[i] for i in np.nonzero(invalid)[0][:5]],
        "dropped_empty": int(empty.sum()) + int(broken.sum()),
        "dropped_examples": [lab for lab, e in zip(labels, empty) if e][:5],
    }
    return VectorData(attrs, geoms, gtype, {v: k for k, v in rename.items()}, _label(crs), report)


BATCH_ROWS = 25_000  # files with more features are read and loaded in batches of this size
_DECLARED = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


class NeedsMulti(PublishError):
    """A large file declared a single-part type, but a feature is (or after repair became)
    multi-part: the load starts again with the Multi type (layers/publish.py)."""


def _read_error(exc: Exception, path: Path, what: str) -> PublishError:
    text = str(exc).split("\n")[0].replace(str(path.parent), "")[:200]
    return PublishError(f"{what}: cannot read the file ({text})")


def _ogr(path: Path, what: str, crs_override: str | None, layer: str | None = None,
         encoding: str | None = None, multi: bool = False, shapefile: bool = False) -> VectorData:
    """One layer read with GDAL; `multi`: a large layer of single parts is stored as Multi*.

    A shapefile's Polygon and LineString types also hold multi-part shapes: stored as Multi*.
    """
    import pyogrio

    driver = fence.vector_driver(path)
    fence.sniff(path, driver, what)
    if driver == "GPKG" and layer is not None:
        fence.refuse_gpkg_view(path, layer, what)
    name, opts = fence.gdal_path(path, driver), fence.open_options(driver)
    try:
        with fence.vector_fence():
            info = pyogrio.read_info(name, layer=layer, encoding=encoding, **opts)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises several DataSourceError kinds
        raise _read_error(exc, path, what) from None
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
        return _ogr_batched(path, what, crs, layer, encoding, count, declared)
    try:
        with fence.vector_fence():
            df = pyogrio.read_dataframe(name, layer=layer, encoding=encoding, fid_as_index=True,
                                        **opts)
    except Exception as exc:  # noqa: BLE001
        raise _read_error(exc, path, what) from None
    if df.geometry is None or len(df) == 0:
        raise PublishError(f"{what}: the file holds zero features")
    geoms = np.asarray(df.geometry.values, dtype=object)
    attrs = pd.DataFrame(df.drop(columns=df.geometry.name))
    return _clean(attrs, geoms, crs, what, pd.Series(df.index.values))


def _conform(attrs: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """A batch's attributes in the column types of the first batch (the table's)."""
    out = {}
    for c in like.columns:
        col, kind = attrs[c] if c in attrs else pd.Series([None] * len(attrs)), like[c].dtype.kind
        if col.dtype == like[c].dtype:
            out[c] = col
        elif kind in "iu":
            out[c] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif kind == "f":
            out[c] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "b":
            out[c] = col.astype("boolean")
        elif kind == "M":
            out[c] = pd.to_datetime(col, errors="coerce", utc=True)
        else:
            out[c] = col.map(lambda v: v if v is None or isinstance(v, str) else str(v),
                             na_action="ignore").astype(object)
    return pd.DataFrame(out, index=attrs.index)


def _promote(geoms: np.ndarray, gtype: str, what: str) -> np.ndarray:
    """Single parts to the layer's Multi type (vectorised)."""
    if not gtype.startswith("Multi"):
        if (shapely.get_type_id(geoms) >= 4).any():
            raise NeedsMulti(f"{what}: the layer declares {gtype} but holds multi-part "
                             "geometries")
        return geoms
    single = {"MultiPoint": 0, "MultiLineString": 1, "MultiPolygon": 3}[gtype]
    ctor = {0: shapely.multipoints, 1: shapely.multilinestrings, 3: shapely.multipolygons}[single]
    idx = np.nonzero(shapely.get_type_id(geoms) == single)[0]
    if len(idx):
        geoms = geoms.copy()
        geoms[idx] = ctor(geoms[idx], indices=np.arange(len(idx)))
    return geoms


def _ogr_batched(path: Path, what: str, crs: Any, layer: str | None, encoding: str | None,
                 count: int, gtype: str) -> VectorData:
    """A large layer read BATCH_ROWS features at a time; each batch checked like a small file.

    A batch that needs no change (no transformation, valid, non-empty, 2D, one geometry type)
    keeps the WKB GDAL read: it is loaded as EWKB with a new header (layers/load.py `Ewkb`)
    instead of being encoded again. Any other batch is cleaned like a small file.
    """
    source = _arrow_batches(path, what, layer, encoding)
    report: dict[str, Any] = {"repaired": 0, "repaired_examples": [], "dropped_empty": 0,
                              "dropped_examples": []}
    transform = needs_transform(crs)

    def clean(attrs: pd.DataFrame, fids: np.ndarray, wkb: np.ndarray
              ) -> tuple[pd.DataFrame, np.ndarray | Ewkb, dict[str, str]] | None:
        geoms = shapely.from_wkb(wkb)
        fast = None if transform else _as_ewkb(wkb, geoms, gtype, what)
        if fast is not None:
            out, rename = _safe_attrs(attrs.reset_index(drop=True))
            return out, fast, rename
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all():
            report["dropped_empty"] += len(fids)
            report["dropped_examples"] = (report["dropped_examples"] + [str(v) for v in fids])[:5]
            return None
        v = _clean(attrs, geoms, crs, what, pd.Series(fids))
        for k in ("repaired", "dropped_empty"):
            report[k] += v.report[k]
        for k in ("repaired_examples", "dropped_examples"):
            report[k] = (report[k] + v.report[k])[:5]
        return v.attrs, _promote(v.geoms, gtype, what), {c: t for t, c in v.titles.items()}

    first = None
    while first is None:
        batch = next(source, None)
        if batch is None:
            raise PublishError(f"{what}: the file holds zero features with geometry")
        first = clean(*batch)
    template = first[0].iloc[:0].copy()  # the table's columns and types
    titles = {v: k for k, v in first[2].items()}
    head = [first]
    del first, batch

    def batches() -> Iterator[tuple[pd.DataFrame, np.ndarray | Ewkb]]:
        a, g, _ = head.pop()  # hold no batch longer than the COPY needs it
        yield a, g
        del a, g
        for attrs, fids, wkb in source:
            part = clean(attrs, fids, wkb)
            if part is not None:
                yield _conform(part[0], template), part[1]

    return VectorData(template, np.empty(0, dtype=object), gtype, titles, _label(crs), report,
                      batches=batches(), count_hint=count)


def _arrow_batches(path: Path, what: str, layer: str | None, encoding: str | None
                   ) -> Iterator[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    """(attributes indexed by source FID, FIDs, WKB) of BATCH_ROWS features at a time.

    GDAL's Arrow stream reads a batch column by column, without a Python object per value
    (several times faster than feature by feature); the file stays open until the last batch,
    and so does the upload fence (`_ogr` checked the file and its driver first).
    """
    import pyogrio

    driver = fence.vector_driver(path)
    try:
        with fence.vector_fence(), pyogrio.raw.open_arrow(
                fence.gdal_path(path, driver), layer=layer, encoding=encoding,
                batch_size=BATCH_ROWS, return_fids=True, use_pyarrow=True,
                **fence.open_options(driver)) as (meta, reader):
            fid, geom = meta["fid_column"], meta["geometry_name"] or "wkb_geometry"
            for batch in reader:
                fids = batch.column(fid).to_numpy()
                wkb = batch.column(geom).to_numpy(zero_copy_only=False)
                attrs = batch.drop_columns([fid, geom]).to_pandas()
                attrs.index = fids
                yield attrs, fids, wkb
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyogrio and pyarrow raise several kinds
        raise _read_error(exc, path, what) from None


_WKB_TYPES = {"Point": 1, "LineString": 2, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5,
              "MultiPolygon": 6}


def _as_ewkb(wkb: np.ndarray, geoms: np.ndarray, gtype: str, what: str) -> Ewkb | None:
    """The batch's WKB as EWKB of the layer's type without encoding it again, or None.

    Only for a batch that needs nothing done: every geometry present, non-empty, valid, 2D,
    little-endian and of one type (the layer's, or its single-part type, wrapped as one part).
    """
    if len(wkb) == 0 or shapely.is_missing(geoms).any() or shapely.has_z(geoms).any():
        return None
    if shapely.is_empty(geoms).any() or not shapely.is_valid(geoms).all():
        return None
    multi = _WKB_TYPES[gtype]
    single = multi - 3 if gtype.startswith("Multi") else None
    first = wkb[0][:5]
    kind = int.from_bytes(first[1:5], "little")
    if first[:1] != b"\x01" or kind not in (multi, single) or any(w[:5] != first for w in wkb):
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    if minx < -180.0001 or maxx > 180.0001 or miny < -90.0001 or maxy > 90.0001:
        raise PublishError(f"{what}: coordinates fall outside -180..180 / -90..90: the declared "
                           "CRS does not match the data")
    srid = STORAGE_SRID.to_bytes(4, "little")
    bounds = (float(minx), float(miny), float(maxx), float(maxy))
    if kind == multi:  # the same geometry with the SRID flag and SRID in its header
        return Ewkb(b"\x01" + (multi | EWKB_SRID_FLAG).to_bytes(4, "little") + srid,
                    [w[5:] for w in wkb], bounds)
    # a single part: a multi of one part, whose part is the WKB as it is
    return Ewkb(b"\x01" + (multi | EWKB_SRID_FLAG).to_bytes(4, "little") + srid
                + (1).to_bytes(4, "little"), list(wkb), bounds)


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
    return _clean(attrs, geoms, parse_crs(crs, what), what)


def gpkg_layers(path: Path) -> list[str]:
    import pyogrio

    fence.sniff(path, "GPKG", path.name)
    try:
        with fence.vector_fence():
            return [str(r[0]) for r in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001
        raise PublishError(f"{path.name}: not a readable GeoPackage") from None


def find_in_archive(files: list[Path], what: str) -> Path:
    """The one dataset inside an unpacked archive (a .shp, else a .gpkg/.geojson/.csv/.tif)."""
    for suffixes in ({".shp"}, {".gpkg"}, {".geojson", ".json"}, {".csv"}, RASTER_SUFFIXES):
        found = [f for f in files if f.suffix.lower() in suffixes and not f.name.startswith(".")]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise PublishError(f"{what}: the archive holds several datasets "
                               f"({', '.join(f.name for f in found[:5])}); zip one per layer")
    raise PublishError(f"{what}: the archive holds no .shp, .gpkg, .geojson, .csv or .tif")


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


# --- rasters --------------------------------------------------------------------------------

@dataclass
class RasterData:
    path: Path  # the COG written, EPSG:4490
    bbox: list[float]
    bands: int
    source_crs: str
    report: dict[str, Any] = field(default_factory=dict)


def rasterio_ready() -> None:
    """Point rasterio's GDAL at its own proj.db.

    The Mapnik wheel bundles a PROJ without data; when Mapnik was imported first (node
    processes, the CLI after building tiles) rasterio finds no proj.db and knows no EPSG code.
    """
    import os

    import rasterio
    from rasterio._env import set_proj_data_search_path

    data = os.path.join(os.path.dirname(rasterio.__file__), "proj_data")
    if os.path.isdir(data):
        set_proj_data_search_path(data)


def write_cog(path: Path, out: Path, what: str, crs: str | None) -> RasterData:
    """A georeferenced GeoTIFF into a Cloud-Optimised GeoTIFF in EPSG:4490."""
    with fence.raster_env():
        rasterio_ready()
        return _write_cog(path, out, what, crs)


def _write_cog(path: Path, out: Path, what: str, crs: str | None) -> RasterData:
    import rasterio
    from rasterio._err import CPLE_BaseError
    from rasterio.crs import CRS as RioCRS
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.vrt import WarpedVRT

    if path.stat().st_size == 0:
        raise PublishError(f"{what}: the file is empty")
    fence.sniff(path, "GTiff", what)
    try:
        src = rasterio.open(path, driver="GTiff")  # GDALOpenEx tries no other driver
    except (RasterioError, CPLE_BaseError):
        raise PublishError(f"{what}: not a readable GeoTIFF") from None
    with src:
        fence.expect_driver(src.driver, "GTiff", what)
        if src.transform.is_identity or (src.gcps[0] if src.gcps else None):
            raise PublishError(f"{what}: the GeoTIFF is not georeferenced (no geotransform)")
        src_crs = crs or src.crs
        if not src_crs:
            raise PublishError(f"{what}: the GeoTIFF declares no CRS; pass --crs EPSG:xxxx")
        pcrs = parse_crs(src_crs.to_wkt() if hasattr(src_crs, "to_wkt") else src_crs, what)
        out.parent.mkdir(parents=True, exist_ok=True)
        with WarpedVRT(src, src_crs=RioCRS.from_wkt(pcrs.to_wkt()), crs="EPSG:4490",
                       resampling=Resampling.bilinear) as vrt:
            from rasterio.shutil import copy as rio_copy

            try:
                rio_copy(vrt, out, driver="COG", compress="DEFLATE",
                         overview_resampling="average")
            except (RasterioError, CPLE_BaseError):  # GDAL's text may name paths: not echoed
                raise PublishError(f"{what}: the GeoTIFF's pixels cannot be read (damaged or "
                                   "truncated file)") from None
    with rasterio.open(out, driver="GTiff") as cog:
        b = cog.bounds
        return RasterData(out, [b.left, b.bottom, b.right, b.top], cog.count, _label(pcrs))


def unpack(path: Path, work: Path, limits: PublishSettings) -> Path:
    """The dataset to read: `path` itself, or the one dataset inside a zip archive."""
    if not path.exists() or path.stat().st_size == 0:
        raise PublishError(f"{path.name}: the file is empty")
    if path.stat().st_size > limits.max_upload_bytes:
        raise PublishError(f"{path.name}: {path.stat().st_size} bytes is over the limit of "
                           f"{limits.max_upload_bytes} bytes", 413)
    if path.suffix.lower() == ".zip":
        files = safe_unzip(path, work / "unzipped", limits)
        return find_in_archive(files, path.name)
    if path.suffix.lower() not in VECTOR_SUFFIXES | RASTER_SUFFIXES:
        raise PublishError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
                           "accepted: zipped Shapefile, GeoPackage, GeoJSON, CSV, GeoTIFF", 415)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
