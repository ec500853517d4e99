"""Handles on background processes started with ``start_process`` (async and blocking)."""

from __future__ import annotations

import signal as _signal
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._agents import check_signal
from ._interactive import ProcessInfo, ProcessLogs, ProcessStatus
from ._models import OutputChunk
from ._validate import check_data, check_timeout

if TYPE_CHECKING:
    from ._provider import AsyncProvider

__all__ = ["AsyncProcessHandle", "ProcessHandle"]

T = TypeVar("T")


class AsyncProcessHandle:
    """A background process: wait for it, kill it, feed its stdin, read its output."""

    def __init__(self, provider: AsyncProvider, info: ProcessInfo) -> None:
        self.provider = provider
        self.info = info

    def __repr__(self) -> str:
        return f"<AsyncProcessHandle {self.info.id} {self.info.command!r}>"

    @property
    def id(self) -> str:
        """The process id in Sandstorm (not the pid)."""
        return self.info.id

    @property
    def pid(self) -> int | None:
        """The process's pid inside the sandbox, where the provider knows it."""
        return self.info.pid

    @property
    def workspace_id(self) -> str:
        """The workspace the process runs in."""
        return self.info.workspace_id

    async def refresh(self) -> ProcessInfo:
        """Fetch the process's current state (also kept in ``info``)."""
        ws = await self.provider._process_call(self.workspace_id)
        self.info = await self.provider._get_process(ws, self.id)
        return self.info

    async def status(self) -> ProcessStatus:
        """``running`` or ``exited``."""
        return (await self.refresh()).status

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit code (``128 + n`` for signal n).

        Raises :class:`~sandstorm.ExecutionTimeout` when ``timeout`` passes first (the
        process keeps running).
        """
        seconds = check_timeout(timeout, None)
        ws = await self.provider._process_call(self.workspace_id)
        code = await self.provider._wait_process(ws, self.id, seconds)
        await self.refresh()
        return code

    async def kill(self, signal: int = _signal.SIGKILL) -> None:
        """Send ``signal`` to the process (SIGKILL by default: the whole process tree)."""
        sig = check_signal(signal)
        ws = await self.provider._process_call(self.workspace_id)
        await self.provider._kill_process(ws, self.id, sig)

    async def send_stdin(self, data: str | bytes) -> None:
        """Write ``data`` to the process's stdin (started with ``stdin=True``)."""
        payload = check_data(data)
        ws = await self.provider._process_call(self.workspace_id)
        await self.provider._send_stdin(ws, self.id, payload)

    async def logs(self) -> ProcessLogs:
        """Everything the process wrote so far."""
        ws = await self.provider._process_call(self.workspace_id)
        return await self.provider._process_logs(ws, self.id)

    async def stream(self) -> AsyncGenerator[OutputChunk, None]:
        """Output chunks from the start until the process ends."""
        ws = await self.provider._process_call(self.workspace_id)
        async for chunk in self.provider._stream_process(ws, self.id):
            yield chunk


class ProcessHandle:
    """The blocking twin of :class:`AsyncProcessHandle` (same methods, no ``await``)."""

    def __init__(self, handle: AsyncProcessHandle) -> None:
        self.async_handle = handle

    def __repr__(self) -> str:
        return repr(self.async_handle).replace("AsyncProcessHandle", "ProcessHandle", 1)

    @property
    def id(self) -> str:
        """The process id in Sandstorm (not the pid)."""
        return self.async_handle.id

    @property
    def pid(self) -> int | None:
        """The process's pid inside the sandbox, where the provider knows it."""
        return self.async_handle.pid

    @property
    def info(self) -> ProcessInfo:
        """The last known state of the process."""
        return self.async_handle.info

    def refresh(self) -> ProcessInfo:
        """Fetch the process's current state."""
        return _call(self.async_handle.refresh())

    def status(self) -> ProcessStatus:
        """``running`` or ``exited``."""
        return _call(self.async_handle.status())

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit code."""
        return _call(self.async_handle.wait(timeout))

    def kill(self, signal: int = _signal.SIGKILL) -> None:
        """Send ``signal`` to the process."""
        _call(self.async_handle.kill(signal))

    def send_stdin(self, data: str | bytes) -> None:
        """Write ``data`` to the process's stdin."""
        _call(self.async_handle.send_stdin(data))

    def logs(self) -> ProcessLogs:
        """Everything the process wrote so far."""
        return _call(self.async_handle.logs())

    def stream(self) -> Iterator[OutputChunk]:
        """Output chunks from the start until the process ends, as they come."""
        chunks = self.async_handle.stream()
        try:
            while True:
                try:
                    yield _call(_next(chunks))
                except StopAsyncIteration:
                    return
        finally:
            _call(chunks.aclose())


async def _next(chunks: AsyncIterator[OutputChunk]) -> OutputChunk:
    return await chunks.__anext__()


def _call(coro: Coroutine[Any, Any, T]) -> T:
    from ._sync import run_sync

    return run_sync(coro)
