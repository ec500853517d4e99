"""Background processes on ``local``: a run whose lifetime is not bound to one call.

A process is started exactly like a run (the same sandbox, limits, uid and cgroups, see
``LocalProvider._run``), but the host keeps its status socket, its stdin and its output
pipes open and reads them in the background. Closing the status socket, deleting the
workspace (its cgroups are killed) or the provider's exit kills the process.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import json
import os
import signal
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ExecutionTimeout, InvalidArgument
from .._interactive import ProcessInfo, ProcessLogs, ProcessStatus
from .._models import OutputChunk, Workspace
from .._provider import ExecRequest
from ._forkserver_host import submit
from ._workspaces import chown_tree

if TYPE_CHECKING:
    from ._cgroups import CgroupRun
    from ._provider import LocalProvider

__all__ = ["LocalProcess", "launch"]

LONG_LIVED = 7 * 86400.0
"""The cpu-time budget (seconds) of a background process: it runs until it is killed."""

ChunkListener = Callable[[str, str], None]


class LocalProcess:
    """One background sandbox: its pipes, output and exit status, read by the loop."""

    def __init__(
        self,
        workspace_id: str,
        command: str,
        sock: socket.socket,
        out_r: int,
        err_r: int,
        in_w: int | None,
        run: CgroupRun | None,
        cap: int,
        keep: bool = True,
        leftover: Callable[[CgroupRun], None] | None = None,
    ) -> None:
        self.id = "proc-" + uuid.uuid4().hex[:12]
        self.workspace_id = workspace_id
        self.command = command
        self.started_at = datetime.now(UTC)
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.listeners: list[ChunkListener] = []
        self._sock = sock
        self._streams = {out_r: "stdout", err_r: "stderr"}
        self._decoders = {
            fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in self._streams
        }
        self._in_w = in_w
        self._run = run
        self._cap = cap
        self._keep = keep
        self._leftover = leftover
        self._kept = {"stdout": 0, "stderr": 0}
        self.chunks: list[OutputChunk] = []
        self._changed = asyncio.Event()
        self._status_buf = bytearray()
        self._status: int | None = None
        self._status_known = False
        self._open = set(self._streams)
        self.done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        for fd in self._streams:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._on_output, fd)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_status)

    # ------------------------------------------------------------------ state

    def info(self) -> ProcessInfo:
        """The public view of this process."""
        return ProcessInfo(
            id=self.id,
            workspace_id=self.workspace_id,
            command=self.command,
            pid=self.pid,
            status=ProcessStatus.EXITED if self.done.done() else ProcessStatus.RUNNING,
            exit_code=self.exit_code,
            started_at=self.started_at,
        )

    def logs(self) -> ProcessLogs:
        """Output kept so far (up to the cap per stream)."""
        out = "".join(c.text for c in self.chunks if c.stream == "stdout")
        err = "".join(c.text for c in self.chunks if c.stream == "stderr")
        return ProcessLogs(stdout=out, stderr=err)

    async def stream(self) -> AsyncIterator[OutputChunk]:
        """Every kept chunk from the start, then new ones until the process ends."""
        index = 0
        while True:
            while index < len(self.chunks):
                yield self.chunks[index]
                index += 1
            if self.done.done():
                return
            await self._changed.wait()

    async def wait(self, timeout: float | None) -> int:
        """The exit code, once the process has ended."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            logs = self.logs()
            raise ExecutionTimeout(
                timeout or 0.0, logs.stdout, logs.stderr, workspace_id=self.workspace_id
            ) from None

    # ------------------------------------------------------------------ control

    async def send(self, data: bytes) -> None:
        """Write ``data`` to the process's stdin."""
        if self._in_w is None:
            raise InvalidArgument("the process was started without stdin=True")
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._in_w, view)
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(self._in_w, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(self._in_w)
                continue
            except BrokenPipeError:
                return  # the process no longer reads its stdin
            view = view[written:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """SIGKILL ends the whole sandbox; another signal goes to its processes."""
        if self.done.done():
            return
        if sig == signal.SIGKILL:
            with contextlib.suppress(OSError):
                self._sock.send(b"k")
            if self._run is not None:
                self._run.kill()
            return
        for pid in self._payload_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def _payload_pids(self) -> list[int]:
        """Host pids of the sandbox's processes, its init (pid 1 inside) excepted."""
        if self._run is None or self._run.kill_procs is None:
            return []
        found = []
        with contextlib.suppress(OSError):
            for line in Path(self._run.kill_procs).read_text().split():
                inner = _inner_pid(int(line))
                if inner is not None and inner != 1:
                    found.append(int(line))
        return found

    def cgroup_procs(self) -> str | None:
        """The ``cgroup.procs`` file of the sandbox's own cgroup, when cgroups are in use."""
        return self._run.kill_procs if self._run is not None else None

    def close(self, *, background: bool = True) -> None:
        """Kill the process and release what the host holds of it.

        ``background=False`` (the provider is closing) leaves a cgroup that is still
        emptying to the workspace's own cleanup instead of a background task.
        """
        if not background:
            self._leftover = None
        self.kill()
        self._finish()

    # ------------------------------------------------------------------ readers

    def _on_output(self, fd: int) -> None:
        name = self._streams[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_fd(fd)
            text = self._decoders[fd].decode(b"", final=True)
        else:
            text = self._decoders[fd].decode(data)
            if self.pid is None:
                self.pid = self._inner_payload_pid()
        if text:
            for listener in list(self.listeners):
                listener(name, text)
            if self._keep and self._kept[name] < self._cap:
                self._kept[name] += len(text)
                self.chunks.append(OutputChunk(stream=name, text=text))  # type: ignore[arg-type]
                self._notify()
        self._check_done()

    def _inner_payload_pid(self) -> int | None:
        pids = self._payload_pids()
        inner = [p for p in (_inner_pid(pid) for pid in pids) if p is not None]
        return min(inner) if inner else None

    def _on_status(self) -> None:
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._status_known = True
            self._check_done()
            return
        self._status_buf.extend(data)
        while len(self._status_buf) >= 8:
            (size,) = struct.unpack("!Q", self._status_buf[:8])
            if len(self._status_buf) < 8 + size:
                break
            message: dict[str, Any] = json.loads(bytes(self._status_buf[8 : 8 + size]))
            del self._status_buf[: 8 + size]
            if message.get("event") == "exit" and not self._status_known:
                self._status = message.get("status")
                self._status_known = True
        self._check_done()

    def _close_fd(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _check_done(self) -> None:
        if not self._open and self._status_known and not self.done.done():
            self._finish()

    def _finish(self) -> None:
        for fd in list(self._open):
            self._close_fd(fd)
        if self._in_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._in_w)
            self._in_w = None
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        if self._run is not None:
            self._run.kill()
            if not self._run.remove() and self._leftover is not None:
                self._leftover(self._run)  # still emptying: removed in the background
            self._run = None
        if not self.done.done():
            status = self._status
            if status is None:
                code = 128 + signal.SIGKILL
            elif os.WIFSIGNALED(status):
                code = 128 + os.WTERMSIG(status)
            else:
                code = os.waitstatus_to_exitcode(status)
            self.exit_code = code
            self.done.set_result(code)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _inner_pid(host_pid: int) -> int | None:
    """The pid of ``host_pid`` in its innermost pid namespace."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


async def launch(
    provider: LocalProvider,
    workspace: Workspace,
    request: ExecRequest,
    *,
    command: str,
    stdin: bool,
    keep: bool = True,
) -> LocalProcess:
    """Start ``request`` in a new sandbox of ``workspace`` and return without waiting."""
    engine = await provider._engine_ready()
    files = provider._files_dir(workspace)
    payload = provider._request_for(engine, workspace, request)
    if payload.uid is not None and payload.gid is not None:
        st = files.stat()
        if (st.st_uid, st.st_gid) != (payload.uid, payload.gid):
            await asyncio.to_thread(chown_tree, files, payload.uid, payload.gid)
    cgroups = engine.cgroups
    run = None
    if cgroups.active:
        provider._ensure_cgroups(engine, workspace)
        view = provider.config.cgroup_view and engine.report.is_active("mountns")
        run = cgroups.new_run(
            workspace.id, cpu_limited=workspace.resources.cpu is not None, view=view
        )
        payload = dataclasses.replace(
            payload,
            cgroups=tuple(run.procs),
            kill_cgroup=run.kill_procs,
            cgroup_view=tuple(run.view) if view else None,
        )
    try:
        sent = submit(
            engine.server, payload, stdin=stdin, warm=engine.server.warm == payload.sandbox
        )
    except BaseException:
        if run is not None:
            run.kill()
            run.remove()
        raise
    try:
        if sent.in_w is not None:
            os.set_blocking(sent.in_w, False)
        if sent.unsent:
            await asyncio.get_running_loop().sock_sendall(sent.host_sock, sent.unsent)
    except BaseException:
        sent.close()
        if run is not None:
            run.kill()
            run.remove()
        raise
    return LocalProcess(
        workspace.id,
        command,
        sent.host_sock,
        sent.out_r,
        sent.err_r,
        sent.in_w,
        run,
        provider.config.output_cap,
        keep=keep,
        leftover=lambda leftover: provider._sandstorm_background(provider._remove_run(leftover)),
    )
