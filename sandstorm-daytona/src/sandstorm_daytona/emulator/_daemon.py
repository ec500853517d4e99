"""Shared pieces of the toolbox (daemon) handlers: request parsing, sandbox lookup,
helper scripts and their error mapping."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

import sandstorm

from ._engine import shell
from ._errors import ApiError, DaemonError
from ._records import SandboxRecord
from ._shell import q
from ._state import Emulator
from ._wire import (
    parse,
)

__all__ = [
    "BOUNDARY",
    "NOT_FOUND_RC",
    "STDERR_MARK",
    "STDOUT_MARK",
    "Handler",
    "body_of",
    "emulator_of",
    "endpoint",
    "json_body",
    "must_exist",
    "query",
    "run_checked",
    "sandbox_for",
]

BOUNDARY = "DAYTONA-FILE-BOUNDARY"
STDOUT_MARK = b"\x01\x01\x01"
STDERR_MARK = b"\x02\x02\x02"
NOT_FOUND_RC = 44

Handler = Callable[[Request, SandboxRecord], Awaitable[Response]]


def emulator_of(request: Request | WebSocket) -> Emulator:
    """The emulator behind the app serving ``request``."""
    emulator: Emulator = request.app.state.emulator
    return emulator


async def sandbox_for(request: Request | WebSocket) -> SandboxRecord:
    """The started sandbox the toolbox path names, for the caller's organisation."""
    emulator = emulator_of(request)
    org: str = request.state.org
    record = emulator.find(org, request.path_params["sandbox_id"])
    if record.state != "started" or record.workspace_id is None:
        raise ApiError(400, f"Sandbox {record.id} is not started (state: {record.state})")
    record.touch(emulator.clock.now())
    return record


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler(request, record)`` as a Starlette endpoint."""

    async def run(request: Request) -> Response:
        record = await sandbox_for(request)
        return await handler(request, record)

    run.__name__ = handler.__name__
    return run


async def json_body(request: Request) -> Any:
    """The JSON body, or a 400 daemon error."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise DaemonError(400, "invalid request body: not JSON", "BAD_REQUEST") from None


def body_of(model: Any, data: Any) -> Any:
    """``data`` validated as ``model``; 400 naming the bad fields otherwise."""
    try:
        return parse(model, data)
    except ValueError as exc:
        raise DaemonError(400, f"invalid request body: {exc}", "BAD_REQUEST") from None


def query(request: Request, name: str, default: str | None = None) -> str:
    """A required query parameter (400 when missing and no default)."""
    value = request.query_params.get(name, default)
    if value is None:
        raise DaemonError(400, f"{name} is required", "BAD_REQUEST")
    return value


async def run_checked(
    emulator: Emulator,
    record: SandboxRecord,
    script: str,
    *,
    not_found: str | None = None,
    code: str = "BAD_REQUEST",
    stdin: bytes | None = None,
) -> sandstorm.RunResult:
    """Run a helper script; exit 44 means "not found", other failures are 400."""
    result = await shell(emulator, record, script, stdin=stdin, plain=True)
    if result.exit_code == NOT_FOUND_RC and not_found is not None:
        raise DaemonError(404, not_found, "FILE_NOT_FOUND")
    if result.exit_code != 0:
        message = (result.stderr or result.stdout).strip() or f"exit status {result.exit_code}"
        raise DaemonError(400, message, code)
    return result


def must_exist(path: str) -> str:
    return f"[ -e {q(path)} ] || [ -L {q(path)} ] || exit {NOT_FOUND_RC}\n"
