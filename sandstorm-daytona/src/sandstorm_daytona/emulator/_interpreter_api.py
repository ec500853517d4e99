"""The toolbox's code interpreter: contexts over HTTP, executions over a WebSocket.

Served by the engine's own interpreter contexts (``Capability.INTERPRETER``). The
WebSocket speaks as the daemon does: the client sends ``{"code", "contextId"?, "envs"?,
"timeout"?}``; the server sends ``stdout``/``stderr``/``error`` chunks and closes with
1000 when done, 4008 on timeout. It also sends ``{"type": "result", "data": {...},
"isMainResult": bool}`` chunks for rich results, which clients that do not know them
skip (the official SDK does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

import sandstorm
from sandstorm import Capability

from ._daemon import emulator_of, json_body, sandbox_for
from ._errors import ApiError, DaemonError
from ._records import SandboxRecord
from ._state import Emulator

__all__ = ["context_create", "context_delete", "context_list", "execute_ws"]

TIMEOUT_CLOSE = 4008
"""The daemon's close code for an execution past its timeout."""

_created: dict[str, str] = {}
"""Creation time (ISO 8601) of each context, by id."""

_DEFAULT = "default"


def _engine(emulator: Emulator) -> sandstorm.AsyncProvider:
    provider = emulator.provider
    if Capability.INTERPRETER not in provider.capabilities:
        raise DaemonError(
            501, f"the emulator's engine ({provider.name}) has no interpreter", "NOT_IMPLEMENTED"
        )
    return provider


def _wire(context: sandstorm.CodeContext, cwd: str) -> dict[str, Any]:
    return {
        "id": context.id,
        "language": context.language,
        "cwd": context.cwd or cwd,
        "active": True,
        "createdAt": _created.get(context.id, ""),
    }


async def _work_dir(emulator: Emulator, record: SandboxRecord) -> str:
    from ._workspace_shell import probe_dirs

    work, _ = await probe_dirs(emulator, record)
    return work


async def context_create(request: Request, record: SandboxRecord) -> Response:
    """``POST /process/interpreter/context``: ``{cwd?, language?}`` -> the context."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise DaemonError(400, "invalid request body", "BAD_REQUEST")
    language = body.get("language") or "python"
    if language != "python":
        raise DaemonError(400, f"unsupported language: {language}", "BAD_REQUEST")
    cwd = body.get("cwd")
    emulator = emulator_of(request)
    engine = _engine(emulator)
    workspace = await emulator.workspace(record)
    context = await engine.create_context(workspace, cwd=cwd or None)
    _created[context.id] = emulator.clock.now().isoformat().replace("+00:00", "Z")
    return JSONResponse(_wire(context, await _work_dir(emulator, record)))


async def context_list(request: Request, record: SandboxRecord) -> Response:
    """``GET /process/interpreter/context``: the user-created contexts."""
    emulator = emulator_of(request)
    engine = _engine(emulator)
    workspace = await emulator.workspace(record)
    cwd = await _work_dir(emulator, record)
    contexts = [c for c in await engine.list_contexts(workspace) if c.id != _DEFAULT]
    return JSONResponse({"contexts": [_wire(c, cwd) for c in contexts]})


async def context_delete(request: Request, record: SandboxRecord) -> Response:
    """``DELETE /process/interpreter/context/{id}``."""
    emulator = emulator_of(request)
    engine = _engine(emulator)
    ident = request.path_params["context_id"]
    if ident == _DEFAULT:
        raise DaemonError(400, "cannot delete the default context", "BAD_REQUEST")
    workspace = await emulator.workspace(record)
    context = sandstorm.CodeContext(id=ident, workspace_id=workspace.id)
    try:
        await engine.delete_context(context)
    except sandstorm.ContextNotFound:
        raise DaemonError(404, f"context not found: {ident}", "NOT_FOUND") from None
    _created.pop(ident, None)
    return JSONResponse({"message": "context deleted"})


async def execute_ws(websocket: WebSocket) -> None:
    """``/process/interpreter/execute`` over WebSocket."""
    try:
        record = await sandbox_for(websocket)
        emulator = emulator_of(websocket)
        engine = _engine(emulator)
    except (ApiError, DaemonError) as exc:
        await websocket.close(code=1008, reason=str(exc)[:100])
        return
    await websocket.accept()
    try:
        request = json.loads(await websocket.receive_text())
    except (WebSocketDisconnect, ValueError, KeyError):
        with contextlib.suppress(Exception):
            await websocket.close(code=1003, reason="expected a JSON request")
        return
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        await websocket.close(code=1003, reason="the request needs a code string")
        return
    chunks: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def sender() -> None:
        while (chunk := await chunks.get()) is not None:
            await websocket.send_text(json.dumps(chunk))

    sending = asyncio.create_task(sender())
    close_code, reason = 1000, ""
    try:
        workspace = await emulator.workspace(record)
        context = request.get("contextId") or None
        timeout = request.get("timeout") or None
        envs = request.get("envs")
        if isinstance(envs, dict) and envs:
            await engine.run_code(
                workspace,
                f"__import__('os').environ.update({json.dumps(envs)})",
                context=context,
            )
        execution = await engine.run_code(
            workspace,
            request["code"],
            context=context,
            timeout=float(timeout) if timeout else None,
            on_stdout=lambda text: chunks.put_nowait({"type": "stdout", "text": text}),
            on_stderr=lambda text: chunks.put_nowait({"type": "stderr", "text": text}),
            on_result=lambda result: chunks.put_nowait(
                {"type": "result", "data": result.data, "isMainResult": result.is_main_result}
            ),
        )
        if execution.error is not None:
            chunks.put_nowait(
                {
                    "type": "error",
                    "name": execution.error.name,
                    "value": execution.error.value,
                    "traceback": execution.error.traceback,
                }
            )
    except sandstorm.ExecutionTimeout:
        close_code, reason = TIMEOUT_CLOSE, "execution timed out"
    except sandstorm.ContextNotFound as exc:
        close_code, reason = 1011, str(exc)[:100]
    except sandstorm.SandstormError as exc:
        close_code, reason = 1011, str(exc)[:100]
    chunks.put_nowait(None)
    try:
        await sending
        await websocket.close(code=close_code, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        return
