"""Pydantic models of the Daytona JSON this provider reads (camelCase on the wire).

Only the fields the provider uses are declared; unknown keys are ignored, so newer
servers that add fields keep working.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AnalyticsPoint",
    "AnalyticsPoints",
    "ApiErrorBody",
    "CommandInfo",
    "CommandLogs",
    "ExecuteResponse",
    "GitFileStatusWire",
    "GitStatusWire",
    "FileInfoWire",
    "SandboxList",
    "SandboxWire",
    "SessionExecuteResponse",
    "SessionInfo",
    "SnapshotList",
    "SnapshotWire",
    "SystemMetricsWire",
    "TelemetryPoint",
    "TelemetryResponse",
    "TelemetrySeries",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class SandboxWire(_Wire):
    """A sandbox as the main API returns it (create, get, list, start, stop)."""

    id: str
    name: str = ""
    organization_id: str | None = Field(default=None, alias="organizationId")
    state: str | None = None
    snapshot: str | None = None
    target: str = ""
    cpu: float = 0
    memory: float = 0
    disk: float = 0
    labels: dict[str, str] = Field(default_factory=dict)
    network_block_all: bool = Field(default=False, alias="networkBlockAll")
    network_allow_list: str | None = Field(default=None, alias="networkAllowList")
    domain_allow_list: str | None = Field(default=None, alias="domainAllowList")
    toolbox_proxy_url: str = Field(default="", alias="toolboxProxyUrl")
    error_reason: str | None = Field(default=None, alias="errorReason")
    created_at: str | None = Field(default=None, alias="createdAt")
    auto_delete_interval: float | None = Field(default=None, alias="autoDeleteInterval")


class SandboxList(_Wire):
    """One page of ``GET /sandbox``."""

    items: list[SandboxWire]
    next_cursor: str | None = Field(default=None, alias="nextCursor")


class SnapshotWire(_Wire):
    """A Daytona snapshot (a named template image)."""

    id: str
    name: str
    state: str = ""
    size: float | None = None
    cpu: float | None = None
    mem: float | None = None
    disk: float | None = None
    error_reason: str | None = Field(default=None, alias="errorReason")
    created_at: str | None = Field(default=None, alias="createdAt")
    source_sandbox_id: str | None = Field(default=None, alias="sourceSandboxId")


class SnapshotList(_Wire):
    """One page of ``GET /snapshots``."""

    items: list[SnapshotWire]
    total: int = 0
    page: int = 1
    total_pages: int = Field(default=1, alias="totalPages")


class ExecuteResponse(_Wire):
    """``POST /process/execute``: stdout and stderr combined in ``result``."""

    exit_code: int = Field(alias="exitCode")
    result: str = ""


class SessionExecuteResponse(_Wire):
    """``POST /process/session/{id}/exec``."""

    cmd_id: str = Field(alias="cmdId")
    exit_code: int | None = Field(default=None, alias="exitCode")
    output: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class CommandInfo(_Wire):
    """``GET /process/session/{id}/command/{cmd}``."""

    id: str
    command: str = ""
    exit_code: int | None = Field(default=None, alias="exitCode")


class SessionInfo(_Wire):
    """``GET /process/session/{id}``."""

    session_id: str = Field(alias="sessionId")
    commands: list[CommandInfo] | None = None


class CommandLogs(_Wire):
    """``GET .../command/{cmd}/logs`` (JSON form): stdout and stderr apart."""

    output: str = ""
    stdout: str = ""
    stderr: str = ""


class FileInfoWire(_Wire):
    """An entry of ``GET /files``."""

    name: str
    is_dir: bool = Field(alias="isDir")
    size: int = 0
    mode: str = ""
    mod_time: str = Field(default="", alias="modTime")
    modified_at: str | None = Field(default=None, alias="modifiedAt")
    permissions: str = ""


class GitFileStatusWire(_Wire):
    """One path of ``GET /git/status``."""

    name: str
    staging: str = ""
    worktree: str = ""


class GitStatusWire(_Wire):
    """``GET /git/status``."""

    current_branch: str = Field(alias="currentBranch")
    file_status: list[GitFileStatusWire] = Field(default_factory=list, alias="fileStatus")
    ahead: int | None = None
    behind: int | None = None


class SystemMetricsWire(_Wire):
    """``GET /system/metrics`` from the toolbox: the sandbox's latest usage sample."""

    cpu_count: float | None = Field(default=None, alias="cpuCount")
    cpu_used_pct: float | None = Field(default=None, alias="cpuUsedPct")
    mem_total: int | None = Field(default=None, alias="memTotal")
    mem_used: int | None = Field(default=None, alias="memUsed")
    mem_cache: int | None = Field(default=None, alias="memCache")
    disk_total: int | None = Field(default=None, alias="diskTotal")
    disk_used: int | None = Field(default=None, alias="diskUsed")
    disk_free: int | None = Field(default=None, alias="diskFree")
    timestamp: str | None = None


class TelemetryPoint(_Wire):
    """One sample of a telemetry series."""

    timestamp: str
    value: float


class TelemetrySeries(_Wire):
    """One metric's samples (``daytona.sandbox.cpu.utilization`` ...)."""

    metric_name: str = Field(alias="metricName")
    data_points: list[TelemetryPoint] = Field(default_factory=list, alias="dataPoints")


class AnalyticsPoint(_Wire):
    """One reading from the Analytics API's ``.../telemetry/metrics`` (a flat list)."""

    metric_name: str | None = Field(default=None, alias="metricName")
    timestamp: str | None = None
    value: float | None = None


AnalyticsPoints = TypeAdapter(list[AnalyticsPoint])
"""Parses the Analytics API's list of readings."""


class TelemetryResponse(_Wire):
    """``GET /sandbox/{id}/telemetry/metrics``."""

    series: list[TelemetrySeries] = Field(default_factory=list)


class ApiErrorBody(_Wire):
    """The error envelope of the main API (NestJS) and of the daemon."""

    status_code: int | None = Field(default=None, alias="statusCode")
    message: str | list[str] | None = None
    error: str | None = None
    code: str | None = None
    source: str | None = None
