"""The agent capabilities of the provider API: interpreter contexts, processes, ports.

:class:`AgentAPI` is mixed into :class:`~sandstorm.AsyncProvider`. Its public methods
check the declared capability and the arguments, then call the protected primitives
(``_create_context``, ``_start_process``, ``_expose_port``, ...) an adapter implements.
"""

from __future__ import annotations

import errno
import shlex
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._boundary import boundary as _boundary
from ._capabilities import Capability
from ._errors import CapabilityNotSupported, InvalidArgument, WorkspaceOSError
from ._models import FileInfo, OutputChunk, Workspace
from ._validate import (
    check_callback,
    check_code,
    check_env,
    check_flag,
    check_path,
    check_text,
    check_timeout,
)

if TYPE_CHECKING:
    from ._interactive import (
        CodeContext,
        Execution,
        ExecutionResult,
        ExposedPort,
        ProcessInfo,
        ProcessLogs,
    )
    from ._models import RunResult
    from ._processes import AsyncProcessHandle
    from ._provider import AsyncProvider, ExecRequest

T = TypeVar("T")

__all__ = ["AgentAPI", "ResultCallback", "check_port", "check_signal"]

ResultCallback = Callable[["ExecutionResult"], None]
"""Receives each rich result of ``run_code`` as soon as the provider has it."""

_DEFAULT_CODE_TIMEOUT = 60.0


