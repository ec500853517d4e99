"""Host side of the fork server: start it, hand it one run, and collect that run's output.

:class:`ForkServer` owns the pre-started sandbox interpreter (``_forkserver.py serve``).
:func:`execute` sends it one request with fresh pipes and reads them back on the event
loop: stdout and stderr are kept up to a cap (the rest is counted and dropped; far past
the cap the sandbox is killed), decoded incrementally for streaming callbacks, and a
wall-clock deadline kills the whole sandbox (pid-namespace init plus ``cgroup.kill``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import json
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ProviderUnavailable
from ._forkserver import RunRequest, SandboxSpec

__all__ = [
    "SANDBOX_SCRIPT",
    "ForkServer",
    "Outcome",
    "Submitted",
    "clean_server_env",
    "execute",
    "run_probe",
    "submit",
]

SANDBOX_SCRIPT = Path(__file__).with_name("_forkserver.py")
"""The stdlib-only script the sandbox interpreter runs."""


def clean_server_env() -> dict[str, str]:
    """The environment of the sandbox interpreter: nothing from the host but the basics."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run_probe(python: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``_forkserver.py probe`` in a fresh interpreter and return its JSON report."""
    proc = subprocess.run(
        [python, "-I", "-S", str(SANDBOX_SCRIPT), "probe", json.dumps(dict(config))],
        env=clean_server_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise ProviderUnavailable(
            f"the isolation probe failed (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-2000:]}",
            provider="local",
        )
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


class ForkServer:
    """A pre-started, single-threaded sandbox interpreter that forks one sandbox per run."""

    def __init__(
        self,
        python: str,
        *,
        preload: tuple[str, ...] = (),
        python_path: tuple[str, ...] = (),
        direct: bool = False,
    ) -> None:
        """``direct``: the server may make pid namespaces itself (a pid namespace is used
        and no user namespace, i.e. a root host), so sandboxes need no supervisor process."""
        self._python = python
        self._preload = preload
        self._python_path = python_path
        self._direct = direct
        self._lock = threading.Lock()
        self._prewarm: SandboxSpec | None = None
        self._prewarm_count = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None

    def prewarm(self, spec: SandboxSpec, count: int) -> None:
        """Keep ``count`` sandboxes built from ``spec`` ready (applies from the next start)."""
        self._prewarm = spec
        self._prewarm_count = count

    @property
    def warm(self) -> SandboxSpec | None:
        """What pre-built sandboxes are made from, when prewarming is on."""
        return self._prewarm if self._prewarm_count else None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "ctrl_fd": theirs.fileno(),
            "preload": list(self._preload),
            "python_path": list(self._python_path),
            "prewarm": dataclasses.asdict(self._prewarm) if self._prewarm else None,
            "prewarm_count": self._prewarm_count,
            "direct": self._direct,
        }
        try:
            self._proc = subprocess.Popen(
                [self._python, "-I", "-S", str(SANDBOX_SCRIPT), "serve", json.dumps(config)],
                env=clean_server_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd="/",
            )
        except OSError as exc:
            ours.close()
            raise ProviderUnavailable(f"cannot start the sandbox interpreter: {exc}") from None
        finally:
            theirs.close()
        self._ctrl = ours

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def ensure_started(self) -> None:
        """Start the server, or restart it if it died."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._close_locked()
                self._start()

    def submit(self, fds: list[int], *, warm: bool = False) -> None:
        """Hand one run's descriptors to the server.

        ``fds`` are the status socket, stdin, stdout and stderr.
        ``warm`` lets the server use a pre-built sandbox (the request's ``sandbox``
        must then equal the spec given to :meth:`prewarm`).
        """
        for attempt in range(2):
            self.ensure_started()
            with self._lock:
                assert self._ctrl is not None
                try:
                    socket.send_fds(self._ctrl, [b"W" if warm else b"R"], fds)
                    return
                except OSError:
                    if attempt:
                        raise ProviderUnavailable(
                            "the sandbox interpreter is not accepting runs", provider="local"
                        ) from None
                    self._close_locked()

    def refill(self) -> None:
        """Say that a run given a pre-built sandbox is over: the server builds its pool back
        up now, rather than beside the run."""
        with self._lock:
            if self._ctrl is not None:
                with contextlib.suppress(OSError):
                    self._ctrl.send(b"F")

    def _close_locked(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop the server (closing its control socket makes it exit)."""
        with self._lock:
            self._close_locked()


