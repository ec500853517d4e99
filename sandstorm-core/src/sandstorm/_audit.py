"""Audit events: what happened, where, with secret-looking details redacted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditEvent"]

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "credential")


class AuditEvent(BaseModel):
    """One auditable action: who (provider), what (action), where (workspace), details."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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
