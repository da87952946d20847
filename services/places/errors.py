"""The one error of the places query layer: an argument it refuses.

`PlacesInputError(infocode, message)`: `infocode` is Tianditu's `status.infocode` number
(the Tianditu routes answer `{"status": {"infocode": ..., "cndesc": message}}`); as a
`ProblemError` it is also a 400 with an RFC 9457 body (`response()`), whose `infocode` member
carries the same number. Note: `.code` is the base class's OGC exception code
("InvalidParameterValue"), not the infocode; read `.infocode`.

Messages are fixed strings chosen by the query layer (a parameter *name* at most, never the
caller's text), so they are safe to show.
"""

from __future__ import annotations

from tiles.errors import ProblemError

__all__ = ["BAD_ENUM", "BAD_LONLAT", "BAD_PARAMETER", "MISSING", "OUT_OF_RANGE", "OVERFLOW",
           "PlacesInputError"]

BAD_PARAMETER = 2001   # 参数错误 (malformed, wrong type, NUL bytes, too long)
MISSING = 2003         # 参数缺失
BAD_ENUM = 2004        # 参数值不在枚举范围内
BAD_LONLAT = 2005      # 经纬度错误
OUT_OF_RANGE = 2006    # 超出范围 (radius, polygon points, count)
OVERFLOW = 2007        # start/count 超限


class PlacesInputError(ProblemError):
    """An argument the query layer refuses; nothing was read or changed."""

    status = 400
    title = "Bad Request"
    code = "InvalidParameterValue"

    def __init__(self, infocode: int, message: str, *, param: str | None = None):
        super().__init__(400, "Bad Request", message, infocode=infocode)
        self.infocode = infocode
        self.message = message
        self.locator = param
