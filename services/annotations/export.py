"""Annotations as GeoJSON features and as KML 2.2 (built with lxml: every text is escaped by
the serializer, so a title such as `<img onerror=...>` stays text in any KML reader)."""

from __future__ import annotations

from typing import Any

from lxml import etree

KML_NS = "http://www.opengis.net/kml/2.2"
KML_TYPE = "application/vnd.google-earth.kml+xml"


def feature(row: dict[str, Any], *, owner: bool) -> dict[str, Any]:
    """A row as a GeoJSON Feature (CRS84); the share token only for the owner."""
    props: dict[str, Any] = {"title": row["title"], "note": row["note"],
                             "created": row["created_at"].isoformat(),
                             "updated": row["updated_at"].isoformat()}
    if owner:
        props["share"] = row["share_token"]
    else:
        props["owner"] = row["owner_name"]
    return {"type": "Feature", "id": row["id"], "geometry": row["geometry"],
            "properties": props}


def collection(rows: list[dict[str, Any]], *, owner: bool) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [feature(r, owner=owner) for r in rows]}


def _number(v: float) -> str:
    return f"{v:.9f}".rstrip("0").rstrip(".")


def _coords(positions: list[list[float]]) -> str:
    return " ".join(f"{_number(p[0])},{_number(p[1])}" for p in positions)


def _geometry(parent: etree._Element, geometry: dict[str, Any]) -> None:
    def sub(el: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(el, f"{{{KML_NS}}}{name}")

    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        sub(sub(parent, "Point"), "coordinates").text = _coords([coords])
    elif kind == "LineString":
        sub(sub(parent, "LineString"), "coordinates").text = _coords(coords)
    elif kind == "Polygon":
        polygon = sub(parent, "Polygon")
        for i, ring in enumerate(coords):
            boundary = sub(polygon, "outerBoundaryIs" if i == 0 else "innerBoundaryIs")
            sub(sub(boundary, "LinearRing"), "coordinates").text = _coords(ring)


def kml(rows: list[dict[str, Any]], name: str) -> bytes:
    """A KML document with one Placemark per annotation (name = title, description = note)."""
    root = etree.Element(f"{{{KML_NS}}}kml", nsmap={None: KML_NS})
    doc = etree.SubElement(root, f"{{{KML_NS}}}Document")
    etree.SubElement(doc, f"{{{KML_NS}}}name").text = name
    for row in rows:
        mark = etree.SubElement(doc, f"{{{KML_NS}}}Placemark", id=f"a{row['id']}")
        etree.SubElement(mark, f"{{{KML_NS}}}name").text = row["title"]
        etree.SubElement(mark, f"{{{KML_NS}}}description").text = row["note"]
        _geometry(mark, row["geometry"])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
