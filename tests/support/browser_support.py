"""The browser fixture of the browser tests (tests/browser/, tests/sdk/): Debian's `chromium`,
driven by Playwright. Each folder's conftest.py imports `browser` from here.

Nothing is downloaded: Playwright launches the system chromium (`make` installs it from apt).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def _chromium() -> str:
    path = os.environ.get("GEOPLAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("Debian's chromium is not installed (it is in APT_PACKAGES: run `make` or "
                    "`apt-get install -y --no-install-recommends chromium`)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium per module."""
    executable = _chromium()
    try:  # here, not at the top: a missing playwright fails these tests with the fix, not an ImportError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: `.venv/bin/pip install -e '.[test]'`", pytrace=False)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
