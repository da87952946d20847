"""The coverage provider of published GeoTIFF layers (pygeoapi's rasterio provider, fenced).

Mapnik, loaded in every node process, points PROJ_LIB at a directory without proj.db; rasterio
then knows no EPSG code. Each call runs in a rasterio environment aimed at rasterio's own data.
The file served is the COG the publish wrote (layers/cog.py `write_cog`), never the upload;
it must open as a GeoTIFF (a VRT put in its place would read other files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import rasterio
from pygeoapi.provider.base import ProviderConnectionError
from pygeoapi.provider.rasterio_ import RasterioProvider

from layers.cog import rasterio_ready


@contextlib.contextmanager
def proj_env() -> Iterator[None]:
    with rasterio.Env():
        rasterio_ready()
        yield


class COGProvider(RasterioProvider):
    """pygeoapi `RasterioProvider` whose calls see rasterio's proj.db."""

    def __init__(self, provider_def: dict):
        with proj_env():
            super().__init__(provider_def)
        if self._data.driver != "GTiff":
            self._data.close()
            raise ProviderConnectionError("the coverage is not a GeoTIFF")

    def get_fields(self) -> dict:
        with proj_env():
            return super().get_fields()

    def query(self, *args: Any, **kwargs: Any) -> Any:
        with proj_env():
            return super().query(*args, **kwargs)
