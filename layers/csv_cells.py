"""CSV cells no spreadsheet evaluates: text starting like a formula (`=`, `+`, `-`, `@`, tab,
CR) gets a leading `'` (OWASP CSV injection); numbers pass unchanged. For every CSV the
platform writes: pygeoapi's items CSV (nodes/providers/csv_export.py), downloads and `extract`
(services/analysis/exports.py), `join-statistics` (services/analysis/thematic.py)."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
