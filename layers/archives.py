"""Unpacking what users upload: the one dataset of a file or of a checked zip archive.

Archives are unpacked by us, never by GDAL, after checking every entry (paths, symlinks,
sizes, ratio); the sizes the headers claim are checked again as the bytes come out.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from geoplat_settings import PublishSettings
from layers.errors import PublishError

VECTOR_SUFFIXES = {".zip", ".gpkg", ".geojson", ".json", ".csv", ".shp"}
RASTER_SUFFIXES = {".tif", ".tiff"}


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
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
            raise PublishError(f"{path.name}: not a valid zip archive (corrupted data)") from None
        return out



def zlib_error() -> type[Exception]:
    return zlib.error


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
