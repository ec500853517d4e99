"""Typed values that cross the provider boundary.

Units are the same everywhere: time in seconds (float), memory and disk in MiB, cpu in
cores. Byte counts in metrics are bytes, and say so in their names.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ResourceUsage",
    "Language",
    "Resources",
    "NetworkPolicy",
    "RunResult",
    "Workspace",
    "Snapshot",
    "WorkspaceMetrics",
    "CostEstimate",
    "FileInfo",
    "GitFileStatus",
    "GitStatus",
    "OutputChunk",
    "ProviderInfo",
    "TerminationReason",
    "DEFAULT_OUTPUT_CAP",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Language(StrEnum):
    """A language a provider can run. Providers list theirs in ``ProviderInfo.languages``."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"
    SHELL = "shell"


class TerminationReason(StrEnum):
    """Why the code stopped running."""

    EXITED = "exited"
    """The process ended by itself (any exit code)."""
    SIGNALED = "signaled"
    """A signal killed the process (``RunResult.signal`` says which)."""
    MEMORY_LIMIT = "memory_limit"
    """The memory limit was hit and the kernel killed the process."""
    OUTPUT_LIMIT = "output_limit"
    """Output went past twice the cap: the process was killed (exit 137, signal 9)."""
    CPU_LIMIT = "cpu_limit"
    """The cpu-time limit was hit."""
    DISK_LIMIT = "disk_limit"
    """The workspace went past its disk limit and the process was killed."""


DEFAULT_OUTPUT_CAP = 4 << 20
"""Bytes of stdout and of stderr every provider keeps per run by default (4 MiB).

Past the cap the rest is dropped and ``stdout_truncated``/``stderr_truncated`` is set;
once a stream passes twice the cap the run is killed: ``reason=OUTPUT_LIMIT``,
``exit_code=137``, ``signal=9``.
"""

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class Resources(_Model):
    """Resources requested for a workspace: cpu in cores, memory and disk in MiB."""

    cpu: PositiveFloat | None = None
    memory: PositiveInt | None = None
    disk: PositiveInt | None = None


class NetworkPolicy(_Model):
    """What network a workspace's code may reach.

    ``mode="blocked"`` (the default) gives no network at all; ``"host"`` shares the
    host's network; ``"allow_list"`` permits only the hosts or CIDRs in ``allow``.
    """

    mode: Literal["blocked", "host", "allow_list"] = "blocked"
    allow: tuple[str, ...] = ()

    @classmethod
    def blocked(cls) -> NetworkPolicy:
        """No network at all."""
        return cls(mode="blocked")

    @classmethod
    def host(cls) -> NetworkPolicy:
        """The host's network, unrestricted."""
        return cls(mode="host")


class RunResult(_Model):
    """What a run produced. A non-zero exit is a result, not an exception."""

    stdout: str
    stderr: str
    exit_code: int
    duration: float = Field(description="wall-clock seconds")
    workspace_id: str | None = None
    provider: str
    language: str = "python"
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    reason: TerminationReason = TerminationReason.EXITED
    signal: int | None = None
    cost: float | None = Field(default=None, description="actual cost in USD, where known")

    @property
    def ok(self) -> bool:
        """True when the code exited with status 0."""
        return self.exit_code == 0


class Workspace(_Model):
    """A place where code runs; persistent workspaces keep files between runs."""

    id: str
    provider: str
    name: str | None = None
    template: str | None = None
    persistent: bool = True
    created_at: datetime
    state: str = "started"
    resources: Resources = Resources()
    network: NetworkPolicy = NetworkPolicy()
    labels: dict[str, str] = Field(default_factory=dict)


class Snapshot(_Model):
    """A captured copy of a workspace's filesystem, to restore into a new workspace."""

    id: str
    provider: str
    workspace_id: str
    created_at: datetime
    size: int = Field(description="bytes")
    name: str | None = None


class ResourceUsage(_Model):
    """What a workspace has used, from cgroup-style accounting: cpu time, memory, disk io and
    processes. Adapters build it from their backend's counters (see ``sandstorm.adapters``'
    cgroup readers); :class:`WorkspaceMetrics` adds the workspace and its limits."""

    cpu_user_seconds: float
    cpu_system_seconds: float
    memory_current_bytes: int
    memory_peak_bytes: int
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    process_count: int = 0

    @property
    def cpu_seconds(self) -> float:
        """User plus system cpu seconds."""
        return self.cpu_user_seconds + self.cpu_system_seconds


class WorkspaceMetrics(ResourceUsage):
    """Resource figures for a workspace, from the backend's own accounting."""

    workspace_id: str
    collected_at: datetime
    disk_used_bytes: int = 0
    cpu_limit: float | None = Field(default=None, description="cores")
    memory_limit_bytes: int | None = None


class CostEstimate(_Model):
    """An estimated cost in ``currency`` with its line items."""

    total: float
    currency: str = "USD"
    breakdown: dict[str, float] = Field(default_factory=dict)
    duration: float = Field(description="seconds the estimate assumes")


class FileInfo(_Model):
    """One entry of a workspace directory listing."""

    path: str
    name: str
    is_dir: bool
    size: int
    mode: int
    modified_at: datetime


class GitFileStatus(_Model):
    """One changed path in ``git status``."""

    path: str
    status: str


class GitStatus(_Model):
    """The state of a repository inside a workspace."""

    branch: str | None
    commit: str | None = None
    ahead: int = 0
    behind: int = 0
    files: tuple[GitFileStatus, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing is modified or untracked."""
        return not self.files


class OutputChunk(_Model):
    """A piece of output delivered while the code runs (streaming)."""

    stream: Literal["stdout", "stderr"]
    text: str


class ProviderInfo(_Model):
    """What a provider is and declares, readable from its class without credentials."""

    name: str
    capabilities: frozenset[str]
    languages: frozenset[str]
    description: str = ""
    package: str | None = None
    version: str | None = None
