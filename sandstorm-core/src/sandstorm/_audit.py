"""Audit events and the built-in JSON-lines audit logger."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._hookspecs import hookimpl

__all__ = ["AuditEvent", "JsonlAuditLogger"]

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "credential")


class AuditEvent(BaseModel):
    """One auditable action: who (provider), what (action), where (workspace), details."""

    model_config = ConfigDict(frozen=True)

    action: str
    provider: str
    workspace_id: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    details: dict[str, Any] = Field(default_factory=dict)

    def redacted(self) -> dict[str, Any]:
        """The event as JSON-ready data with any secret-looking detail replaced."""
        data = self.model_dump(mode="json")
        data["details"] = _redact(data["details"])
        return data


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "***" if any(word in str(key).lower() for word in _SECRET_WORDS) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


class JsonlAuditLogger:
    """A plugin that appends every audit event to a file, one JSON object per line.

    Off by default; turned on by ``SANDSTORM_AUDIT_LOG=path`` or by registering an
    instance with :func:`sandstorm.plugin_manager`. Secret-looking details are redacted.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @hookimpl
    def sandstorm_audit(self, event: AuditEvent) -> None:
        """Append ``event`` to the log file."""
        line = json.dumps(event.redacted(), sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
