"""Federation config: typed loading, variable substitution, validation errors located by file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nodes import settings as settings_mod
from nodes.schema import SCHEMA_DIR, render, schemas

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "config" / "federation.yml").read_text(encoding="utf-8"))


def run_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli", "config", "validate", str(path)],
                          check=False, capture_output=True, text=True, cwd=ROOT)


def broken(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    mutate(raw)
    path = tmp_path / "federation.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_config_is_valid() -> None:
    res = run_validate(ROOT / "config" / "federation.yml")
    assert res.returncode == 0, res.stderr
    s = settings_mod.load(ROOT / "config" / "federation.yml")
    assert [n.id for n in s.nodes] == ["national", "zhejiang", "hangzhou"]
    assert [n.port for n in s.nodes] == [8000, 8100, 8200]
    assert s.node("hangzhou").parent == "zhejiang"
    for node in s.nodes:
        assert settings_mod.load_layers(s, node), f"{node.id} has no layers"


def _set(path: list, value):
    def mutate(raw):
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate, key, words", [
    (_set(["nodes", 2, "parent"], "shanghai"), "nodes.2.parent", "unknown parent"),
    (_set(["nodes", 0, "parent"], "hangzhou"), "nodes.0.parent", "cycle"),
    (_set(["nodes", 1, "port"], "${GEOPLAT_NATIONAL_PORT:-8000}"), "nodes.1.port", "already used"),
    (_set(["nodes", 2, "extent"], {"minx": 100, "miny": 20, "maxx": 101, "maxy": 21}),
     "nodes.2.extent", "outside parent"),
    (_set(["nodes", 1, "tier"], "province"), "nodes.1.tier", "Input should be"),
    (_set(["nodes", 1, "colour"], "red"), "nodes.1.colour", "unknown key"),
    (_set(["nodes", 0, "extent"], {"minx": 136, "miny": 3, "maxx": 73, "maxy": 54}),
     "nodes.0.extent", "minx < maxx"),
    (_set(["nodes", 0, "registry", "compositions", 0, "parts", 1, "node"], "shanghai"),
     "nodes.0.registry.compositions.0.parts.1.node", "unknown node"),
    (_set(["nodes", 0, "registry", "compositions", 0, "id"], "vec"),
     "nodes.0.registry.compositions.0", "e-map layer name"),
])
def test_broken_config_names_file_and_key(tmp_path: Path, mutate, key: str, words: str) -> None:
    path = broken(tmp_path, mutate)
    res = run_validate(path)
    assert res.returncode == 1
    assert f"{path}: {key}: " in res.stderr, res.stderr
    assert words in res.stderr


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "federation.yml"
    path.write_text("nodes:\n  - id: [unclosed\n", encoding="utf-8")
    res = run_validate(path)
    assert res.returncode == 1
    assert f"{path}: line " in res.stderr and "YAML syntax" in res.stderr


def test_broken_layer_file_is_reported(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda raw: None)
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "national.yml").write_text(
        "layers:\n  - id: Bad-Name\n    title: x\n    file: a.gpkg\n    geometry_type: Point\n",
        encoding="utf-8")
    res = run_validate(path)
    assert res.returncode == 1
    assert "national.yml: layers.0.id: " in res.stderr


def test_variable_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOPLAT_ZHEJIANG_PORT", "9100")
    monkeypatch.setenv("HANGZHOU_DATABASE_URL", "postgresql://u:p@db.example:5432/hz")
    s = settings_mod.load(ROOT / "config" / "federation.yml")
    assert s.node("zhejiang").port == 9100
    assert s.node("hangzhou").database_url == "postgresql://u:p@db.example:5432/hz"
    assert s.node("national").database_url is None  # empty default: managed cluster
    assert settings_mod.substitute("${NOPE_NOT_SET:-fallback}", {}) == "fallback"
    with pytest.raises(KeyError):
        settings_mod.substitute("${NOPE_NOT_SET}", {})


def test_json_schemas_are_current() -> None:
    for name, schema in schemas().items():
        on_disk = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert on_disk == render(schema), f"{name} is stale: run `geoplat config schema`"
