"""The process `join-statistics` (社会经济信息空间化挂接): a table of statistics by division code or
name joined to the node's divisions, and optionally published as a thematic layer.

- The table: CSV (UTF-8 with or without BOM, or GBK/GB 18030) or XLSX (openpyxl, read-only,
  values only; a workbook with macros or over the size limits is refused), inline as
  `{"value": base64, "mediaType": ...}`; its first row names the columns.
- `key`: the column of the division code (GB/T 2260 6 digits for a county, 9 for a township, or
  the 12 digits of the statistical division codes) or name (exact, without the suffix 区/县/市 or
  街道/镇/乡, or with the city before it: 杭州市上城区); `level`: county or township, the node's
  division layer of that level (a layer with `places: {kind: division, level: ...}` in its
  config) the caller may see.
- `fields`: the numeric columns joined. A value that is not a number is reported (row, field,
  value, why) and joined as null; text is never evaluated (`=1+1` stays that text) and the CSV
  the process writes (`table_csv`) prefixes text that starts with `=`, `+`, `-`, `@`, a tab or a
  carriage return with `'`.
- The answer: the matched rows, the unmatched ones with their key and why, the problems, the
  joined table as CSV, and a choropleth-ready GeoJSON of the matched divisions.
- Two rows for one division (the same code or name, or a code and a name of one division) are
  refused with the codes listed: 400, nothing written.
- `publish: {"layer", "title", "field", "classes", "scheme"}` also classifies `field` with
  mapclassify (quantiles, or natural breaks: Fisher-Jenks, deterministic), gives each feature its
  class number (`class_no`, 1 = lowest) and publishes the features as a layer of the node through
  the publishing path (layers/publish.py: versioned, atomic, audited) with a style of graduated
  classes (a sequential colour ramp, YlOrRd) on its WMS and e-map. Publishing needs the
  publisher or admin role of the node, as `/api/layers` does (403 otherwise, before any work).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import tempfile
import unicodedata
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg2 import sql
from pygeoapi.process.base import ProcessorExecuteError

from layers.csv_cells import neutralise
from services.analysis.compute import InputError
from services.analysis.inputs import qualified_value
from services.analysis.processes import COMMON as _COMMON
from services.analysis.processes import Context, connection, layer_columns, register, visible_layer

CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_BYTES = 5 * 1024 * 1024  # the table as sent (decoded)
MAX_XLSX_UNPACKED = 50 * 1024 * 1024  # the workbook's parts, uncompressed
MAX_ROWS = 20_000
MAX_FIELDS = 20
MAX_CELL = 1000
LEVELS = ("county", "township")
SUFFIXES = {"county": ("自治县", "区", "县", "市", "旗"), "township": ("街道办事处", "街道", "镇", "乡")}
CODE_LENGTH = {"county": 6, "township": 9}
RESERVED = ("division_code", "division_name", "class_no")
EMPTY = ("", "-", "—", "–", "/", "..", "…", "na", "n/a", "null", "none")
# ColorBrewer YlOrRd, sequential, by number of classes (low to high)
YLORRD = {
    3: ["#ffeda0", "#feb24c", "#f03b20"],
    4: ["#ffffb2", "#fecc5c", "#fd8d3c", "#e31a1c"],
    5: ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"],
    6: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"],
    7: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"],
    8: ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"],
    9: ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026",
        "#800026"],
}
SCHEMES = ("quantiles", "natural_breaks")

JOIN = {**_COMMON, "id": "join-statistics",
        "title": {"en": "Join statistics to divisions (thematic map)",
                  "zh": "社会经济信息空间化挂接（专题图）"},
        "description": {"en": "A CSV or XLSX table of statistics keyed by division code or name "
                              "joined to this node's counties or townships: matched rows, "
                              "unmatched rows with why, non-numeric values reported, a "
                              "choropleth-ready GeoJSON; duplicate keys are refused. With "
                              "`publish`, the result is classified (quantiles or natural "
                              "breaks, mapclassify) and published as a thematic layer on the "
                              "node's WMS and e-map (publisher or admin role)."},
        "inputs": {
            "table": {"title": "Table (CSV or XLSX)", "schema": {
                "type": "object", "required": ["value", "mediaType"],
                "properties": {"value": {"type": "string", "contentEncoding": "base64"},
                               "mediaType": {"type": "string", "enum": [CSV_TYPE, XLSX_TYPE]}}},
                "minOccurs": 1, "maxOccurs": 1},
            "key": {"title": "Column of the division code or name",
                    "schema": {"type": "string"}, "minOccurs": 1, "maxOccurs": 1},
            "level": {"title": "Division level", "schema": {"type": "string", "enum": list(LEVELS)},
                      "minOccurs": 1, "maxOccurs": 1},
            "fields": {"title": "Numeric columns to join", "schema": {
                "type": "array", "items": {"type": "string"}, "minItems": 1,
                "maxItems": MAX_FIELDS}, "minOccurs": 1, "maxOccurs": 1},
            "sheet": {"title": "Worksheet (XLSX; default the first)",
                      "schema": {"type": "string"}, "minOccurs": 0, "maxOccurs": 1},
            "publish": {"title": "Publish as a thematic layer", "schema": {
                "type": "object", "required": ["layer", "field"],
                "properties": {"layer": {"type": "string"}, "title": {"type": "string"},
                               "field": {"type": "string"},
                               "classes": {"type": "integer", "minimum": 2, "maximum": 9,
                                           "default": 5},
                               "scheme": {"type": "string", "enum": list(SCHEMES),
                                          "default": "quantiles"}}},
                "minOccurs": 0, "maxOccurs": 1}},
        "outputs": {"join": {"title": "Matched and unmatched rows, choropleth GeoJSON",
                             "schema": {"type": "object", "contentMediaType": "application/json"}}},
        "example": {"inputs": {
            "table": {"mediaType": CSV_TYPE, "value": base64.b64encode(
                "区县代码,区县,常住人口\n330102,上城区,132.5\n330106,西湖区,119.8\n".encode()
            ).decode()},
            "key": "区县代码", "level": "county", "fields": ["常住人口"]}}}


class Forbidden(ProcessorExecuteError):
    """The caller lacks a role the request needs: 403."""

    ogc_exception_code = "Forbidden"
    http_status_code = 403  # type: ignore[assignment]

    def __init__(self, message: str):
        super().__init__(message, user_msg=message)


# --- the table ------------------------------------------------------------------------------

def _cell(v: Any) -> Any:
    """A cell as text, or as the number a workbook holds (never a bool)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).upper()
    if isinstance(v, (int, float)):
        return v
    return str(v)[:MAX_CELL]


