"""Noding a road layer into routing edges, with shapely (GEOS).

Why not `pgr_nodeNetwork`: it is a PL/pgSQL loop over every edge and its neighbours that
writes a `_noded` table per run (pgRouting lists it among the functions to be deprecated), slow
on large networks and blind to our attributes. GEOS noding (`shapely.node`, the same algorithm
as PostGIS's ST_Node) splits every line at every crossing in one call; each piece is then
matched back to the road it came from (nearest source line to the piece's midpoint, an STRtree
query) so it keeps its name, class and one-way flag, and is oriented as that road was drawn.

Every crossing becomes a junction: the data has no grade-separation column (bridge, tunnel,
level), so an expressway meets every road that crosses it (a limit, README "Routing").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid differs from GRS80 by 0.1 mm in b
VERTEX_DIGITS = 7  # degrees: about 1 cm; ends closer than that are one vertex


@dataclass
class Noded:
    """The edges of a noded network (arrays of one row per edge) and its vertices."""

    pieces: NDArray[np.object_]     # LineString per edge, oriented as its road was drawn
    road: NDArray[np.int64]         # index of the input road each edge comes from
    source: NDArray[np.int64]       # vertex ids (1-based, pgRouting's convention)
    target: NDArray[np.int64]
    length_m: NDArray[np.float64]   # geodesic length on the ellipsoid
    vertices: NDArray[np.float64]   # (n, 2) lon/lat of vertex id i+1


def single_lines(geoms: list[BaseGeometry]) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
    """The LineStrings of every road (parts of multi-lines), with the road's index."""
    parts, index = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & ~shapely.is_empty(parts)
    keep &= shapely.get_num_coordinates(parts) >= 2
    return parts[keep], index[keep].astype(np.int64)


def geodesic_lengths(lines: NDArray[np.object_]) -> NDArray[np.float64]:
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    same = owner[1:] == owner[:-1]
    _, _, seg = GEOD.inv(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
    seg = np.where(same, seg, 0.0)
    out = np.zeros(len(lines))
    np.add.at(out, owner[:-1], seg)
    return out


def node(geoms: list[BaseGeometry]) -> Noded:
    """Split the roads at every crossing; vertices shared by edges whose ends coincide."""
    parts, road_of_part = single_lines(geoms)
    if len(parts) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Noded(np.zeros(0, dtype=object), empty, empty, empty, np.zeros(0),
                     np.zeros((0, 2)))
    noded = shapely.node(shapely.multilinestrings(parts))
    pieces = shapely.get_parts(noded)
    pieces = pieces[shapely.length(pieces) > 0]
    mids = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    tree = shapely.STRtree(parts)
    hit = tree.query_nearest(mids, all_matches=False)  # (2, n): piece index, part index
    part = np.empty(len(pieces), dtype=np.int64)
    part[hit[0]] = hit[1]
    # orient each piece as its road was drawn (one-way streets): compare where its ends lie
    src = parts[part]
    a = shapely.line_locate_point(src, shapely.get_point(pieces, 0))
    b = shapely.line_locate_point(src, shapely.get_point(pieces, -1))
    flip = a > b
    if flip.any():
        pieces[flip] = shapely.reverse(pieces[flip])
    starts = shapely.get_coordinates(shapely.get_point(pieces, 0))
    ends = shapely.get_coordinates(shapely.get_point(pieces, -1))
    ends_all = np.round(np.vstack([starts, ends]), VERTEX_DIGITS)
    uniq, inverse = np.unique(ends_all, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1) + 1
    n = len(pieces)
    return Noded(pieces, road_of_part[part], inverse[:n].astype(np.int64),
                 inverse[n:].astype(np.int64), geodesic_lengths(pieces), uniq)