@dataclass
class _Stream:
    cap: int
    callback: Callable[[str], None] | None
    data: bytearray = field(default_factory=bytearray)
    total: int = 0
    done: bool = False
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        if self.truncated:
            # drop a multibyte character the cap cut in half
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            return decoder.decode(bytes(self.data), final=False)
        return self.data.decode("utf-8", errors="replace")


@dataclass
class Outcome:
    """What one run produced, before it is turned into a ``RunResult``."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    status: int | None
    setup_error: str | None
    timed_out: bool
    output_killed: bool
    duration: float
    callback_error: BaseException | None = None


async def execute(
    server: ForkServer,
    request: RunRequest,
    *,
    stdin: bytes | None,
    timeout: float,
    output_cap: int,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    kill_group: Callable[[], object] | None = None,
    monitor: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
    warm: bool = False,
) -> Outcome:
    """Run one request in a fresh sandbox and collect its output under the cap and deadline.

    ``monitor``, when given, runs alongside with a function that kills the sandbox.
    """
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    sent = submit(server, request, stdin=bool(stdin), warm=warm)
    run = _Run(
        loop,
        sent.host_sock,
        {
            sent.out_r: _Stream(output_cap, on_stdout),
            sent.err_r: _Stream(output_cap, on_stderr),
        },
        kill_group,
    )
    try:
        await run.follow(sent.unsent, sent.in_w, stdin, timeout, monitor)
    finally:
        if warm:
            server.refill()
    return run.outcome(time.perf_counter() - started, sent.out_r, sent.err_r)


@dataclass
class Submitted:
    """A request handed to the fork server: the host's ends of the new sandbox's status
    socket and pipes, and what of the request is still to be sent on the socket."""

    host_sock: socket.socket
    out_r: int
    err_r: int
    in_w: int | None
    unsent: memoryview

    def close(self) -> None:
        """Close the host's ends (the sandbox, if it started, sees EOF and dies)."""
        for fd in (self.out_r, self.err_r, *((self.in_w,) if self.in_w is not None else ())):
            os.close(fd)
        self.host_sock.close()


def submit(server: ForkServer, request: RunRequest, *, stdin: bool, warm: bool) -> Submitted:
    """Hand ``request`` to the fork server with a fresh socket and pipes (``stdin``: a pipe
    for it, else ``/dev/null``); the caller owns the returned ends and sends the rest."""
    host_sock, server_sock = socket.socketpair()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_w: int | None = None
    if stdin:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    else:
        in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    payload = request.encode()
    message = memoryview(struct.pack("!Q", len(payload)) + payload)
    host_sock.setblocking(False)
    try:
        # usually the whole request fits in the socket buffer: the sandbox finds it
        # waiting instead of waiting for the loop to send it
        with contextlib.suppress(BlockingIOError):
            message = message[host_sock.send(message) :]
        server.submit([server_sock.fileno(), in_r, out_w, err_w], warm=warm)
    except BaseException:
        for fd in (out_r, err_r, *((in_w,) if in_w is not None else ())):
            os.close(fd)
        host_sock.close()
        raise
    finally:
        server_sock.close()
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    return Submitted(host_sock, out_r, err_r, in_w, message)