def _csv_rows(raw: bytes) -> list[list[Any]]:
    if raw[:2] == b"PK":
        raise InputError("table: the mediaType says CSV but it is a ZIP (an XLSX workbook?)")
    for encoding in ("utf-8-sig", "gb18030"):  # GB 18030 reads every GBK file
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InputError("table: a CSV is UTF-8 or GBK text")
    if "\x00" in text:
        raise InputError("table: a CSV is text (it holds NUL bytes)")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline=""), dialect):
            rows.append([c[:MAX_CELL] for c in row])
            if len(rows) > MAX_ROWS + 1:
                raise InputError(f"table: more than {MAX_ROWS} rows")
    except csv.Error:
        raise InputError("table: the CSV does not parse (a stray quote?)") from None
    return rows


def _xlsx_rows(raw: bytes, sheet: Any) -> list[list[Any]]:
    import openpyxl

    buf = io.BytesIO(raw)
    if not zipfile.is_zipfile(buf):
        raise InputError("table: the mediaType says XLSX but it is not a workbook")
    with zipfile.ZipFile(buf) as z:
        names = z.namelist()
        if sum(i.file_size for i in z.infolist()) > MAX_XLSX_UNPACKED:
            raise InputError("table: the workbook unpacks to more than "
                             f"{MAX_XLSX_UNPACKED // 1024 // 1024} MB")
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        raise InputError("table: workbooks with macros are not accepted; save it as .xlsx")
    try:  # defusedxml installed: openpyxl refuses DTDs and entities (XML bombs)
        wb = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True,
                                    keep_vba=False, keep_links=False)
    except Exception:  # noqa: BLE001 - a broken workbook raises anything from zip to XML
        raise InputError("table: not a readable XLSX workbook") from None
    try:
        if sheet is not None and (not isinstance(sheet, str) or sheet not in wb.sheetnames):
            raise InputError(f"sheet: the workbook has no sheet {str(sheet)[:60]!r} "
                             f"(it has {', '.join(wb.sheetnames[:10])})")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = []
        try:
            for r in ws.iter_rows(values_only=True, max_row=MAX_ROWS + 2, max_col=200):
                rows.append([_cell(c) for c in r])
        except Exception:  # noqa: BLE001
            raise InputError("table: the worksheet does not read") from None
        if len(rows) > MAX_ROWS + 1:
            raise InputError(f"table: more than {MAX_ROWS} rows")
        return rows
    finally:
        wb.close()


