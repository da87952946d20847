"""Publishing settings of a node (the `publish:` key of a node in config/federation.yml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PublishSettings(BaseModel):
    """Limits and behaviour of layer publishing (`geoplat layers publish`, `POST /api/layers`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_versions: int = Field(default=5, ge=2, le=100,
                               description="versions kept per layer (the current one included)")
    max_upload_mb: float = Field(default=512, gt=0, description="largest file accepted")
    max_unpacked_mb: float = Field(default=2048, gt=0,
                                   description="largest total size of a zip archive's contents")
    max_zip_ratio: float = Field(default=100, gt=1,
                                 description="largest unpacked/packed size ratio of a zip archive")
    max_zip_entries: int = Field(default=1000, ge=1)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_unpacked_bytes(self) -> int:
        return int(self.max_unpacked_mb * 1024 * 1024)
