"""The publishing error (its own light module: the CLI imports it without pandas or shapely)."""

from __future__ import annotations


class PublishError(Exception):
    """A publish refused or failed; nothing changed. `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status
