"""The node's queue: its Redis (managed: a Unix socket in the node's directory) and RQ queue."""

from __future__ import annotations

from pathlib import Path

from geoplat_settings import NodeRuntime

JOB_FUNCTION = "services.analysis.worker.run_job"


def redis_socket(node_dir: Path) -> Path:
    return node_dir / "analysis" / "redis.sock"


def redis_url(runtime: NodeRuntime) -> str:
    return runtime.analysis.redis_url or f"unix://{redis_socket(runtime.node_dir)}"


def queue_name(runtime: NodeRuntime) -> str:
    return f"geoplat-{runtime.server.id}"


def status_file(node_dir: Path) -> Path:
    """Where the node's pool writes its workers' state (`geoplat status`)."""
    return node_dir / "analysis" / "workers.json"


def results_dir(node_dir: Path) -> Path:
    return node_dir / "analysis" / "results"
