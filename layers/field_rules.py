"""The `field_access` publish option: attributes of a published layer stricter than the layer.

CLI `--field-access right_holder=restricted,right_type=restricted`, form field `field_access`
(the same text, or a JSON object). Attributes are named as in the source file (the original
name, Chinese included) or as the layer's column; the rules are stored per layer in
`geoplat_published.field_access` ({column: level}) and enforced on every surface by
services/access/fields.py. Empty: the previous version's rules (for the columns still there).
"""

from __future__ import annotations

import json
from typing import Any

from geoplat_settings import PlacesMapping
from geoplat_settings.federation import ACCESS_ORDER
from layers.catalogue import LEVELS
from layers.errors import PublishError, printable

MAX_RULES = 200


def parse_field_access(text: str | None) -> dict[str, str] | None:
    """`a=restricted,b=registered` or `{"a": "restricted"}` -> {a: restricted}; empty: None
    (keep the previous rules); `none`: {} (no rule)."""
    text = (text or "").strip()
    if not text:
        return None
    if text.lower() == "none":
        return {}
    if len(text) > 8000:
        raise PublishError("field_access: too long", 400)
    rules: dict[str, Any]
    if text.startswith("{"):
        try:
            rules = json.loads(text)
        except ValueError:
            raise PublishError("field_access: not a JSON object", 400) from None
        if not isinstance(rules, dict):
            raise PublishError("field_access: not a JSON object", 400)
    else:
        rules = {}
        for part in text.split(","):
            name, sep, level = part.partition("=")
            if not sep or not name.strip():
                raise PublishError("field_access: write attribute=level, separated by commas "
                                   f"(got {printable(part, 60)!r})", 400)
            rules[name.strip()] = level.strip()
    if len(rules) > MAX_RULES:
        raise PublishError(f"field_access: at most {MAX_RULES} attributes", 400)
    for name, level in rules.items():
        if level not in LEVELS:
            raise PublishError(f"field_access: the level of {printable(str(name), 60)!r} must be "
                               f"one of {', '.join(LEVELS)}", 400)
    return {str(k): str(v) for k, v in rules.items()}


def resolve(rules: dict[str, str] | None, previous: dict[str, str] | None,
            columns: dict[str, str], access: str,
            places: PlacesMapping | bool | None) -> dict[str, str]:
    """The rules to store for a new version: {column: level}.

    `columns`: the version's {column: original name}; `rules` None keeps `previous` for the
    columns still there. Refused (400, nothing published): an unknown attribute, a level not
    stricter than the layer's `access`, an attribute the places mapping reads (the gazetteer is
    searched by everyone who may see the layer)."""
    if rules is None:
        kept = {c: lvl for c, lvl in (previous or {}).items()
                if c in columns and ACCESS_ORDER[lvl] > ACCESS_ORDER[access]}
        return kept
    by_name = {title: col for col, title in columns.items()}
    out: dict[str, str] = {}
    for name, level in rules.items():
        col = name if name in columns else by_name.get(name)
        if col is None:
            raise PublishError(f"field_access names an attribute the data lacks: "
                               f"{printable(name, 60)}", 400)
        if ACCESS_ORDER[level] <= ACCESS_ORDER[access]:
            raise PublishError(f"field_access: {printable(name, 60)} must be stricter than the "
                               f"layer's access {access}", 400)
        out[col] = level
    if isinstance(places, PlacesMapping):
        read = {by_name.get(c, c) for c in places.all_columns()}
        clash = sorted(read & set(out))
        if clash:
            raise PublishError("field_access: the places mapping reads "
                               f"{', '.join(columns[c] for c in clash)}, which everyone who may "
                               "see the layer can search; restrict other attributes", 400)
    return out
