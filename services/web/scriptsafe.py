"""The one encoder for values written into a `<script>` (pages, the Tianditu script prefix).

JSON with `<`, `>`, `&`, `'`, U+2028 and U+2029 as `\\u` escapes, so no value can close the
script, open a comment or end a line. pygeoapi's templates get it through
nodes/security_headers.py (which re-exports it); the SDK routes (services/web/sdk_routes.py)
use it directly.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

# What is left of a JSON text that could end a <script>, start an HTML comment or entity,
# break out of a quoted attribute, or end a JS line in an old engine.
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   ord("'"): "\\u0027", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _json_default(value: Any) -> Any:
    from pygeoapi.util import json_serial  # dates, decimals, bytes as pygeoapi writes them

    return json_serial(value)


def script_json(value: Any, pretty: bool = False) -> Markup:
    """`value` as a JavaScript expression that is safe anywhere inside a `<script>` element."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False,
                      indent=4 if pretty else None, separators=(",", ":"))
    return Markup(text.translate(_SCRIPT_ESCAPES))
