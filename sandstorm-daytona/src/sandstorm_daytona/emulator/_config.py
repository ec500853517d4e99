"""The emulator's configuration: one validated pydantic model."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["EmulatorConfig", "FaultRule", "Faults", "Quotas", "RateLimit"]

THROTTLERS = ("authenticated", "sandbox-create", "sandbox-lifecycle")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """At most ``limit`` requests per ``ttl`` seconds for one API key (a fixed window)."""

    limit: int = Field(gt=0)
    ttl: float = Field(default=60.0, gt=0, description="window length in seconds")


class Quotas(_Model):
    """Per-organisation limits, enforced on create and start like the real service.

    Resources are Daytona units: cpu in vCPU, memory and disk in GiB. ``None`` means
    unlimited. Going over a total answers 403 ``Total CPU limit exceeded. Maximum
    allowed: N.`` (and the memory/disk forms); over ``max_sandboxes`` answers 403 too.
    """

    max_sandboxes: int | None = Field(default=None, ge=0)
    total_cpu: int | None = Field(default=None, ge=0)
    total_memory: int | None = Field(default=None, ge=0)
    total_disk: int | None = Field(default=None, ge=0)
    max_cpu_per_sandbox: int | None = Field(default=None, ge=1)
    max_memory_per_sandbox: int | None = Field(default=None, ge=1)
    max_disk_per_sandbox: int | None = Field(default=None, ge=1)


class FaultRule(_Model):
    """Inject one kind of failure into matching requests with probability ``rate``.

    ``path`` is an ``fnmatch`` pattern over the request path (``/api/sandbox*``,
    ``/toolbox/*/process/execute``, ``*``); ``method`` restricts it to one HTTP method.
    ``kind`` is an HTTP status (500, 502, 503, 504 or 429, the last with ``Retry-After``),
    ``"drop"`` (the TCP connection is closed with no response) or ``"latency"`` (the
    request is delayed by ``latency`` seconds, then served normally). ``when="after"``
    performs the request and then fails the response, the nastiest case for clients that
    must not leak what they created.
    """

    path: str = "*"
    method: str | None = None
    kind: Literal[500, 502, 503, 504, 429, "drop", "latency"] = 503
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    latency: float = Field(default=0.0, ge=0.0, description="seconds, for kind='latency'")
    retry_after: int = Field(default=1, ge=0, description="seconds, for kind=429")
    when: Literal["before", "after"] = "before"

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    @model_validator(mode="after")
    def _latency_needs_seconds(self) -> FaultRule:
        if self.kind == "latency" and self.latency <= 0:
            raise ValueError("a latency fault needs latency > 0 seconds")
        return self

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """Parse the CLI form ``[METHOD ]PATH=KIND[@RATE][:SECONDS]``.

        Examples: ``/api/sandbox=503@0.2``, ``POST /api/sandbox=drop@0.1``,
        ``*=latency@1:0.25``, ``/toolbox/*=429@0.5:2`` (Retry-After 2).
        """
        target, sep, effect = spec.rpartition("=")
        if not sep or not target or not effect:
            raise ValueError(f"fault {spec!r} is not [METHOD ]PATH=KIND[@RATE][:SECONDS]")
        method, _, path = target.strip().rpartition(" ")
        effect, _, seconds = effect.partition(":")
        kind_text, _, rate_text = effect.partition("@")
        values: dict[str, Any] = {"path": path, "method": method or None}
        kind: Any = int(kind_text) if kind_text.isdigit() else kind_text
        values["kind"] = kind
        if rate_text:
            values["rate"] = float(rate_text)
        if seconds:
            if kind == "latency":
                values["latency"] = float(seconds)
            else:
                values["retry_after"] = int(seconds)
        return cls.model_validate(values)


class Faults(_Model):
    """A seeded fault plan: the same seed and request order give the same failures."""

    seed: int = 0
    rules: tuple[FaultRule, ...] = ()


def _default_keys() -> dict[str, str]:
    return {f"emu_{secrets.token_hex(16)}": "org-default"}


class EmulatorConfig(_Model):
    """Everything the emulator can be told. All fields have working defaults.

    ``api_keys`` maps each accepted bearer token to its organisation id; sandboxes and
    snapshots belong to an organisation and are invisible (404) to the others. By default
    one random key for organisation ``org-default`` is generated; read it back from
    :attr:`default_api_key`.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    api_keys: dict[str, str] = Field(default_factory=_default_keys, min_length=1)
    api_prefix: str = Field(default="/api", pattern=r"^(/[A-Za-z0-9._-]+)*$")
    public_url: str | None = Field(
        default=None,
        description="base URL clients use (e.g. http://127.0.0.1:8080); derived from the "
        "request when unset",
    )

    provider: str = Field(default="local", description="sandstorm provider that runs the code")
    provider_options: dict[str, Any] = Field(default_factory=dict)
    output_cap: int = Field(
        default=64 << 20,
        ge=1024,
        description="bytes of stdout and of stderr the local engine keeps per command (a real "
        "sandbox has no cap); past it the output is cut with a visible notice, and past twice "
        "it the command is killed. provider_options['output_cap'] wins when given",
    )

    default_snapshot: str = "daytonaio/sandbox:emulator"
    regions: tuple[str, ...] = Field(default=("us", "eu"), min_length=1)
    default_cpu: int = Field(default=1, ge=1)
    default_memory: int = Field(default=1, ge=1, description="GiB")
    default_disk: int = Field(default=3, ge=1, description="GiB")
    enforce_resources: bool = Field(
        default=True,
        description="pass cpu/memory/disk to the engine as hard limits (when it supports them)",
    )
    network: Literal["blocked", "host"] = Field(
        default="blocked",
        description="network of sandboxes that do not set networkBlockAll; 'blocked' keeps "
        "tests offline",
    )
    max_auto_archive_interval: int = Field(default=30 * 24 * 60, ge=1, description="minutes")

    command_timeout: float = Field(
        default=600.0, gt=0, description="seconds an execute without its own timeout may run"
    )
    session_command_timeout: float = Field(
        default=3600.0, gt=0, description="seconds a session command may run"
    )
    transition_delay: float = Field(
        default=0.0,
        ge=0.0,
        description="seconds (on the emulator clock) a sandbox shows transitional states "
        "such as 'starting' or 'stopping'; 0 answers with the final state at once",
    )
    reaper_interval: float = Field(
        default=1.0, gt=0, description="seconds between auto-stop/archive/delete/ttl checks"
    )

    record_exchanges: bool = Field(
        default=False,
        description="keep every request/response pair in Emulator.exchanges (for tests)",
    )
    rate_limits: dict[str, RateLimit] = Field(
        default_factory=dict, description=f"per-key throttlers by name: {', '.join(THROTTLERS)}"
    )
    quotas: Quotas = Quotas()
    faults: Faults = Faults()

    @field_validator("rate_limits")
    @classmethod
    def _known_throttlers(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        unknown = sorted(set(value) - set(THROTTLERS))
        if unknown:
            raise ValueError(
                f"unknown throttler(s) {', '.join(unknown)}; use {', '.join(THROTTLERS)}"
            )
        return value

    @field_validator("api_keys")
    @classmethod
    def _non_empty_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, org in value.items():
            if not key or not org:
                raise ValueError("api keys and organisation ids must be non-empty strings")
        return value

    @property
    def default_api_key(self) -> str:
        """The first configured API key."""
        return next(iter(self.api_keys))

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield (
                name,
                ({k[:4] + "***": v for k, v in value.items()} if name == "api_keys" else value),
            )
