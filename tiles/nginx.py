"""nginx configuration files rendered from Jinja2 templates (tiles/templates/*.j2).

Autoescape is off (nginx is not HTML); instead every value a template interpolates goes
through one of the filters below, which either quote it for nginx or refuse it, so that no
value (a path, a host, a layer name) can end a directive or a block and start another:

- `path`: a file or directory path, for the inside of an nginx double-quoted string (the
  template writes the quotes); refuses control characters (a newline would end the
  directive), `"`, `\\` and `$` (nginx variables);
- `host`: an IP address (IPv6 bracketed) or a DNS name;
- `port`: an integer from 1 to 65535;
- `names`: an alternation `a|b|c` of lowercase identifiers, for regex locations and maps;
- `numbers`: an alternation of non-negative integers; `integer`: one;
- `squoted`: a constant as an nginx single-quoted string (no `'`, `\\` or control characters).

`render(template, **values)` is the one entry point (also for the key configs of
services/access: `render("keys.conf.j2", ...)` once they have a template here).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).resolve().parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class UnsafeValue(ValueError):
    """A value that cannot be written into an nginx config safely."""


def path(value: Any) -> str:
    text = str(value)
    if not text or _CONTROL.search(text) or any(c in text for c in '"\\$'):
        raise UnsafeValue(f"path not usable in an nginx config: {text!r}")
    return text


def host(value: Any) -> str:
    text = str(value)
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        if not _HOSTNAME.match(text):
            raise UnsafeValue(f"not an IP address or host name: {text!r}") from None
        return text
    return f"[{addr}]" if addr.version == 6 else str(addr)


def port(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise UnsafeValue(f"not a TCP port: {value!r}")
    return str(value)


def names(values: Iterable[Any]) -> str:
    out = [str(v) for v in values]
    bad = [v for v in out if not _NAME.match(v)]
    if not out or bad:
        raise UnsafeValue(f"names not usable in an nginx regex: {bad or out!r}")
    return "|".join(out)


def numbers(values: Iterable[Any]) -> str:
    out = list(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in out):
        raise UnsafeValue(f"not non-negative integers: {out!r}")
    return "|".join(str(v) for v in out)


def integer(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnsafeValue(f"not a non-negative integer: {value!r}")
    return str(value)


def squoted(value: Any) -> str:
    text = str(value)
    if _CONTROL.search(text) or "'" in text or "\\" in text:
        raise UnsafeValue(f"text not usable as an nginx string: {text!r}")
    return f"'{text}'"


# autoescape off: nginx, not HTML; every value goes through a filter below
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False,
                   undefined=StrictUndefined, keep_trailing_newline=True,
                   trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(path=path, host=host, port=port, names=names, numbers=numbers,
                    integer=integer, squoted=squoted)


def render(template: str, **values: Any) -> str:
    """The text of `template` (a file in tiles/templates) with `values`."""
    return _ENV.get_template(template).render(**values)
