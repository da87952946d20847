"""The pygeoapi process plugins of a node: `buffer` and `overlay`.

pygeoapi describes them (`/ogc/processes`) from `PROCESS_METADATA`; the manager
(services/analysis/manager.py) runs them with `run(process_id, inputs, context)`, in the web
worker for a synchronous call, in a queue worker (services/analysis/worker.py) for a job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from pygeoapi.process.base import BaseProcessor

from geoplat_settings import NodeRuntime
from services.analysis import compute
from services.analysis.caller import CALLER, Caller
from services.analysis.compute import InputError, Limits, Progress

_GEOJSON = {"type": "object", "contentMediaType": "application/geo+json",
            "description": "GeoJSON geometry or Feature, longitude/latitude (CRS84 or EPSG:4490)"}
_COMMON = {"version": "1.0.0", "jobControlOptions": ["sync-execute", "async-execute"],
           "outputTransmission": ["value"],
           "keywords": ["geoplat", "analysis", "CGCS2000"],
           "links": []}

BUFFER = {**_COMMON, "id": "buffer", "title": {"en": "Buffer (metres on the ground)",
                                               "zh": "缓冲区分析"},
          "description": {"en": "The zone within a distance in metres of a geometry, buffered in "
                                "the CGCS2000 3-degree Gauss-Krüger zone of the input "
                                "(EPSG:4534-4554) and returned in longitude/latitude."},
          "inputs": {
              "geometry": {"title": "Input geometry", "schema": _GEOJSON,
                           "minOccurs": 1, "maxOccurs": 1},
              "distance": {"title": "Distance (m)", "schema": {
                  "type": "number", "exclusiveMinimum": 0, "maximum": compute.MAX_DISTANCE},
                  "minOccurs": 1, "maxOccurs": 1},
              "segments": {"title": "Segments per quarter circle", "schema": {
                  "type": "integer", "minimum": 1, "maximum": 64, "default": 16},
                  "minOccurs": 0, "maxOccurs": 1}},
          "outputs": {"buffer": {"title": "Buffer", "schema": {
              "type": "object", "contentMediaType": "application/geo+json"}}},
          "example": {"inputs": {"geometry": {"type": "Point", "coordinates": [120.2, 30.25]},
                                 "distance": 1000}}}

OVERLAY = {**_COMMON, "id": "overlay", "title": {"en": "Overlay area statistics",
                                                 "zh": "叠加分析（压覆分析）"},
           "description": {"en": "An input polygon against layers of this node the caller may "
                                 "see, grouped by an attribute: per class the intersected area "
                                 "on the CGCS2000 ellipsoid in m², hectares (公顷) and mu (亩), "
                                 "its share of the input, the feature count, and the "
                                 "intersection geometries."},
           "inputs": {
               "geometry": {"title": "Input polygon", "schema": _GEOJSON,
                            "minOccurs": 1, "maxOccurs": 1},
               "layers": {"title": "Layers", "schema": {"type": "array",
                                                        "items": {"type": "string"},
                                                        "minItems": 1, "maxItems": 10},
                          "minOccurs": 1, "maxOccurs": 1},
               "group_by": {"title": "Attribute the classes are of", "schema": {"type": "string"},
                            "minOccurs": 1, "maxOccurs": 1}},
           "outputs": {"statistics": {"title": "Classes, areas and intersections", "schema": {
               "type": "object", "contentMediaType": "application/json"}}},
           "example": {"inputs": {"geometry": {"type": "Polygon", "coordinates": [[
               [120.20, 30.24], [120.22, 30.24], [120.22, 30.26], [120.20, 30.26],
               [120.20, 30.24]]]}, "layers": ["parcels"], "group_by": "land_use"}}}

METADATA = {"buffer": BUFFER, "overlay": OVERLAY}


@dataclass
class Context:
    """What a run reads: the node's database, its limits, the caller's rights, progress."""

    dsn: str
    limits: Limits
    caller: Caller
    field_rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    progress: Progress = lambda pct, msg: None

    @classmethod
    def of(cls, runtime: NodeRuntime, caller: Caller, progress: Progress | None = None
           ) -> Context:
        a = runtime.analysis
        return cls(runtime.dsn, Limits(a.max_area_km2, a.max_vertices, a.test_hooks), caller,
                   {k: dict(v) for k, v in runtime.auth.fields.items()},
                   progress or (lambda pct, msg: None))


def _layer_columns(cur: Any, layer_id: str) -> dict[str, str] | None:
    cur.execute("SELECT columns FROM geoplat_layers WHERE id = %s", (layer_id,))
    row = cur.fetchone()
    return {c: str(t) for c, t in (row[0] or {}).items()} if row else None


def _rows(cur: Any, layer: str, column: str, wkt: str) -> Iterator[tuple[Any, bytes]]:
    q = sql.SQL("SELECT {col}, ST_AsBinary(geom) FROM {tbl} WHERE geom && "
                "ST_GeomFromText(%s, 4490) AND ST_Intersects(geom, ST_GeomFromText(%s, 4490))"
                ).format(col=sql.Identifier(column), tbl=sql.Identifier(layer))
    cur.execute(q, (wkt, wkt))
    while True:
        batch = cur.fetchmany(500)
        if not batch:
            return
        yield from ((v, bytes(g)) for v, g in batch)


def validate(process_id: str, data: Mapping[str, Any], ctx: Context) -> None:
    """Refuse bad input before any job exists (the same checks `run` makes, no work)."""
    if not isinstance(data, Mapping):
        raise InputError("inputs: an object is required")
    if process_id == "buffer":
        compute.parse_geometry(data.get("geometry"), ctx.limits)
        compute.parse_number(data, "distance", low=0.01, high=compute.MAX_DISTANCE)
        compute.parse_number(data, "segments", low=1, high=64, default=16)
    elif process_id == "overlay":
        compute.parse_geometry(data.get("geometry"), ctx.limits, polygonal=True)
        conn = psycopg2.connect(ctx.dsn, application_name="geoplat-analysis")
        try:
            with conn.cursor() as cur:
                _overlay_layers(cur, data, ctx)
        finally:
            conn.close()
    compute.test_delay(data, ctx.limits)


def _overlay_layers(cur: Any, data: Mapping[str, Any], ctx: Context) -> list[tuple[str, str]]:
    """(layer, column) of the request; an unknown layer and one the caller may not see get
    the same answer."""
    layers = data.get("layers")
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, list) or not layers or len(layers) > 10 or \
            not all(isinstance(x, str) for x in layers):
        raise InputError("layers: a list of 1 to 10 layer ids is required")
    group_by = data.get("group_by")
    if not isinstance(group_by, str) or not group_by:
        raise InputError("group_by: the name of an attribute is required")
    out = []
    for layer_id in dict.fromkeys(layers):
        cols = _layer_columns(cur, layer_id) if layer_id in ctx.caller.layers else None
        if cols is None:
            raise InputError(f"layers: no layer {layer_id[:80]!r} on this node")
        info = compute.LayerInfo(layer_id, cols, ctx.field_rules.get(layer_id, {}))
        out.append((layer_id, compute.resolve_attribute(
            info, group_by, ctx.caller.rights.get(layer_id, frozenset()))))
    return out


def run(process_id: str, data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Run a process; its JSON result. InputError for bad input."""
    if not isinstance(data, Mapping):
        raise InputError("inputs: an object is required")
    ctx.progress(10, "reading the input")
    if process_id == "buffer":
        return compute.run_buffer(data, ctx.limits, ctx.progress)
    if process_id != "overlay":
        raise InputError(f"no process {process_id!r}")
    area = compute.parse_geometry(data.get("geometry"), ctx.limits, polygonal=True)
    delay = compute.test_delay(data, ctx.limits)
    conn = psycopg2.connect(ctx.dsn, application_name="geoplat-analysis")
    try:
        with conn.cursor() as cur:
            targets = _overlay_layers(cur, data, ctx)
        ctx.progress(20, "intersecting")
        wkt = area.wkt

        def rows() -> Iterator[tuple[str, Iterator[tuple[Any, bytes]]]]:
            for layer, column in targets:
                with conn.cursor(name=f"overlay_{layer[:40]}") as cur:  # server-side: streamed
                    cur.itersize = 500
                    yield layer, _rows(cur, layer, column, wkt)

        result = compute.overlay(area, rows(), ctx.progress, delay)
    finally:
        conn.close()
    result["group_by"] = data["group_by"]
    return result


class AnalysisProcessor(BaseProcessor):
    """A process of this node (pygeoapi plugin); `execute` runs it in-process."""

    PROCESS_ID = ""

    def __init__(self, processor_def: dict):
        super().__init__(processor_def, METADATA[self.PROCESS_ID])

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, Any]:
        caller = CALLER.get()
        if caller is None:
            raise InputError("processes run for a caller")
        runtime = NodeRuntime.load(Path(os.environ["GEOPLAT_NODE_DIR"]))
        return "application/json", run(self.PROCESS_ID, data, Context.of(runtime, caller))


class BufferProcessor(AnalysisProcessor):
    PROCESS_ID = "buffer"


class OverlayProcessor(AnalysisProcessor):
    PROCESS_ID = "overlay"
