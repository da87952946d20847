"""Writing layers of a node's PostGIS to files with GDAL (pyogrio's Arrow path), in batches.

Shared by the process `extract` (services/analysis/extract.py) and the downloads of OGC API
Features (`/ogc/collections/{id}/items?f=gpkg|shp|csv|kml|fgb`, services/analysis/downloads.py).
A layer comes as `LayerData`: its attribute columns (name, PostgreSQL type), its geometry type
and its rows in batches from a server-side cursor, each row `(WKB, *values)`; each batch
becomes one Arrow record batch that GDAL writes (`pyogrio.write_arrow` over a
RecordBatchReader: one pass, never the whole layer in memory).

Files: GeoPackage one file, one table per layer; Shapefile one zip holding .shp/.shx/.dbf/.prj/
.cpg per layer (the .cpg always: UTF-8, or GBK for old desktop tools); GeoJSON, CSV (geometry as
WKT in column `WKT`, text that a spreadsheet would run as a formula neutralised), KML, DXF
(geometry only: DXF has no attributes) and FlatGeobuf one file per layer, zipped when there is
more than one.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyogrio

from layers.csv_cells import neutralise


@dataclass(frozen=True)
class Format:
    key: str
    driver: str
    ext: str
    media_type: str
    attributes: bool = True  # DXF: geometry only


FORMATS = {f.key: f for f in (
    Format("gpkg", "GPKG", ".gpkg", "application/geopackage+sqlite3"),
    Format("shp", "ESRI Shapefile", ".shp", "application/zip"),
    Format("geojson", "GeoJSON", ".geojson", "application/geo+json"),
    Format("csv", "CSV", ".csv", "text/csv; charset=utf-8"),
    Format("kml", "KML", ".kml", "application/vnd.google-earth.kml+xml"),
    Format("dxf", "DXF", ".dxf", "image/vnd.dxf", attributes=False),
    Format("fgb", "FlatGeobuf", ".fgb", "application/flatgeobuf"),
)}
ZIP = "application/zip"
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
ENCODINGS = {"UTF-8": "UTF-8", "UTF8": "UTF-8", "GBK": "GBK", "CP936": "GBK"}
BATCH = 2000


_INTEGER = ("smallint", "integer", "bigint")
_FLOAT = ("real", "double precision", "numeric")
_TEXT = ("text", "character varying", "character")


def arrow_type(pgtype: str) -> pa.DataType:
    if pgtype in _INTEGER:
        return pa.int64()
    if pgtype in _FLOAT:
        return pa.float64()
    if pgtype == "boolean":
        return pa.bool_()
    return pa.string()


def select_expression(column: str, pgtype: str) -> str:
    """The SQL that reads `column` as the Arrow type of `arrow_type` (other types as text);
    `column` is quoted by the caller (psycopg2.sql)."""
    if pgtype in _INTEGER or pgtype == "boolean":
        return "{}"
    if pgtype in _FLOAT:
        return "{}::double precision"
    return "{}::text"


def media_type_of(name: str) -> str:
    """The Content-Type of a result file, by its name."""
    if name.endswith(".zip"):
        return ZIP
    for f in FORMATS.values():
        if f.key != "shp" and name.endswith(f.ext):
            return f.media_type
    return "application/octet-stream"


def ogr_geometry_type(postgis_type: str | None) -> str:
    """OGR's name of a PostGIS geometry type (`geometry_columns.type`); Unknown for GEOMETRY."""
    names = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon",
             "MULTIPOINT": "MultiPoint", "MULTILINESTRING": "MultiLineString",
             "MULTIPOLYGON": "MultiPolygon"}
    return names.get((postgis_type or "").upper(), "Unknown")


@dataclass
class LayerData:
    name: str  # the output layer (file or table) name
    columns: Sequence[tuple[str, str]]  # attributes: (name, PostgreSQL type)
    geometry_type: str  # OGR's name
    batches: Iterable[Sequence[Sequence[Any]]]  # rows (WKB, *values), batch by batch
    count: int = 0  # features written (set while writing)


@dataclass(frozen=True)
class Written:
    name: str
    path: Path
    size: int
    media_type: str


Progress = Callable[[str, int], None]  # (layer, features written so far)


def _reader(layer: LayerData, fmt: Format, progress: Progress) -> pa.RecordBatchReader:
    cols = list(layer.columns) if fmt.attributes else []
    schema = pa.schema([pa.field("geometry", pa.binary()),
                        *[pa.field(n, arrow_type(t)) for n, t in cols]])
    text = [fmt.key == "csv" and arrow_type(t) == pa.string() for _, t in cols]

    def batches() -> Iterator[pa.RecordBatch]:
        for rows in layer.batches:
            if not rows:
                continue
            arrays = [pa.array([None if r[0] is None else bytes(r[0]) for r in rows],
                               pa.binary())]
            for i, (_, t) in enumerate(cols):
                values = [r[i + 1] for r in rows]
                if text[i]:
                    values = [neutralise(v) for v in values]
                arrays.append(pa.array(values, arrow_type(t)))
            layer.count += len(rows)
            progress(layer.name, layer.count)
            yield pa.record_batch(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _write_one(path: Path, layer: LayerData, fmt: Format, crs: int, encoding: str,
               progress: Progress) -> None:
    options: dict[str, Any] = {}
    if fmt.key == "csv":
        options["layer_options"] = {"GEOMETRY": "AS_WKT"}
    if fmt.key == "shp":
        options["encoding"] = encoding  # GDAL writes it to the .cpg
    if fmt.key == "geojson":
        options["layer_options"] = {"WRITE_BBOX": "YES"}
    pyogrio.write_arrow(_reader(layer, fmt, progress), str(path), layer=layer.name,
                        driver=fmt.driver, geometry_name="geometry",
                        geometry_type=layer.geometry_type, crs=f"EPSG:{crs}", **options)
    if fmt.key == "shp" and not path.with_suffix(".cpg").exists():
        path.with_suffix(".cpg").write_text(encoding, encoding="ascii")


def _zip(target: Path, members: Iterable[tuple[Path, str]]) -> None:
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arcname in members:
            z.write(path, arcname)
    tmp.replace(target)


def write(fmt_key: str, directory: Path, stem: str, layers: Sequence[LayerData], crs: int,
          encoding: str = "UTF-8", progress: Progress = lambda layer, n: None) -> list[Written]:
    """Write `layers` into `directory` as format `fmt_key`; the files made (see the module's
    description for which). `layers` names are distinct, safe file names."""
    fmt = FORMATS[fmt_key]
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".writing-", dir=directory))
    try:
        if fmt.key == "gpkg":
            path = work / f"{stem}.gpkg"
            for layer in layers:
                _write_one(path, layer, fmt, crs, encoding, progress)
            outputs = [(path, path.name, fmt.media_type)]
        else:
            files: list[tuple[Path, str]] = []
            for layer in layers:
                path = work / f"{layer.name}{fmt.ext}"
                _write_one(path, layer, fmt, crs, encoding, progress)
                if fmt.key == "shp":
                    files += [(path.with_suffix(s), path.with_suffix(s).name)
                              for s in SHAPEFILE_PARTS if path.with_suffix(s).exists()]
                else:
                    files.append((path, path.name))
            if fmt.key == "shp" or len(files) > 1:
                target = work / f"{stem}.zip"
                _zip(target, files)
                outputs = [(target, target.name, ZIP)]
            else:
                outputs = [(files[0][0], files[0][1], fmt.media_type)]
        out = []
        for path, name, media in outputs:
            final = directory / name
            path.replace(final)
            out.append(Written(name, final, final.stat().st_size, media))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
