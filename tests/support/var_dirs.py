"""Where the tests' var/ directories live: not under pytest's tmp dirs (mode 0700, root), which
the nodes' unprivileged user could not enter when the suite runs as root (nodes/privileges.py)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

_root: list[Path] = []


def var_dir_for(base: Path) -> Path:
    """The var/ of a test whose files are under `base`: the same path for the same `base`."""
    if not _root:
        root = Path(tempfile.mkdtemp(prefix="geoplat-test-var-"))
        root.chmod(0o755)
        _root.append(root)
    return _root[0] / hashlib.sha1(str(Path(base).resolve()).encode()).hexdigest()[:12] / "var"


def remove_all() -> None:
    """At the end of the session: every var/ made here."""
    for root in _root:
        shutil.rmtree(root, ignore_errors=True)
    _root.clear()
