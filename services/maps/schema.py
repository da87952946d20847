"""Tables of the routing topology (services/maps/topology.py writes them, routing.py reads).

- `geoplat_route_edges`: the noded road network, one row per edge between two vertices:
  driving cost in seconds along (`cost`) and against (`reverse_cost`) the digitised direction,
  -1 where one-way forbids it (pgRouting's convention); `walk_cost` in seconds both ways, -1 on
  roads closed to pedestrians; `drive_main`/`walk_main`/`street_main`: the edge is in the
  largest strongly connected part of the driving graph, the largest connected part of the
  walking graph, the largest strongly connected part of the driving graph without the roads
  closed to pedestrians (Tianditu's style 2, no highways): points snap only to those, so that
  a route exists;
- `geoplat_route_graph`: what pgRouting reads per route, narrow and in spatial order (a point
  on each edge as x/y with a B-tree): 21,000 edges of a box are read in 9 ms where the edges
  table with its geometries took 120 ms; `major`: a road of a class driven at 40 km/h or more;
- `geoplat_route_vertices`: the vertices (pgRouting ids);
- `geoplat_route_build`: the checksum of the inputs of the last build and its figures.
"""

from __future__ import annotations

DDL = """
CREATE TABLE IF NOT EXISTS geoplat_route_edges (
    id bigint PRIMARY KEY,
    source bigint NOT NULL,
    target bigint NOT NULL,
    cost double precision NOT NULL,
    reverse_cost double precision NOT NULL,
    walk_cost double precision NOT NULL,
    length_m double precision NOT NULL,
    name text,
    kind text,
    oneway smallint NOT NULL DEFAULT 0,
    layer text NOT NULL,
    source_fid bigint,
    drive_main boolean NOT NULL DEFAULT false,
    walk_main boolean NOT NULL DEFAULT false,
    street_main boolean NOT NULL DEFAULT false,
    major boolean NOT NULL DEFAULT false,
    geom geometry(LineString, 4490) NOT NULL
);
ALTER TABLE geoplat_route_edges ADD COLUMN IF NOT EXISTS street_main boolean NOT NULL DEFAULT false;
ALTER TABLE geoplat_route_edges ADD COLUMN IF NOT EXISTS major boolean NOT NULL DEFAULT false;
CREATE TABLE IF NOT EXISTS geoplat_route_vertices (
    id bigint PRIMARY KEY,
    geom geometry(Point, 4490) NOT NULL
);
CREATE TABLE IF NOT EXISTS geoplat_route_graph (
    id bigint PRIMARY KEY,
    source bigint NOT NULL,
    target bigint NOT NULL,
    cost double precision NOT NULL,
    reverse_cost double precision NOT NULL,
    walk_cost double precision NOT NULL,
    length_m double precision NOT NULL,
    major boolean NOT NULL,
    x double precision NOT NULL,
    y double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS geoplat_route_build (
    id integer PRIMARY KEY CHECK (id = 1),
    checksum text NOT NULL,
    figures jsonb NOT NULL DEFAULT '{}',
    built_at timestamptz NOT NULL DEFAULT now()
);
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS geoplat_route_edges_geom ON geoplat_route_edges USING gist (geom);
CREATE INDEX IF NOT EXISTS geoplat_route_edges_drive ON geoplat_route_edges USING gist (geom)
    WHERE drive_main;
CREATE INDEX IF NOT EXISTS geoplat_route_edges_walk ON geoplat_route_edges USING gist (geom)
    WHERE walk_main;
CREATE INDEX IF NOT EXISTS geoplat_route_edges_street ON geoplat_route_edges USING gist (geom)
    WHERE street_main;
"""

CREATE_GRAPH = """
INSERT INTO geoplat_route_graph (id, source, target, cost, reverse_cost, walk_cost, length_m,
                                 major, x, y)
SELECT id, source, target, cost, reverse_cost, walk_cost, length_m, major,
       ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))
FROM geoplat_route_edges ORDER BY ST_GeoHash(ST_PointOnSurface(geom), 9), id;
CREATE INDEX IF NOT EXISTS geoplat_route_graph_xy ON geoplat_route_graph (x, y);
"""

TABLES = ("geoplat_route_edges", "geoplat_route_vertices", "geoplat_route_graph",
          "geoplat_route_build")
