"""Spatial analysis settings of a node (issue 17: OGC API Processes on an RQ queue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AnalysisSettings(BaseModel):
    """The node's analysis engine (services/analysis): its queue workers and limits.

    `redis_url` empty: the node runs its own redis-server on a Unix socket in its directory
    (one host). Set it, and run more workers elsewhere (`python -m services.analysis.worker
    NODE_DIR`, README), to spread jobs over hosts sharing this Redis and the node's PostGIS.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(default=1, ge=0, le=32,
                         description="RQ worker processes the node supervises (0: none here)")
    redis_url: str | None = Field(default=None, pattern=r"^(rediss?|unix)://",
                                  description="the queue's Redis; empty: managed by the node")
    max_area_km2: float = Field(default=2500.0, gt=0,
                                description="largest input area a process accepts (km²)")
    max_vertices: int = Field(default=200_000, ge=100,
                              description="most vertices in one input geometry")
    job_timeout: int = Field(default=3600, ge=10, description="seconds a job may run")
    restart_delay: float = Field(default=3.0, ge=0.1, le=60,
                                 description="seconds before a dead worker is started again")
    jobs_per_day: int = Field(default=500, ge=0,
                              description="executions a caller (an account, or the owner of "
                                          "a key) may start per day at this node; node admins "
                                          "are not counted (429 when over)")
    live_jobs: int = Field(default=4, ge=1, le=100,
                           description="jobs a caller may have queued or running at once")
    result_ttl_hours: float = Field(default=72.0, gt=0,
                                    description="hours a finished job and its results are kept")
    max_results_mb: float = Field(default=2048.0, gt=0,
                                  description="bound of the node's result files (MB): beyond "
                                              "it the oldest finished jobs go first")
    dem: str | None = Field(
        default=None,
        description="the DEM `slope` reads: a GeoTIFF (COG) in longitude/latitude, relative to "
                    "the federation's data_dir or absolute; default: the node's hillshade DEM "
                    "(config/styles/rasters.yml); the node's runtime holds the resolved path, "
                    "'' when it has none (`slope` is then refused)")
    max_upload_mb: float = Field(default=16, gt=0, le=512,
                                 description="largest file a process accepts inline (`upload`)")
    download_limit: int = Field(default=50_000, ge=1,
                                description="most features one download of OGC API Features "
                                            "(?f=gpkg|shp|csv|kml|fgb) writes; beyond it: 413 "
                                            "pointing to the process `extract`")
    test_hooks: bool = Field(default=False,
                             description="tests only: processes accept `test_delay` (seconds "
                                         "per step), to have a long job to cancel or kill")
