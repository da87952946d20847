"""Fixtures of the analysis tests: they run on the shared federation's Hangzhou node."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def hz(urls) -> str:
    return urls["hangzhou"]
