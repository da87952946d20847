"""Outlines, centres and bboxes of divisions from what a node's division layers give
(services.places.gazetteer reads the layers; this is geometry only, shapely).

A division takes the polygon of its code; a 2023 county without one takes the 1999 unit of
the same name stem in its prefecture (萧山区 330109 <- 萧山市 330181); a city or province without
one (and inside the node's area) the union of its counties' polygons. Centres: the layer's
point, else a point on the outline, else the mean of its subdivisions' centres, else its
parent's. `note` says where each came from (1999 units, synthetic cells, unions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from services.places import divisions as div


@dataclass
class LayerGeometry:
    """What the division layers give, by the code they carry (1999 or 2023)."""
    polys: dict[str, list[BaseGeometry]] = field(default_factory=dict)
    points: dict[str, BaseGeometry] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def multipolygon(g: BaseGeometry | None) -> BaseGeometry | None:
    if g is None or g.is_empty:
        return None
    g = shapely.make_valid(g)
    polys = [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and not p.is_empty]
    for p in getattr(g, "geoms", []):
        if p.geom_type == "MultiPolygon":
            polys.extend(p.geoms)
    return shapely.MultiPolygon(polys) if polys else None


def renamed_1999(rows: list[div.DivisionRow], lg: LayerGeometry) -> dict[str, str]:
    """2023 county code -> the 1999 unit of another code with the same name stem in the same
    prefecture (萧山区 330109 <- 萧山市 330181), for counties without an outline of their code."""
    codes = {r.code for r in rows}
    spare: dict[tuple[str, str], list[str]] = {}
    for c in lg.polys:
        if len(c) == 6 and c not in codes and c[4:] != "01":    # xx01: a 1999 市辖区
            spare.setdefault((c[:4], div.short_name(lg.names.get(c, ""))), []).append(c)
    out = {}
    for r in rows:
        if r.kind == "county" and r.code not in lg.polys:
            found = spare.get((r.code[:4], div.short_name(r.name)), [])
            if len(found) == 1:
                out[r.code] = found[0]
    return out


def division_rows(rows: list[div.DivisionRow], scope: str, lg: LayerGeometry
                  ) -> list[dict[str, Any]]:
    """Each division with its boundary, centre and bbox (see the module docstring)."""
    polys, points, notes = lg.polys, lg.points, lg.notes
    renamed = renamed_1999(rows, lg)
    children: dict[str, list[str]] = {}
    for r in rows:
        if r.parent_code:
            children.setdefault(r.parent_code, []).append(r.code)
    out: dict[str, dict[str, Any]] = {}
    for kind in ("township", "county", "city", "province"):
        for r in (x for x in rows if x.kind == kind):
            note = notes.get(r.code)
            own = renamed.get(r.code, r.code)
            boundary = multipolygon(shapely.union_all(polys[own])) if own in polys else None
            if own != r.code:
                note = (f"{notes.get(own) or 'outline'}: that of {lg.names.get(own, '')} {own}"
                        " (renamed)")
            inside = r.code.startswith(scope)
            if boundary is None and kind in ("city", "province") and inside:
                prefix = r.code[:4] if kind == "city" else r.code[:2]
                parts = [g for c, gs in polys.items() if len(c) == 6 and c.startswith(prefix)
                         and c != r.code for g in gs]
                if parts:
                    boundary = multipolygon(shapely.union_all(parts))
                    kinds = sorted({notes[c] for c in polys if c.startswith(prefix) and c in notes})
                    note = "union of its county outlines" + (f" ({'; '.join(kinds)})"[:300]
                                                             if kinds else "")
            kids = [out[c] for c in children.get(r.code, []) if c in out]
            centre = points.get(r.code)
            if centre is None and boundary is not None:
                centre = boundary.point_on_surface()
            if centre is None:
                located = [k for k in kids if k["centre"] is not None]
                if located:
                    centre = shapely.MultiPoint([k["centre"] for k in located]).centroid
                    note = note or "no boundary; centre: mean of its subdivisions' centres"
            if boundary is not None:
                bbox = boundary.bounds
            else:
                boxes = [k["bbox"] for k in kids if k["bbox"] and inside]
                bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                        max(b[2] for b in boxes), max(b[3] for b in boxes)) if boxes else None
            out[r.code] = {"code": r.code, "name": r.name, "kind": r.kind,
                           "parent_code": r.parent_code, "centre": centre, "bbox": bbox,
                           "boundary": boundary, "note": note}
    # top down: a division still without a centre takes its parent's
    for r in rows:
        d = out[r.code]
        if d["centre"] is None:
            p = out.get(r.parent_code or "")
            if p is not None and p["centre"] is not None:
                d["centre"] = p["centre"]
                d["note"] = d["note"] or "no boundary; centre: its parent's"
    for d in out.values():
        if d["centre"] is None:     # nothing at all above or below: a division far off scope
            d["centre"] = shapely.Point(0, 0)
            d["note"] = "no geometry on this node"
    return [out[r.code] for r in rows]
