"""Indexes of the gazetteer tables (services.places.schema), created after a (re)build; owned
by the query layer, which knows what its queries need."""

from __future__ import annotations

INDEXES = """
CREATE INDEX IF NOT EXISTS geoplat_places_geom ON geoplat_places USING gist (geom);
CREATE INDEX IF NOT EXISTS geoplat_places_kind ON geoplat_places (kind);
CREATE INDEX IF NOT EXISTS geoplat_divisions_parent ON geoplat_divisions (parent_code);
"""


def create(cur) -> None:
    """Create the indexes (idempotent) with an open cursor of the node database."""
    cur.execute(INDEXES)
