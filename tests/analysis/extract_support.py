"""Helpers of tests/analysis/test_extract.py and test_downloads.py: files read back with GDAL
(pyogrio) as {fid: attributes}, compared with what OGC API Features answers for the same
caller."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import pyogrio
import requests
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry


def api_features(hz: str, layer: str, headers: dict, bbox: tuple[float, ...],
                 area: BaseGeometry | None = None, extra: str = "") -> dict[int, dict]:
    """fid -> {properties, geometry} of the items in `bbox` (and intersecting `area`)."""
    r = requests.get(f"{hz}/ogc/collections/{layer}/items?f=json&limit=1000&"
                     f"bbox={','.join(map(str, bbox))}{extra}", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    out = {}
    for f in r.json()["features"]:
        g = shape(f["geometry"])
        if area is None or area.intersects(g):
            out[int(f["id"])] = {**f["properties"], "__geom": g}
    return out


def norm(v: Any) -> str:
    """One spelling per value across formats (CSV and KML read back as text)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or str(v).lower() in ("true", "false"):
        return str(int(v if isinstance(v, bool) else str(v).lower() == "true"))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if f == int(f) else f"{f:.6f}"


def read_layer(path: Path, layer: str | None = None, encoding: str | None = None
               ) -> dict[int, dict]:
    """fid -> {attributes, __geom} of a layer of a file (the GPKG's FID is its `fid`)."""
    kw: dict[str, Any] = {"encoding": encoding} if encoding else {}
    df = pyogrio.read_dataframe(path, layer=layer, fid_as_index=path.suffix == ".gpkg", **kw)
    out = {}
    for idx, row in df.iterrows():
        d = row.to_dict()
        fid = int(idx) if path.suffix == ".gpkg" else int(float(d.pop("fid")))
        d["__geom"] = d.pop("geometry")
        out[fid] = d
    return out


def unzip(content: bytes, into: Path) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        z.extractall(into)
        return sorted(z.namelist())


def same_attributes(got: dict[int, dict], expected: dict[int, dict], *, truncate: int = 0
                    ) -> None:
    """Same fids, and every expected attribute with the same value (`truncate`: Shapefile's
    10-character field names)."""
    assert set(got) == set(expected) and got, (sorted(got)[:10], sorted(expected)[:10])
    for fid, props in expected.items():
        row = got[fid]
        for k, v in props.items():
            if k == "__geom":
                continue
            name = k[:truncate] if truncate else k
            assert name in row, (fid, k, sorted(row))
            assert norm(row[name]) == norm(v), (fid, k, row[name], v)