def read_table(table: Any, sheet: Any = None) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the table input; rows without any value are left out."""
    raw, media = qualified_value(table, "table", (CSV_TYPE, XLSX_TYPE), MAX_BYTES)
    rows = _csv_rows(raw) if media == CSV_TYPE else _xlsx_rows(raw, sheet)
    rows = [r for r in rows if any(str(c).strip() for c in r)]
    if not rows:
        raise InputError("table: it is empty (the first row names the columns)")
    header = [str(c).strip() for c in rows[0]]
    return header, rows[1:]


def _column(header: list[str], name: Any, what: str) -> int:
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{what}: the name of a column is required")
    name = name.strip()
    for i, h in enumerate(header):
        if h == name:
            return i
    for i, h in enumerate(header):
        if h.lower() == name.lower():
            return i
    raise InputError(f"{what}: the table has no column {name[:60]!r} "
                     f"(it has {', '.join(h[:40] for h in header[:20] if h)})")


def parse_number(v: Any) -> tuple[float | None, str | None]:
    """(value, None) or (None, why) for a cell."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        f = float(v)
        return (f, None) if math.isfinite(f) else (None, "not a finite number")
    s = unicodedata.normalize("NFKC", str(v)).strip()
    if s.lower() in EMPTY:
        return None, "no value"
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s):
        return None, "not a number"
    f = float(s)
    return (f, None) if math.isfinite(f) else (None, "not a finite number")


# --- the divisions --------------------------------------------------------------------------

@dataclass
class Division:
    code: str
    name: str
    geometry: dict[str, Any] | None = None


@dataclass
class Divisions:
    layer: str
    by_code: dict[str, Division]
    code_column: str = ""
    name_column: str = ""
    by_name: dict[str, list[Division]] = field(default_factory=dict)
    by_short: dict[str, list[Division]] = field(default_factory=dict)


def _short(name: str, level: str) -> str:
    for s in SUFFIXES[level]:
        if name.endswith(s) and len(name) - len(s) >= 2:
            return name[: -len(s)]
    return name


def division_layer(ctx: Context, level: str) -> tuple[str, str, str]:
    """(layer, code column, name column) of the node's division layer of `level`."""
    d = ctx.divisions.get(level)
    if d is None:
        raise InputError(f"level: this node has no {level} divisions")
    return d["layer"], d["code"], d["name"]


def load_divisions(cur: Any, ctx: Context, level: str, geometry: bool = False) -> Divisions:
    layer, code_attr, name_attr = division_layer(ctx, level)
    info = visible_layer(cur, layer, ctx, "level")
    cols = layer_columns(cur, layer) or {}

    def col(attr: str) -> str:
        return attr if attr in cols else next((c for c, o in cols.items() if o == attr), attr)

    code_col, name_col = col(code_attr), col(name_attr)
    for c in (code_col, name_col):  # division codes and names are public where the layer is
        level_needed = info.field_rules.get(c)
        if level_needed is not None and level_needed not in ctx.caller.rights.get(layer, ()):
            raise InputError(f"level: the {level} divisions of this node need a grant")
    geom = sql.SQL(", ST_AsGeoJSON(geom, 7)") if geometry else sql.SQL("")
    cur.execute(sql.SQL("SELECT {c}::text, {n}::text{g} FROM {t} ORDER BY 1").format(
        c=sql.Identifier(code_col), n=sql.Identifier(name_col), g=geom,
        t=sql.Identifier(layer)))
    out = Divisions(layer, {}, code_col, name_col)
    for row in cur.fetchall():
        if not row[0]:
            continue
        d = Division(row[0].strip(), (row[1] or "").strip(),
                     json.loads(row[2]) if geometry and row[2] else None)
        out.by_code[d.code] = d
        out.by_name.setdefault(d.name, []).append(d)
        out.by_short.setdefault(_short(d.name, level), []).append(d)
    return out


