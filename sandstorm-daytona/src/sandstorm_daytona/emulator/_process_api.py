"""Toolbox process endpoints: execute, code-run, sessions and their logs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

import sandstorm

from ._daemon import (
    STDERR_MARK,
    STDOUT_MARK,
    body_of,
    emulator_of,
    json_body,
    sandbox_for,
    unless_disconnected,
)
from ._errors import ApiError, DaemonError
from ._files_api import check_inside
from ._records import SandboxRecord
from ._session_input import interactive
from ._sessions import Command
from ._shell import q, script_in
from ._state import Emulator
from ._wire import (
    CodeRunRequest,
    CreateSession,
    ExecuteRequest,
    SessionExecute,
    UpdateEnv,
)
from ._workspace_shell import TRUNCATED_HEADER, shell, truncation_notice

__all__ = [
    "check_env",
    "code_run",
    "command_get",
    "command_input",
    "command_logs",
    "command_logs_ws",
    "entrypoint_logs",
    "entrypoint_session",
    "execute",
    "initialize",
    "session_create",
    "session_delete",
    "session_exec",
    "session_get",
    "session_list",
    "update_env",
]

INPUT_START_WAIT = 10.0
"""Seconds input for a just-started async command waits for its process to start."""


async def execute(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/execute``: ``{exitCode, result}`` with stdout+stderr combined."""
    emulator = emulator_of(request)
    body = body_of(ExecuteRequest, await json_body(request))
    check_env(body.envs)
    if body.cwd:
        check_inside(body.cwd)
    script = script_in(body.command, cwd=body.cwd, env=body.envs, merge_stderr=True)
    timeout = float(body.timeout) if body.timeout else None
    try:
        result = await unless_disconnected(
            request, shell(emulator, record, script, timeout=timeout)
        )
    except sandstorm.ExecutionTimeout:
        raise DaemonError(408, "command execution timeout", "REQUEST_TIMEOUT") from None
    return _reply(emulator, result, {})


def check_env(envs: dict[str, str] | None) -> None:
    for key in envs or {}:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise DaemonError(400, f"invalid environment variable name {key!r}", "BAD_REQUEST")


async def code_run(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/code-run``: python, javascript or typescript, as the daemon runs them."""
    emulator = emulator_of(request)
    body = body_of(CodeRunRequest, await json_body(request))
    check_env(body.envs)
    language = body.language
    argv = " ".join(q(a) for a in body.argv or [])
    if language == "python":
        encoded = base64.b64encode(body.code.encode()).decode()
        command = f"printf '%s' {q(encoded)} | base64 -d | python3 -u - {argv}"
    elif language == "javascript":
        source = "process.argv.splice(1, 1);\n" + body.code
        encoded = base64.b64encode(source.encode()).decode()
        command = f"printf '%s' {q(encoded)} | base64 -d | node - {argv}"
    elif language == "typescript":
        runner = await _typescript_runner(emulator, record)
        if runner is None:
            # what the daemon answers for a language it has no toolbox for
            raise DaemonError(400, f"unsupported language: {language}", "BAD_REQUEST")
        source = "process.argv.splice(1, 1);\n" + body.code
        encoded = base64.b64encode(source.encode()).decode()
        tmp = '"${TMPDIR:-/tmp}/dtn_$$.ts"'
        command = f"printf '%s' {q(encoded)} | base64 -d > {tmp}; {runner} {tmp} {argv}; "
        command += f"__rc=$?; rm -f {tmp}; exit $__rc"
    else:
        raise DaemonError(400, f"unsupported language: {language}", "BAD_REQUEST")
    script = script_in(command, env=body.envs, merge_stderr=True)
    timeout = float(body.timeout) if body.timeout else None
    try:
        result = await unless_disconnected(
            request, shell(emulator, record, script, timeout=timeout)
        )
    except sandstorm.ExecutionTimeout:
        raise DaemonError(408, "command execution timeout", "REQUEST_TIMEOUT") from None
    return _reply(emulator, result, {"artifacts": {"charts": []}})


def _reply(emulator: Emulator, result: sandstorm.RunResult, extra: dict[str, Any]) -> Response:
    """``{exitCode, result, ...}``; output the engine cut ends with a notice (and a header)."""
    text = result.stdout + result.stderr
    notice = truncation_notice(emulator, result)
    headers = {}
    if notice is not None:
        text += notice
        headers[TRUNCATED_HEADER] = "true"
    return JSONResponse({"exitCode": result.exit_code, "result": text, **extra}, headers=headers)


TS_NODE = (
    'npm_config_loglevel=error npm_config_cache="${TMPDIR:-/tmp}/.npm" npx ts-node -T '
    '--ignore-diagnostics 5107 -O \'{"module":"CommonJS"}\''
)
"""The daemon's TypeScript runner (npm's cache kept out of the work dir, the home here)."""
STRIP_TYPES = "node --experimental-strip-types --no-warnings=ExperimentalWarning"
"""Node >= 22.6 runs TypeScript by itself once its types are stripped."""

_TS_PROBE = (
    "if command -v ts-node >/dev/null 2>&1 && command -v npx >/dev/null 2>&1; then echo ts-node\n"
    "elif node --experimental-strip-types -e '' >/dev/null 2>&1; then echo strip-types\n"
    "else echo none; fi\n"
)


async def _typescript_runner(emulator: Emulator, record: SandboxRecord) -> str | None:
    """How this host runs TypeScript: ts-node (as the daemon), else node's type
    stripping, else None (the language is unsupported). Probed once per emulator."""
    found = emulator.probes.get("typescript")
    if found is None:
        result = await shell(emulator, record, _TS_PROBE, plain=True)
        found = emulator.probes["typescript"] = result.stdout.strip() or "none"
    return {"ts-node": TS_NODE, "strip-types": STRIP_TYPES}.get(found)


async def session_create(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/session`` -> 201."""
    body = body_of(CreateSession, await json_body(request))
    emulator_of(request).sessions.create(record, body.sessionId)
    return Response(status_code=201)


