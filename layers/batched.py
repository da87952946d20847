"""Reading a large vector file batch by batch while it is loaded (GDAL's Arrow stream).

Each batch is checked like a small file; a batch that needs no change keeps the WKB GDAL
read and goes to the COPY as EWKB with a new header (layers/copy_encoder.py `Ewkb`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely

from layers import fence
from layers.copy_encoder import EWKB_SRID_FLAG, Ewkb
from layers.errors import PublishError
from layers.load import STORAGE_SRID
from layers.vector_checks import VectorData, clean, label, needs_transform, read_error, safe_attrs


class NeedsMulti(PublishError):
    """A large file declared a single-part type, but a feature is (or after repair became)
    multi-part: the load starts again with the Multi type (layers/publish.py)."""



def conform(attrs: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
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


def promote(geoms: np.ndarray, gtype: str, what: str) -> np.ndarray:
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


def read_batched(path: Path, what: str, crs: Any, layer: str | None, encoding: str | None,
                 count: int, gtype: str, batch_rows: int) -> VectorData:
    """A large layer read `batch_rows` features at a time; each batch checked like a small file.

    A batch that needs no change (no transformation, valid, non-empty, 2D, one geometry type)
    keeps the WKB GDAL read: it is loaded as EWKB with a new header (copy_encoder `Ewkb`)
    instead of being encoded again. Any other batch is cleaned like a small file.
    """
    source = _arrow_batches(path, what, layer, encoding, batch_rows)
    report: dict[str, Any] = {"repaired": 0, "repaired_examples": [], "dropped_empty": 0,
                              "dropped_examples": []}
    transform = needs_transform(crs)

    def check(attrs: pd.DataFrame, fids: np.ndarray, wkb: np.ndarray
              ) -> tuple[pd.DataFrame, np.ndarray | Ewkb, dict[str, str]] | None:
        geoms = shapely.from_wkb(wkb)
        fast = None if transform else _as_ewkb(wkb, geoms, gtype, what)
        if fast is not None:
            out, rename = safe_attrs(attrs.reset_index(drop=True))
            return out, fast, rename
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all():
            report["dropped_empty"] += len(fids)
            report["dropped_examples"] = (report["dropped_examples"] + [str(v) for v in fids])[:5]
            return None
        v = clean(attrs, geoms, crs, what, pd.Series(fids))
        for k in ("repaired", "dropped_empty"):
            report[k] += v.report[k]
        for k in ("repaired_examples", "dropped_examples"):
            report[k] = (report[k] + v.report[k])[:5]
        return v.attrs, promote(v.geoms, gtype, what), {c: t for t, c in v.titles.items()}

    # the reader holds the process-wide upload fence (layers/fence.py) until it is closed: close
    # it as soon as reading ends, also on an error (a traceback would keep it open until the
    # garbage collector runs, fencing every GDAL read of the process meanwhile)
    first = None
    try:
        while first is None:
            batch = next(source, None)
            if batch is None:
                raise PublishError(f"{what}: the file holds zero features with geometry")
            first = check(*batch)
    except BaseException:
        source.close()
        raise
    template = first[0].iloc[:0].copy()  # the table's columns and types
    titles = {v: k for k, v in first[2].items()}
    head = [first]
    del first, batch

    def batches() -> Iterator[tuple[pd.DataFrame, np.ndarray | Ewkb]]:
        try:
            a, g, _ = head.pop()  # hold no batch longer than the COPY needs it
            yield a, g
            del a, g
            for attrs, fids, wkb in source:
                part = check(attrs, fids, wkb)
                if part is not None:
                    yield conform(part[0], template), part[1]
        finally:
            source.close()

    return VectorData(template, np.empty(0, dtype=object), gtype, titles, label(crs), report,
                      batches=batches(), count_hint=count)  # type: ignore[arg-type]  # WKB as Ewkb


def _arrow_batches(path: Path, what: str, layer: str | None, encoding: str | None,
                   batch_rows: int) -> Generator[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    """(attributes indexed by source FID, FIDs, WKB) of `batch_rows` features at a time.

    GDAL's Arrow stream reads a batch column by column, without a Python object per value
    (several times faster than feature by feature); the file stays open until the last batch,
    and so does the upload fence (`_ogr` checked the file and its driver first).
    """
    driver = fence.vector_driver(path)
    try:
        with fence.vector_fence(), pyogrio.raw.open_arrow(
                fence.gdal_path(path, driver), layer=layer, encoding=encoding,
                batch_size=batch_rows, return_fids=True, use_pyarrow=True,
                **fence.open_options(driver)) as (info, reader):
            fid, geom = info["fid_column"], info["geometry_name"] or "wkb_geometry"
            for batch in reader:
                fids = batch.column(fid).to_numpy()
                wkb = batch.column(geom).to_numpy(zero_copy_only=False)
                attrs = batch.drop_columns([fid, geom]).to_pandas()
                attrs.index = fids
                yield attrs, fids, wkb
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyogrio and pyarrow raise several kinds
        raise read_error(exc, path, what) from None


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