def normal_code(digits: str, level: str) -> str | None:
    """The division code of a key of digits at `level`; None if it cannot be one."""
    want = CODE_LENGTH[level]
    if len(digits) == 12 and digits.endswith("000"):
        digits = digits[:9]  # the statistical division codes: 9 digits and 000
    if len(digits) == 9 and want == 6 and digits.endswith("000"):
        digits = digits[:6]
    return digits if len(digits) == want else None


def match(key: Any, divisions: Divisions, level: str) -> tuple[Division | None, str, str]:
    """(division or None, the key as text, why not)."""
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    text = unicodedata.normalize("NFKC", str(key)).strip()
    if not text:
        return None, text, "no key"
    if text.isdigit():
        code = normal_code(text, level)
        if code is None:
            n = CODE_LENGTH[level]
            return None, text, (f"not a {level} code (a {level} code has {n} digits, or 12 in "
                                "the statistical division codes)")
        d = divisions.by_code.get(code)
        return (d, code, "") if d else (None, code, f"no {level} with code {code} on this node")
    for candidates in (divisions.by_name.get(text), divisions.by_short.get(_short(text, level)),
                       [d for n, ds in divisions.by_name.items() if text.endswith(n) for d in ds]):
        if candidates and len(candidates) == 1:
            return candidates[0], text, ""
        if candidates:
            return None, text, ("ambiguous name: " + ", ".join(
                f"{d.name} ({d.code})" for d in candidates[:5]))
    return None, text, f"no {level} named {text[:60]!r} on this node"


# --- the join -------------------------------------------------------------------------------

@dataclass
class Join:
    level: str
    key: str
    fields: list[str]
    divisions: Divisions
    matched: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    records: list[tuple[int, str, Division | None, str, list[Any]]]  # every row, for the CSV


def _fields(data: Mapping[str, Any], header: list[str], key_index: int) -> list[int]:
    raw = data.get("fields")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_FIELDS:
        raise InputError(f"fields: a list of 1 to {MAX_FIELDS} column names is required")
    out = []
    for name in raw:
        i = _column(header, name, "fields")
        if i == key_index:
            raise InputError(f"fields: {header[i][:60]!r} is the key column")
        if header[i] in RESERVED:
            raise InputError(f"fields: the column name {header[i]!r} is reserved "
                             f"({', '.join(RESERVED)}); rename it")
        if i not in out:
            out.append(i)
    return out


def join(data: Mapping[str, Any], ctx: Context, cur: Any, geometry: bool = False) -> Join:
    """The join of the request; InputError for bad input, duplicates included."""
    level = data.get("level")
    if level not in LEVELS:
        raise InputError(f"level: one of {', '.join(LEVELS)}")
    header, rows = read_table(data.get("table"), data.get("sheet"))
    key_index = _column(header, data.get("key"), "key")
    field_index = _fields(data, header, key_index)
    divisions = load_divisions(cur, ctx, str(level), geometry)
    matched: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    records: list[tuple[int, str, Division | None, str, list[Any]]] = []
    seen: dict[str, list[tuple[int, str]]] = {}
    for n, row in enumerate(rows, start=2):  # spreadsheet row numbers: the header is row 1
        key = row[key_index] if key_index < len(row) else ""
        d, text, why = match(key, divisions, str(level))
        cells = [row[i] if i < len(row) else "" for i in field_index]
        records.append((n, text, d, why, [v if v is not None else c for v, c in
                                          ((parse_number(c)[0], c) for c in cells)]))
        if d is None:
            unmatched.append({"row": n, "key": text[:200], "reason": why})
            continue
        seen.setdefault(d.code, []).append((n, text))
        values: dict[str, float | None] = {}
        for i in field_index:
            cell = row[i] if i < len(row) else ""
            v, bad = parse_number(cell)
            values[header[i]] = v
            if bad is not None:
                problems.append({"row": n, "key": text[:200], "field": header[i],
                                 "value": str(cell)[:200], "reason": bad})
        matched.append({"row": n, "key": text[:200], "code": d.code, "name": d.name,
                        "values": values})
    dups = {code: hits for code, hits in seen.items() if len(hits) > 1}
    if dups:
        listed = "; ".join(f"{code} (rows {', '.join(str(r) for r, _ in hits)})"
                           for code, hits in sorted(dups.items())[:20])
        raise InputError(f"key: the table has more than one row for a division, codes {listed}; "
                         "give each division one row")
    return Join(str(level), header[key_index], [header[i] for i in field_index], divisions,
                matched, unmatched, problems, records)


