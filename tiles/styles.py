"""E-map styles as data (`config/styles/emap.yml`) generated into Mapnik XML, one file per layer.

Only tables a node has loaded and that are public and not `sensitive` are ever referenced:
that filter is applied here, once, so no e-map layer can draw surveying-professional content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import yaml
from pydantic import BaseModel, ConfigDict, Field

from geoplat_settings import EMAP_LAYERS as EMAP_LAYERS  # the layers drawn here (named in settings)
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


class StyleFile(_Model):
    fontset: FontSet
    font_dirs: list[str] = []
    classes: dict[str, FeatureClass]
    labels: dict[str, LabelClass] = {}
    layers: dict[str, EmapLayer] = Field(description="e-map layer id -> content")


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


def _scale_rule(levels: tuple[int, int]) -> str:
    # Bounds halfway (in log scale) between levels so a level is in or out, never on the edge.
    lo, hi = levels
    max_sd = scale_denominator(lo) * 1.41
    min_sd = scale_denominator(hi) / 1.41
    return (f"<MaxScaleDenominator>{max_sd:.2f}</MaxScaleDenominator>"
            f"<MinScaleDenominator>{min_sd:.2f}</MinScaleDenominator>")


def _line(ls: LineStyle, width: float | None = None) -> str:
    w = width if width is not None else ls.width
    dash = f' stroke-dasharray="{ls.dasharray}"' if ls.dasharray else ""
    return (f'<LineSymbolizer stroke="{ls.stroke}" stroke-width="{w}"{dash} '
            f'stroke-linejoin="round" stroke-linecap="round"/>')


def _class_style(name: str, fc: FeatureClass) -> str:
    sym = []
    if fc.polygon:
        sym.append(f'<PolygonSymbolizer fill="{fc.polygon.fill}"/>')
        if fc.polygon.stroke:
            sym.append(f'<LineSymbolizer stroke="{fc.polygon.stroke}" stroke-width="{fc.polygon.width}"/>')
    if fc.line:
        if fc.line.casing:
            sym.append(_line(LineStyle(stroke=fc.line.casing, width=fc.line.width + 1.5)))
        sym.append(_line(fc.line))
    if fc.point:
        s = fc.point.size
        sym.append(f'<MarkersSymbolizer fill="{fc.point.fill}" width="{s}" height="{s}" '
                   f'stroke="#ffffff" stroke-width="1" allow-overlap="true" ignore-placement="true"/>')
    return f'<Style name="{name}"><Rule>{_scale_rule(fc.levels)}{"".join(sym)}</Rule></Style>'


def _label_style(name: str, lc: LabelClass, colours: TextColours, fontset: str) -> str:
    fill = "#2f6ea8" if lc.water and colours.fill == "#333333" else colours.fill
    attrs = (f'fontset-name="{fontset}" size="{lc.size}" fill="{fill}" halo-fill="{colours.halo}" '
             f'halo-radius="1.5" placement="{lc.placement}" avoid-edges="false" '
             f'allow-overlap="false" minimum-padding="2"')
    if lc.dy:
        attrs += f' dy="{lc.dy}"'
    if lc.placement == "line":
        attrs += ' max-char-angle-delta="30" spacing="250" minimum-path-length="40"'
    return (f'<Style name="{name}"><Rule>{_scale_rule(lc.levels)}'
            f"<TextSymbolizer {attrs}>[label]</TextSymbolizer></Rule></Style>")


def _postgis(dsn: dict[str, str], sql: str) -> str:
    params = {"type": "postgis", "table": sql, "geometry_field": "geom", "srid": "4490",
              "extent": "-180,-90,180,90", "max_size": "8", "estimate_extent": "false",
              **{k: v for k, v in dsn.items() if k in ("host", "port", "user", "password", "dbname")}}
    return "".join(f'<Parameter name="{k}">{escape(str(v))}</Parameter>' for k, v in params.items())


def _sql(table: str, where: str | None, field: str | None) -> str:
    cols = f'geom, "{field}"::text AS label' if field else "geom"
    conds = [f"({where})"] if where else []
    if field:
        conds.append(f'"{field}" IS NOT NULL')
    cond = " WHERE " + " AND ".join(conds) if conds else ""
    return f'(SELECT {cols} FROM "{table}"{cond}) AS t'


def drawable_tables(layers: list, loaded: set[str]) -> set[str]:
    """Tables the e-map may draw: loaded, public and not sensitive."""
    return {lay.id for lay in layers
            if lay.id in loaded and not lay.sensitive and lay.access == "public"}


def map_xml(style: StyleFile, layer_id: str, tables: set[str], dsn: dict[str, str],
            rasters: list[Path], faces: list[str] | None = None) -> str:
    """The Mapnik XML of one e-map layer for a node that may draw `tables`."""
    lay = style.layers[layer_id]
    faces = faces or style.fontset.faces
    bg = f' background-color="{lay.background}"' if lay.background else ""
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<Map srs="epsg:4490" buffer-size="{META_BUFFER}"{bg}>',
           f'<FontSet name="{style.fontset.name}">'
           + "".join(f"<Font face-name={quoteattr(f)}/>" for f in faces) + "</FontSet>"]
    layers_xml = []
    if lay.raster and rasters:
        out.append('<Style name="raster"><Rule><RasterSymbolizer scaling="bilinear"/></Rule></Style>')
        for i, path in enumerate(rasters):
            layers_xml.append(
                f'<Layer name="{lay.raster}_{i}" srs="epsg:4490"><StyleName>raster</StyleName>'
                f'<Datasource><Parameter name="type">gdal</Parameter>'
                f"<Parameter name=\"file\">{escape(str(path))}</Parameter></Datasource></Layer>")
    for name in lay.classes:
        fc = style.classes[name]
        used = [t for t in fc.tables if t in tables]
        if not used:
            continue
        out.append(_class_style(name, fc))
        for t in used:
            layers_xml.append(f'<Layer name="{name}__{t}" srs="epsg:4490"><StyleName>{name}</StyleName>'
                              f"<Datasource>{_postgis(dsn, _sql(t, fc.where, None))}</Datasource></Layer>")
    for name in lay.labels:
        lc = style.labels[name]
        used = [t for t in lc.tables if t in tables]
        if not used:
            continue
        out.append(_label_style(name, lc, lay.text, style.fontset.name))
        for t in used:
            layers_xml.append(f'<Layer name="{name}__{t}" srs="epsg:4490"><StyleName>{name}</StyleName>'
                              f"<Datasource>{_postgis(dsn, _sql(t, lc.where, lc.field))}</Datasource></Layer>")
    return "\n".join(out + layers_xml + ["</Map>\n"])


def check_no_sensitive(xml: str, forbidden: set[str]) -> None:
    """Raise if a forbidden table appears as a data source in generated XML."""
    for t in forbidden:
        if f'FROM "{t}"' in xml:
            raise SensitiveContentError(f"e-map style would draw restricted table {t!r}")


# --- published layers (layers/emap.py): drawn on vec and offered as their own WMS layer -----

PUBLISHED_STYLE = {"fill": "#e8846b", "fill-opacity": "0.55", "stroke": "#b23b1e"}


def published_style(name: str, geometry_type: str) -> str:
    """A generic Mapnik style for a published vector layer, by geometry type."""
    g = geometry_type.lower()
    s = PUBLISHED_STYLE
    if "polygon" in g:
        sym = (f'<PolygonSymbolizer fill="{s["fill"]}" fill-opacity="{s["fill-opacity"]}"/>'
               f'<LineSymbolizer stroke="{s["stroke"]}" stroke-width="1.2"/>')
    elif "line" in g:
        sym = f'<LineSymbolizer stroke="{s["stroke"]}" stroke-width="2" stroke-linejoin="round"/>'
    else:
        sym = (f'<MarkersSymbolizer fill="{s["fill"]}" width="7" height="7" stroke="{s["stroke"]}"'
               ' stroke-width="1" allow-overlap="true" ignore-placement="true"/>')
    return f'<Style name="published__{name}"><Rule>{sym}</Rule></Style>'


def published_layer(name: str, dsn: dict[str, str]) -> str:
    """The Mapnik layer of a published vector layer (its view `name`, the current version)."""
    return (f'<Layer name="published__{name}" srs="epsg:4490"><StyleName>published__{name}'
            f'</StyleName><Datasource>{_postgis(dsn, _sql(name, None, None))}</Datasource></Layer>')


def with_published(base_xml: str, styles: list[str], layers: list[str]) -> str:
    """`base_xml` (a generated e-map mapfile) with published layers drawn on top."""
    head, sep, rest = base_xml.partition("</FontSet>")
    if not sep:
        head, sep, rest = base_xml.partition(">\n")  # after <Map ...>
    body, end, tail = rest.rpartition("</Map>")
    return head + sep + "\n" + "\n".join(styles) + body + "\n".join(layers) + "\n" + end + tail


def single_map_xml(styles: list[str], layers: list[str]) -> str:
    """A transparent map of the given styles and layers (a published layer on its own)."""
    head = f'<?xml version="1.0" encoding="utf-8"?>\n<Map srs="epsg:4490" buffer-size="{META_BUFFER}">'
    return "\n".join([head, *styles, *layers, "</Map>\n"])


def raster_layer_xml(name: str, path: Path) -> tuple[str, str]:
    """(style, layer) drawing one GeoTIFF (a published raster) with Mapnik's gdal plugin."""
    style = '<Style name="raster"><Rule><RasterSymbolizer scaling="bilinear"/></Rule></Style>'
    layer = (f'<Layer name="published__{name}" srs="epsg:4490"><StyleName>raster</StyleName>'
             f'<Datasource><Parameter name="type">gdal</Parameter>'
             f'<Parameter name="file">{escape(str(path))}</Parameter></Datasource></Layer>')
    return style, layer
