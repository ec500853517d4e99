"""Toolbox sessions: named shells whose cwd and exported variables persist.

The engine runs each command as a fresh process, so the emulator keeps each session's
state on the host, out of the user's view: the wrapper script restores ``cwd`` and the
exported variables before the command, and after it writes them to the original stdout
behind a per-command marker, which the emulator cuts off before anyone sees the output.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sandstorm

from ._errors import DaemonError
from ._session_input import interactive, run_interactive
from ._shell import q
from ._workspace_shell import session_shell, shell, truncation_notice

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._state import Emulator

__all__ = ["Command", "Session", "SessionStore"]

Stream = Literal["stdout", "stderr"]


@dataclass
class Command:
    """One command run in a session, with its output as it arrives."""

    id: str
    command: str
    chunks: list[tuple[Stream, str]] = field(default_factory=list)
    exit_code: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    relabel: bool = False
    """Pass output on line by line, as the daemon's labelling loop does."""
    keep_nul: bool = True
    """False where the daemon's shell drops NUL bytes when it relabels (bash, dash)."""
    partial: dict[str, str] = field(default_factory=dict)
    fed: dict[str, int] = field(default_factory=dict)
    """Characters of each stream received from the engine (before any relabelling)."""
    process: Any = None
    """The engine's process handle while an interactive command runs (takes input)."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once an interactive command's process runs (``process``), or the command ended."""

    def emit(self, stream: Stream, text: str) -> None:
        """Append output and wake followers.

        When relabelling, output goes on the way the daemon's loop writes it (``while IFS=
        read -r line || [ -n "$line" ]; do printf '<mark>%s\\n' "$line"; done`` in the
        session shell, daemon ``apps/daemon/pkg/session/execute.go``): whole lines only,
        without NUL bytes under bash and dash.
        """
        self.fed[stream] = self.fed.get(stream, 0) + len(text)
        if self.relabel:
            buffered = self.partial.get(stream, "") + text
            head, newline, tail = buffered.rpartition("\n")
            self.partial[stream] = tail
            text = head + newline
            if not self.keep_nul:
                text = text.replace("\0", "")
        if text:
            self.chunks.append((stream, text))
            self.changed.set()

    def flush(self) -> None:
        """End of the command: an unterminated last line is written with a newline."""
        for stream, tail in list(self.partial.items()):
            if tail:
                self.partial[stream] = ""
                self.fed[stream] -= len(tail) + 1
                self.emit(stream, tail + "\n")  # type: ignore[arg-type]

    def text(self, stream: Stream | None = None) -> str:
        """All output so far, of one stream or both in arrival order."""
        return "".join(t for s, t in self.chunks if stream is None or s == stream)

    def to_json(self) -> dict[str, Any]:
        """The Command JSON."""
        body: dict[str, Any] = {"id": self.id, "command": self.command}
        if self.exit_code is not None:
            body["exitCode"] = self.exit_code
        return body

    async def follow(self) -> AsyncIterator[tuple[Stream, str]]:
        """Every chunk, past and future, until the command ends."""
        sent = 0
        while True:
            self.changed.clear()
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self.exit_code is not None:
                return
            await self.changed.wait()


@dataclass
class Session:
    """A named session and its commands."""

    id: str
    commands: dict[str, Command] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cwd: str | None = None
    """The directory the last command ended in (None: the work dir)."""
    exports: str = ""
    """``export -p`` after the last command, replayed before the next one."""

    def to_json(self) -> dict[str, Any]:
        """The Session JSON."""
        return {"sessionId": self.id, "commands": [c.to_json() for c in self.commands.values()]}