def table_csv(j: Join) -> str:
    """Every row of the table with its division (or why none): numbers as numbers, other
    values as the text they were, which no spreadsheet evaluates (`neutralise`)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([neutralise(h) for h in
                ["row", j.key, "division_code", "division_name", "match", *j.fields]])
    for n, key, d, why, cells in j.records:
        w.writerow([n, neutralise(key), d.code if d else "", neutralise(d.name) if d else "",
                    "matched" if d else neutralise(why), *(neutralise(c) for c in cells)])
    return out.getvalue()


# --- classes and publishing -----------------------------------------------------------------

@dataclass(frozen=True)
class PublishRequest:
    layer: str
    title: str
    field: str
    classes: int
    scheme: str


def publish_request(data: Mapping[str, Any], ctx: Context, fields: list[str] | None = None
                    ) -> PublishRequest | None:
    raw = data.get("publish")
    if raw is None:
        return None
    if not (ctx.caller.publisher or ctx.caller.admin):
        runtime = ctx.runtime
        node = runtime.server.id if runtime is not None else "this node"
        raise Forbidden(f"publish: publishing needs the publisher or admin role of node {node}")
    if not isinstance(raw, Mapping):
        raise InputError("publish: an object {\"layer\", \"title\", \"field\", \"classes\", "
                         "\"scheme\"} is required")
    layer = raw.get("layer")
    if not isinstance(layer, str) or not layer:
        raise InputError("publish: `layer`, the id of the new layer, is required")
    title = raw.get("title") or layer
    if not isinstance(title, str) or len(title) > 200:
        raise InputError("publish: `title` is a text of up to 200 characters")
    f = raw.get("field")
    if not isinstance(f, str) or (fields is not None and f not in fields):
        raise InputError("publish: `field` is one of the joined fields"
                         + (f" ({', '.join(fields)})" if fields else ""))
    k = raw.get("classes", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 9:
        raise InputError("publish: `classes` is an integer from 2 to 9")
    scheme = raw.get("scheme", "quantiles")
    if scheme not in SCHEMES:
        raise InputError(f"publish: `scheme` is one of {', '.join(SCHEMES)}")
    if ctx.runtime is not None:
        from layers.formats import PublishError
        from layers.publish import validate_name
        from layers.web import node_context

        try:
            validate_name(layer, node_context(ctx.runtime))
        except PublishError as exc:
            raise InputError(f"publish: {exc.message}") from None
    return PublishRequest(layer, title, f, k, str(scheme))


def classify(values: list[float], k: int, scheme: str) -> tuple[list[int], list[float], int]:
    """(class number 1..k per value, upper bounds of the classes, k used) by mapclassify."""
    import mapclassify
    import numpy as np

    y = np.asarray(values, dtype=float)
    k = max(1, min(k, len(np.unique(y))))
    if k < 2:
        return [1] * len(values), [float(y.max())] if len(y) else [], 1
    with warnings.catch_warnings():  # FisherJenks without numba: pure Python, fine here
        warnings.simplefilter("ignore", UserWarning)
        c = mapclassify.Quantiles(y, k=k) if scheme == "quantiles" else \
            mapclassify.FisherJenks(y, k=k)
    bins = [float(b) for b in c.bins]
    return [int(b) + 1 for b in c.yb], bins, len(bins)


def class_style(k: int) -> tuple[list[str], dict[str, Any]]:
    """The colours of `k` classes (low to high) and the layer's style of them."""
    colours = YLORRD[k] if k >= 3 else [YLORRD[3][0], YLORRD[3][2]][:k]
    return colours, {"line": {"stroke": "#6b6b6b", "width": 0.6}, "rules": [
        {"field": "class_no", "value": i + 1, "polygon": {"fill": c}}
        for i, c in enumerate(colours)]}


