"""E-map styles as data (`config/styles/emap.yml`) generated into Mapnik XML, one file per layer.

The XML is built with ElementTree (values escaped by it, never spliced into markup).

Only tables a node has loaded and that are public and not `sensitive` are ever referenced:
that filter is applied here, once, so no e-map layer can draw surveying-professional content.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree as ET

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiles.grids import scale_denominator

META_BUFFER = 128  # px rendered around a meta-tile so labels and symbols cross tile edges


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FontSet(_Model):
    name: str = "cjk"
    faces: list[str]


class PolygonStyle(_Model):
    fill: str
    stroke: str | None = None
    width: float = 0.5


class LineStyle(_Model):
    stroke: str
    width: float = 1.0
    dasharray: str | None = None
    casing: str | None = None


class PointStyle(_Model):
    fill: str
    size: float = 5


class FeatureClass(_Model):
    tables: list[str]
    where: str | None = None
    levels: tuple[int, int] = (1, 20)
    polygon: PolygonStyle | None = None
    line: LineStyle | None = None
    point: PointStyle | None = None


class LabelClass(_Model):
    tables: list[str]
    field: str
    where: str | None = None
    levels: tuple[int, int] = (1, 20)
    size: float = 11
    dy: float = 0
    placement: Literal["point", "interior", "line"] = "point"
    water: bool = False


class TextColours(_Model):
    fill: str = "#333333"
    halo: str = "#ffffff"


class EmapLayer(_Model):
    format: Literal["image/png", "image/jpeg"] = "image/png"
    background: str | None = None
    classes: list[str] = []
    labels: list[str] = []
    text: TextColours = TextColours()
    raster: Literal["imagery", "hillshade"] | None = None


FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
VALUE = re.compile(r"^[^'\\\[\]\x00-\x1f]{0,100}$")  # no quote, backslash, bracket or control


class StyleRule(_Model):
    """One class of a WMS style: the features whose attribute `field` equals `value`, or lies
    in [`min`, `max`) (either bound may be left out), drawn with these symbolizers."""

    field: str
    value: str | int | None = None
    min: float | None = None
    max: float | None = None
    polygon: PolygonStyle | None = None
    line: LineStyle | None = None
    point: PointStyle | None = None

    @field_validator("field")
    @classmethod
    def _field(cls, v: str) -> str:
        if not FIELD.match(v):
            raise ValueError("a rule's field is a column name (letters, digits, _)")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, str) and not VALUE.match(v):
            raise ValueError("a rule's value has no quote, backslash, bracket or control "
                             "character")
        return v

    def filter(self) -> str:
        """The Mapnik filter expression of the rule."""
        f = f"[{self.field}]"
        if self.value is not None:
            return f"{f} = {self.value}" if isinstance(self.value, int) else f"{f} = '{self.value}'"
        parts = ([f"{f} >= {float(self.min)!r}"] if self.min is not None else []) + \
            ([f"{f} < {float(self.max)!r}"] if self.max is not None else [])
        return " and ".join(parts) or "true"


class WmsLayerStyle(_Model):
    """The style of a configured layer on the WMS (`wms: true`), at every scale: its
    symbolizers for every feature, and `rules` (classes by an attribute) drawn under them."""

    polygon: PolygonStyle | None = None
    line: LineStyle | None = None  # on a polygon layer alone: outlines
    point: PointStyle | None = None
    rules: list[StyleRule] = []


class StyleFile(_Model):
    fontset: FontSet
    font_dirs: list[str] = []
    classes: dict[str, FeatureClass]
    labels: dict[str, LabelClass] = {}
    layers: dict[str, EmapLayer] = Field(description="e-map layer id -> content")
    wms: dict[str, WmsLayerStyle] = Field(
        default={}, description="layer id -> its style as a WMS layer of its own (default: "
        "the generic style of published layers)")


class SensitiveContentError(Exception):
    """A style would draw a table that must never reach the e-map."""


def load_styles(path: Path) -> StyleFile:
    style = StyleFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    for lid, layer in style.layers.items():
        for name in layer.classes:
            if name not in style.classes:
                raise ValueError(f"{path}: layers.{lid}: unknown class {name!r}")
        for name in layer.labels:
            if name not in style.labels:
                raise ValueError(f"{path}: layers.{lid}: unknown label class {name!r}")
    return style


def _scale_rule(rule: ET.Element, levels: tuple[int, int]) -> None:
    # Bounds halfway (in log scale) between levels so a level is in or out, never on the edge.
    lo, hi = levels
    ET.SubElement(rule, "MaxScaleDenominator").text = f"{scale_denominator(lo) * 1.41:.2f}"
    ET.SubElement(rule, "MinScaleDenominator").text = f"{scale_denominator(hi) / 1.41:.2f}"


def _el(tag: str, attrs: dict[str, object] | None = None, text: str | None = None) -> ET.Element:
    """An element whose attribute values are written with str() (as Mapnik reads them)."""
    el = ET.Element(tag, {k: str(v) for k, v in (attrs or {}).items()})
    if text is not None:
        el.text = text
    return el


def _style(name: str, symbolizers: list[ET.Element],
           levels: tuple[int, int] | None = None) -> ET.Element:
    style = _el("Style", {"name": name})
    rule = ET.SubElement(style, "Rule")
    if levels is not None:
        _scale_rule(rule, levels)
    rule.extend(symbolizers)
    return style


def _line(ls: LineStyle, width: float | None = None) -> ET.Element:
    attrs: dict[str, object] = {"stroke": ls.stroke, "stroke-width": width if width is not None else ls.width}
    if ls.dasharray:
        attrs["stroke-dasharray"] = ls.dasharray
    return _el("LineSymbolizer", {**attrs, "stroke-linejoin": "round", "stroke-linecap": "round"})


def _class_style(name: str, fc: FeatureClass) -> ET.Element:
    return _style(name, _symbolizers(fc), fc.levels)


def _symbolizers(fc: FeatureClass | WmsLayerStyle | StyleRule) -> list[ET.Element]:
    sym = []
    if fc.polygon:
        sym.append(_el("PolygonSymbolizer", {"fill": fc.polygon.fill}))
        if fc.polygon.stroke:
            sym.append(_el("LineSymbolizer", {"stroke": fc.polygon.stroke,
                                              "stroke-width": fc.polygon.width}))
    if fc.line:
        if fc.line.casing:
            sym.append(_line(LineStyle(stroke=fc.line.casing, width=fc.line.width + 1.5)))
        sym.append(_line(fc.line))
    if fc.point:
        s = fc.point.size
        sym.append(_el("MarkersSymbolizer", {
            "fill": fc.point.fill, "width": s, "height": s, "stroke": "#ffffff",
            "stroke-width": "1", "allow-overlap": "true", "ignore-placement": "true"}))
    return sym


def _label_style(name: str, lc: LabelClass, colours: TextColours, fontset: str) -> ET.Element:
    fill = "#2f6ea8" if lc.water and colours.fill == "#333333" else colours.fill
    attrs: dict[str, object] = {
        "fontset-name": fontset, "size": lc.size, "fill": fill, "halo-fill": colours.halo,
        "halo-radius": "1.5", "placement": lc.placement, "avoid-edges": "false",
        "allow-overlap": "false", "minimum-padding": "2"}
    if lc.dy:
        attrs["dy"] = lc.dy
    if lc.placement == "line":
        attrs.update({"max-char-angle-delta": "30", "spacing": "250", "minimum-path-length": "40"})
    return _style(name, [_el("TextSymbolizer", attrs, "[label]")], lc.levels)


def _datasource(params: dict[str, object]) -> ET.Element:
    ds = ET.Element("Datasource")
    for k, v in params.items():
        ET.SubElement(ds, "Parameter", {"name": k}).text = str(v)
    return ds


def _postgis(dsn: dict[str, str], sql: str) -> ET.Element:
    return _datasource({
        "type": "postgis", "table": sql, "geometry_field": "geom", "srid": "4490",
        "extent": "-180,-90,180,90", "max_size": "8", "estimate_extent": "false",
        **{k: v for k, v in dsn.items() if k in ("host", "port", "user", "password", "dbname")}})


def _gdal(path: Path) -> ET.Element:
    return _datasource({"type": "gdal", "file": path})


def _layer(name: str, style: str, datasource: ET.Element) -> ET.Element:
    layer = _el("Layer", {"name": name, "srs": "epsg:4490"})
    ET.SubElement(layer, "StyleName").text = style
    layer.append(datasource)
    return layer


def _ident(name: str) -> str:
    """An SQL identifier, quoted (a `"` in it doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _sql(table: str, where: str | None, field: str | None) -> str:
    cols = f"geom, {_ident(field)}::text AS label" if field else "geom"
    conds = [f"({where})"] if where else []
    if field:
        conds.append(f"{_ident(field)} IS NOT NULL")
    cond = " WHERE " + " AND ".join(conds) if conds else ""
    return f"(SELECT {cols} FROM {_ident(table)}{cond}) AS t"


def _map(background: str | None = None) -> ET.Element:
    attrs: dict[str, object] = {"srs": "epsg:4490", "buffer-size": META_BUFFER}
    if background:
        attrs["background-color"] = background
    return _el("Map", attrs)


def _document(root: ET.Element) -> str:
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def drawable_tables(layers: list, loaded: set[str]) -> set[str]:
    """Tables the e-map may draw: loaded, public and not sensitive."""
    return {lay.id for lay in layers
            if lay.id in loaded and not lay.sensitive and lay.access == "public"}


def map_xml(style: StyleFile, layer_id: str, tables: set[str], dsn: dict[str, str],
            rasters: list[Path], faces: list[str] | None = None) -> str:
    """The Mapnik XML of one e-map layer for a node that may draw `tables`."""
    lay = style.layers[layer_id]
    faces = faces or style.fontset.faces
    root = _map(lay.background)
    fontset = ET.SubElement(root, "FontSet", {"name": style.fontset.name})
    for face in faces:
        ET.SubElement(fontset, "Font", {"face-name": face})
    layers_xml = []
    if lay.raster and rasters:
        root.append(_raster_style())
        for i, path in enumerate(rasters):
            layers_xml.append(_layer(f"{lay.raster}_{i}", "raster", _gdal(path)))
    for name in lay.classes:
        fc = style.classes[name]
        used = [t for t in fc.tables if t in tables]
        if not used:
            continue
        root.append(_class_style(name, fc))
        for t in used:
            layers_xml.append(_layer(f"{name}__{t}", name, _postgis(dsn, _sql(t, fc.where, None))))
    for name in lay.labels:
        lc = style.labels[name]
        used = [t for t in lc.tables if t in tables]
        if not used:
            continue
        root.append(_label_style(name, lc, lay.text, style.fontset.name))
        for t in used:
            layers_xml.append(_layer(f"{name}__{t}", name,
                                     _postgis(dsn, _sql(t, lc.where, lc.field))))
    root.extend(layers_xml)
    return _document(root)


def check_no_sensitive(xml: str, forbidden: set[str]) -> None:
    """Raise if a forbidden table appears as a data source in generated XML."""
    queries = [p.text or "" for p in ET.fromstring(xml).iter("Parameter") if p.get("name") == "table"]
    for t in forbidden:
        if any(f"FROM {_ident(t)}" in q for q in queries):
            raise SensitiveContentError(f"e-map style would draw restricted table {t!r}")


# --- published layers (layers/emap.py): drawn on vec and offered as their own WMS layer -----

PUBLISHED_STYLE = {"fill": "#e8846b", "fill-opacity": "0.55", "stroke": "#b23b1e"}


def _raster_style() -> ET.Element:
    return _style("raster", [_el("RasterSymbolizer", {"scaling": "bilinear"})])


def published_style(name: str, geometry_type: str, own: WmsLayerStyle | None = None
                    ) -> ET.Element:
    """A generic Mapnik style for a published vector layer, by geometry type (`own`: a
    configured layer's style of its own, `wms` in the style file)."""
    if own is not None:
        style = _el("Style", {"name": f"published__{name}"})
        for r in own.rules:  # classes first, the symbolizers of every feature on top
            rule = ET.SubElement(style, "Rule")
            ET.SubElement(rule, "Filter").text = r.filter()
            rule.extend(_symbolizers(r))
        if own.polygon or own.line or own.point or not own.rules:
            ET.SubElement(style, "Rule").extend(_symbolizers(own))
        return style
    g = geometry_type.lower()
    s = PUBLISHED_STYLE
    if "polygon" in g:
        sym = [_el("PolygonSymbolizer", {"fill": s["fill"], "fill-opacity": s["fill-opacity"]}),
               _el("LineSymbolizer", {"stroke": s["stroke"], "stroke-width": "1.2"})]
    elif "line" in g:
        sym = [_el("LineSymbolizer", {"stroke": s["stroke"], "stroke-width": "2",
                                      "stroke-linejoin": "round"})]
    else:
        sym = [_el("MarkersSymbolizer", {"fill": s["fill"], "width": "7", "height": "7",
                                         "stroke": s["stroke"], "stroke-width": "1",
                                         "allow-overlap": "true", "ignore-placement": "true"})]
    return _style(f"published__{name}", sym)


def published_layer(name: str, dsn: dict[str, str], own: WmsLayerStyle | None = None
                    ) -> ET.Element:
    """The Mapnik layer of a published vector layer (its view `name`, the current version),
    with the attributes the rules of its style (`own`) filter on."""
    cols = sorted({r.field for r in own.rules}) if own is not None else []
    query = f"(SELECT {', '.join(['geom', *map(_ident, cols)])} FROM {_ident(name)}) AS t" \
        if cols else _sql(name, None, None)
    return _layer(f"published__{name}", f"published__{name}", _postgis(dsn, query))


def with_published(base_xml: str, styles: list[ET.Element], layers: list[ET.Element]) -> str:
    """`base_xml` (a generated e-map mapfile) with published layers drawn on top."""
    root = ET.fromstring(base_xml)
    children = list(root)
    at = next((i + 1 for i, el in enumerate(children) if el.tag == "FontSet"), 0)
    for i, style in enumerate(styles):
        root.insert(at + i, style)
    root.extend(layers)
    return _document(root)


def single_map_xml(styles: list[ET.Element], layers: list[ET.Element]) -> str:
    """A transparent map of the given styles and layers (a published layer on its own)."""
    root = _map()
    root.extend([*styles, *layers])
    return _document(root)


def raster_layer_xml(name: str, path: Path) -> tuple[ET.Element, ET.Element]:
    """(style, layer) drawing one GeoTIFF (a published raster) with Mapnik's gdal plugin."""
    return _raster_style(), _layer(f"published__{name}", "raster", _gdal(path))
