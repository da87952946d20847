"""The front door's nginx.conf from its Jinja2 template (tiles/nginx.py): every interpolated value
is quoted or refused, so no path, host, port or layer name can inject a directive."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tiles import nginx
from tiles.frontdoor import NGINX, FrontDoor


def _nginx_t(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf),
                           "-e", str(prefix / "logs" / "error.log")],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("fast_path", [True, False])
def test_config_is_valid_nginx(tmp_path: Path, fast_path: bool) -> None:
    fd = FrontDoor(tmp_path / "node", "127.0.0.1", 18080)
    conf = fd.write_config(tmp_path / "cache", fast_path=fast_path)
    done = _nginx_t(conf, fd.prefix)
    assert done.returncode == 0, done.stderr
    text = conf.read_text(encoding="utf-8")
    assert ("location ~ \"^/wmts/(?<l>vec|cva|img|cia|ter|cta)/" in text) is fast_path


def test_odd_but_legal_paths_stay_one_token(tmp_path: Path) -> None:
    """`;`, `}`, `{`, `#` and spaces in a directory name are quoted: nginx reads the same blocks."""
    odd = tmp_path / "a; root /etc} {#x y"
    fd = FrontDoor(odd / "node", "127.0.0.1", 18080)
    conf = fd.write_config(odd / "cache")
    done = _nginx_t(conf, fd.prefix)
    assert done.returncode == 0, done.stderr
    assert f'root "{odd / "cache"}";' in conf.read_text(encoding="utf-8")


@pytest.mark.parametrize("value", [
    "/tmp/x\n    root /etc;", "/tmp/x\";root /etc;#", "/tmp/$document_root", "/tmp/x\\", "",
    "/tmp/\r/x",
])
def test_hostile_paths_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(nginx.UnsafeValue):
        nginx.render("nginx.conf.j2", prefix=Path("/tmp/p"), socket=Path("/tmp/s"),
                     host="127.0.0.1", port=80, cache_dir=value, fast_path=True,
                     layers=("vec",), png=("vec",), jpeg=("img",), levels=(1,), ogc_400="x")


@pytest.mark.parametrize(("filt", "value"), [
    ("host", "127.0.0.1; root /etc"), ("host", "a}b"), ("host", "x\nlisten 80"), ("host", "a b"),
    ("port", "80; root /etc"), ("port", 0), ("port", 70000), ("port", True),
    ("names", ["vec", "x)|.*"]), ("names", ["vec;"]), ("names", []), ("names", ["Vec}"]),
    ("numbers", [1, "2|.*"]), ("numbers", [-1]),
    ("squoted", "it's"), ("squoted", "a\nb"), ("squoted", "a\\';"),
])
def test_hostile_values_are_refused(filt: str, value: object) -> None:
    with pytest.raises(nginx.UnsafeValue):
        getattr(nginx, filt)(value)


def test_filters_pass_what_nodes_use() -> None:
    assert nginx.host("0.0.0.0") == "0.0.0.0"
    assert nginx.host("::1") == "[::1]"
    assert nginx.host("node-1.example.org") == "node-1.example.org"
    assert nginx.port(8100) == "8100"
    assert nginx.names(["vec", "cva_2"]) == "vec|cva_2"
    assert nginx.path("/var/lib/geoplat/nodes/x y;z") == "/var/lib/geoplat/nodes/x y;z"
