"""Capabilities documents per caller: the caller's `tk` in every URL, hidden layers left out.

MapProxy writes its WMTS, WMS and TMS capabilities with URLs built from the request's host and
nothing of the caller. A client given one URL with `tk=` (QGIS, GDAL, OWSLib) then asks for
tiles without the key and gets 401. `personalise` adds the key to every URL of this node in
the document (attribute values, so lxml escapes them for XML; the key itself is
percent-encoded for the URL) and drops the layers the caller may not see. `tianditu` turns the
WMTS capabilities into those of one Tianditu-style route, `/{layer}_{grid}/wmts`, as Tianditu
answers them (QGIS asks a Tianditu URL for `SERVICE=WMS&REQUEST=GetCapabilities` first).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote, urlsplit

from lxml import etree
from starlette.requests import HTTPConnection
from starlette.types import Scope

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_URL_ATTRS = {XLINK_HREF, "href", "template"}


def accepted_tk(scope: Scope) -> str | None:
    """The request's `tk` as the key checker reads it (Starlette: the last `tk` value); echoed
    into documents only after that check allowed the request."""
    return HTTPConnection(scope).query_params.get("tk") or None


def with_tk(url: str, tk: str) -> str:
    """`url` with `tk=` added; a KVP endpoint (ending in `?` or `&`) stays one."""
    param = "tk=" + quote(tk, safe="")
    base, sep, query = url.partition("?")
    if not sep:
        return f"{url}?{param}"
    if not query:
        return f"{base}?{param}&"
    if query.endswith("&"):
        return f"{url}{param}&"
    return f"{url}&{param}"


def _parse(body: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_blank_text=False)
    return etree.ElementTree(etree.fromstring(body, parser))


def _serialise(tree: etree._ElementTree, body: bytes) -> bytes:
    doctype = tree.docinfo.doctype if b"<!DOCTYPE" in body[:500] else None
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", doctype=doctype)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _child_text(el: etree._Element, name: str) -> str | None:
    for child in el:
        if _local(child) == name:
            return (child.text or "").strip()
    return None


def _drop_hidden(root: etree._Element, hidden: Collection[str]) -> None:
    for el in list(root.iter()):
        name = _local(el)
        if name == "Layer":  # WMTS (ows:Identifier) and WMS (Name)
            ident = _child_text(el, "Identifier") or _child_text(el, "Name")
            if ident in hidden and el.getparent() is not None:
                el.getparent().remove(el)
        elif name == "TileMap" and el.get("href"):  # TMS: .../tms/1.0.0/{layer}/{grid}
            parts = urlsplit(el.get("href", "")).path.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] in hidden and el.getparent() is not None:
                el.getparent().remove(el)


def _add_tk(root: etree._Element, host: str, tk: str) -> None:
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if _local(el) == "TileSet":
            continue  # TMS clients append /{x}/{y}.{ext} to this href: no query possible
        for attr in _URL_ATTRS & set(el.attrib):
            value = el.get(attr, "")
            if urlsplit(value).netloc.lower() == host:
                el.set(attr, with_tk(value, tk))


def _mark_queryable(root: etree._Element, queryable: Collection[str]) -> None:
    """WMS: `queryable="1"` on the layers GetFeatureInfo answers for (tiles/featureinfo.py)
    and its INFO_FORMATs as the GetFeatureInfo formats (MapProxy knows no queryable source
    of ours, so it marks none and lists its own)."""
    from tiles.featureinfo import INFO_FORMATS

    for el in list(root.iter()):  # a list: the loop inserts elements
        name = _local(el)
        if name == "Layer" and _child_text(el, "Name") in queryable:
            el.set("queryable", "1")
        elif name == "GetFeatureInfo":
            formats = [c for c in el if _local(c) == "Format"]
            ns = etree.QName(el).namespace
            for c in formats:
                el.remove(c)
            for i, fmt in enumerate(INFO_FORMATS):
                f = etree.Element(f"{{{ns}}}Format" if ns else "Format")
                f.text = fmt
                el.insert(i, f)


def personalise(body: bytes, *, host: str, tk: str | None, hidden: Collection[str] = (),
                queryable: Collection[str] = ()) -> bytes:
    """The document with `tk` in every URL pointing at `host`, without `hidden` layers and
    with the `queryable` (WMS) layers marked."""
    if not tk and not hidden and not queryable:
        return body
    tree = _parse(body)
    root = tree.getroot()
    if hidden:
        _drop_hidden(root, hidden)
    if queryable:
        _mark_queryable(root, set(queryable) - set(hidden))
    if tk:
        _add_tk(root, host.lower(), tk)
    return _serialise(tree, body)


def tianditu_tile_template(base: str, layer: str, grid: str) -> str:
    return (f"{base}/{layer}_{grid}/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            f"&LAYER={layer}&STYLE=default&TILEMATRIXSET={grid}&FORMAT=tiles"
            "&TILEMATRIX={TileMatrix}&TILEROW={TileRow}&TILECOL={TileCol}")


def tianditu(body: bytes, *, base: str, host: str, layer: str, grid: str, min_level: int,
             tk: str | None) -> bytes:
    """WMTS capabilities of the route `/{layer}_{grid}/wmts` only, every URL pointing back at
    it (with `tk`); levels below `min_level` (the `c` grid's level 0) are left out."""
    tree = _parse(body)
    root = tree.getroot()
    endpoint = f"{base}/{layer}_{grid}/wmts?"
    for el in list(root.iter()):
        name = _local(el)
        parent = el.getparent()
        other_layer = name == "Layer" and _child_text(el, "Identifier") != layer
        other_link = name == "TileMatrixSetLink" and _child_text(el, "TileMatrixSet") != grid
        other_set = name == "TileMatrixSet" and parent is not None and \
            _local(parent) == "Contents" and _child_text(el, "Identifier") not in (None, grid)
        if (other_layer or other_link or other_set) and parent is not None:
            parent.remove(el)
        elif name == "TileMatrix" and parent is not None and _local(parent) == "TileMatrixSet":
            ident = _child_text(el, "Identifier") or ""
            if ident.isdigit() and int(ident) < min_level:
                parent.remove(el)
        elif name == "ResourceURL":
            el.set("template", tianditu_tile_template(base, layer, grid))
        elif XLINK_HREF in el.attrib and urlsplit(el.get(XLINK_HREF, "")).netloc.lower() == host:
            el.set(XLINK_HREF, endpoint if name != "ServiceMetadataURL" else
                   endpoint + "SERVICE=WMTS&REQUEST=GetCapabilities")
    for el in list(root.iter()):
        if _local(el) == "ResourceURL":  # Tianditu's own documents name the format `tiles`
            tiles = etree.Element(el.tag, dict(el.attrib, format="tiles"))
            tiles.tail = el.tail
            el.addnext(tiles)
            fmt = next((f for f in el.itersiblings(preceding=True) if _local(f) == "Format"), None)
            if fmt is not None:
                extra = etree.Element(fmt.tag)
                extra.text, extra.tail = "tiles", fmt.tail
                fmt.addnext(extra)
    if tk:
        _add_tk(root, host.lower(), tk)
    return _serialise(tree, body)
