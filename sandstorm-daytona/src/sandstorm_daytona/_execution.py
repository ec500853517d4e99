"""One execution of code in a sandbox session: blocking, or streamed live."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httpx

from sandstorm import (
    ExecRequest,
    ExecutionTimeout,
    ProviderAPIError,
    SandstormError,
)
from sandstorm._provider import OutputCallback
from sandstorm.adapters import shielded

from ._command import FRAME
from ._stream import Demux, Unframe
from ._wire import CommandInfo, CommandLogs, SessionExecuteResponse, SessionInfo

__all__ = ["SessionRun"]

if TYPE_CHECKING:
    from ._provider import DaytonaProvider

log = logging.getLogger("sandstorm.daytona")

_UNCERTAIN_STATUSES = frozenset({None, 500, 502, 503, 504})
"""Failures after which the daemon may or may not have started the command."""


class SessionRun:
    """One execution in its own session: blocking exec, or async exec with live output."""

    def __init__(
        self,
        provider: DaytonaProvider,
        base: str,
        session: str,
        token: str,
        request: ExecRequest,
        workspace_id: str,
    ) -> None:
        self.provider = provider
        self.http = provider._http
        self.base = base
        self.session = session
        self.token = token
        self.request = request
        self.workspace_id = workspace_id
        self.cmd_id: str | None = None
        self.streams = {"stdout": Unframe(FRAME), "stderr": Unframe(FRAME)}
        self.callbacks: dict[str, OutputCallback | None] = {
            "stdout": request.on_stdout,
            "stderr": request.on_stderr,
        }

    @property
    def session_url(self) -> str:
        """The toolbox URL of this run's session."""
        return f"{self.base}/process/session/{self.session}"

    async def go(self, command: str) -> tuple[str, str, int]:
        """Run ``command``; return stdout, stderr and the exit code, or raise on timeout."""
        try:
            async with asyncio.timeout(self.request.timeout):
                if self.request.streaming:
                    return await self._streaming(command)
                return await self._blocking(command)
        except TimeoutError:
            # The caller's finally kills the process group and drops the session.
            stdout, stderr = await shielded(self._partial())
            raise ExecutionTimeout(
                self.request.timeout, stdout, stderr, self.workspace_id
            ) from None

    async def _blocking(self, command: str) -> tuple[str, str, int]:
        reply = await self._submit(command, run_async=False)
        if reply is None:  # the command is in the session already: follow it by polling
            await self._poll()
            return await self._finish()
        answer = SessionExecuteResponse.model_validate_json(reply.content)
        self.cmd_id = answer.cmd_id
        if answer.exit_code is not None and answer.stdout is not None and answer.stderr is not None:
            return self._complete(answer.stdout, answer.stderr, answer.exit_code)
        return await self._finish()

    async def _streaming(self, command: str) -> tuple[str, str, int]:
        reply = await self._submit(command, run_async=True)
        if reply is not None:
            self.cmd_id = SessionExecuteResponse.model_validate_json(reply.content).cmd_id
        mode = self.provider.config.streaming
        followed = False
        if mode != "poll":
            followed = await self._follow_websocket(required=mode == "websocket")
        if not followed:
            await self._poll()
        return await self._finish()

    async def _submit(self, command: str, *, run_async: bool) -> httpx.Response | None:
        """Send the exec; ``None`` when the reply was lost but the command is in the session.

        Running code is not safe to repeat blindly. After a failure that may or may not
        have reached the daemon (a dropped connection, 500/502/503/504), the run's private
        session tells which: a command there is this one (follow it, ``cmd_id`` is set);
        none means it never ran, so sending it again is safe.
        """
        policy = self.provider.config.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return await self.http.request(
                    "POST",
                    f"{self.session_url}/exec",
                    "run code",
                    json={"command": command, "runAsync": run_async},
                    timeout=None if run_async else self.request.timeout + 10,
                    idempotent=False,
                )
            except ProviderAPIError as exc:
                if exc.status not in _UNCERTAIN_STATUSES:
                    raise
                self.cmd_id = await self._find_command()
                if self.cmd_id is not None:
                    return None
                if attempt == policy.attempts:
                    raise
                log.debug("run code: %s before the command started, sending it again", exc)
                await asyncio.sleep(min(policy.max_backoff, policy.initial_backoff * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _finish(self) -> tuple[str, str, int]:
        exit_code = await self._exit_code()
        logs = await self._logs()
        return self._complete(logs.stdout, logs.stderr, exit_code)

    def _complete(self, stdout: str, stderr: str, exit_code: int) -> tuple[str, str, int]:
        """Deliver what is left of the raw (framed) streams; return the decoded output."""
        self._deliver("stdout", stdout)
        self._deliver("stderr", stderr)
        for name, stream in self.streams.items():
            self._send(name, stream.close())
        return self.streams["stdout"].text, self.streams["stderr"].text, exit_code

    async def _exit_code(self) -> int:
        delay = 0.02
        while True:
            reply = await self.http.request(
                "GET", f"{self.session_url}/command/{self.cmd_id}", "get command"
            )
            info = CommandInfo.model_validate_json(reply.content)
            if info.exit_code is not None:
                return info.exit_code
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    async def _logs(self) -> CommandLogs:
        reply = await self.http.request(
            "GET", f"{self.session_url}/command/{self.cmd_id}/logs", "get logs"
        )
        if reply.headers.get("content-type", "").startswith("application/json"):
            return CommandLogs.model_validate_json(reply.content)
        # A daemon too old for JSON logs: only the combined stream exists.
        return CommandLogs(output=reply.text, stdout=reply.text, stderr="")

    async def _poll(self) -> None:
        """Feed the callbacks from ``GET .../logs`` until the command has an exit code."""
        delay = 0.02
        while True:
            reply = await self.http.request(
                "GET", f"{self.session_url}/command/{self.cmd_id}", "get command"
            )
            done = CommandInfo.model_validate_json(reply.content).exit_code is not None
            if self.request.streaming:
                logs = await self._logs()
                self._deliver("stdout", logs.stdout)
                self._deliver("stderr", logs.stderr)
            if done:
                return
            await asyncio.sleep(delay)
            delay = min(0.25, delay * 1.5)

    async def _follow_websocket(self, *, required: bool) -> bool:
        """Stream the logs over the daemon's WebSocket; False if it cannot be opened."""
        from httpx_ws import (  # a dependency; imported here to keep imports cheap
            AsyncWebSocketSession,
            HTTPXWSException,
            WebSocketDisconnect,
            aconnect_ws,
        )
        from wsproto.events import BytesMessage, TextMessage

        url = f"{self.session_url}/command/{self.cmd_id}/logs?follow=true"
        demux = Demux(self._push)
        opened = False
        try:
            connect = aconnect_ws(url, self.http.client, session_class=AsyncWebSocketSession)
            async with connect as ws:
                opened = True
                while True:
                    try:
                        event = await ws.receive()
                    except WebSocketDisconnect as exc:
                        if exc.code not in (1000, 1005):
                            raise ProviderAPIError(
                                f"log stream closed with code {exc.code}: {exc.reason}",
                                provider="daytona",
                            ) from None
                        break
                    if isinstance(event, BytesMessage):
                        demux.feed(bytes(event.data))
                    elif isinstance(event, TextMessage):
                        demux.feed(event.data.encode())
        except (HTTPXWSException, httpx.HTTPError) as exc:
            if opened or required:
                raise ProviderAPIError(f"log stream failed: {exc}", provider="daytona") from None
            log.debug("log WebSocket unavailable (%s); polling instead", exc)
            return False
        demux.close()
        return True

    def _push(self, stream: str, raw: str) -> None:
        self._send(stream, self.streams[stream].feed(raw))

    def _send(self, stream: str, text: str) -> None:
        callback = self.callbacks[stream]
        if callback is not None and text:
            callback(text)

    def _deliver(self, stream: str, full: str) -> None:
        """Decode and send the part of the raw stream ``full`` not seen yet."""
        seen = self.streams[stream].consumed
        if len(full) > seen:
            self._push(stream, full[seen:])

    async def _find_command(self) -> str | None:
        reply = await self.http.request("GET", self.session_url, "get session")
        commands = SessionInfo.model_validate_json(reply.content).commands or []
        return commands[-1].id if commands else None

    async def _partial(self) -> tuple[str, str]:
        try:
            if self.cmd_id is None:
                self.cmd_id = await self._find_command()
            if self.cmd_id is None:
                return "", ""
            logs = await self._logs()
        except SandstormError as exc:
            log.warning("could not read partial output after a timeout: %s", exc)
            return "", ""
        decoded = []
        for raw in (logs.stdout, logs.stderr):
            stream = Unframe(FRAME)
            stream.feed(raw)
            stream.close()
            decoded.append(stream.text)
        return decoded[0], decoded[1]