class _Run:
    """One run in flight, as the event loop sees it: its output pipes, its status socket,
    its deadline, and what has happened so far (killed, timed out, finished)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host_sock: socket.socket,
        streams: dict[int, _Stream],
        kill_group: Callable[[], object] | None,
    ) -> None:
        self.loop = loop
        self.host_sock = host_sock
        self.streams = streams
        self.kill_group = kill_group
        self.status_buf = bytearray()
        self.messages: list[dict[str, Any]] = []
        self.callback_errors: list[BaseException] = []
        self.finished: asyncio.Future[None] = loop.create_future()
        self.killed = False
        """The sandbox was told to die (deadline, output flood, callback error, cancel)."""
        self.timed_out = False
        self.output_killed = False
        """Killed for printing more than twice the output cap."""
        self.status_eof = False
        """The status socket closed: the supervisor is gone."""

    def exited(self) -> bool:
        """True once the sandbox reported its exit status."""
        return any(m.get("event") == "exit" for m in self.messages)

    def check_finished(self) -> None:
        # done when both streams hit EOF and the exit status is known (init reports it
        # as soon as the payload ends; the supervisor's report or EOF is the fallback)
        if self.finished.done():
            return
        if all(s.done for s in self.streams.values()) and (self.status_eof or self.exited()):
            self.finished.set_result(None)

    def kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        with contextlib.suppress(OSError):
            self.host_sock.send(b"k")
        if self.kill_group is not None:
            self.kill_group()

    def deliver(self, stream: _Stream, chunk: bytes) -> None:
        if stream.callback is None:
            return
        text = stream.decoder.decode(chunk)
        if text:
            try:
                stream.callback(text)
            except BaseException as exc:
                self.callback_errors.append(exc)
                stream.callback = None
                self.kill()

    def on_output(self, fd: int) -> None:
        stream = self.streams[fd]
        for _ in range(16):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.loop.remove_reader(fd)
                os.close(fd)
                stream.done = True
                if stream.callback is not None and not stream.truncated:
                    tail = stream.decoder.decode(b"", final=True)
                    if tail:
                        with contextlib.suppress(BaseException):
                            stream.callback(tail)
                self.check_finished()
                return
            stream.total += len(chunk)
            room = stream.cap - len(stream.data)
            if room > 0:
                kept = chunk[:room]
                stream.data += kept
                self.deliver(stream, kept)
            if stream.total > 2 * stream.cap and not self.killed:
                self.output_killed = True
                self.kill()

    def on_status(self) -> None:
        try:
            chunk = self.host_sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(self.host_sock.fileno())
            self.status_eof = True
            self.check_finished()
            return
        status_buf = self.status_buf
        status_buf.extend(chunk)
        while len(status_buf) >= 8:
            (size,) = struct.unpack("!Q", status_buf[:8])
            if len(status_buf) < 8 + size:
                break
            self.messages.append(json.loads(bytes(status_buf[8 : 8 + size])))
            del status_buf[: 8 + size]
        self.check_finished()

    def on_deadline(self) -> None:
        if not self.exited():
            self.timed_out = True
            self.kill()

    async def follow(
        self,
        message: memoryview,
        in_w: int | None,
        stdin: bytes | None,
        timeout: float,
        monitor: Callable[[Callable[[], None]], Awaitable[None]] | None,
    ) -> None:
        """Send the rest of the request, feed stdin, and wait for the run to finish (or
        kill it on a deadline, a cancellation or an error); release every descriptor."""
        loop, host_sock, streams = self.loop, self.host_sock, self.streams
        for fd in streams:
            os.set_blocking(fd, False)
        stdin_task: asyncio.Task[None] | None = None
        monitor_task: asyncio.Task[None] | None = None
        deadline = None
        dying = False  # destroyed with a dead event loop: clean up without awaiting
        try:
            if message:
                await loop.sock_sendall(host_sock, message)
            for fd in streams:
                loop.add_reader(fd, self.on_output, fd)
            loop.add_reader(host_sock.fileno(), self.on_status)
            if in_w is not None:
                stdin_task = asyncio.ensure_future(_feed(in_w, stdin or b""))
                in_w = None
            deadline = loop.call_later(timeout, self.on_deadline)
            if monitor is not None:
                monitor_task = asyncio.ensure_future(monitor(self.kill))
            await asyncio.shield(self.finished)
        except GeneratorExit:
            dying = True
            self.kill()
            raise
        except BaseException:
            self.kill()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.finished), 10)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
            if monitor_task is not None and not dying:
                monitor_task.cancel()
                with contextlib.suppress(BaseException):
                    await monitor_task
            if stdin_task is not None and not dying:
                stdin_task.cancel()
                with contextlib.suppress(BaseException):
                    await stdin_task
            if in_w is not None:
                os.close(in_w)
            for fd, stream in streams.items():
                if not stream.done:
                    loop.remove_reader(fd)
                    os.close(fd)
            if not self.status_eof:
                loop.remove_reader(host_sock.fileno())
            host_sock.close()

    def outcome(self, duration: float, out_fd: int, err_fd: int) -> Outcome:
        """What the run produced (once :meth:`follow` returned)."""
        exit_message = next((m for m in self.messages if m.get("event") == "exit"), {})
        out, err = self.streams[out_fd], self.streams[err_fd]
        return Outcome(
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            status=exit_message.get("status"),
            setup_error=exit_message.get("setup_error")
            or (None if exit_message else "the sandbox supervisor vanished"),
            timed_out=self.timed_out,
            output_killed=self.output_killed,
            duration=duration,
            callback_error=self.callback_errors[0] if self.callback_errors else None,
        )


async def _feed(fd: int, data: bytes) -> None:
    """Write ``data`` to the sandbox's stdin without blocking the loop, then close it."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    view = memoryview(data)
    try:
        while view:
            try:
                written = os.write(fd, view[:65536])
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(fd, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(fd)
                continue
            except OSError:
                return
            view = view[written:]
    finally:
        os.close(fd)
