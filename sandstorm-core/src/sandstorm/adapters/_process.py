"""Run one piece of code as a host process tree, the way the contract wants it run.

Output is capped and decoded as a clean prefix, the timeout kills the whole tree (setsid
daemons included, see :func:`kill_process_tree`) and raises with the partial output,
stdin is fed, and the environment holds only what the caller passes.

Limits (no cgroup, no pid namespace): a process that leaves the run's session *and* is
reparented away from the run's tree before the kill *and* does not keep its working
directory inside ``sweep_dir`` cannot be found. Providers that must contain hostile code
need a real sandbox (the ``local`` provider's namespaces and cgroups).
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ExecutionTimeout
from .._models import TerminationReason

__all__ = [
    "BASE_ENV",
    "ProcessResult",
    "clean_env",
    "decode_prefix",
    "kill_process_tree",
    "run_process",
]

BASE_ENV: Mapping[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
"""The only host-independent variables a run starts with."""

_CHUNK = 65536


@dataclass(frozen=True)
class ProcessResult:
    """What a process tree did: the fields of :class:`sandstorm.RunResult` a runner knows."""

    stdout: str
    stderr: str
    exit_code: int
    duration: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    reason: TerminationReason = TerminationReason.EXITED
    signal: int | None = None


def clean_env(home: str | os.PathLike[str], *layers: Mapping[str, str]) -> dict[str, str]:
    """:data:`BASE_ENV` plus ``HOME``, then each layer in order; nothing from the host."""
    env = {**BASE_ENV, "HOME": os.fspath(home)}
    for layer in layers:
        env.update(layer)
    return env


def decode_prefix(data: bytes, truncated: bool) -> str:
    """Decode UTF-8 with U+FFFD for invalid bytes; a truncated tail's partial character is dropped.

    So truncated output is always a prefix of what the code wrote, never ending in U+FFFD
    that the code did not write.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return decoder.decode(data, final=not truncated)


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, session)`` of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[3])


def _inside(pid: int, directory: str) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == directory or cwd.startswith(directory + "/")


def _tree(root: int | None, sweep_dir: str | None, known: set[int]) -> set[int]:
    """Processes of ``root``'s session, its descendants, and those working in ``sweep_dir``."""
    table: dict[int, tuple[int, int]] = {}
    uid = os.getuid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid != os.getpid() and (info := _stat(pid)) is not None:
                table[pid] = info
    found = known & table.keys()
    if root is not None:
        found |= {pid for pid, (_, session) in table.items() if session == root}
        found |= {root} & table.keys()
    if sweep_dir is not None:
        for pid in table:
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}").st_uid == uid and _inside(pid, sweep_dir):
                    found.add(pid)
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        grew = bool(children)
        found |= children
    return found


@dataclass(eq=False)
class _Kill:
    """One :func:`kill_process_tree` in progress: what it looks for, what it has signalled."""

    root: int | None
    directory: str | None
    signalled: set[int] = field(default_factory=set)


_kills: set[_Kill] = set()
"""Kills in progress in this process (finished by :func:`_finish_at_exit` if abandoned)."""
_exiting = False
"""Set at interpreter exit: from then on a kill never stops a process, it kills at once."""


def kill_process_tree(root: int | None, sweep_dir: str | os.PathLike[str] | None = None) -> None:
    """SIGKILL a run's whole process tree: its session, descendants, and ``sweep_dir`` users.

    ``root`` is the pid of a process started with ``start_new_session=True`` (so its
    session id), or None to kill only what works inside ``sweep_dir``. Everything found
    is stopped first (SIGSTOP) and the search repeats until it finds nothing new (a
    stopped process cannot fork, nor orphan its children), then all of it is killed: a
    ``setsid`` daemon started by the tree is caught while its parent still lives.

    Nothing is left stopped on any exit path Python sees: an exception (a signal turned
    into ``SystemExit``, ``KeyboardInterrupt``) kills what was stopped on its way out, and
    a kill running on a thread the interpreter abandons at exit (a daemon thread) is
    finished by an exit hook, which also makes later kills skip the stop phase. Only an
    exit without Python (``os._exit``, SIGKILL of this process) can leave a stopped tree.
    """
    job = _Kill(root, os.path.realpath(sweep_dir) if sweep_dir is not None else None)
    _kills.add(job)
    try:
        _kill(job, at_exit=False)
    finally:
        _kills.discard(job)


