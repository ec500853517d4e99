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

__all__ = ["SANDBOX_SCRIPT", "ForkServer", "Outcome", "clean_server_env", "execute", "run_probe"]

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
    ) -> None:
        self._python = python
        self._preload = preload
        self._python_path = python_path
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
    host_sock, server_sock = socket.socketpair()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_w: int | None = None
    if stdin:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    else:
        in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    started = time.perf_counter()
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

    streams = {
        out_r: _Stream(output_cap, on_stdout),
        err_r: _Stream(output_cap, on_stderr),
    }
    status_buf = bytearray()
    messages: list[dict[str, Any]] = []
    state = {"killed": False, "timed_out": False, "output_killed": False, "status_eof": False}
    callback_errors: list[BaseException] = []
    finished = loop.create_future()

    def check_finished() -> None:
        # done when both streams hit EOF and the exit status is known (init reports it
        # as soon as the payload ends; the supervisor's report or EOF is the fallback)
        if finished.done():
            return
        exited = state["status_eof"] or any(m.get("event") == "exit" for m in messages)
        if all(s.done for s in streams.values()) and exited:
            finished.set_result(None)

    def kill() -> None:
        if state["killed"]:
            return
        state["killed"] = True
        with contextlib.suppress(OSError):
            host_sock.send(b"k")
        if kill_group is not None:
            kill_group()

    def deliver(stream: _Stream, chunk: bytes) -> None:
        if stream.callback is None:
            return
        text = stream.decoder.decode(chunk)
        if text:
            try:
                stream.callback(text)
            except BaseException as exc:
                callback_errors.append(exc)
                stream.callback = None
                kill()

    def on_output(fd: int) -> None:
        stream = streams[fd]
        for _ in range(16):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(fd)
                os.close(fd)
                stream.done = True
                if stream.callback is not None and not stream.truncated:
                    tail = stream.decoder.decode(b"", final=True)
                    if tail:
                        with contextlib.suppress(BaseException):
                            stream.callback(tail)
                check_finished()
                return
            stream.total += len(chunk)
            room = stream.cap - len(stream.data)
            if room > 0:
                kept = chunk[:room]
                stream.data += kept
                deliver(stream, kept)
            if stream.total > 2 * stream.cap and not state["killed"]:
                state["output_killed"] = True
                kill()

    def on_status() -> None:
        try:
            chunk = host_sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(host_sock.fileno())
            state["status_eof"] = True
            check_finished()
            return
        status_buf.extend(chunk)
        while len(status_buf) >= 8:
            (size,) = struct.unpack("!Q", status_buf[:8])
            if len(status_buf) < 8 + size:
                break
            messages.append(json.loads(bytes(status_buf[8 : 8 + size])))
            del status_buf[: 8 + size]
        check_finished()

    def on_deadline() -> None:
        if not any(m.get("event") == "exit" for m in messages):
            state["timed_out"] = True
            kill()

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
            loop.add_reader(fd, on_output, fd)
        loop.add_reader(host_sock.fileno(), on_status)
        if in_w is not None:
            stdin_task = asyncio.ensure_future(_feed(in_w, stdin or b""))
            in_w = None
        deadline = loop.call_later(timeout, on_deadline)
        if monitor is not None:
            monitor_task = asyncio.ensure_future(monitor(kill))
        await asyncio.shield(finished)
    except GeneratorExit:
        dying = True
        kill()
        raise
    except BaseException:
        kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(finished), 10)
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
        if not state["status_eof"]:
            loop.remove_reader(host_sock.fileno())
        host_sock.close()
    duration = time.perf_counter() - started
    exit_message = next((m for m in messages if m.get("event") == "exit"), {})
    out, err = streams[out_r], streams[err_r]
    return Outcome(
        stdout=out.text(),
        stderr=err.text(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        status=exit_message.get("status"),
        setup_error=exit_message.get("setup_error")
        or (None if exit_message else "the sandbox supervisor vanished"),
        timed_out=state["timed_out"],
        output_killed=state["output_killed"],
        duration=duration,
        callback_error=callback_errors[0] if callback_errors else None,
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
