"""The gazetteer tables of a node's database (the contract between services.places.gazetteer,
which fills them, and services.places.query, which reads them).

`geoplat_places`: one row per searchable thing: divisions (as places too, for search and
geocoding), roads, door plates, POIs and place names of the node's layers. `name_norm`,
`address_norm`, `road_norm` and `aliases` hold services.places.text.normalise() of the text;
`layer` is the source layer (access rules apply to it), NULL for rows made from
`geoplat_divisions` (public). Indexes beyond the primary keys: services.places.indexes.

`geoplat_divisions`: GB/T 2260 divisions (6-digit codes; townships 9 digits, GB/T 10114),
with centre, bbox and boundary where the node has one (`boundary_note` says where boundaries
are the 1999 units of the sample data).
"""

from __future__ import annotations

DDL = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE IF NOT EXISTS geoplat_divisions (
    code text PRIMARY KEY,
    name text NOT NULL,
    name_norm text NOT NULL,
    short_name text NOT NULL,          -- without the 省/市/区/县/镇/街道 suffix: 杭州, 上城
    kind text NOT NULL CHECK (kind IN ('province', 'city', 'county', 'township')),
    parent_code text,
    centre geometry(Point, 4490) NOT NULL,
    bbox geometry(Polygon, 4490),
    boundary geometry(MultiPolygon, 4490),
    boundary_note text,
    source text NOT NULL
);
CREATE TABLE IF NOT EXISTS geoplat_places (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('province', 'city', 'county', 'township', 'road',
                                       'address', 'poi', 'place')),
    name text NOT NULL,
    name_norm text NOT NULL,
    aliases text[] NOT NULL DEFAULT '{}',
    pinyin text,                       -- initials of the name: 杭州市民中心 -> hzsmzx
    address text,
    address_norm text,
    road text,
    road_norm text,
    number text,                       -- door number as written: 2号, 12-3号
    number_int integer,                -- its leading integer, for nearest-number matching
    category text,
    phone text,
    province text, province_code text,
    city text, city_code text,
    county text, county_code text,
    township text, township_code text,
    layer text,
    source_id text,
    geom geometry(Point, 4490) NOT NULL,
    shape geometry(Geometry, 4490),    -- a road's lines; NULL for points
    extra jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- the builder's own: point-in-boundary lookups while it assigns admin chains
CREATE INDEX IF NOT EXISTS geoplat_divisions_boundary ON geoplat_divisions USING gist (boundary);
-- the last build: a build with the same inputs writes nothing (services.places.gazetteer)
CREATE TABLE IF NOT EXISTS geoplat_places_build (
    id int PRIMARY KEY CHECK (id = 1),
    checksum text NOT NULL,
    counts jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
"""
