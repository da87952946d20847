"""OGC API Records over `registry.services`: pygeoapi record provider of ours (PostgreSQL).

Serves approved records only, filtered for the caller: `VIEWER` (a contextvar set per request
by `web.execute_with_viewer`) says who asks; restricted records are left out of both the page
and numberMatched for callers who may not see them. `q` is a case-insensitive substring match
(ILIKE, helped by a pg_trgm index) over title, description and keywords, Chinese included.
Paging is stable: ordered by id.
"""

from __future__ import annotations

import contextvars
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from services.db import Database
from services.registry.db import COLUMNS, SERVICE_TYPES, record_of
from services.registry.health import last_change


@dataclass(frozen=True)
class Viewer:
    """What the caller may see: roles from the token, grants held at this node."""

    is_user: bool = False
    platform_admin: bool = False
    privileged_nodes: frozenset[str] = field(default_factory=frozenset)  # admin/publisher of
    granted: frozenset[str] = field(default_factory=frozenset)  # restricted layers here


ANONYMOUS = Viewer()
VIEWER: contextvars.ContextVar[Viewer] = contextvars.ContextVar("registry_viewer", default=ANONYMOUS)

_DBS: dict[str, Database] = {}
_DBS_LOCK = threading.Lock()


def database(dsn: str) -> Database:
    """One pool per DSN and process (pygeoapi makes a provider per request)."""
    with _DBS_LOCK:
        if dsn not in _DBS:
            _DBS[dsn] = Database(dsn, maxconn=4)
        return _DBS[dsn]


def visibility_sql(viewer: Viewer, node_id: str) -> tuple[str, list[Any]]:
    """SQL condition (and args) for the records `viewer` may see at node `node_id`."""
    if viewer.platform_admin:
        return "TRUE", []
    if not viewer.is_user:
        return "access = 'public'", []
    sql = ("(access IN ('public', 'registered') OR (access = 'restricted' AND "
           "(origin_node = ANY(%s) OR (origin_node = %s AND layer_id = ANY(%s)))))")
    return (sql,
            [sorted(viewer.privileged_nodes), node_id, sorted(viewer.granted)])