def check_port(port: object) -> int:
    """A TCP port number, 1..65535."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidArgument(f"port must be an int from 1 to 65535 (got {port!r})")
    return port


def check_signal(sig: object) -> int:
    """A signal number, 1..64."""
    if isinstance(sig, bool) or not isinstance(sig, int) or not 0 < sig < 65:
        raise InvalidArgument(f"signal must be an int from 1 to 64 (got {sig!r})")
    return sig


def _context_id(context: CodeContext | str | None) -> str | None:
    from ._interactive import CodeContext

    if context is None or isinstance(context, CodeContext):
        return None if context is None else context.id
    return check_text(context, "context")


def _process_id(process: object) -> str:
    ident = getattr(process, "id", process)
    checked = check_text(ident, "process", optional=False)
    assert checked is not None
    return checked


class AgentAPI:
    """Public API and primitives of ``INTERPRETER``, ``PROCESSES`` and ``PORTS``."""

    if TYPE_CHECKING:  # provided by AsyncProvider
        name: ClassVar[str]
        languages: ClassVar[frozenset[str]]
        max_timeout: ClassVar[float | None]
        capabilities: ClassVar[frozenset[Capability]]

        def _sandstorm_check_open(self) -> None: ...
        def require(self, capability: Capability, detail: str | None = None) -> None: ...
        async def _sandstorm_resolve(self, workspace: Workspace | str) -> Workspace: ...
        async def _sandstorm_guarded(self, work: Coroutine[Any, Any, T]) -> T: ...
        async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]: ...
        async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult: ...
        def _sandstorm_audit(
            self, action: str, workspace_id: str | None, **details: Any
        ) -> None: ...

    # ------------------------------------------------------------------ interpreter

    @_boundary
    async def create_context(
        self,
        workspace: Workspace | str,
        *,
        language: str = "python",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CodeContext:
        """A new interpreter context in the workspace: state persists between its runs."""
        self._sandstorm_check_open()
        self.require(Capability.INTERPRETER)
        language = check_text(language, "language", optional=False) or "python"
        if language not in self.languages:
            raise InvalidArgument(f"language {language!r} is not one of {sorted(self.languages)}")
        cwd = check_text(cwd, "cwd")
        checked_env = check_env(env)
        ws = await self._sandstorm_resolve(workspace)
        if cwd is not None:
            await self._sandstorm_check_context_cwd(ws, cwd)
        return await self._sandstorm_guarded(self._create_context(ws, language, cwd, checked_env))

    async def _sandstorm_check_context_cwd(self, workspace: Workspace, cwd: str) -> None:
        """Refuse a context whose ``cwd`` is not a directory in the workspace's sandbox.

        The interpreter would otherwise start, fail to enter it and die, and the error would
        only show on the next run as a lost context (as on Daytona, where the daemon fails
        to start it). A relative ``cwd`` is checked through the provider's own (sandboxed)
        file listing; an absolute one, which only the sandbox can see, by a shell run there
        (when the provider runs shell).
        """
        message = (
            f"the context's cwd {cwd!r} is not a directory of the workspace "
            "(create it first, or pass an existing one)"
        )
        if cwd.startswith("/"):
            found = await self._sandstorm_probe_directory(workspace, cwd)
            if found is None:
                return
            error = OSError(found, message)
        elif Capability.FILES in self.capabilities:
            try:
                await self._list_files(workspace, check_path(cwd, root=True))
                return
            except OSError as exc:
                error = exc
        else:
            return
        cls = type(WorkspaceOSError.of(error))
        raise (cls(message) if error.errno is None else cls(error.errno, message)) from None

    async def _sandstorm_probe_directory(self, workspace: Workspace, path: str) -> int | None:
        """``None`` when ``path`` is a directory inside the sandbox, else the errno saying
        why not (``None`` too when the provider cannot tell: it runs no shell)."""
        from ._provider import ExecRequest

        if "shell" not in self.languages:
            return None
        quoted = shlex.quote(path)
        probe = f"if [ -d {quoted} ]; then exit 0; elif [ -e {quoted} ]; then exit 20; fi; exit 2"
        result = await self._execute(
            workspace, ExecRequest(code=probe, language="shell", timeout=_DEFAULT_CODE_TIMEOUT)
        )
        return {2: errno.ENOENT, 20: errno.ENOTDIR}.get(result.exit_code)

    @_boundary
    async def run_code(
        self,
        workspace: Workspace | str,
        code: str,
        *,
        context: CodeContext | str | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        on_result: ResultCallback | None = None,
    ) -> Execution:
        """Run ``code`` in an interpreter context (the workspace's default one when ``None``).

        The value of the last expression comes back as the main result; an exception is
        ``Execution.error``, not raised. A timeout interrupts the code and keeps the
        context usable, raising :class:`~sandstorm.ExecutionTimeout`.
        """
        self._sandstorm_check_open()
        self.require(Capability.INTERPRETER)
        code = check_code(code)
        context_id = _context_id(context)
        seconds = check_timeout(timeout, self.max_timeout) or _DEFAULT_CODE_TIMEOUT
        check_callback(on_stdout, "on_stdout")
        check_callback(on_stderr, "on_stderr")
        if on_result is not None and not callable(on_result):
            raise InvalidArgument(f"on_result must be a callable or None (got {on_result!r})")
        from ._interactive import CodeContext

        if isinstance(context, CodeContext) and context.workspace_id != _ref(workspace):
            raise InvalidArgument("the context belongs to another workspace")
        ws = await self._sandstorm_resolve(workspace)
        started = time.perf_counter()
        try:
            execution = await self._sandstorm_guarded(
                self._run_code(ws, context_id, code, seconds, on_stdout, on_stderr, on_result)
            )
        except BaseException as exc:
            self._sandstorm_audit(
                "code.run",
                ws.id,
                context_id=context_id,
                error=type(exc).__name__,
                duration=time.perf_counter() - started,
            )
            raise
        failed = execution.error.name if execution.error is not None else None
        self._sandstorm_audit(
            "code.run",
            ws.id,
            context_id=context_id,
            error=failed,
            duration=time.perf_counter() - started,
        )
        return execution

    @_boundary
    async def restart_context(self, context: CodeContext) -> CodeContext:
        """Forget the context's state (a fresh interpreter with the same id)."""
        self._sandstorm_check_open()
        self.require(Capability.INTERPRETER)
        ws = await self._sandstorm_resolve(context.workspace_id)
        return await self._sandstorm_guarded(self._restart_context(ws, context.id))

    @_boundary
    async def delete_context(self, context: CodeContext) -> None:
        """Stop the context's interpreter and forget it."""
        self._sandstorm_check_open()
        self.require(Capability.INTERPRETER)
        ws = await self._sandstorm_resolve(context.workspace_id)
        await self._sandstorm_guarded(self._delete_context(ws, context.id))

    @_boundary
    async def list_contexts(self, workspace: Workspace | str) -> list[CodeContext]:
        """The interpreter contexts of the workspace."""
        self._sandstorm_check_open()
        self.require(Capability.INTERPRETER)
        ws = await self._sandstorm_resolve(workspace)
        return await self._list_contexts(ws)

    # ------------------------------------------------------------------ processes

    @_boundary
    async def start_process(
        self,
        workspace: Workspace | str,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> AsyncProcessHandle:
        """Start a shell command line in the background; it outlives this call.

        It runs with the same isolation and limits as a run, and is killed with the
        workspace. ``stdin=True`` keeps its standard input open for ``send_stdin``.
        """
        from ._processes import AsyncProcessHandle

        self._sandstorm_check_open()
        self.require(Capability.PROCESSES)
        command = check_text(command, "command", optional=False) or ""
        cwd = check_text(cwd, "cwd")
        checked_env = check_env(env)
        stdin = check_flag(stdin, "stdin")
        ws = await self._sandstorm_resolve(workspace)
        info = await self._sandstorm_guarded(
            self._start_process(ws, command, cwd, checked_env, stdin)
        )
        self._sandstorm_audit("process.start", ws.id, process_id=info.id)
        return AsyncProcessHandle(_provider(self), info)

    @_boundary
    async def list_processes(self, workspace: Workspace | str) -> list[ProcessInfo]:
        """The background processes of the workspace, running or exited."""
        self._sandstorm_check_open()
        self.require(Capability.PROCESSES)
        ws = await self._sandstorm_resolve(workspace)
        return await self._list_processes(ws)

    @_boundary
    async def get_process(self, workspace: Workspace | str, process_id: str) -> AsyncProcessHandle:
        """A handle on one background process (:class:`~sandstorm.ProcessNotFound` if none)."""
        from ._processes import AsyncProcessHandle

        self._sandstorm_check_open()
        self.require(Capability.PROCESSES)
        ident = _process_id(process_id)
        ws = await self._sandstorm_resolve(workspace)
        return AsyncProcessHandle(_provider(self), await self._get_process(ws, ident))

    async def _process_call(self, workspace_id: str) -> Workspace:
        self._sandstorm_check_open()
        self.require(Capability.PROCESSES)
        return await self._sandstorm_resolve(workspace_id)

    # ------------------------------------------------------------------ ports

    @_boundary
    async def expose_port(self, workspace: Workspace | str, port: int) -> ExposedPort:
        """Make ``port`` in the sandbox reachable from the application at the returned url."""
        self._sandstorm_check_open()
        self.require(Capability.PORTS)
        port = check_port(port)
        ws = await self._sandstorm_resolve(workspace)
        exposed = await self._sandstorm_guarded(self._expose_port(ws, port))
        self._sandstorm_audit("port.expose", ws.id, port=port)
        return exposed

    @_boundary
    async def unexpose_port(self, workspace: Workspace | str, port: int) -> None:
        """Stop forwarding ``port`` (a no-op when it is not exposed)."""
        self._sandstorm_check_open()
        self.require(Capability.PORTS)
        port = check_port(port)
        ws = await self._sandstorm_resolve(workspace)
        await self._sandstorm_guarded(self._unexpose_port(ws, port))

    # ------------------------------------------------------------------ primitives (SPI)

    async def _create_context(
        self, workspace: Workspace, language: str, cwd: str | None, env: dict[str, str]
    ) -> CodeContext:
        raise _missing(self, Capability.INTERPRETER)

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
        raise _missing(self, Capability.INTERPRETER)

    async def _restart_context(self, workspace: Workspace, context_id: str) -> CodeContext:
        raise _missing(self, Capability.INTERPRETER)

    async def _delete_context(self, workspace: Workspace, context_id: str) -> None:
        raise _missing(self, Capability.INTERPRETER)

    async def _list_contexts(self, workspace: Workspace) -> list[CodeContext]:
        raise _missing(self, Capability.INTERPRETER)

    async def _start_process(
        self,
        workspace: Workspace,
        command: str,
        cwd: str | None,
        env: dict[str, str],
        stdin: bool,
    ) -> ProcessInfo:
        raise _missing(self, Capability.PROCESSES)

    async def _list_processes(self, workspace: Workspace) -> list[ProcessInfo]:
        raise _missing(self, Capability.PROCESSES)

    async def _get_process(self, workspace: Workspace, process_id: str) -> ProcessInfo:
        raise _missing(self, Capability.PROCESSES)

    async def _wait_process(
        self, workspace: Workspace, process_id: str, timeout: float | None
    ) -> int:
        raise _missing(self, Capability.PROCESSES)

    async def _kill_process(self, workspace: Workspace, process_id: str, signal: int) -> None:
        raise _missing(self, Capability.PROCESSES)

    async def _send_stdin(self, workspace: Workspace, process_id: str, data: bytes) -> None:
        raise _missing(self, Capability.PROCESSES)

    def _stream_process(self, workspace: Workspace, process_id: str) -> AsyncIterator[OutputChunk]:
        raise _missing(self, Capability.PROCESSES)

    async def _process_logs(self, workspace: Workspace, process_id: str) -> ProcessLogs:
        raise _missing(self, Capability.PROCESSES)

    async def _expose_port(self, workspace: Workspace, port: int) -> ExposedPort:
        raise _missing(self, Capability.PORTS)

    async def _unexpose_port(self, workspace: Workspace, port: int) -> None:
        raise _missing(self, Capability.PORTS)


def _ref(workspace: Workspace | str) -> str:
    return workspace.id if isinstance(workspace, Workspace) else workspace


def _missing(provider: object, capability: Capability) -> CapabilityNotSupported:
    return CapabilityNotSupported(getattr(provider, "name", "?"), capability.value)


def _provider(api: AgentAPI) -> AsyncProvider:
    from ._provider import AsyncProvider

    assert isinstance(api, AsyncProvider)
    return api
