"""Mapnik XML is built with ElementTree (tiles/styles.py): hostile style values (`"<&'` in a
label field, a colour, a font face, a filter, a password) give well-formed XML that reads back
exactly, and SQL identifiers stay one identifier."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import mapnik

from tiles import styles
from tiles.styles import StyleFile, check_no_sensitive, map_xml

HOSTILE = 'x" y=\'1\' <b>&amp;</b>'


def _style() -> StyleFile:
    return StyleFile.model_validate({
        "fontset": {"name": "cjk", "faces": [f"Face {HOSTILE}"]},
        "classes": {"roads": {"tables": ["roads"], "where": f"kind <> '{HOSTILE}' AND rank < 3",
                              "line": {"stroke": f"#fff{HOSTILE}", "dasharray": HOSTILE}}},
        "labels": {"names": {"tables": ["roads"], "field": f'na"me{HOSTILE}'}},
        "layers": {"vec": {"background": f"#000{HOSTILE}", "classes": ["roads"],
                           "labels": ["names"]}},
    })


def test_hostile_values_give_well_formed_xml_that_reads_back() -> None:
    dsn = {"dbname": "d", "password": f"p{HOSTILE}"}
    xml = map_xml(_style(), "vec", {"roads"}, dsn, [Path(f"/data/{HOSTILE}.tif")])
    root = ET.fromstring(xml)  # raises on malformed XML
    assert root.get("background-color") == f"#000{HOSTILE}"
    assert [f.get("face-name") for f in root.iter("Font")] == [f"Face {HOSTILE}"]
    line = next(root.iter("LineSymbolizer"))
    assert (line.get("stroke"), line.get("stroke-dasharray")) == (f"#fff{HOSTILE}", HOSTILE)
    params = [{p.get("name"): p.text for p in ds.iter("Parameter")} for ds in root.iter("Datasource")]
    assert {p["password"] for p in params} == {f"p{HOSTILE}"}
    queries = [p["table"] for p in params]
    assert f"(kind <> '{HOSTILE}' AND rank < 3)" in queries[0]
    # the field is one SQL identifier: its `"` doubled inside the quotes
    field = '"na""me' + HOSTILE.replace('"', '""') + '"'
    assert queries[1] == f'(SELECT geom, {field}::text AS label FROM "roads" WHERE {field} IS NOT NULL) AS t'


def test_sensitive_tables_are_found_in_the_parsed_queries() -> None:
    xml = map_xml(_style(), "vec", {"roads"}, {"dbname": "d"}, [])
    check_no_sensitive(xml, {"contours"})
    try:
        check_no_sensitive(xml, {"roads"})
    except styles.SensitiveContentError:
        pass
    else:
        raise AssertionError("a drawn table was not found")


def test_mapnik_reads_the_published_maps(tmp_path: Path) -> None:
    """Mapnik parses what we write (styles and a layer list of a published raster map)."""
    style, layer = styles.raster_layer_xml("r", tmp_path / "missing.tif")
    xml = styles.single_map_xml([style, styles.published_style("p", "MultiPolygon")], [])
    m = mapnik.Map(256, 256)
    mapnik.load_map_from_string(m, xml)
    assert sorted(m.styles) == ["published__p", "raster"]
    assert ET.fromstring(styles.single_map_xml([style], [layer])).find("Layer/Datasource") is not None
