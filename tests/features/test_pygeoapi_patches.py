"""The pygeoapi internals our remaining patches replace or wrap are the ones they were written
against (nodes/pygeoapi_app.py lists the patches): a pygeoapi upgrade that changes any of them
fails here, naming the patch to re-check, instead of silently changing a node's behaviour.

The code is read from pygeoapi's source files (not imported: `pygeoapi.starlette_app` reads its
config at import) and each patched definition is compared by its SHA-256.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import pygeoapi
import pyproj
import pytest

ROOT = Path(pygeoapi.__file__).parent

# (file below pygeoapi/, definition, its hash, the patch that relies on it)
PATCHED = [
    ("api/itemtypes.py", "get_collection_queryables", "82b99a660cf13267",
     "nodes/providers/features.py install_queryable_titles"),
    ("util.py", "render_j2_template", "6a9921c5128c1bea",
     "nodes/templates.py install_page_rendering (pygeoapi.util.Environment)"),
    ("l10n.py", "translate_struct", "51b06fd21b787356",
     "nodes/templates.py install_page_rendering (pygeoapi.l10n.translate_struct)"),
    ("starlette_app.py", "execute_from_starlette", "e230d00fa13ff011",
     "services/registry/web.py execute_with_viewer; services/access/views.py"),
    ("util.py", "get_crs_from_uri", "74ffa30ea48b7dc3",
     "nodes/providers/crs.py install_transformer_cache (cached CRS lookups)"),
    ("formatter/csv_.py", "CSVFormatter", "2615c72a8d37242d",
     "nodes/providers/csv_export.py install (replaces the CSV formatter)"),
]


def definition_hash(path: Path, name: str) -> str:
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and node.name == name:
            segment = ast.get_source_segment(source, node) or ""
            return hashlib.sha256(segment.encode()).hexdigest()[:16]
    raise AssertionError(f"{name} is gone from {path}")


def test_pygeoapi_is_the_pinned_version() -> None:
    assert pygeoapi.__version__ == "0.21.0"


@pytest.mark.parametrize(("file", "name", "digest", "patch"), PATCHED,
                         ids=[f"{f}:{n}" for f, n, _, _ in PATCHED])
def test_patched_definition_unchanged(file: str, name: str, digest: str, patch: str) -> None:
    assert definition_hash(ROOT / file, name) == digest, (
        f"pygeoapi's {file}:{name} changed: re-check {patch}, then update the hash")


def test_render_uses_the_environment_name_we_replace() -> None:
    """install_page_rendering swaps `pygeoapi.util.Environment`, which render_j2_template
    must look up by that module-level name."""
    source = (ROOT / "util.py").read_text(encoding="utf-8")
    assert "from jinja2 import Environment" in source and "env = Environment(" in source


def test_csv_formatter_is_registered_by_name() -> None:
    """csv_export.install replaces PLUGINS['formatter']['CSV'], looked up on every ?f=csv."""
    source = (ROOT / "plugin.py").read_text(encoding="utf-8")
    assert "'CSV': 'pygeoapi.formatter.csv_.CSVFormatter'" in source


def test_transformer_cache_wraps_the_signature_it_keys_on() -> None:
    """install_transformer_cache keys pyproj.Transformer.from_crs calls by their arguments."""
    params = list(inspect.signature(pyproj.Transformer.from_crs).parameters)
    assert params[:3] == ["crs_from", "crs_to", "always_xy"]


def test_the_provider_names_in_the_runtime_are_pygeoapi_providers() -> None:
    """Published layers are served by the classes the runtime names (a moved provider module
    would otherwise leave published layers unserved)."""
    import importlib

    from pygeoapi.provider.base import BaseProvider
    from pygeoapi.provider.tile import BaseTileProvider

    from nodes.pygeoapi_config import PROVIDERS

    for field, dotted in PROVIDERS.model_dump().items():
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, (BaseProvider, BaseTileProvider)), (field, dotted)
