"""The publishing error (its own light module: the CLI imports it without pandas or shapely)."""

from __future__ import annotations


class PublishError(Exception):
    """A publish refused or failed; nothing changed. `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message, self.status = message, status


def printable(text: str, limit: int = 300) -> str:
    """`text` with non-printable characters (NUL, control characters, lone surrogates) escaped
    and cut to `limit`: storable, and legible, in the audit trail and the registry."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]
