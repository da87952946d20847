"""CRS helpers shared by the providers, and a process-wide pyproj Transformer cache.

pygeoapi builds `pyproj.Transformer` objects per request (bbox-crs, filter geometries,
`crs=`); between CGCS2000 and CRS84 one costs 120-620 ms. `install_transformer_cache()`
makes `pyproj.Transformer.from_crs` (and pygeoapi's `get_crs_from_uri`) reuse one
object per argument set for the life of the process.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import pyproj
from pyproj.exceptions import CRSError

LOGGER = logging.getLogger(__name__)

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

_install_lock = threading.Lock()
_installed = False


@functools.lru_cache(maxsize=256)
def crs_from_uri(uri: str) -> pyproj.CRS:
    """A pyproj CRS for an OGC CRS URI or URN (cached; raises CRSError)."""
    url = uri.replace("urn:ogc:def:crs", "http://www.opengis.net/def/crs").replace(":", "/")
    try:
        authority, code = url.rsplit("/", maxsplit=3)[1::2]
        return pyproj.CRS.from_authority(authority, code)
    except (ValueError, CRSError) as err:
        raise CRSError(f"CRS could not be identified from URI {uri!r}") from err


@functools.lru_cache(maxsize=256)
def srid_from_uri(uri: str) -> int:
    """The integer SRID PostGIS knows a CRS URI by (CRS84 -> 4326, EPSG:n -> n)."""
    crs = crs_from_uri(uri)
    auth = crs.to_authority(min_confidence=100)
    if auth and auth[0] == "EPSG":
        return int(auth[1])
    if auth and auth[0] == "OGC" and auth[1] in ("CRS84", "CRS84h"):
        return 4326
    epsg = crs.to_epsg(min_confidence=90)
    if epsg is None:
        raise CRSError(f"no EPSG code for {uri!r}")
    return int(epsg)


@functools.lru_cache(maxsize=256)
def is_lat_first(uri: str) -> bool:
    """Whether the CRS's own (authority) axis order puts latitude/northing first."""
    axes = crs_from_uri(uri).axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


def _arg_key(value: Any) -> Any:
    if isinstance(value, pyproj.CRS):
        # `srs` is the string the CRS was built from; hashing a CRS itself costs a WKT export
        return ("crs", value.srs)
    if isinstance(value, (str, int, float, bool, type(None), tuple)):
        return value
    raise TypeError("uncacheable")


class _PipelineTransformer:
    """A Transformer whose `transform` runs a pre-resolved PROJ pipeline.

    pyproj rebuilds a `from_crs` Transformer in every new thread (about 400 ms for
    CGCS2000<->CRS84: the EPSG database search runs again); one built `from_pipeline`
    costs ~0.2 ms per thread. Everything other than transform/itransform is delegated.
    """

    def __init__(self, full: pyproj.Transformer, fast: pyproj.Transformer):
        self._full = full
        self._fast = fast

    def transform(self, *args: Any, **kwargs: Any) -> Any:
        return self._fast.transform(*args, **kwargs)

    def itransform(self, *args: Any, **kwargs: Any) -> Any:
        return self._fast.itransform(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._full, name)


def _fast(transformer: pyproj.Transformer) -> Any:
    """Wrap a transformer whose operation is grid-free (axis swaps, ballpark, projections)."""
    try:
        definition = transformer.definition
        if not definition or "grid" in definition:
            return transformer
        return _PipelineTransformer(transformer, pyproj.Transformer.from_pipeline(definition))
    except Exception:  # noqa: BLE001 - never make a working transformer fail
        return transformer


def install_transformer_cache(maxsize: int = 128) -> None:
    """Patch pyproj/pygeoapi once per process so CRS objects and Transformers are reused.

    Safe to call many times and from several threads. pyproj Transformers are thread-safe
    (each thread lazily gets its own PROJ object), so sharing them is fine.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        original = pyproj.Transformer.from_crs
        cache: dict[Any, pyproj.Transformer] = {}
        lock = threading.Lock()

        def cached_from_crs(crs_from: Any, crs_to: Any, *args: Any, **kwargs: Any):
            try:
                key = (
                    _arg_key(crs_from),
                    _arg_key(crs_to),
                    tuple(_arg_key(a) for a in args),
                    tuple(sorted((k, _arg_key(v)) for k, v in kwargs.items())),
                )
            except TypeError:
                return original(crs_from, crs_to, *args, **kwargs)
            with lock:
                hit = cache.get(key)
            if hit is not None:
                return hit
            transformer = _fast(original(crs_from, crs_to, *args, **kwargs))
            with lock:
                if len(cache) >= maxsize:
                    cache.pop(next(iter(cache)))
                cache[key] = transformer
            return transformer

        cached_from_crs.__wrapped__ = original  # type: ignore[attr-defined]
        pyproj.Transformer.from_crs = staticmethod(cached_from_crs)  # type: ignore[assignment]

        # pygeoapi resolves the same handful of CRS URIs on every request
        try:
            import pygeoapi.util as pgu

            original_get = pgu.get_crs_from_uri

            @functools.lru_cache(maxsize=256)
            def cached_get_crs_from_uri(uri: str) -> pyproj.CRS:
                return original_get(uri)

            def get_crs_from_uri(uri: str) -> pyproj.CRS:
                if not isinstance(uri, str):
                    return original_get(uri)
                return cached_get_crs_from_uri(uri)

            pgu.get_crs_from_uri = get_crs_from_uri
            # modules that did `from pygeoapi.util import get_crs_from_uri`
            import sys

            for name, module in list(sys.modules.items()):
                if (
                    name.startswith("pygeoapi")
                    and getattr(module, "get_crs_from_uri", None) is original_get
                ):
                    module.get_crs_from_uri = get_crs_from_uri  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover - pygeoapi is always there in a node
            LOGGER.debug("pygeoapi not importable; only pyproj patched")
        _installed = True
