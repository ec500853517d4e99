"""Shared pieces of the toolbox (daemon) handlers: request parsing, sandbox lookup,
helper scripts and their error mapping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

import sandstorm

from ._errors import ApiError, DaemonError
from ._records import SandboxRecord
from ._shell import q
from ._state import Emulator
from ._wire import loads, parse
from ._workspace_shell import shell

__all__ = [
    "BOUNDARY",
    "ClientGone",
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
    "unless_disconnected",
]

log = logging.getLogger("sandstorm_daytona.emulator")

T = TypeVar("T")

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
        # the runner's words (apps/runner/pkg/api/controllers/proxy.go)
        raise ApiError(400, "no IP address found. Is the Sandbox started?")
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
        return loads(raw)
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


class ClientGone(Exception):
    """The client closed its connection before the reply was ready (nothing is sent)."""


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(
    request: Request, work: Awaitable[T], *, keep_running: bool = False
) -> T:
    """``await work``, unless the client goes away first.

    Then ``work`` is cancelled (the engine kills the command) unless ``keep_running``
    (session commands outlive their request, as on the daemon), one line is logged and
    :class:`ClientGone` is raised. Cancelling the caller cancels ``work`` too.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        if not keep_running:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    if not keep_running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    log.info(
        "client disconnected during %s %s; %s",
        request.method,
        request.url.path,
        "the command keeps running in its session" if keep_running else "the command was killed",
    )
    raise ClientGone
