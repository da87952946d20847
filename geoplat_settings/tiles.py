"""Tile settings of a node (part of `NodeSettings` in config/federation.yml)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field


class TileCache(BaseModel):
    """Where a node keeps rendered tiles.

    `file` (default) is the fast path: nginx serves cached tiles straight from disk.
    `redis` lets several hosts of one node share a cache; nginx then passes every tile request
    to MapProxy (no static fast path).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["file", "redis"] = "file"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0",
                           pattern=r"^rediss?://", description="redis://[user:password@]host:port/db")
    ttl: int = Field(default=0, ge=0, description="seconds a Redis tile lives; 0: until invalidated")

    def redis_params(self) -> dict:
        u = urlsplit(self.redis_url)
        db = (u.path or "/0").strip("/") or "0"
        params: dict = {"host": u.hostname or "127.0.0.1", "port": u.port or 6379, "db": int(db)}
        if u.username:
            params["username"] = u.username
        if u.password:
            params["password"] = u.password
        return params
