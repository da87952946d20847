"""The catalogue of government service items and the offices that handle them (issue 15).

Tables of the node's database (`DDL`):
- `geoplat_items`: code, name, aliases, department, materials, legal and promised time limits
  (working days), fee, online URL, the flags 就近办 (`nearby`), 全城通办 (`citywide`),
  跨省通办 (`cross_province`);
- `geoplat_offices`: an office is a POI of the node's `halls.poi_layer` (its fid: where it is
  comes from the gazetteer, services/places, so a republished POI layer moves it), with its
  opening hours (OSM syntax, services/maps/hours.py), phone and appointment URL;
- `geoplat_office_items`: which office handles which item, at which windows;
- `geoplat_items_versions`: every catalogue the node has had (source, actor, checksum, counts
  and the rows themselves), newest last.

Files (`parse`): CSV (UTF-8, a header row) or XLSX (openpyxl, sheets `items` and/or
`offices`), each opened only as the format its name claims. An items table has the columns of
`ITEM_COLUMNS`, an offices table those of `OFFICE_COLUMNS`; lists are `|`-separated; an office's
`items` are `code:windows` entries. Every row is validated; the first bad one refuses the whole
file naming its row (the spreadsheet's: the header is row 1) and column, and nothing changes.

`replace()`: one transaction under an advisory lock: the tables given are emptied and refilled,
a version row written, then commit (a reader sees the old catalogue or the new, never a mix); an
upload of items alone keeps the offices, and is refused if an office still handles an item it
drops. The publishing routes audit it (services/maps/item_routes.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import psycopg2
import psycopg2.extras

from services.maps import hours

LOCK_KEY = 0x6974656D  # "item": one catalogue change at a time per database
MAX_ROWS = 5000
MAX_LIST = 60    # entries of a list cell (materials, aliases)
MAX_HANDLED = 2000  # items one office handles
ITEM_COLUMNS = ("code", "name", "aliases", "department", "materials", "legal_days",
                "promised_days", "fee", "online_url", "nearby", "citywide", "cross_province")
OFFICE_COLUMNS = ("office_id", "name", "opening_hours", "phone", "appointment_url", "items")
REQUIRED_ITEM = ("code", "name", "department")
REQUIRED_OFFICE = ("office_id", "opening_hours")
CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
PHONE = re.compile(r"^[0-9+\-() ]{3,40}$")
URL = re.compile(r"^https?://[^\s<>\"']{3,500}$")
TRUE = {"是", "true", "yes", "y", "1", "t"}
FALSE = {"否", "false", "no", "n", "0", "f", ""}

DDL = """
CREATE TABLE IF NOT EXISTS geoplat_items (
    code text PRIMARY KEY,
    position integer NOT NULL,
    name text NOT NULL,
    aliases text[] NOT NULL DEFAULT '{}',
    department text NOT NULL,
    materials text[] NOT NULL DEFAULT '{}',
    legal_days integer,
    promised_days integer,
    fee text,
    online_url text,
    nearby boolean NOT NULL DEFAULT false,
    citywide boolean NOT NULL DEFAULT false,
    cross_province boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS geoplat_offices (
    office_id bigint PRIMARY KEY,
    name text,
    opening_hours text NOT NULL,
    phone text,
    appointment_url text
);
CREATE TABLE IF NOT EXISTS geoplat_office_items (
    office_id bigint NOT NULL REFERENCES geoplat_offices ON DELETE CASCADE,
    code text NOT NULL REFERENCES geoplat_items ON DELETE RESTRICT,
    windows text,
    PRIMARY KEY (code, office_id)
);
CREATE TABLE IF NOT EXISTS geoplat_items_versions (
    version integer PRIMARY KEY,
    source text NOT NULL,
    actor text,
    checksum text NOT NULL,
    items integer NOT NULL,
    offices integer NOT NULL,
    snapshot jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


class ItemsError(Exception):
    """A catalogue file refused: nothing changed. `row`/`column` name the bad cell."""

    def __init__(self, detail: str, status: int = 400, *, row: int | None = None,
                 column: str | None = None, sheet: str | None = None):
        where = ", ".join(x for x in (f"sheet {sheet}" if sheet else "",
                                      f"row {row}" if row else "",
                                      f"column {column}" if column else "") if x)
        super().__init__(f"{where}: {detail}" if where else detail)
        self.detail, self.status, self.row, self.column, self.sheet = (
            str(self), status, row, column, sheet)

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in (("row", self.row), ("column", self.column),
                                  ("sheet", self.sheet)) if v is not None}


@dataclass
class Item:
    code: str
    name: str
    department: str
    aliases: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    legal_days: int | None = None
    promised_days: int | None = None
    fee: str | None = None
    online_url: str | None = None
    nearby: bool = False
    citywide: bool = False
    cross_province: bool = False


@dataclass
class Office:
    office_id: int
    opening_hours: str
    name: str | None = None
    phone: str | None = None
    appointment_url: str | None = None
    items: dict[str, str] = field(default_factory=dict)  # code -> windows


@dataclass
class Tables:
    items: list[Item] | None = None
    offices: list[Office] | None = None


# --------------------------------------------------------------------------- reading files

def _text(v: Any) -> str:
    s = "" if v is None else str(v).strip()
    if isinstance(v, float) and v.is_integer():
        s = str(int(v))
    return s


def read_rows(path: Path, filename: str) -> dict[str, list[dict[str, str]]]:
    """The tables of a file by the format its name claims: {kind: rows}, kind items/offices."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        raw = path.read_bytes()
        if raw[:2] == b"PK":
            raise ItemsError("the file is named .csv but is not text (a ZIP or XLSX?)", 415)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ItemsError("a CSV file is UTF-8 text", 415) from None
        if "\x00" in text:
            raise ItemsError("a CSV file is UTF-8 text", 415)
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            raise ItemsError("the CSV does not parse (a field too long, or a stray quote)",
                             400) from None
        return {_kind(rows[0] if rows else [], None): [_row_dict(rows[0], r) for r in rows[1:]]}
    if suffix == ".xlsx":
        return _xlsx(path)
    raise ItemsError("send a .csv or .xlsx file", 415)


def _xlsx(path: Path) -> dict[str, list[dict[str, str]]]:
    if not zipfile.is_zipfile(path):
        raise ItemsError("the file is named .xlsx but is not an XLSX workbook", 415)
    out: dict[str, list[dict[str, str]]] = {}
    try:  # defusedxml installed: openpyxl refuses DTDs and entities (XML bombs)
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            for name in wb.sheetnames:
                if name not in ("items", "offices"):
                    continue
                it = wb[name].iter_rows(values_only=True, max_row=MAX_ROWS + 2,
                                        max_col=len(ITEM_COLUMNS) + 4)
                header = [_text(c) for c in next(it, ())]
                _kind(header, name)
                out[name] = [_row_dict(header, [_text(c) for c in r]) for r in it]
        finally:
            wb.close()
    except ItemsError:
        raise
    except Exception:  # noqa: BLE001 - a broken workbook raises anything from zip to XML
        raise ItemsError("the file is named .xlsx but is not a readable XLSX workbook",
                         415) from None
    if not out:
        raise ItemsError("the workbook has no sheet named items or offices", 400)
    return out


def _kind(header: list[str], sheet: str | None) -> str:
    cols = {h.strip().lower() for h in header}
    kind = "items" if "code" in cols else "offices" if "office_id" in cols else None
    if kind is None or (sheet is not None and kind != sheet):
        raise ItemsError("the header row names no table: an items table has the columns "
                         f"{', '.join(ITEM_COLUMNS)}; an offices table {', '.join(OFFICE_COLUMNS)}",
                         row=1, sheet=sheet)
    known = ITEM_COLUMNS if kind == "items" else OFFICE_COLUMNS
    for h in header:
        if h.strip().lower() not in known and h.strip():
            raise ItemsError(f"unknown column {h[:40]!r}", row=1, column=h[:40], sheet=sheet)
    return kind


def _row_dict(header: list[str], row: list[str]) -> dict[str, str]:
    return {h.strip().lower(): (row[i] if i < len(row) else "") for i, h in enumerate(header)
            if h.strip()}


# --------------------------------------------------------------------------- validating

def _cell(row: dict[str, str], col: int, name: str, *, required: bool = False,
          limit: int = 200) -> str:
    v = (row.get(name) or "").strip()
    if required and not v:
        raise ItemsError("is required", row=col, column=name)
    if len(v) > limit or any(ord(c) < 32 for c in v):
        raise ItemsError(f"at most {limit} characters, no control characters", row=col,
                         column=name)
    return v


def _list(row: dict[str, str], n: int, name: str, limit: int = 200,
          most: int = MAX_LIST) -> list[str]:
    parts = [p.strip() for p in _cell(row, n, name, limit=most * (limit + 1)).split("|")
             if p.strip()]
    if len(parts) > most or any(len(p) > limit for p in parts):
        raise ItemsError(f"at most {most} entries of {limit} characters", row=n, column=name)
    return parts


def _days(row: dict[str, str], n: int, name: str) -> int | None:
    v = _cell(row, n, name, limit=10)
    if not v:
        return None
    if not v.isdigit() or int(v) > 3650:
        raise ItemsError("a whole number of days, 0 to 3650", row=n, column=name)
    return int(v)


def _flag(row: dict[str, str], n: int, name: str) -> bool:
    v = _cell(row, n, name, limit=10).lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ItemsError("是 or 否 (true/false)", row=n, column=name)


def _url(row: dict[str, str], n: int, name: str) -> str | None:
    v = _cell(row, n, name, limit=500)
    if v and not URL.match(v):
        raise ItemsError("an http(s) URL", row=n, column=name)
    return v or None


def _check_rows(rows: list[dict[str, str]]) -> None:
    if len(rows) > MAX_ROWS:
        raise ItemsError(f"at most {MAX_ROWS} rows", 413)


def parse_items(rows: list[dict[str, str]]) -> list[Item]:
    _check_rows(rows)
    out, seen = [], set()
    for i, r in enumerate(rows, start=2):
        if not any(v.strip() for v in r.values()):
            continue
        code = _cell(r, i, "code", required=True, limit=32)
        if not CODE.match(code):
            raise ItemsError("2 to 32 capital letters, digits, - or _", row=i, column="code")
        if code in seen:
            raise ItemsError(f"the code {code} is already on an earlier row", row=i, column="code")
        seen.add(code)
        legal, promised = _days(r, i, "legal_days"), _days(r, i, "promised_days")
        if legal is not None and promised is not None and promised > legal:
            raise ItemsError("the promised time limit exceeds the legal one", row=i,
                             column="promised_days")
        out.append(Item(code, _cell(r, i, "name", required=True, limit=100),
                        _cell(r, i, "department", required=True, limit=60),
                        _list(r, i, "aliases", 60), _list(r, i, "materials"), legal, promised,
                        _cell(r, i, "fee", limit=100) or None, _url(r, i, "online_url"),
                        _flag(r, i, "nearby"), _flag(r, i, "citywide"),
                        _flag(r, i, "cross_province")))
    if not out:
        raise ItemsError("the items table has no rows", 400)
    return out


def parse_offices(rows: list[dict[str, str]], codes: set[str], pois: dict[int, str]) -> list[Office]:
    """`codes`: the items known; `pois`: fid -> name of the POIs an office may be."""
    _check_rows(rows)
    out, seen = [], set()
    for i, r in enumerate(rows, start=2):
        if not any(v.strip() for v in r.values()):
            continue
        raw = _cell(r, i, "office_id", required=True, limit=18)
        if not raw.isdigit():
            raise ItemsError("the fid of a POI (a whole number)", row=i, column="office_id")
        oid = int(raw)
        if oid in seen:
            raise ItemsError(f"office {oid} is already on an earlier row", row=i,
                             column="office_id")
        seen.add(oid)
        if oid not in pois:
            raise ItemsError(f"no POI {oid} on this node's office layer", row=i,
                             column="office_id")
        name = _cell(r, i, "name", limit=100)
        if name and name != pois[oid]:
            raise ItemsError(f"POI {oid} is named {pois[oid]}, not {name}", row=i, column="name")
        oh = _cell(r, i, "opening_hours", required=True, limit=hours.MAX_HOURS)
        try:
            hours.check(oh)
        except hours.HoursError as exc:
            raise ItemsError(str(exc), row=i, column="opening_hours") from None
        phone = _cell(r, i, "phone", limit=40)
        if phone and not PHONE.match(phone):
            raise ItemsError("digits, + - ( ) and spaces", row=i, column="phone")
        handled: dict[str, str] = {}
        for entry in _list(r, i, "items", 100, MAX_HANDLED):
            code, _, windows = entry.partition(":")
            code, windows = code.strip(), windows.strip()
            if code not in codes:
                raise ItemsError(f"no item {code[:32]} in the catalogue", row=i, column="items")
            handled[code] = windows[:60]
        out.append(Office(oid, oh, name or pois[oid], phone or None,
                          _url(r, i, "appointment_url"), handled))
    return out


# --------------------------------------------------------------------------- database

def ensure(cur: Any) -> None:
    cur.execute(DDL)


def pois(cur: Any, layer: str) -> dict[int, str]:
    """The POIs an office may be: fid -> name (the gazetteer's rows of the layer)."""
    cur.execute("SELECT to_regclass('geoplat_places') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT source_id, name FROM geoplat_places WHERE kind = 'poi' AND layer = %s",
                (layer,))
    return {int(s): n for s, n in cur.fetchall() if s and s.isdigit()}


def _current_items(cur: Any) -> list[Item]:
    cur.execute("SELECT code, name, department, aliases, materials, legal_days, promised_days,"
                " fee, online_url, nearby, citywide, cross_province FROM geoplat_items"
                " ORDER BY position")
    return [Item(*r) for r in cur.fetchall()]


def _current_offices(cur: Any) -> list[Office]:
    cur.execute("SELECT o.office_id, o.opening_hours, o.name, o.phone, o.appointment_url,"
                " coalesce(json_object_agg(l.code, coalesce(l.windows, ''))"
                " FILTER (WHERE l.code IS NOT NULL), '{}') FROM geoplat_offices o"
                " LEFT JOIN geoplat_office_items l USING (office_id)"
                " GROUP BY o.office_id ORDER BY o.office_id")
    return [Office(r[0], r[1], r[2], r[3], r[4], dict(r[5])) for r in cur.fetchall()]


def checksum(items: list[Item], offices: list[Office]) -> str:
    body = json.dumps([[asdict(i) for i in items], [asdict(o) for o in offices]],
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def replace(dsn: str, files: dict[str, list[dict[str, str]]], *, source: str,
            actor: str | None, poi_layer: str, only_if_sample: bool = False) -> dict[str, Any]:
    """Validate the tables given and swap them in (module doc). `only_if_sample`: the node
    load's call, which leaves a catalogue a publisher uploaded alone."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            ensure(cur)
            cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,))
            if not cur.fetchone()[0]:
                raise ItemsError("another catalogue change is under way; try again", 409)
            cur.execute("SELECT version, source, checksum FROM geoplat_items_versions"
                        " ORDER BY version DESC LIMIT 1")
            last = cur.fetchone()
            if only_if_sample and last is not None and last[1] != "sample":
                return {"version": last[0], "unchanged": True, "kept": "uploaded"}
            items = parse_items(files["items"]) if "items" in files else _current_items(cur)
            codes = {i.code for i in items}
            if "offices" in files:
                offices = parse_offices(files["offices"], codes, pois(cur, poi_layer))
            else:
                offices = _current_offices(cur)
                for o in offices:
                    gone = sorted(set(o.items) - codes)
                    if gone:
                        raise ItemsError(f"office {o.office_id} still handles {gone[0]}, which "
                                         "this catalogue drops: upload the offices too",
                                         column="code")
            total = checksum(items, offices)
            if last is not None and last[2] == total:
                return {"version": last[0], "unchanged": True, "items": len(items),
                        "offices": len(offices)}
            _write(cur, items, offices)
            version = (last[0] if last else 0) + 1
            snapshot = {"items": [asdict(i) for i in items],
                        "offices": [asdict(o) for o in offices]}
            cur.execute("INSERT INTO geoplat_items_versions (version, source, actor, checksum,"
                        " items, offices, snapshot) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (version, source[:200], actor, total, len(items), len(offices),
                         psycopg2.extras.Json(snapshot)))
            return {"version": version, "unchanged": False, "items": len(items),
                    "offices": len(offices)}
    finally:
        conn.close()


def _write(cur: Any, items: list[Item], offices: list[Office]) -> None:
    cur.execute("DELETE FROM geoplat_office_items; DELETE FROM geoplat_offices;"
                " DELETE FROM geoplat_items")
    psycopg2.extras.execute_values(cur, "INSERT INTO geoplat_items (code, position, name,"
                                   " aliases, department, materials, legal_days, promised_days,"
                                   " fee, online_url, nearby, citywide, cross_province) VALUES %s",
                                   [(i.code, n, i.name, i.aliases, i.department, i.materials,
                                     i.legal_days, i.promised_days, i.fee, i.online_url,
                                     i.nearby, i.citywide, i.cross_province)
                                    for n, i in enumerate(items)])
    if offices:
        psycopg2.extras.execute_values(cur, "INSERT INTO geoplat_offices (office_id, name,"
                                       " opening_hours, phone, appointment_url) VALUES %s",
                                       [(o.office_id, o.name, o.opening_hours, o.phone,
                                         o.appointment_url) for o in offices])
    links = [(o.office_id, c, w or None) for o in offices for c, w in o.items.items()]
    if links:
        psycopg2.extras.execute_values(cur, "INSERT INTO geoplat_office_items (office_id, code,"
                                       " windows) VALUES %s", links)


def load_sample(dsn: str, items_file: Path | None, offices_file: Path | None,
                poi_layer: str) -> dict[str, Any]:
    """The node load's call: the sample catalogue into an empty (or sample) catalogue."""
    files: dict[str, list[dict[str, str]]] = {}
    for path in (items_file, offices_file):
        if path is not None:
            files.update(read_rows(path, path.name))
    if "items" not in files:
        return {"unchanged": True, "skipped": "no sample"}
    return replace(dsn, files, source="sample", actor=None, poi_layer=poi_layer,
                   only_if_sample=True)
