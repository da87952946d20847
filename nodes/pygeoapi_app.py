"""pygeoapi inside a node: its config, its remaining patches, its Starlette app.

pygeoapi reads `PYGEOAPI_CONFIG` and `PYGEOAPI_OPENAPI` once, when `pygeoapi.starlette_app` is
first imported, and keeps them in module globals; so one process serves exactly one node, and
this is the one place that sets them, just before that import.

The patches pygeoapi still needs (each in its own module, with a test in
tests/test_pygeoapi_patches.py that fails when pygeoapi changes under it):
- nodes/providers/crs.py `install_transformer_cache`: pyproj transformers cached;
- nodes/providers/features.py `install_queryable_titles`: original attribute names as titles;
- nodes/templates.py `install_page_rendering`: script-safe JSON, CSP nonces, each API's config;
- nodes/providers/csv_export.py `install`: `?f=csv` without spreadsheet formulas;
- services/registry/web.py `execute_with_viewer`: the catalogue per caller (installed by
  `install_catalogue_viewer` once the node's access control exists);
- services/analysis/caller.py `execute_with_caller`: OGC API Processes calls with the caller
  a job belongs to, and `with_content_type` for pygeoapi 0.21's header-less `delete_job`
  (tests/analysis/test_analysis_pure.py fails when pygeoapi fixes it).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from nodes.providers import csv_export
from nodes.providers.crs import install_transformer_cache
from nodes.providers.features import install_queryable_titles
from nodes.templates import install_page_rendering
from services.access.control import AccessControl
from services.access.fields import execute_with_field_rights
from services.analysis.caller import execute_with_caller
from services.registry.web import execute_with_viewer


def load_pygeoapi(node_dir: Path) -> ModuleType:
    """pygeoapi's `starlette_app` module configured for the node in `node_dir`."""
    os.environ["PYGEOAPI_CONFIG"] = str(node_dir / "pygeoapi.yml")
    os.environ["PYGEOAPI_OPENAPI"] = str(node_dir / "openapi.yml")
    install_transformer_cache()
    install_queryable_titles()  # original attribute names as queryable titles (issue 6)
    install_page_rendering(node_dir)  # script-safe JSON, CSP nonces, each API's own config (issue 11)
    csv_export.install()  # ?f=csv without spreadsheet formulas (issue 11)
    # imported by name, here: it reads the two variables above at import
    return importlib.import_module("pygeoapi.starlette_app")


def install_catalogue_viewer(server: Any, control: AccessControl) -> None:
    """Catalogue (OGC API Records) calls run with the caller's viewer (services/registry);
    calls on a collection with attribute rules with the caller's attribute rights
    (services/access/fields.py); calls of OGC API Processes with the caller a job belongs to
    (services/analysis/caller.py)."""
    if not hasattr(server.execute_from_starlette, "__wrapped__"):
        server.execute_from_starlette = execute_with_caller(execute_with_field_rights(
            execute_with_viewer(server.execute_from_starlette, control), control), control)
