"""The node's pygeoapi config for OGC API Processes: its manager and its process resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.analysis.processes import registry
from services.analysis.queue import results_dir
from services.analysis.store import ensure_schema

MANAGER = "services.analysis.manager.QueueManager"
PROCESSOR = "services.analysis.processes.AnalysisProcessor"


def manager_config(dsn: str, node_dir: Path) -> dict[str, Any]:
    """`server.manager`: our QueueManager over the node's database (the jobs table is made
    here, before pygeoapi's OpenAPI document instantiates the manager)."""
    ensure_schema(dsn)
    out = results_dir(node_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"name": MANAGER, "connection": dsn, "output_dir": str(out)}


def process_resources() -> dict[str, Any]:
    return {pid: {"type": "process", "processor": {"name": PROCESSOR, "process": pid}}
            for pid in registry()}
