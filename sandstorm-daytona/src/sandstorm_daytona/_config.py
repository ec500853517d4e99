"""Configuration of the Daytona provider: keyword arguments, then ``DAYTONA_*`` variables."""

from __future__ import annotations

import getpass
import json
import socket
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from sandstorm import DEFAULT_OUTPUT_CAP, ProviderConfig, env_field

__all__ = ["DaytonaConfig", "Pricing", "RetryPolicy", "default_pricing"]

DEFAULT_API_URL = "https://app.daytona.io/api"


class RetryPolicy(BaseModel):
    """How requests that are safe to repeat are retried (exponential backoff with jitter).

    ``Retry-After`` from the server wins over the computed backoff, but no wait ever
    goes past ``deadline`` seconds counted from the first attempt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=4, ge=1, le=20, description="tries in total, first included")
    initial_backoff: float = Field(default=0.2, ge=0, description="seconds before the 2nd try")
    max_backoff: float = Field(default=5.0, ge=0, description="cap on one wait, seconds")
    jitter: float = Field(default=0.2, ge=0, description="random seconds added to each wait")
    deadline: float = Field(default=30.0, gt=0, description="total seconds spent retrying")


class Pricing(BaseModel):
    """Per-second rates used for ``estimate_cost`` and ``RunResult.cost``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_per_second: float = Field(ge=0, description="per vCPU per second")
    memory_gib_per_second: float = Field(ge=0, description="per GiB of memory per second")
    disk_gib_per_second: float = Field(ge=0, description="per GiB of disk per second")
    free_disk_gib: float = Field(
        default=0.0,
        ge=0,
        description="GiB of disk not billed (an organisation's free storage); counted per "
        "sandbox, so exact for one sandbox at a time",
    )
    currency: str = "USD"
    source: str = ""


@cache
def default_pricing() -> Pricing:
    """The rate table shipped with the package (``sandstorm_daytona/pricing.json``)."""
    text = resources.files("sandstorm_daytona").joinpath("pricing.json").read_text("utf-8")
    return Pricing.model_validate(json.loads(text))


def _default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:63]


class DaytonaConfig(ProviderConfig):
    """Settings of :class:`~sandstorm_daytona.DaytonaProvider`.

    ``api_key`` is required (``DAYTONA_API_KEY``); it is a secret and never appears in a
    repr, an error or a log line. ``api_url`` (``DAYTONA_API_URL``) may point at any
    Daytona-compatible server, the emulator included. ``region`` (``DAYTONA_TARGET``) is
    sent as the sandbox ``target``.
    """

    api_key: SecretStr = env_field("DAYTONA_API_KEY", description="Daytona API key")
    api_url: str = env_field(
        "DAYTONA_API_URL", "DAYTONA_SERVER_URL", default=DEFAULT_API_URL, description="API base"
    )
    region: str | None = env_field("DAYTONA_TARGET", default=None, description="target region")
    organization_id: str | None = env_field(
        "DAYTONA_ORGANIZATION_ID",
        default=None,
        description="sent as X-Daytona-Organization-ID when set",
    )
    default_timeout: float = Field(
        default=120.0, gt=0, description="seconds a run may take when no timeout is given"
    )
    default_workspace_template: str | None = Field(
        default=None, description="Daytona snapshot name used when a run names none"
    )
    resource_image: str = Field(
        default="daytonaio/sandbox:0.6.0",
        description=(
            "image built when cpu/memory/disk are requested without a template "
            "(Daytona accepts explicit resources only for image-based sandboxes); the "
            "default is the newest sandbox image tag Daytona's own sources name (v0.190: "
            "apps/docs computer-use.mdx, images/sandbox/Dockerfile)"
        ),
    )
    owner: str = Field(default_factory=_default_owner, description="the sandstorm-owner label")
    ephemeral_ttl: float = Field(
        default=3600.0, gt=0, description="seconds before a one-shot sandbox counts as expired"
    )
    persistent_ttl: float | None = Field(
        default=7 * 86400.0,
        gt=0,
        description="seconds before a persistent workspace counts as expired (None: never)",
    )
    persistent_auto_stop_minutes: int = Field(
        default=15,
        ge=0,
        description="autoStopInterval sent for persistent workspaces: idle minutes before "
        "Daytona stops one (files are kept, cpu and memory billing stops; the next run or "
        "file operation starts it again). 0 never stops it",
    )
    persistent_auto_delete_minutes: int | None = Field(
        default=None,
        ge=0,
        description="server-side autoDeleteInterval for persistent workspaces (None: off)",
    )
    create_timeout: float = Field(default=120.0, gt=0, description="seconds to wait for started")
    snapshot_timeout: float = Field(
        default=900.0,
        gt=0,
        description="seconds to wait for a snapshot to become active (the sandbox's whole "
        "filesystem is pushed to a registry: far longer than a create on large sandboxes)",
    )
    request_timeout: float = Field(default=30.0, gt=0, description="seconds per API request")
    max_connections: int = Field(
        default=100,
        ge=1,
        le=1024,
        description="concurrent HTTP requests (and pooled connections); 100 as the "
        "official SDK's pool: each request holds one for a round trip",
    )
    max_output_bytes: int = Field(
        default=DEFAULT_OUTPUT_CAP,
        gt=0,
        description=(
            "bytes kept per stream; beyond it output is cut (truncated flag set), and past "
            "twice this much the run is killed (reason output_limit, exit 137)"
        ),
    )
    streaming: Literal["auto", "websocket", "poll"] = Field(
        default="auto", description="how on_stdout/on_stderr are fed"
    )
    retry: RetryPolicy = RetryPolicy()
    pricing: Pricing = Field(default_factory=default_pricing)

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        return value

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("api_key must not be empty (set DAYTONA_API_KEY)")
        return value