def publish_layer(ctx: Context, req: PublishRequest, features: list[dict[str, Any]],
                  j: Join, k: int) -> dict[str, Any]:
    import geopandas as gpd
    from shapely.geometry import shape

    from layers.formats import PublishError
    from layers.publish import publish
    from layers.web import node_context
    from services.publish_hooks import HOOKS

    assert ctx.runtime is not None
    pctx = node_context(ctx.runtime, hooks=HOOKS)
    _, style = class_style(k)
    gdf = gpd.GeoDataFrame([{**f["properties"], "geometry": shape(f["geometry"])}
                            for f in features], geometry="geometry", crs="EPSG:4490")
    gdf["class_no"] = gdf["class_no"].astype("Int64")
    pctx.work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pctx.work_root, prefix="thematic-") as tmp:
        path = Path(tmp) / f"{req.layer}.gpkg"
        gdf.to_file(path, layer=req.layer, driver="GPKG")
        try:
            results = publish(
                pctx, path, req.layer, title=req.title, access="public", emap=True,
                keywords=["thematic", "专题图", j.level, req.field], places=False,
                actor=ctx.caller.username or ctx.caller.sub, style=style)
        except PublishError as exc:
            if exc.status >= 500:
                raise
            raise InputError(f"publish: {exc.message}") from None
    r = results[0]
    return {"layer": r.name, "version": r.version, "features": r.feature_count, "urls": r.urls,
            "wms_layer": r.name, "access": "public", "emap": True}


# --- the process ----------------------------------------------------------------------------

def validate_join(data: Mapping[str, Any], ctx: Context) -> None:
    publish_request(data, ctx)  # the role first: nothing is read for a caller who may not
    with connection(ctx) as conn, conn.cursor() as cur:
        j = join(data, ctx, cur)
    publish_request(data, ctx, j.fields)


def run_join(data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    publish_request(data, ctx)
    with connection(ctx) as conn, conn.cursor() as cur:
        ctx.progress(20, "joining the table to the divisions")
        j = join(data, ctx, cur, geometry=True)
    req = publish_request(data, ctx, j.fields)
    features: list[dict[str, Any]] = []
    for m in j.matched:
        d = j.divisions.by_code[m["code"]]
        features.append({"type": "Feature", "id": d.code, "geometry": d.geometry,
                         "properties": {"division_code": d.code, "division_name": d.name,
                                        **m["values"]}})
    result: dict[str, Any] = {
        "level": j.level, "divisions_layer": j.divisions.layer, "key": j.key, "fields": j.fields,
        "summary": {"rows": len(j.matched) + len(j.unmatched), "matched": len(j.matched),
                    "unmatched": len(j.unmatched), "problems": len(j.problems)},
        "matched": j.matched, "unmatched": j.unmatched, "problems": j.problems,
        "table_csv": table_csv(j)}
    if req is not None:
        ctx.progress(50, "classifying")
        numeric = [f for f in features if f["properties"][req.field] is not None]
        if not numeric:
            raise InputError(f"publish: no matched row has a number in {req.field!r}")
        yb, bins, k = classify([f["properties"][req.field] for f in numeric], req.classes,
                               req.scheme)
        for f in features:
            f["properties"]["class_no"] = None
        for f, c in zip(numeric, yb, strict=True):
            f["properties"]["class_no"] = c
        colours, _ = class_style(k)
        low = min(f["properties"][req.field] for f in numeric)
        result["classes"] = {"field": req.field, "scheme": req.scheme, "k": k,
                             "requested": req.classes, "breaks": bins, "classes": [
                                 {"class_no": i + 1, "min": low if i == 0 else bins[i - 1],
                                  "max": b, "colour": colours[i],
                                  "count": sum(1 for c in yb if c == i + 1)}
                                 for i, b in enumerate(bins)]}
        ctx.progress(70, "publishing the thematic layer")
        result["published"] = publish_layer(ctx, req, features, j, k)
    result["choropleth"] = {"type": "FeatureCollection", "features": features}
    ctx.progress(95, "writing the result")
    return result


register(JOIN, run_join, validate_join)
