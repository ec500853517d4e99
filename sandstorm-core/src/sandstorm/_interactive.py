"""Models of the agent capabilities: interpreter contexts, background processes, ports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MIME_TYPES",
    "CodeContext",
    "Execution",
    "ExecutionError",
    "ExecutionResult",
    "ExposedPort",
    "ProcessInfo",
    "ProcessLogs",
    "ProcessStatus",
]

MIME_TYPES = (
    "text/plain",
    "text/html",
    "text/markdown",
    "image/png",
    "image/svg+xml",
    "image/jpeg",
    "application/json",
)
"""The mime types a result bundle may carry (binary ones base64-encoded)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class CodeContext(_Model):
    """A stateful interpreter session in one workspace: variables persist between runs."""

    id: str
    workspace_id: str
    language: str = "python"
    cwd: str | None = None


class ExecutionResult(_Model):
    """One rich result: a mime bundle (``{"text/plain": ..., "image/png": <base64>}``)."""

    data: dict[str, Any]
    is_main_result: bool = False
    """True for the value of the last expression of the code (``Out[n]`` in Jupyter)."""

    @property
    def text(self) -> str | None:
        """The ``text/plain`` form, when there is one."""
        value = self.data.get("text/plain")
        return value if isinstance(value, str) else None

    @property
    def png(self) -> str | None:
        """The base64 PNG, when there is one."""
        value = self.data.get("image/png")
        return value if isinstance(value, str) else None

    @property
    def html(self) -> str | None:
        """The HTML form, when there is one."""
        value = self.data.get("text/html")
        return value if isinstance(value, str) else None

    def formats(self) -> list[str]:
        """The mime types this result carries."""
        return list(self.data)


class ExecutionError(_Model):
    """An exception the code raised: its class name, message and formatted traceback."""

    name: str
    value: str
    traceback: str


class Execution(_Model):
    """What one ``run_code`` call produced."""

    stdout: str = ""
    stderr: str = ""
    results: list[ExecutionResult] = Field(default_factory=list)
    error: ExecutionError | None = None
    execution_count: int | None = None
    context_id: str | None = None

    @property
    def text(self) -> str | None:
        """The ``text/plain`` form of the main result, when there is one."""
        for result in self.results:
            if result.is_main_result:
                return result.text
        return None


class ProcessStatus(StrEnum):
    """Where a background process is in its life."""

    RUNNING = "running"
    EXITED = "exited"


class ProcessInfo(_Model):
    """A background process started with ``start_process``."""

    id: str
    workspace_id: str
    command: str
    pid: int | None = None
    status: ProcessStatus = ProcessStatus.RUNNING
    exit_code: int | None = None
    started_at: datetime | None = None


class ProcessLogs(_Model):
    """Everything a background process wrote so far (kept up to the output cap)."""

    stdout: str
    stderr: str


class ExposedPort(_Model):
    """A port in the sandbox reachable from the application at ``url``."""

    workspace_id: str
    port: int
    url: str
    token: str | None = None
    """Send as the ``x-daytona-preview-token`` header (or as the provider documents) when set."""
    expires_at: datetime | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers a client must send to reach the port (the token, where one is needed)."""
    protocol: Literal["http"] = "http"
