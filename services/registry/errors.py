"""The registry's errors: records and pushes we refuse, capabilities we cannot harvest."""

from __future__ import annotations

from tiles.errors import OGC_CODES, ProblemError


class RegistryError(ProblemError):
    """A registry request refused: a malformed record or push, an unknown record, a conflict."""

    status = 400
    title = "Bad request"
    code = OGC_CODES[400]