async def session_list(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session``."""
    return JSONResponse([s.to_json() for s in emulator_of(request).sessions.all(record)])


async def session_get(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/{session_id}``."""
    session = emulator_of(request).sessions.get(record, request.path_params["session_id"])
    return JSONResponse(session.to_json())


async def session_delete(request: Request, record: SandboxRecord) -> Response:
    """``DELETE /process/session/{session_id}`` -> 204."""
    await emulator_of(request).sessions.delete(record, request.path_params["session_id"])
    return Response(status_code=204)


async def session_exec(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/session/{id}/exec``: 200 with output, or 202 ``{cmdId}`` when async."""
    body = body_of(SessionExecute, await json_body(request))
    run_async = bool(body.runAsync or body.async_)
    sessions = emulator_of(request).sessions
    command = await sessions.execute(
        record,
        request.path_params["session_id"],
        body.command,
        run_async=True,
        takes_input=run_async,
    )
    if run_async:
        return JSONResponse({"cmdId": command.id}, status_code=202)
    assert command.task is not None
    # asyncio.wait never cancels the command, nor raises when it was cancelled
    await unless_disconnected(request, asyncio.wait({command.task}), keep_running=True)
    return JSONResponse(
        {
            "cmdId": command.id,
            "output": command.text(),
            "stdout": command.text("stdout"),
            "stderr": command.text("stderr"),
            "exitCode": command.exit_code,
        }
    )


async def command_get(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/{id}/command/{cmd}``."""
    command = _command(request, record)
    return JSONResponse(command.to_json())


def _command(request: Request | WebSocket, record: SandboxRecord) -> Command:
    return emulator_of(request).sessions.command(
        record, request.path_params["session_id"], request.path_params["command_id"]
    )


async def command_logs(request: Request, record: SandboxRecord) -> Response:
    """``GET .../command/{cmd}/logs``: JSON for SDKs >= 0.167, raw text otherwise."""
    command = _command(request, record)
    if request.query_params.get("follow") == "true":
        raise DaemonError(400, "follow=true needs a WebSocket upgrade", "BAD_REQUEST")
    if _wants_json(request):
        return JSONResponse(
            {
                "output": command.text(),
                "stdout": command.text("stdout"),
                "stderr": command.text("stderr"),
            }
        )
    return Response(command.text().encode(), media_type="text/plain")


def _wants_json(request: Request) -> bool:
    version = request.headers.get("x-daytona-sdk-version")
    if not version:
        return False
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return True
    return parts >= (0, 167, 0)


async def command_logs_ws(websocket: WebSocket) -> None:
    """``.../command/{cmd}/logs?follow=true`` over WebSocket, with stdout/stderr markers."""
    try:
        record = await sandbox_for(websocket)
        command = _command(websocket, record)
    except (ApiError, DaemonError) as exc:
        await websocket.close(code=1008, reason=str(exc)[:100])
        return
    await websocket.accept()
    try:
        async for stream, text in command.follow():
            mark = STDOUT_MARK if stream == "stdout" else STDERR_MARK
            await websocket.send_bytes(mark + text.encode())
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return


async def command_input(request: Request, record: SandboxRecord) -> Response:
    """``POST .../command/{cmd}/input`` ``{data}``: to the stdin of an async command."""
    command = _command(request, record)
    if command.process is None and command.exit_code is None and interactive(emulator_of(request)):
        # the daemon starts the process before it answers the execute request; here it
        # starts in a task, which a loaded host may not have reached yet: wait for it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(command.ready.wait(), INPUT_START_WAIT)
    if command.process is None:
        if command.exit_code is not None:
            raise DaemonError(400, "command has already completed", "BAD_REQUEST")
        raise DaemonError(
            400,
            "sending input needs an async command on an engine with background processes",
            "BAD_REQUEST",
        )
    body = await json_body(request)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, str):
        raise DaemonError(400, "invalid request body: data must be a string", "BAD_REQUEST")
    await command.process.send_stdin(data)
    return Response(status_code=200)


async def update_env(request: Request, record: SandboxRecord) -> Response:
    """``POST /env``: set and unset variables for every later command."""
    body = body_of(UpdateEnv, await json_body(request))
    check_env(body.set)
    for name in body.unset or []:
        record.env.pop(name, None)
    record.env.update(body.set or {})
    return JSONResponse(dict(record.env))


async def initialize(request: Request, record: SandboxRecord) -> Response:
    """``POST /init``: the daemon is always initialised here."""
    return JSONResponse({})


async def entrypoint_session(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/entrypoint``: snapshots here have no entrypoint."""
    return JSONResponse({"sessionId": "entrypoint", "commands": []})


async def entrypoint_logs(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/session/entrypoint/logs``."""
    return JSONResponse({"output": "", "stdout": "", "stderr": ""})