class SessionStore:
    """Sessions of every sandbox."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self._by_sandbox: dict[str, dict[str, Session]] = {}

    def all(self, record: SandboxRecord) -> list[Session]:
        """The sandbox's sessions."""
        return list(self._by_sandbox.get(record.id, {}).values())

    def get(self, record: SandboxRecord, session_id: str) -> Session:
        """One session; 404 SESSION_NOT_FOUND-style daemon error otherwise."""
        session = self._by_sandbox.get(record.id, {}).get(session_id)
        if session is None:
            raise DaemonError(404, f"session {session_id} not found", "NOT_FOUND")
        return session

    def command(self, record: SandboxRecord, session_id: str, command_id: str) -> Command:
        """One command of a session."""
        command = self.get(record, session_id).commands.get(command_id)
        if command is None:
            raise DaemonError(404, f"command {command_id} not found", "NOT_FOUND")
        return command

    def create(self, record: SandboxRecord, session_id: str) -> Session:
        """A new session; 409 if the id is taken."""
        sessions = self._by_sandbox.setdefault(record.id, {})
        if session_id in sessions:
            raise DaemonError(409, f"session {session_id} already exists", "CONFLICT")
        session = sessions[session_id] = Session(session_id)
        return session

    async def delete(self, record: SandboxRecord, session_id: str) -> None:
        """End a session: its running commands are cancelled, its state forgotten."""
        session = self.get(record, session_id)
        del self._by_sandbox[record.id][session_id]
        await _cancel(session)

    def busy(self, sandbox_id: str) -> bool:
        """True while a command of the sandbox is still running."""
        return any(
            c.exit_code is None
            for s in self._by_sandbox.get(sandbox_id, {}).values()
            for c in s.commands.values()
        )

    async def drop_sandbox(self, sandbox_id: str) -> None:
        """Forget the sandbox's sessions, cancelling their commands (stop/delete)."""
        for session in self._by_sandbox.pop(sandbox_id, {}).values():
            await _cancel(session)

    async def aclose(self) -> None:
        """Cancel every running command."""
        for sandbox_id in list(self._by_sandbox):
            await self.drop_sandbox(sandbox_id)

    async def execute(
        self,
        record: SandboxRecord,
        session_id: str,
        command_text: str,
        *,
        run_async: bool,
        takes_input: bool = False,
    ) -> Command:
        """Run ``command_text`` in the session; wait for it unless ``run_async``."""
        session = self.get(record, session_id)
        emulator = self._emulator
        relabel = emulator.config.relabel_output
        if relabel:
            shell_path = await session_shell(emulator, record)
        command = Command(
            id=str(uuid.uuid4()),
            command=command_text,
            relabel=relabel,
            keep_nul=not relabel or shell_path.rsplit("/", 1)[-1].startswith("zsh"),
        )
        session.commands[command.id] = command
        marker = f"\x1e__daytona_session_state_{uuid.uuid4().hex}__"
        record.touch(emulator.clock.now())

        async def run() -> None:
            async with session.lock:
                script = _session_script(session, command_text, marker)
                splitter = _StateSplitter(marker, lambda text: command.emit("stdout", text))
                try:
                    if takes_input and interactive(emulator):
                        code, stdout = await run_interactive(
                            emulator, record, command, script, splitter.feed
                        )
                        _, found, state = stdout.partition(marker)
                        if found:
                            _remember(session, state)
                        command.exit_code = code
                        return
                    result = await shell(
                        emulator,
                        record,
                        script,
                        timeout=emulator.config.session_command_timeout,
                        on_stdout=splitter.feed,
                        on_stderr=lambda text: command.emit("stderr", text),
                    )
                except sandstorm.ExecutionTimeout as exc:
                    _fill(command, exc.stdout.partition(marker)[0], exc.stderr)
                    command.exit_code = 124
                except asyncio.CancelledError:
                    command.exit_code = 137
                    raise
                except sandstorm.SandstormError as exc:
                    command.emit("stderr", f"{exc}\n")
                    command.exit_code = -1
                else:
                    user_stdout, found, state = result.stdout.partition(marker)
                    _fill(command, user_stdout, result.stderr)
                    if found:
                        _remember(session, state)
                    notice = truncation_notice(emulator, result)
                    if notice is not None:
                        command.emit("stderr", notice)
                    command.exit_code = result.exit_code
                finally:
                    command.flush()
                    if command.exit_code is None:
                        command.exit_code = 137
                    command.changed.set()
                    command.ready.set()
                    record.touch(emulator.clock.now())

        command.task = asyncio.create_task(run(), name=f"session-{session_id}-{command.id}")
        if not run_async:
            await asyncio.shield(command.task)
        return command


def _fill(command: Command, stdout: str, stderr: str) -> None:
    """Add what the result holds beyond what was streamed (engines without streaming)."""
    for stream, full in (("stdout", stdout), ("stderr", stderr)):
        seen = command.fed.get(stream, 0)
        if len(full) > seen:
            command.emit(stream, full[seen:])  # type: ignore[arg-type]


async def _cancel(session: Session) -> None:
    tasks = [c.task for c in session.commands.values() if c.task is not None and not c.task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


class _StateSplitter:
    """Passes streamed stdout on, holding back anything that may begin the state marker
    and swallowing the marker and everything after it."""

    def __init__(self, marker: str, emit: Callable[[str], None]) -> None:
        self._marker = marker
        self._emit = emit
        self._pending = ""
        self._found = False

    def feed(self, text: str) -> None:
        if self._found:
            return
        buffer = self._pending + text
        index = buffer.find(self._marker)
        if index >= 0:
            self._found = True
            self._pending = ""
            self._emit(buffer[:index])
            return
        keep = 0
        start = buffer.rfind(self._marker[0], max(0, len(buffer) - len(self._marker) + 1))
        if start >= 0 and self._marker.startswith(buffer[start:]):
            keep = len(buffer) - start
        self._pending = buffer[len(buffer) - keep :]
        self._emit(buffer[: len(buffer) - keep])


def _remember(session: Session, state: str) -> None:
    cwd, sep, exports = state.partition("\0")
    if sep and cwd.startswith("/"):
        session.cwd = cwd.rstrip("\n")
        session.exports = exports


def _session_script(session: Session, command: str, marker: str) -> str:
    """Restore the session's state, run ``command`` in this shell (so ``cd`` and
    ``export`` stick), then report the state on the saved stdout (fd 9, closed for the
    command itself so nothing it starts can write there)."""
    restore = session.exports
    if session.cwd:
        restore += f"\ncd -- {q(session.cwd)} 2>/dev/null\n"
    return (
        f"{restore}\n"
        "exec 9>&1\n"
        f"{{ eval {q(command)}\n}} 9>&-\n"
        "__daytona_rc=$?\n"
        f"{{ printf '%s' {q(marker)}; pwd; printf '\\000'; export -p; }} >&9 2>/dev/null\n"
        "exit $__daytona_rc\n"
    )