def _kill(job: _Kill, *, at_exit: bool) -> None:
    """Stop what ``job`` finds until nothing new turns up, then SIGKILL all of it."""
    try:
        for _ in range(50):
            fresh = _tree(job.root, job.directory, job.signalled) - job.signalled
            if not fresh:
                break
            for pid in fresh:
                # recorded before it is stopped, and _exiting read after: the exit hook
                # either sees this pid or has made this thread kill it instead
                job.signalled.add(pid)
                stop = at_exit or not _exiting
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP if stop else signal.SIGKILL)
    finally:
        for pid in list(job.signalled):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _finish_at_exit() -> None:
    """Finish the kills that threads the interpreter is about to abandon left half done."""
    global _exiting
    _exiting = True
    for job in list(_kills):
        _kill(_Kill(job.root, job.directory, set(job.signalled)), at_exit=True)


atexit.register(_finish_at_exit)  # runs before daemon threads are frozen
os.register_at_fork(after_in_child=_kills.clear)  # a child has no kills in progress


class _Sink:
    """One output stream: keeps up to ``cap`` bytes, counts the rest."""

    def __init__(self, cap: int, on_text: Callable[[str], None] | None) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.seen = 0
        self.on_text = on_text
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.kept)
        self.kept += chunk[: max(room, 0)]
        if self.on_text is not None and room > 0:
            text = self.decoder.decode(chunk[:room])
            if text:
                self.on_text(text)
        self.seen += len(chunk)

    @property
    def truncated(self) -> bool:
        return self.seen > self.cap

    def text(self) -> str:
        return decode_prefix(bytes(self.kept), self.truncated)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    timeout: float,
    output_cap: int,
    stdin: bytes | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    sweep_dir: str | os.PathLike[str] | None = None,
    workspace_id: str | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion and report it; raise ``ExecutionTimeout`` past ``timeout``.

    Each stream keeps its first ``output_cap`` bytes; past twice the cap on either stream
    the tree is killed and the result says ``OUTPUT_LIMIT`` (exit 137, signal 9). A run
    killed by signal N exits ``128 + N`` with ``signal=N``. On timeout or cancellation the
    whole tree is killed (:func:`kill_process_tree`) before this returns; the timeout
    error carries the output produced so far.
    """
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sinks = (_Sink(output_cap, on_stdout), _Sink(output_cap, on_stderr))
    flooded = False

    def kill() -> None:
        kill_process_tree(proc.pid, sweep_dir)

    async def pump(stream: asyncio.StreamReader | None, sink: _Sink) -> None:
        nonlocal flooded
        assert stream is not None
        while chunk := await stream.read(_CHUNK):
            sink.add(chunk)
            if sink.seen > 2 * output_cap and not flooded:
                flooded = True
                kill()

    async def feed() -> None:
        if proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin or b"")
            await proc.stdin.drain()
        proc.stdin.close()

    pumps = asyncio.gather(pump(proc.stdout, sinks[0]), pump(proc.stderr, sinks[1]), feed())
    try:
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            kill()
            await proc.wait()
            with contextlib.suppress(TimeoutError):  # what is still in the pipes
                await asyncio.wait_for(asyncio.shield(pumps), 1)
            out, err = sinks[0].text(), sinks[1].text()
            raise ExecutionTimeout(timeout, out, err, workspace_id) from None
        # the run ends with its main process: what it left behind is killed, so nothing
        # holds the pipes open
        kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pumps), 5)
    except BaseException:  # timeout, or cancelled: leave nothing running behind
        kill()
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    finally:
        pumps.cancel()
        await asyncio.gather(pumps, return_exceptions=True)
    code = proc.returncode
    assert code is not None
    reason = TerminationReason.EXITED
    signum = -code if code < 0 else None
    if flooded:
        reason, signum = TerminationReason.OUTPUT_LIMIT, signal.SIGKILL
    elif signum is not None:
        reason = TerminationReason.SIGNALED
    return ProcessResult(
        stdout=sinks[0].text(),
        stderr=sinks[1].text(),
        exit_code=128 + signum if signum is not None else code,
        duration=time.monotonic() - started,
        stdout_truncated=sinks[0].truncated,
        stderr_truncated=sinks[1].truncated,
        reason=reason,
        signal=int(signum) if signum is not None else None,
    )
