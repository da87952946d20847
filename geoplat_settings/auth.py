"""Per-node auth settings (the `auth:` key of a node in config/federation.yml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NodeAuth(BaseModel):
    """Sign-on, access control and API-key settings of one node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_requires_key: bool = Field(
        default=True,
        description="public layers need an API key (tk) or a signed-in session on the APIs")
    access_token_ttl: int = Field(default=600, ge=30, le=86400,
                                  description="seconds an access token lives (main node)")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=60,
                                   description="seconds a refresh token lives (main node)")
    lockout_threshold: int = Field(default=5, ge=1, description="failed logins before lockout")
    lockout_minutes: int = Field(default=15, ge=1)
    jwks_cache_seconds: int = Field(default=300, ge=1,
                                    description="how long a node trusts its cached JWKS")
    revocation_max_age: int = Field(
        default=300, ge=5,
        description="seconds a node keeps trusting its copy of the main node's token "
                    "revocations and its cached API-key records while the main node cannot be "
                    "reached; after that tokens and keys are refused (503) until it is back")
    grant_default_days: int = Field(default=365, ge=1,
                                    description="validity of an approved grant without expiry")
    node_key_networks: list[str] = Field(
        default=[], description="extra IP ranges the node's e-map cascade key is accepted from "
                                "(the addresses this node reaches its children from, when they "
                                "are not its own host/public_url addresses)")
