"""Indexes of the gazetteer tables (services.places.schema), created after a (re)build; owned
by the query layer, which knows what its queries need.

pg_trgm is weak for Chinese: a name without spaces is one "word", so 杭州市民中心 gives 7
trigrams and a 1-2 character query none that a GIN index can use (`LIKE '%西湖%'` reads the
whole index). So the text index is a GIN over `geoplat_grams(name_norm, aliases)`, an
IMMUTABLE SQL function giving the character unigrams and bigrams of the name and its aliases
(services.places.text.grams is its Python twin): a 1-character query is `@> ARRAY['杭']`, a
longer one `@>` all its bigrams (substring candidates, confirmed by `strpos`), then ranked.
Prefix type-ahead uses B-trees with text_pattern_ops (name_norm, pinyin); door plates a B-tree
on (road_norm, number_int); places a GiST on geom (bbox pre-filters), a partial one for the
nearest POI of a reverse geocode (a KNN scan over all places filtered by kind walks past every
door plate before it finds a POI; door plates are most of the rows and need none of their own),
and one on the shape of roads (the nearest road: with only the general shape index the
planner, misjudging `kind = 'road' AND shape IS NOT NULL` as a few rows, sorted all 5,000 roads
of the 1M benchmark instead of a KNN scan, 16 ms a query).
"""

from __future__ import annotations

from typing import Any

GRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION geoplat_grams(name text, aliases text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT coalesce(array_agg(DISTINCT g), '{}'::text[]) FROM (
    SELECT substr(t, i, 1) AS g FROM unnest(name || aliases) AS t,
           generate_series(1, length(t)) AS i
    UNION ALL
    SELECT substr(t, i, 2) FROM unnest(name || aliases) AS t,
           generate_series(1, length(t) - 1) AS i) AS s $$;
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS geoplat_places_geom ON geoplat_places USING gist (geom);
CREATE INDEX IF NOT EXISTS geoplat_places_geom_poi ON geoplat_places USING gist (geom)
    WHERE kind = 'poi';
CREATE INDEX IF NOT EXISTS geoplat_places_shape ON geoplat_places USING gist (shape)
    WHERE shape IS NOT NULL;
CREATE INDEX IF NOT EXISTS geoplat_places_shape_road ON geoplat_places USING gist (shape)
    WHERE kind = 'road' AND shape IS NOT NULL;
CREATE INDEX IF NOT EXISTS geoplat_places_kind ON geoplat_places (kind);
CREATE INDEX IF NOT EXISTS geoplat_places_grams ON geoplat_places
    USING gin (geoplat_grams(name_norm, aliases));
CREATE INDEX IF NOT EXISTS geoplat_places_name_prefix ON geoplat_places
    (name_norm text_pattern_ops);
CREATE INDEX IF NOT EXISTS geoplat_places_pinyin_prefix ON geoplat_places
    (pinyin text_pattern_ops) WHERE pinyin IS NOT NULL;
CREATE INDEX IF NOT EXISTS geoplat_places_door ON geoplat_places (road_norm, number_int)
    WHERE kind = 'address';
CREATE INDEX IF NOT EXISTS geoplat_places_road_name ON geoplat_places (name_norm)
    WHERE kind = 'road';
CREATE INDEX IF NOT EXISTS geoplat_places_county ON geoplat_places (county_code);
CREATE INDEX IF NOT EXISTS geoplat_places_city ON geoplat_places (city_code);
CREATE INDEX IF NOT EXISTS geoplat_places_category ON geoplat_places (category)
    WHERE category IS NOT NULL;
CREATE INDEX IF NOT EXISTS geoplat_divisions_parent ON geoplat_divisions (parent_code);
CREATE INDEX IF NOT EXISTS geoplat_divisions_name ON geoplat_divisions (name_norm);
CREATE INDEX IF NOT EXISTS geoplat_divisions_short ON geoplat_divisions (short_name);
CREATE INDEX IF NOT EXISTS geoplat_divisions_boundary ON geoplat_divisions
    USING gist (boundary);
"""


def create(cur: Any) -> None:
    """Create the function and the indexes (idempotent) with an open cursor of the node
    database, then ANALYZE both tables so that the planner uses them at once."""
    cur.execute(GRAMS_FUNCTION)
    cur.execute(INDEXES)
    cur.execute("ANALYZE geoplat_places")
    cur.execute("ANALYZE geoplat_divisions")
