"""Daytona's interpreter contexts, background processes and preview links.

- ``INTERPRETER``: the toolbox's code interpreter (``/process/interpreter/context`` and
  the ``/process/interpreter/execute`` WebSocket, as the official SDK calls it). Rich
  results arrive as ``{"type": "result"}`` chunks where the daemon sends them (the
  emulator does); ``restart_context`` replaces the context (Daytona has no restart),
  so the returned context has a new id.
- ``PROCESSES``: one toolbox session per process, its command run with ``runAsync``;
  stdin through ``.../command/{id}/input``. ``kill`` ends the session (Daytona has no
  per-command signal), so any signal ends the process; ``wait`` then returns
  ``128 + signal``.
- ``PORTS``: preview links (``/sandbox/{id}/ports/{port}/preview-url``); the token goes
  in the ``x-daytona-preview-token`` header. Daytona cannot revoke a standard preview
  link, so ``unexpose_port`` forgets it only.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from sandstorm import (
    CodeContext,
    ContextNotFound,
    Execution,
    ExecutionTimeout,
    ExposedPort,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    ProcessNotFound,
    ProcessStatus,
    ProviderAPIError,
    Workspace,
)
from sandstorm._agents import ResultCallback
from sandstorm.adapters import ExecutionCollector

from ._http import is_not_found

if TYPE_CHECKING:
    from ._http import DaytonaHTTP

__all__ = ["DaytonaAgents"]

PROCESS_PREFIX = "sstk-proc-"
"""Session ids of background processes start with this."""
TIMEOUT_CLOSE = 4008
PREVIEW_TOKEN_HEADER = "x-daytona-preview-token"


class DaytonaAgents:
    """Mixed into ``DaytonaProvider``."""

    if TYPE_CHECKING:
        _http: DaytonaHTTP

        async def _toolbox_base(self, workspace_id: str) -> str: ...
        async def _sandbox_call(
            self, method: str, workspace_id: str, suffix: str, what: str, **kwargs: Any
        ) -> Any: ...

    __state: dict[str, Any] | None = None

    def _agent_memory(self) -> dict[str, Any]:
        if self.__state is None:
            self.__state = {"envs": {}, "counts": {}, "killed": {}}
        return self.__state

    # ------------------------------------------------------------------ interpreter

    async def _create_context(
        self, workspace: Workspace, language: str, cwd: str | None, env: dict[str, str]
    ) -> CodeContext:
        base = await self._toolbox_base(workspace.id)
        body: dict[str, Any] = {"language": language}
        if cwd is not None:
            body["cwd"] = cwd
        reply = await self._http.request(
            "POST", f"{base}/process/interpreter/context", "create context", json=body
        )
        data = reply.json()
        context = CodeContext(
            id=str(data["id"]),
            workspace_id=workspace.id,
            language=str(data.get("language") or language),
            cwd=data.get("cwd") or cwd,
        )
        if env:
            self._agent_memory()["envs"][context.id] = dict(env)
        return context

    async def _list_contexts(self, workspace: Workspace) -> list[CodeContext]:
        base = await self._toolbox_base(workspace.id)
        reply = await self._http.request(
            "GET", f"{base}/process/interpreter/context", "list contexts"
        )
        return [
            CodeContext(
                id=str(c["id"]),
                workspace_id=workspace.id,
                language=str(c.get("language") or "python"),
                cwd=c.get("cwd"),
            )
            for c in reply.json().get("contexts") or []
        ]

    async def _delete_context(self, workspace: Workspace, context_id: str) -> None:
        base = await self._toolbox_base(workspace.id)
        try:
            await self._http.request(
                "DELETE", f"{base}/process/interpreter/context/{context_id}", "delete context"
            )
        except ProviderAPIError as exc:
            if is_not_found(exc):
                raise ContextNotFound(context_id) from None
            raise
        self._agent_memory()["envs"].pop(context_id, None)

    async def _restart_context(self, workspace: Workspace, context_id: str) -> CodeContext:
        found = {c.id: c for c in await self._list_contexts(workspace)}
        old = found.get(context_id)
        if old is None:
            raise ContextNotFound(context_id)
        env = self._agent_memory()["envs"].get(context_id, {})
        await self._delete_context(workspace, context_id)
        return await self._create_context(workspace, old.language, old.cwd, env)

    async def _run_code(
        self,
        workspace: Workspace,
        context_id: str | None,
        code: str,
        timeout: float,
        on_stdout: Callable[[str], None] | None,
        on_stderr: Callable[[str], None] | None,
        on_result: ResultCallback | None,
    ) -> Execution:
        from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws
        from wsproto.events import BytesMessage, TextMessage

        base = await self._toolbox_base(workspace.id)
        request: dict[str, Any] = {"code": code, "timeout": max(1, round(timeout))}
        if context_id is not None:
            request["contextId"] = context_id
            envs = self._agent_memory()["envs"].get(context_id)
            if envs:
                request["envs"] = envs
        collected = ExecutionCollector(on_stdout, on_stderr, on_result)
        close = (1000, "")
        url = f"{base}/process/interpreter/execute"
        connect = aconnect_ws(url, self._http.client, session_class=AsyncWebSocketSession)
        async with connect as ws:
            await ws.send_text(json.dumps(request))
            while True:
                try:
                    event = await asyncio.wait_for(ws.receive(), timeout + 30)
                except WebSocketDisconnect as exc:
                    close = (exc.code, exc.reason or "")
                    break
                except TimeoutError:
                    close = (TIMEOUT_CLOSE, "no answer")
                    break
                if isinstance(event, TextMessage):
                    raw = event.data
                elif isinstance(event, BytesMessage):
                    raw = bytes(event.data).decode("utf-8", "replace")
                else:
                    continue
                try:
                    chunk = json.loads(raw)
                except ValueError:
                    continue
                kind = chunk.get("type")
                if kind in ("stdout", "stderr"):
                    collected.output(kind, str(chunk.get("text", "")))
                elif kind == "result":
                    collected.result(chunk.get("data"), main=bool(chunk.get("isMainResult")))
                elif kind == "error":
                    collected.fail(
                        chunk.get("name", ""), chunk.get("value", ""), chunk.get("traceback", "")
                    )
        code_, reason = close
        if code_ == TIMEOUT_CLOSE:
            raise ExecutionTimeout(
                timeout, collected.stdout, collected.stderr, workspace_id=workspace.id
            )
        if code_ not in (1000, 1005):
            if context_id is not None and context_id not in {
                c.id for c in await self._list_contexts(workspace)
            }:
                raise ContextNotFound(context_id)
            raise ProviderAPIError(
                f"the interpreter closed with code {code_}: {reason}", provider="daytona"
            )
        counts = self._agent_memory()["counts"]
        key = (workspace.id, context_id)
        counts[key] = counts.get(key, 0) + 1
        return collected.execution(execution_count=counts[key], context_id=context_id)

    # ------------------------------------------------------------------ processes

    async def _start_process(
        self,
        workspace: Workspace,
        command: str,
        cwd: str | None,
        env: dict[str, str],
        stdin: bool,
    ) -> ProcessInfo:
        base = await self._toolbox_base(workspace.id)
        session = PROCESS_PREFIX + uuid.uuid4().hex[:16]
        await self._http.request(
            "POST", f"{base}/process/session", "create session", json={"sessionId": session}
        )
        line = command
        if env:
            exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            line = f"export {exports}\n{line}"
        if cwd is not None:
            line = f"cd -- {shlex.quote(cwd)} || exit 1\n{line}"
        await self._http.request(
            "POST",
            f"{base}/process/session/{session}/exec",
            "start process",
            json={"command": line, "runAsync": True},
            idempotent=False,
        )
        return await self._get_process(workspace, session)

    async def _session(self, workspace: Workspace, process_id: str) -> dict[str, Any]:
        if not process_id.startswith(PROCESS_PREFIX):
            raise ProcessNotFound(process_id)
        base = await self._toolbox_base(workspace.id)
        try:
            reply = await self._http.request(
                "GET", f"{base}/process/session/{process_id}", "get process"
            )
        except ProviderAPIError as exc:
            if is_not_found(exc):
                raise ProcessNotFound(process_id) from None
            raise
        data: dict[str, Any] = reply.json()
        return data

    async def _get_process(self, workspace: Workspace, process_id: str) -> ProcessInfo:
        killed = self._agent_memory()["killed"].get(process_id)
        if killed is not None:
            return ProcessInfo(
                id=process_id,
                workspace_id=workspace.id,
                command=killed[1],
                status=ProcessStatus.EXITED,
                exit_code=killed[0],
            )
        data = await self._session(workspace, process_id)
        commands = data.get("commands") or []
        if not commands:
            raise ProcessNotFound(process_id)
        first = commands[0]
        exit_code = first.get("exitCode")
        return ProcessInfo(
            id=process_id,
            workspace_id=workspace.id,
            command=str(first.get("command", "")),
            status=ProcessStatus.RUNNING if exit_code is None else ProcessStatus.EXITED,
            exit_code=exit_code,
        )

    async def _cmd_url(self, workspace: Workspace, process_id: str) -> str:
        data = await self._session(workspace, process_id)
        commands = data.get("commands") or []
        if not commands:
            raise ProcessNotFound(process_id)
        base = await self._toolbox_base(workspace.id)
        return f"{base}/process/session/{process_id}/command/{commands[0]['id']}"

    async def _list_processes(self, workspace: Workspace) -> list[ProcessInfo]:
        base = await self._toolbox_base(workspace.id)
        reply = await self._http.request("GET", f"{base}/process/session", "list processes")
        found = []
        for session in reply.json() or []:
            ident = str(session.get("sessionId", ""))
            if ident.startswith(PROCESS_PREFIX):
                try:
                    found.append(await self._get_process(workspace, ident))
                except ProcessNotFound:
                    continue
        return found

    async def _wait_process(
        self, workspace: Workspace, process_id: str, timeout: float | None
    ) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            info = await self._get_process(workspace, process_id)
            if info.exit_code is not None:
                return info.exit_code
            if deadline is not None and time.monotonic() >= deadline:
                logs = await self._process_logs(workspace, process_id)
                raise ExecutionTimeout(
                    timeout or 0.0, logs.stdout, logs.stderr, workspace_id=workspace.id
                )
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    async def _kill_process(self, workspace: Workspace, process_id: str, signal: int) -> None:
        info = await self._get_process(workspace, process_id)
        if info.status == ProcessStatus.EXITED:
            return
        base = await self._toolbox_base(workspace.id)
        await self._http.request(
            "DELETE", f"{base}/process/session/{process_id}", "kill process", ok=(404,)
        )
        self._agent_memory()["killed"][process_id] = (128 + signal, info.command)

    async def _send_stdin(self, workspace: Workspace, process_id: str, data: bytes) -> None:
        url = await self._cmd_url(workspace, process_id)
        await self._http.request(
            "POST",
            f"{url}/input",
            "send stdin",
            json={"data": data.decode("utf-8", "replace")},
            idempotent=False,
        )

    async def _process_logs(self, workspace: Workspace, process_id: str) -> ProcessLogs:
        if process_id in self._agent_memory()["killed"]:
            return ProcessLogs(stdout="", stderr="")
        url = await self._cmd_url(workspace, process_id)
        reply = await self._http.request("GET", f"{url}/logs", "get logs")
        if reply.headers.get("content-type", "").startswith("application/json"):
            data = reply.json()
            return ProcessLogs(stdout=data.get("stdout", ""), stderr=data.get("stderr", ""))
        return ProcessLogs(stdout=reply.text, stderr="")

    async def _stream_process(
        self, workspace: Workspace, process_id: str
    ) -> AsyncIterator[OutputChunk]:
        sent = {"stdout": 0, "stderr": 0}
        delay = 0.05
        while True:
            info = await self._get_process(workspace, process_id)
            logs = await self._process_logs(workspace, process_id)
            for stream, text in (("stdout", logs.stdout), ("stderr", logs.stderr)):
                if len(text) > sent[stream]:
                    yield OutputChunk(stream=stream, text=text[sent[stream] :])  # type: ignore[arg-type]
                    sent[stream] = len(text)
                    delay = 0.05
            if info.exit_code is not None:
                return
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    # ------------------------------------------------------------------ ports

    async def _expose_port(self, workspace: Workspace, port: int) -> ExposedPort:
        reply = await self._sandbox_call(
            "GET", workspace.id, f"/ports/{port}/preview-url", "get preview url"
        )
        data = reply.json()
        token = data.get("token") or None
        return ExposedPort(
            workspace_id=workspace.id,
            port=port,
            url=str(data["url"]),
            token=token,
            headers={PREVIEW_TOKEN_HEADER: token} if token else {},
        )

    async def _unexpose_port(self, workspace: Workspace, port: int) -> None:
        return None
