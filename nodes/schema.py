"""JSON Schemas of the config files, generated from the settings models (never hand-written)."""

from __future__ import annotations

import json
from pathlib import Path

from nodes.settings import PROJECT_ROOT, FederationSettings, LayerFile

SCHEMA_DIR = PROJECT_ROOT / "config" / "schema"


def schemas() -> dict[str, dict]:
    fed = FederationSettings.model_json_schema(mode="validation")
    fed["properties"].pop("config_dir", None)
    fed["title"] = "geoplat federation (config/federation.yml)"
    layers = LayerFile.model_json_schema(mode="validation")
    layers["title"] = "geoplat node layers (config/layers/<node>.yml)"
    return {"federation.schema.json": fed, "layers.schema.json": layers}


def render(schema: dict) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_schemas(out: Path | None = None) -> list[Path]:
    out = out or SCHEMA_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = out / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
