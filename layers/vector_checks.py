"""Checking vector data read from an upload: names, CRS, geometry kinds and repairs.

Everything here turns attributes and geometries into checked data (attributes under safe
names, geometries in EPSG:4490 of one declared type) with a report of what was repaired or
dropped, or raises `PublishError` with a message that names the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from layers.errors import PublishError
from layers.load import STORAGE_SRID, normalise_geometries, unique_name

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



def safe_names(names: list[str], reserved: frozenset[str] | set[str] = frozenset({"fid", "geom"})
               ) -> dict[str, str]:
    """original -> SQL/OGC-safe lowercase unique name (non-ASCII names become attr_<n>)."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for i, name in enumerate(names, start=1):
        base = _SAFE.sub("_", str(name).strip().lower()).strip("_")
        if not re.search(r"[a-z0-9]", base):
            base = f"attr_{i}"
        out[name] = unique_name(base, taken, reserved, 55)
    return out


def parse_crs(value: Any, what: str) -> Any:
    """A pyproj CRS for a geographic or projected CRS, else PublishError."""
    try:
        crs = CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError):
        raise PublishError(f"{what}: unknown CRS {str(value)[:80]!r}") from None
    if not (crs.is_geographic or crs.is_projected):
        raise PublishError(f"{what}: CRS {crs.name!r} is neither geographic nor projected")
    return crs


def label(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def needs_transform(crs: Any) -> bool:
    """Whether coordinates in `crs` change on the way to EPSG:4490.

    CGCS2000 and WGS 84 agree to the centimetre: no datum shift is defined between them.
    """
    return not (crs.to_epsg() in (STORAGE_SRID, 4326) and crs.is_geographic)


def to_storage(geoms: np.ndarray, crs: Any) -> np.ndarray:
    """Geometries from `crs` to EPSG:4490 (lon/lat)."""
    if not needs_transform(crs):
        return geoms
    tr = Transformer.from_crs(crs, CRS.from_epsg(STORAGE_SRID), always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))



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


def safe_attrs(attrs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Attributes under SQL/OGC-safe column names, mixed object columns as text; and the renaming."""
    rename = safe_names([str(c) for c in attrs.columns])
    attrs.columns = [rename[str(c)] for c in attrs.columns]
    for c in attrs.columns:  # object columns of mixed content go in as text
        if attrs[c].dtype == object and pd.api.types.infer_dtype(attrs[c], skipna=True) not in (
                "string", "empty"):
            attrs[c] = attrs[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return attrs, rename


def clean(attrs: pd.DataFrame, geoms: np.ndarray, crs: Any, what: str,
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
    geoms = normalise_geometries(geoms, gtype, invalid)
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
    attrs, rename = safe_attrs(attrs)
    report = {
        "repaired": int(invalid.sum()),
        "repaired_examples": [kept_labels[i] for i in np.nonzero(invalid)[0][:5]],
        "dropped_empty": int(empty.sum()) + int(broken.sum()),
        "dropped_examples": [lab for lab, e in zip(labels, empty) if e][:5],
    }
    return VectorData(attrs, geoms, gtype, {v: k for k, v in rename.items()}, label(crs), report)



def read_error(exc: Exception, path: Path, what: str) -> PublishError:
    text = str(exc).split("\n")[0].replace(str(path.parent), "")[:200]
    return PublishError(f"{what}: cannot read the file ({text})")