def _bad(msg: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(user_msg=msg)


def _time(value: str) -> str | None:
    value = value.strip()
    if value in ("", ".."):
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _bad("datetime must be RFC 3339 (or an interval a/b with '..')") from None
    return value


def feature_of(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as an OGC API Records GeoJSON feature."""
    bbox = rec["bbox"]
    geometry = None
    if bbox:
        x1, y1, x2, y2 = bbox
        geometry = {"type": "Polygon",
                    "coordinates": [[[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]]}
    props = {
        "type": rec["type"], "title": rec["title"], "description": rec["description"],
        "keywords": rec["keywords"], "origin_node": rec["origin_node"],
        "origin_path": rec["origin_path"], "access": rec["access"], "layer_id": rec["layer_id"],
        "scale": rec["scale"], "status": rec["status"], "health": rec["health"],
        "latency_ms": rec["latency_ms"], "health_checked": rec["health_at"],
        "health_changed": last_change(rec["health"], rec["health_history"]),
        "version": rec["version"], "created": rec["created"], "updated": rec["updated"],
    }
    return {"id": rec["id"], "type": "Feature", "geometry": geometry, "properties": props,
            "time": {"timestamp": rec["updated"]} if rec["updated"] else None,
            "links": [{"rel": "service", "href": rec["url"], "title": rec["title"],
                       "type": rec["type"]}]}


class RegistryRecordProvider(BaseProvider):
    """Read-only record provider over the node's registry (subtree of the federation)."""

    def __init__(self, provider_def: dict[str, Any]):
        super().__init__(provider_def)
        self.node_id = str(provider_def.get("node_id") or "")
        self.id_field, self.time_field, self.title_field = "id", "updated", "title"
        self.db = database(self.data if isinstance(self.data, str) else self.data["dsn"])
        self.get_fields()

    def get_fields(self) -> dict[str, Any]:
        self._fields = {name: {"type": "string"} for name in (
            "type", "title", "description", "origin_node", "origin_path", "access", "health",
            "layer_id")}
        self._fields["updated"] = {"type": "string", "format": "date-time"}
        return self._fields

    def _where(self, bbox: list[float], datetime_: str | None, properties: list[tuple[str, str]],
               q: str | None) -> tuple[str, list[Any]]:
        conds = ["status = 'approved'"]
        vis, args = visibility_sql(VIEWER.get(), self.node_id)
        conds.append(vis)
        if q:
            terms = [t for t in re.split(r"[\s,]+", q.strip().lower()) if t][:8]
            for term in terms:
                escaped = term.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
                conds.append("anytext LIKE %s")
                args.append(f"%{escaped}%")
        if bbox:
            if len(bbox) != 4:
                raise _bad("bbox needs 4 numbers")
            conds.append("geom && ST_MakeEnvelope(%s, %s, %s, %s, 4490)")
            args += [float(v) for v in bbox]
        if datetime_:
            if "/" in datetime_:
                start, end = (_time(v) for v in datetime_.split("/", 1))
            else:
                start = end = _time(datetime_)
            if start:
                conds.append("updated >= %s::timestamptz")
                args.append(start)
            if end:
                conds.append("updated <= %s::timestamptz" if "/" in datetime_ else
                             "updated <= %s::timestamptz + interval '1 second'")
                args.append(end)
        column = {"type": "service_type"}
        for name, value in properties:
            if name not in self._fields or name == "updated":
                continue
            if name == "type":
                values = [v for v in str(value).split(",") if v]
                if any(v not in SERVICE_TYPES for v in values):
                    raise _bad("type must be one of " + ", ".join(SERVICE_TYPES))
                conds.append("service_type = ANY(%s)")
                args.append(values)
            else:
                conds.append(f"{column.get(name, name)} = %s")
                args.append(str(value))
        return " WHERE " + " AND ".join(conds), args

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results",
              bbox: list[float] | None = None, datetime_: str | None = None,
              properties: list[tuple[str, str]] | None = None, sortby: list[dict] | None = None,
              select_properties: list[str] | None = None, skip_geometry: bool = False,
              q: str | None = None, **kwargs: Any) -> dict[str, Any]:
        where, args = self._where(bbox or [], datetime_, properties or [], q)
        order = []
        for s in sortby or []:
            col = {"type": "service_type"}.get(s["property"], s["property"])
            if s["property"] in self._fields:
                order.append(f"{col} {'DESC' if s['order'] == '-' else 'ASC'}")
        order.append("id")  # stable paging
        with self.db.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM registry.services" + where, args)
            matched = cur.fetchone()["n"]
            features = []
            if resulttype != "hits":
                cur.execute(f"SELECT {COLUMNS} FROM registry.services{where} ORDER BY "
                            + ", ".join(order) + " LIMIT %s OFFSET %s",
                            [*args, int(limit), int(offset)])
                features = [feature_of(record_of(r)) for r in cur.fetchall()]
        for f in features:
            if skip_geometry:
                f["geometry"] = None
            if select_properties:
                f["properties"] = {k: v for k, v in f["properties"].items()
                                   if k in select_properties}
        return {"type": "FeatureCollection", "features": features, "numberMatched": matched,
                "numberReturned": len(features)}

    def get(self, identifier: str, **kwargs: Any) -> dict[str, Any]:
        vis, args = visibility_sql(VIEWER.get(), self.node_id)
        row = self.db.one(f"SELECT {COLUMNS} FROM registry.services WHERE id = %s AND "
                          f"status = 'approved' AND {vis}", (str(identifier), *args))
        if row is None:
            raise ProviderItemNotFoundError(user_msg="identifier not found")
        return feature_of(record_of(row))

    def __repr__(self) -> str:
        return f"<RegistryRecordProvider> {self.node_id}"
