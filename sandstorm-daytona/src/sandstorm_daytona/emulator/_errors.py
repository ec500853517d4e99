"""Errors the emulator answers with, in the two envelopes the real service uses.

The main API (NestJS) answers ``{"path", "timestamp", "statusCode", "error", "message"}``;
the toolbox daemon answers ``{"statusCode", "message", "code", "timestamp", "path",
"method", "source": "DAYTONA_DAEMON"}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["ApiError", "BodyTooLarge", "DaemonError", "iso_now"]


def iso_now() -> str:
    """The current time as the service writes it: ISO 8601 with milliseconds and ``Z``."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """``moment`` as ``2026-01-02T03:04:05.678Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiError(Exception):
    """A main-API (NestJS) error: status plus message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self, path: str) -> JSONResponse:
        """The JSON response, ``path`` being the request path with its query string."""
        body: dict[str, Any] = {
            "path": path,
            "timestamp": iso_now(),
            "statusCode": self.status,
            "error": _reason(self.status),
            "message": self.message,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class DaemonError(Exception):
    """A toolbox (daemon) error: status, message and a machine code such as FILE_NOT_FOUND."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _reason(status).upper().replace(" ", "_")

    def body(self, path: str, method: str) -> dict[str, Any]:
        """The daemon's error envelope."""
        return {
            "statusCode": self.status,
            "message": self.message,
            "code": self.code,
            "timestamp": iso_now(),
            "path": path,
            "method": method,
            "source": "DAYTONA_DAEMON",
        }

    def response(self, path: str, method: str) -> JSONResponse:
        """The JSON response for a request to ``path`` (daemon-relative) with ``method``."""
        return JSONResponse(self.body(path, method), status_code=self.status)


class BodyTooLarge(Exception):
    """A request body went over its limit (``EmulatorConfig.*_body_limit``): 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit
