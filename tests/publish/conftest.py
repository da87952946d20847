"""Fixtures shared by the publishing tests (the shared federation's `ctx` is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def base(urls: dict[str, str]) -> str:
    """The Hangzhou node's base URL, where these tests publish."""
    return urls["hangzhou"]
