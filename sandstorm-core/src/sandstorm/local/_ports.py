"""Exposed ports on ``local``: a host loopback listener forwarding into a sandbox.

Every sandbox has its own network namespace with only a loopback interface. For each
connection accepted on ``127.0.0.1:<host port>``, a socket is created inside the network
namespace of one of the workspace's live background processes (``setns`` on a dedicated
host thread, then straight back) and connected to ``127.0.0.1:<port>`` there; bytes are
then copied both ways. The sandbox gains no route anywhere: only connections the host
opens reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import IsolationUnavailable
from .._interactive import ExposedPort
from .._models import Workspace

if TYPE_CHECKING:
    from ._provider import LocalProvider

__all__ = ["PortForwarder", "socket_in_netns"]

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_netns_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandstorm-netns")
_netns_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in_netns(pid: int) -> socket.socket:
    """A TCP socket created in the network namespace of host process ``pid``."""
    with _netns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                try:
                    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                finally:
                    _setns(own)  # back to the host's namespace before anything else
            finally:
                os.close(target)
        finally:
            os.close(own)


class PortForwarder:
    """``127.0.0.1:<host port>`` on the host to ``127.0.0.1:<port>`` in the sandbox."""

    def __init__(self, provider: LocalProvider, workspace: Workspace, port: int) -> None:
        self.provider = provider
        self.workspace = workspace
        self.port = port
        self.server: asyncio.Server | None = None
        self.host_port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.host_port = self.server.sockets[0].getsockname()[1]

    def model(self) -> ExposedPort:
        """The public view."""
        return ExposedPort(
            workspace_id=self.workspace.id,
            port=self.port,
            url=f"http://127.0.0.1:{self.host_port}",
        )

    def close(self) -> None:
        """Stop listening and drop every forwarded connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for task in list(self._tasks):
            task.cancel()

    def _candidates(self) -> list[int]:
        """Host pids, one per live sandbox of the workspace (each has its own netns)."""
        state = self.provider._agents()
        pids: list[int] = []
        sandboxes = [
            *state.processes.get(self.workspace.id, {}).values(),
            *(
                c.process
                for c in state.contexts.get(self.workspace.id, {}).values()
                if c.process is not None
            ),
        ]
        for process in sandboxes:
            procs = process.cgroup_procs()
            if procs is not None:
                with contextlib.suppress(OSError, ValueError):
                    first = Path(procs).read_text().split()
                    if first:
                        pids.append(int(first[0]))
        return pids

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        for pid in self._candidates():
            try:
                sock = await loop.run_in_executor(_netns_thread, socket_in_netns, pid)
            except OSError:
                continue
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", self.port))
            except OSError:
                sock.close()
                continue
            return sock
        raise IsolationUnavailable(f"nothing listens on port {self.port} in the sandbox")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                sock = await self._connect()
            except (OSError, IsolationUnavailable):
                return
            inner_reader, inner_writer = await asyncio.open_connection(sock=sock)
            try:
                await asyncio.gather(_pipe(reader, inner_writer), _pipe(inner_reader, writer))
            finally:
                inner_writer.close()
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
