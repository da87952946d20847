"""The registry of a node's processes and the pygeoapi plugin that serves them.

A process is a module of services/analysis (listed in `MODULES`) that calls `register` with
its OGC API Processes description (pygeoapi lists it at `/ogc/processes`), its `run` and its
`validate` (the checks made before a job exists, no work). The manager
(services/analysis/manager.py) runs a process with `run(process_id, inputs, context)`: in the web
worker for a synchronous call, in a queue worker (services/analysis/worker.py) for a job.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor

from geoplat_settings import NodeRuntime
from services.analysis import compute
from services.analysis.caller import CALLER, Caller
from services.analysis.compute import InputError, Limits, Progress
from services.db import ConnectionPool

# the modules that register processes, in the order /ogc/processes lists them
MODULES = ("services.analysis.overlay", "services.analysis.slope",
           "services.analysis.divisions", "services.analysis.thematic",
           "services.analysis.extract")

GEOJSON = {"type": "object", "contentMediaType": "application/geo+json",
           "description": "GeoJSON geometry or Feature, longitude/latitude (CRS84 or EPSG:4490)"}
COMMON = {"version": "1.0.0", "jobControlOptions": ["sync-execute", "async-execute"],
          "outputTransmission": ["value"],
          "keywords": ["geoplat", "analysis", "CGCS2000"],
          "links": []}


@dataclass
class Context:
    """What a run reads: the node's database, its limits, the caller's rights, progress."""

    dsn: str
    limits: Limits
    caller: Caller
    field_rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    progress: Progress = lambda pct, msg: None
    dem: str = ""  # the DEM `slope` reads (absolute path; '': the node has none)
    max_upload_bytes: int = 16 << 20  # largest inline file (`upload`) a process accepts
    # division level -> {"layer", "code", "name"} (source attribute names): the node's
    # division boundaries (layers with `places: {kind: division}` and polygons)
    divisions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    runtime: NodeRuntime | None = None  # the node's (its layers' config, publishing)
    job_id: str = ""  # the job this run is (result files: results_dir(node_dir) / job_id)
    node_dir: Path | None = None
    base_url: str = ""  # the node's public address (links to result files)

    @classmethod
    def of(cls, runtime: NodeRuntime, caller: Caller, progress: Progress | None = None,
           job_id: str = "") -> Context:
        a = runtime.analysis
        return cls(runtime.dsn, Limits(a.max_area_km2, a.max_vertices, a.test_hooks), caller,
                   {k: dict(v) for k, v in runtime.auth.fields.items()},
                   progress or (lambda pct, msg: None), dem=a.dem or "",
                   max_upload_bytes=int(a.max_upload_mb * 1024 * 1024),
                   divisions=division_layers(runtime), runtime=runtime, job_id=job_id,
                   node_dir=runtime.node_dir, base_url=runtime.server.base_url)



def division_layers(runtime: NodeRuntime) -> dict[str, dict[str, str]]:
    """level -> {"layer", "code", "name"} of the node's division boundary layers (the first
    polygon layer of each level)."""
    out: dict[str, dict[str, str]] = {}
    for layer in runtime.layers:
        p = layer.places
        if p is None or p.kind != "division" or p.level is None or p.code is None or \
                "Polygon" not in layer.geometry_type or p.level in out:
            continue
        out[p.level] = {"layer": layer.id, "code": p.code, "name": p.name or p.code}
    return out


Run = Callable[[Mapping[str, Any], "Context"], dict[str, Any]]
Validate = Callable[[Mapping[str, Any], "Context"], None]


@dataclass(frozen=True)
class Process:
    metadata: dict[str, Any]
    run: Run
    validate: Validate


_REGISTRY: dict[str, Process] = {}


def register(metadata: dict[str, Any], run: Run, validate: Validate) -> None:
    _REGISTRY[metadata["id"]] = Process(metadata, run, validate)


def registry() -> dict[str, Process]:
    """Every process of the node, by id (their modules imported at first use: every one of
    them, even when one was imported, and so registered, before)."""
    for name in MODULES:
        importlib.import_module(name)  # a no-op once imported
    order = {name: i for i, name in enumerate(MODULES)}
    return dict(sorted(_REGISTRY.items(),
                       key=lambda kv: order.get(kv[1].run.__module__, len(order))))


@contextmanager
def connection(ctx: Context) -> Iterator[Any]:
    """A connection to the node's database from this process's pool (services/db.py),
    given back (its transaction rolled back) at the end of the block."""
    pool = ConnectionPool.of(ctx.dsn, "geoplat-analysis")
    conn = pool.borrow()
    try:
        yield conn
    finally:
        pool.give_back(conn)


def layer_columns(cur: Any, layer_id: str) -> dict[str, str] | None:
    """column -> original attribute name of a layer of the node; None if there is none."""
    cur.execute("SELECT columns FROM geoplat_layers WHERE id = %s", (layer_id,))
    row = cur.fetchone()
    return {c: str(t) for c, t in (row[0] or {}).items()} if row else None


def visible_layer(cur: Any, layer_id: Any, ctx: Context, name: str = "layers"
                  ) -> compute.LayerInfo:
    """A layer the caller may see; an unknown layer and one the caller may not see get the
    same answer."""
    if not isinstance(layer_id, str) or not layer_id:
        raise InputError(f"{name}: a layer id is required")
    cols = layer_columns(cur, layer_id) if layer_id in ctx.caller.layers else None
    if cols is None:
        raise InputError(f"{name}: no layer {layer_id[:80]!r} on this node")
    return compute.LayerInfo(layer_id, cols, ctx.field_rules.get(layer_id, {}))


def _process(process_id: str) -> Process:
    p = registry().get(process_id)
    if p is None:
        raise InputError(f"no process {process_id[:80]!r}")
    return p


def validate(process_id: str, data: Mapping[str, Any], ctx: Context) -> None:
    """Refuse bad input before any job exists (the same checks `run` makes, no work)."""
    if not isinstance(data, Mapping):
        raise InputError("inputs: an object is required")
    _process(process_id).validate(data, ctx)
    compute.test_delay(data, ctx.limits)


def run(process_id: str, data: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Run a process; its JSON result. InputError for bad input."""
    if not isinstance(data, Mapping):
        raise InputError("inputs: an object is required")
    p = _process(process_id)
    ctx.progress(10, "reading the input")
    return p.run(data, ctx)


class AnalysisProcessor(BaseProcessor):
    """A process of this node (pygeoapi plugin; the processor definition's `process` names
    it); `execute` runs it in-process."""

    def __init__(self, processor_def: dict):
        self.process_id = str(processor_def["process"])
        super().__init__(processor_def, registry()[self.process_id].metadata)

    def execute(self, data: dict, outputs: dict | None = None) -> tuple[str, Any]:
        caller = CALLER.get()
        if caller is None:
            raise InputError("processes run for a caller")
        runtime = NodeRuntime.load(Path(os.environ["GEOPLAT_NODE_DIR"]))
        return "application/json", run(self.process_id, data, Context.of(runtime, caller))
